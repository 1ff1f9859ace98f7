//! What a decoder is assembled from — embeddings, blocks, final norm, output layer — built by
//! each family's file (`gpt2.rs`, `llama.rs`) or read from a GGUF file.

use candle_core::Tensor;

use super::block::Block;
use super::config::DecoderConfig;
use super::token_table::TokenTable;
use crate::error::Result;
use crate::nn::norm::Norm;
use crate::nn::projection::{Projection, Weight};
use crate::nn::{Init, ParamBuilder};

/// The parts a model is assembled from (by [`DecoderModel::new`] or the GGUF reader).
pub(crate) struct Parts {
    /// Token embeddings (vocab, hidden).
    pub embed: TokenTable,
    /// Learned position embeddings (GPT-2).
    pub positions: Option<Tensor>,
    /// The blocks.
    pub blocks: Vec<Block>,
    /// The norm after the last block.
    pub final_norm: Norm,
    /// The output layer.
    pub lm_head: Projection,
}

/// The output layer: the embedding matrix when tied, else `lm_head.weight`.
pub(crate) fn output_layer(
    c: &DecoderConfig,
    vb: &ParamBuilder,
    embed: &Tensor,
) -> Result<Projection> {
    let weight = if c.tie_word_embeddings {
        embed.clone()
    } else {
        vb.param(
            "lm_head.weight",
            &[c.vocab_size, c.hidden_size],
            Init::Normal {
                std: c.initializer_range,
            },
        )?
    };
    Ok(Projection::new(Weight::Dense(weight), None))
}

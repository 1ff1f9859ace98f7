//! The attention weights of Transformer models, every layer and head, for `prosa explain
//! attention` (what bertviz shows, and transformers' `output_attentions=True` returns):
//! encoders (BERT, DistilBERT, RoBERTa) over one text, decoders (GPT-2, Llama) over one text
//! with their causal masks, and the translator's encoder, decoder and cross-attention (see
//! `TransformerTranslator::attention`).

use candle_core::Tensor;
use serde::Serialize;

use super::decoder::DecoderModel;
use super::encoder::{EncoderInput, EncoderModel};
use crate::error::{Error, Result};
use crate::nn::attention::position_ids;
use crate::nn::{AttentionKind, ForwardCtx};
use crate::text::SubwordTokenizer;

/// The weights of every head of one layer: `[head][query][key]`.
pub type LayerMaps = Vec<Vec<Vec<f32>>>;

/// The attention of one stack over one sequence (or one target over one source).
#[derive(Debug, Clone, Serialize)]
pub struct AttentionMaps {
    /// The tokens whose attention each row shows (queries).
    pub queries: Vec<String>,
    /// The tokens attended to (keys), one column each.
    pub keys: Vec<String>,
    /// `[layer][head][query][key]`; each row sums to 1.
    pub layers: Vec<LayerMaps>,
}

impl AttentionMaps {
    /// One head's map (`[query][key]`), naming the valid range when `layer` or `head` is out of it.
    pub fn head(&self, layer: usize, head: usize) -> Result<&Vec<Vec<f32>>> {
        let heads = self.layers.get(layer).ok_or_else(|| {
            Error::config(
                "layer",
                format!(
                    "layer {layer} does not exist: the model has layers 0 to {}",
                    self.layers.len().saturating_sub(1)
                ),
            )
        })?;
        heads.get(head).ok_or_else(|| {
            Error::config(
                "head",
                format!(
                    "head {head} does not exist: layer {layer} has heads 0 to {}",
                    heads.len().saturating_sub(1)
                ),
            )
        })
    }
}

/// The first batch row of each recorded (batch, heads, queries, keys) map.
pub fn first_row_maps(maps: &[&Tensor]) -> Result<Vec<LayerMaps>> {
    maps.iter()
        .map(|m| {
            Ok(m.get(0)?
                .to_dtype(candle_core::DType::F32)?
                .to_vec3::<f32>()?)
        })
        .collect()
}

/// A readable label for each token: its decoded text, or the token itself when that is empty
/// (special tokens, byte pieces of a character).
pub fn token_labels(tokenizer: &SubwordTokenizer, ids: &[u32]) -> Vec<String> {
    ids.iter()
        .map(|&id| {
            let text = tokenizer.decode(&[id], false).unwrap_or_default();
            let text = text.trim();
            if text.is_empty() || text.contains('\u{fffd}') {
                tokenizer.id_to_token(id).unwrap_or_default()
            } else {
                text.to_string()
            }
        })
        .collect()
}

/// The self-attention of every layer of a BERT-family encoder over `text` (special tokens
/// added as the tokenizer adds them).
pub fn encoder_attention(model: &EncoderModel, text: &str) -> Result<AttentionMaps> {
    let tokenizer = model
        .tokenizer
        .as_ref()
        .ok_or_else(|| Error::config("tokenizer", "the encoder folder has no tokenizer"))?;
    let ids = tokenizer.encode(text, true)?;
    if ids.is_empty() {
        return Err(Error::config("text", "the text has no tokens"));
    }
    let mut ctx = ForwardCtx::recording_attention();
    model.forward(&EncoderInput::from_rows(&[&ids], 0), &mut ctx)?;
    let labels = token_labels(tokenizer, &ids);
    Ok(AttentionMaps {
        queries: labels.clone(),
        keys: labels,
        layers: first_row_maps(&ctx.attention_maps(AttentionKind::SelfAttention))?,
    })
}

/// The causal self-attention of every layer of a decoder over `text`: row `t` sees tokens
/// `≤ t`, later keys get 0.
pub fn decoder_attention(model: &DecoderModel, text: &str) -> Result<AttentionMaps> {
    let ids = model.encode_prompt(text, false)?;
    if ids.is_empty() {
        return Err(Error::config("text", "the text has no tokens"));
    }
    let mask = vec![vec![1u32; ids.len()]];
    let mut ctx = ForwardCtx::recording_attention();
    model.hidden_states(
        std::slice::from_ref(&ids),
        &position_ids(&mask),
        &mask,
        None,
        &mut ctx,
    )?;
    let labels = token_labels(model.tokenizer()?, &ids);
    Ok(AttentionMaps {
        queries: labels.clone(),
        keys: labels,
        layers: first_row_maps(&ctx.attention_maps(AttentionKind::SelfAttention))?,
    })
}

/// The attention of an encoder–decoder while it translates one source.
#[derive(Debug, Clone, Serialize)]
pub struct EncoderDecoderAttention {
    /// The generated tokens (`</s>` included when it was generated).
    pub generated: Vec<u32>,
    /// The encoder's self-attention over the source.
    pub encoder: AttentionMaps,
    /// The decoder's causal self-attention: the row of each generated token shows what the
    /// decoder read while writing it.
    pub decoder: AttentionMaps,
    /// Cross-attention, generated tokens × source tokens: the alignment of each layer and head.
    pub cross: AttentionMaps,
}

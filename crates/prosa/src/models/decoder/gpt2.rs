//! GPT-2 ("Language Models are Unsupervised Multitask Learners", Radford et al. 2019), named as
//! transformers' `GPT2LMHeadModel`:
//!
//! ```text
//! x = wte[ids] + wpe[positions]                         transformer.wte, transformer.wpe
//! for each block h.i:
//!     x = x + c_proj(attention(c_attn(ln_1(x))))        causal, one fused q|k|v Conv1D
//!     x = x + mlp.c_proj(gelu_tanh(mlp.c_fc(ln_2(x))))
//! logits = ln_f(x) · wteᵀ                               the output layer tied to wte
//! ```
//!
//! Weights keep GPT-2's `Conv1D` layout (in, out); residual projections start with the
//! standard deviation scaled by 1/√(2·layers), as GPT-2 initialises them.

use super::block::{Block, Mlp};
use super::config::DecoderConfig;
use super::parts::{output_layer, Parts};
use super::token_table::TokenTable;
use crate::error::Result;
use crate::nn::attention::{MultiHeadAttention, Qkv};
use crate::nn::norm::Norm;
use crate::nn::projection::Projection;
use crate::nn::{Init, ParamBuilder};

/// Creates every GPT-2 parameter under `vb` with transformers' names and initialisation.
pub(crate) fn build(c: &DecoderConfig, vb: &ParamBuilder) -> Result<Parts> {
    let normal = Init::Normal {
        std: c.initializer_range,
    };
    let residual = Init::Normal {
        std: c.initializer_range / (2.0 * c.num_layers as f64).sqrt(),
    };
    let (h, f) = (c.hidden_size, c.intermediate_size);
    let base = vb.pp("transformer");
    let embed = base.param("wte.weight", &[c.vocab_size, h], normal)?;
    let positions = base.param("wpe.weight", &[c.max_positions, h], normal)?;
    let mut blocks = Vec::with_capacity(c.num_layers);
    for i in 0..c.num_layers {
        let vb = base.pp(&format!("h.{i}"));
        blocks.push(Block {
            norm1: Norm::layer(&vb, "ln_1", h, c.norm_eps)?,
            attention: MultiHeadAttention {
                qkv: Qkv::Fused(Projection::conv1d(&vb, "attn.c_attn", h, 3 * h, normal)?),
                out: Projection::conv1d(&vb, "attn.c_proj", h, h, residual)?,
                heads: c.num_heads,
                kv_heads: c.num_heads,
                head_dim: c.head_dim,
                attention_dropout: c.dropout,
                output_dropout: c.dropout,
                scale: None,
            },
            norm2: Norm::layer(&vb, "ln_2", h, c.norm_eps)?,
            mlp: Mlp::Gelu {
                fc: Projection::conv1d(&vb, "mlp.c_fc", h, f, normal)?,
                proj: Projection::conv1d(&vb, "mlp.c_proj", f, h, residual)?,
            },
            dropout: c.dropout,
        });
    }
    let final_norm = Norm::layer(&base, "ln_f", h, c.norm_eps)?;
    let lm_head = output_layer(c, vb, &embed)?;
    Ok(Parts {
        embed: TokenTable::Dense(embed),
        positions: Some(positions),
        blocks,
        final_norm,
        lm_head,
    })
}

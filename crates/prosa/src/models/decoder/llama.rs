//! Llama ("LLaMA", Touvron et al. 2023; SmolLM2, Mistral-like models), named as transformers'
//! `LlamaForCausalLM`:
//!
//! ```text
//! x = embed_tokens[ids]                                        model.embed_tokens
//! for each block layers.i:
//!     x = x + o_proj(attention(rope(q_proj), rope(k_proj), v_proj)(rms(x)))
//!                                                              grouped-query heads
//!     x = x + down_proj(silu(gate_proj(rms(x))) ⊙ up_proj(rms(x)))
//! logits = norm(x) · lm_headᵀ                                  tied to embed_tokens or not
//! ```

use super::block::{Block, Mlp};
use super::config::DecoderConfig;
use super::parts::{output_layer, Parts};
use super::token_table::TokenTable;
use crate::error::Result;
use crate::nn::attention::{MultiHeadAttention, Qkv};
use crate::nn::norm::Norm;
use crate::nn::projection::Projection;
use crate::nn::{Init, ParamBuilder};

/// Creates every Llama parameter under `vb` with transformers' names and initialisation.
pub(crate) fn build(c: &DecoderConfig, vb: &ParamBuilder) -> Result<Parts> {
    let normal = Init::Normal {
        std: c.initializer_range,
    };
    let (h, f) = (c.hidden_size, c.intermediate_size);
    let (nh, kvh, dh) = (c.num_heads, c.num_kv_heads, c.head_dim);
    let base = vb.pp("model");
    let dense = |vb: &ParamBuilder, name: &str, i: usize, o: usize, bias: bool| {
        Projection::dense(vb, name, i, o, normal, bias)
    };
    let embed = base.param("embed_tokens.weight", &[c.vocab_size, h], normal)?;
    let mut blocks = Vec::with_capacity(c.num_layers);
    for i in 0..c.num_layers {
        let vb = base.pp(&format!("layers.{i}"));
        let bias = c.attention_bias;
        blocks.push(Block {
            norm1: Norm::rms(&vb, "input_layernorm", h, c.norm_eps)?,
            attention: MultiHeadAttention {
                qkv: Qkv::separate(
                    dense(&vb, "self_attn.q_proj", h, nh * dh, bias)?,
                    dense(&vb, "self_attn.k_proj", h, kvh * dh, bias)?,
                    dense(&vb, "self_attn.v_proj", h, kvh * dh, bias)?,
                ),
                out: dense(&vb, "self_attn.o_proj", nh * dh, h, false)?,
                heads: nh,
                kv_heads: kvh,
                head_dim: dh,
                attention_dropout: c.dropout,
                output_dropout: 0.0,
                scale: None,
            },
            norm2: Norm::rms(&vb, "post_attention_layernorm", h, c.norm_eps)?,
            mlp: Mlp::SwiGlu {
                gate: dense(&vb, "mlp.gate_proj", h, f, false)?,
                up: dense(&vb, "mlp.up_proj", h, f, false)?,
                down: dense(&vb, "mlp.down_proj", f, h, false)?,
            },
            dropout: 0.0,
        });
    }
    let final_norm = Norm::rms(&base, "norm", h, c.norm_eps)?;
    let lm_head = output_layer(c, vb, &embed)?;
    Ok(Parts {
        embed: TokenTable::Dense(embed),
        positions: None,
        blocks,
        final_norm,
        lm_head,
    })
}

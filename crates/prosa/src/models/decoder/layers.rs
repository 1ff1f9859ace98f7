//! The blocks of a decoder-only Transformer: projections that are dense (trainable, f32) or
//! quantized (GGUF), layer and RMS norms, causal self-attention with a key/value cache and
//! grouped-query heads, and the GELU or SwiGLU feed-forward layer.

use std::sync::Arc;

use candle_core::quantized::QMatMul;
use candle_core::{Module, Tensor};

use super::cache::LayerCache;
use crate::error::Result;
use crate::nn::dropout;
use crate::nn::linear::{conv1d_linear, linear, linear_no_bias};
use crate::nn::norm::{causal_masked_softmax, gelu_tanh, layer_norm, masked_softmax, rms_norm};
use crate::nn::quantized::QuantMatrix;
use crate::nn::rope::{rope, RopeStyle};
use crate::train::ForwardCtx;

/// The weight of a projection.
#[derive(Clone)]
pub enum Weight {
    /// `nn.Linear` layout (out, in), f32.
    Dense(Tensor),
    /// GPT-2's `Conv1D` layout (in, out), f32.
    Conv1d(Tensor),
    /// A GGUF tensor (out, in) of type Q4_0, Q4_1 or Q8_0, multiplied by prosa's kernels.
    Blocks(Arc<QuantMatrix>),
    /// A GGUF tensor of another type, multiplied in its quantized form by candle.
    Quantized(Arc<QMatMul>),
}

/// `y = x·Wᵀ + b` over the last dimension.
#[derive(Clone)]
pub struct Projection {
    /// The weight.
    pub weight: Weight,
    /// The bias, if the layer has one.
    pub bias: Option<Tensor>,
}

impl Projection {
    /// A projection from its parts.
    pub fn new(weight: Weight, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// Applies the projection to `x` (…, in).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.weight {
            Weight::Dense(w) => match &self.bias {
                Some(b) => linear(x, w, b),
                None => linear_no_bias(x, w),
            },
            Weight::Conv1d(w) => match &self.bias {
                Some(b) => conv1d_linear(x, w, b),
                None => {
                    let zeros = Tensor::zeros(w.dim(1)?, x.dtype(), x.device())?;
                    conv1d_linear(x, w, &zeros)
                }
            },
            Weight::Blocks(q) => {
                let y = q.matmul(x)?;
                Ok(match &self.bias {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                })
            }
            Weight::Quantized(q) => {
                let y = q.forward(&x.contiguous()?)?;
                Ok(match &self.bias {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                })
            }
        }
    }
}

/// A layer norm (GPT-2) or an RMS norm (Llama).
#[derive(Clone)]
pub enum Norm {
    /// `(x − mean)/std · γ + β`.
    Layer {
        /// γ.
        weight: Tensor,
        /// β.
        bias: Tensor,
        /// ε.
        eps: f64,
    },
    /// `x / rms(x) · γ`.
    Rms {
        /// γ.
        weight: Tensor,
        /// ε.
        eps: f64,
    },
}

impl Norm {
    /// Normalises the last dimension.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Norm::Layer { weight, bias, eps } => layer_norm(x, weight, bias, *eps),
            Norm::Rms { weight, eps } => rms_norm(x, weight, *eps),
        }
    }
}

/// The query, key and value projections: one fused `c_attn` (GPT-2) or three (Llama).
#[derive(Clone)]
pub enum Qkv {
    /// One projection to `[q | k | v]`.
    Fused(Projection),
    /// Separate projections.
    Separate {
        /// Queries.
        q: Projection,
        /// Keys.
        k: Projection,
        /// Values.
        v: Projection,
    },
}

/// Where each token is: rotary tables (Llama) with its style, or nothing (GPT-2 adds learned
/// positions to the embeddings).
pub struct Rotary<'a> {
    /// Cosines (batch, seq, head_dim/2).
    pub cos: &'a Tensor,
    /// Sines, same shape.
    pub sin: &'a Tensor,
    /// Channel pairing.
    pub style: RopeStyle,
}

/// Causal multi-head self-attention with grouped key/value heads.
#[derive(Clone)]
pub struct Attention {
    /// Query/key/value projections.
    pub qkv: Qkv,
    /// The output projection.
    pub out: Projection,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
    /// Dropout on attention probabilities and the output while training.
    pub dropout: f32,
}

impl Attention {
    /// `x` (batch, seq, hidden) are the newest `seq` positions; `cache` holds the keys and values
    /// of earlier ones and receives these; `pad_bias` (batch, 1, 1, cached + seq) masks padding.
    pub fn forward(
        &self,
        x: &Tensor,
        rotary: Option<&Rotary>,
        pad_bias: &Tensor,
        cache: Option<&mut LayerCache>,
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        let (batch, seq, _) = x.dims3()?;
        let (h, kvh, dh) = (self.heads, self.kv_heads, self.head_dim);
        let (q, k, v) = match &self.qkv {
            Qkv::Fused(p) => {
                let all = p.forward(x)?;
                (
                    all.narrow(2, 0, h * dh)?,
                    all.narrow(2, h * dh, kvh * dh)?,
                    all.narrow(2, (h + kvh) * dh, kvh * dh)?,
                )
            }
            Qkv::Separate { q, k, v } => (q.forward(x)?, k.forward(x)?, v.forward(x)?),
        };
        let split = |t: Tensor, n: usize| -> Result<Tensor> {
            Ok(t.reshape((batch, seq, n, dh))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let (mut q, mut k, v) = (split(q, h)?, split(k, kvh)?, split(v, kvh)?);
        if let Some(r) = rotary {
            q = rope(&q, r.cos, r.sin, r.style)?;
            k = rope(&k, r.cos, r.sin, r.style)?;
        }
        let (k, v) = match cache {
            Some(c) => c.append(k, v)?,
            None => (k, v),
        };
        let scale = 1.0 / (dh as f64).sqrt();
        let group = h / kvh;
        let context = if seq == 1 && group > 1 {
            // One new token sees every cached key: group its query heads per key/value head
            // instead of copying the keys and values `group` times.
            let q = q.reshape((batch, kvh, group, dh))?;
            let probs = masked_softmax(&q.matmul(&k.t()?)?, pad_bias, scale)?;
            probs.matmul(&v)?.reshape((batch, h, 1, dh))?
        } else {
            let (k, v) = (repeat_kv(&k, group)?, repeat_kv(&v, group)?);
            let probs = causal_masked_softmax(&q.matmul(&k.t()?)?, pad_bias, scale)?;
            let probs = dropout(&probs, self.dropout, ctx)?;
            probs.matmul(&v)?
        };
        let context = context.transpose(1, 2)?.reshape((batch, seq, h * dh))?;
        dropout(&self.out.forward(&context)?, self.dropout, ctx)
    }
}

/// (batch, kv_heads, seq, d) → (batch, kv_heads·group, seq, d), each key/value head repeated
/// for the `group` query heads that share it.
fn repeat_kv(x: &Tensor, group: usize) -> Result<Tensor> {
    if group == 1 {
        return Ok(x.clone());
    }
    let (b, kvh, s, d) = x.dims4()?;
    Ok(x.unsqueeze(2)?
        .broadcast_as((b, kvh, group, s, d))?
        .contiguous()?
        .reshape((b, kvh * group, s, d))?)
}

/// The feed-forward layer.
#[derive(Clone)]
pub enum Mlp {
    /// GPT-2: `proj(gelu_tanh(fc(x)))`.
    Gelu {
        /// `c_fc`.
        fc: Projection,
        /// `c_proj`.
        proj: Projection,
    },
    /// Llama with gate and up stacked in one product (`[gate | up]`).
    StackedSwiGlu {
        /// `[gate_proj; up_proj]`.
        gate_up: Projection,
        /// `down_proj`.
        down: Projection,
        /// Width of each half.
        intermediate: usize,
    },
    /// Llama: `down(silu(gate(x)) ⊙ up(x))`.
    SwiGlu {
        /// `gate_proj`.
        gate: Projection,
        /// `up_proj`.
        up: Projection,
        /// `down_proj`.
        down: Projection,
    },
}

impl Mlp {
    /// Applies the layer.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Mlp::Gelu { fc, proj } => proj.forward(&gelu_tanh(&fc.forward(x)?)?),
            Mlp::StackedSwiGlu {
                gate_up,
                down,
                intermediate,
            } => {
                let both = gate_up.forward(x)?;
                let last = both.rank() - 1;
                let gate = both.narrow(last, 0, *intermediate)?;
                let up = both.narrow(last, *intermediate, *intermediate)?;
                down.forward(&(gate.silu()? * up)?)
            }
            Mlp::SwiGlu { gate, up, down } => {
                down.forward(&(gate.forward(x)?.silu()? * up.forward(x)?)?)
            }
        }
    }
}

/// One pre-norm block: `x + attn(norm1(x))`, then `x + mlp(norm2(x))`.
#[derive(Clone)]
pub struct Block {
    /// Norm before attention.
    pub norm1: Norm,
    /// Self-attention.
    pub attention: Attention,
    /// Norm before the feed-forward layer.
    pub norm2: Norm,
    /// Feed-forward layer.
    pub mlp: Mlp,
    /// Residual dropout while training.
    pub dropout: f32,
}

impl Block {
    /// Applies the block to the newest positions `x` (batch, seq, hidden).
    pub fn forward(
        &self,
        x: &Tensor,
        rotary: Option<&Rotary>,
        pad_bias: &Tensor,
        cache: Option<&mut LayerCache>,
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        let attended =
            self.attention
                .forward(&self.norm1.forward(x)?, rotary, pad_bias, cache, ctx)?;
        let x = (x + attended)?;
        let fed = dropout(
            &self.mlp.forward(&self.norm2.forward(&x)?)?,
            self.dropout,
            ctx,
        )?;
        Ok((x + fed)?)
    }
}

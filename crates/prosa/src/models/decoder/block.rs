//! The block of a decoder-only Transformer (GPT-2 and Llama alike are pre-norm):
//!
//! ```text
//! x = x + attention(norm1(x))      causal self-attention, key/value cache
//! x = x + mlp(norm2(x))            GELU (GPT-2) or SwiGLU (Llama) feed-forward layer
//! ```

use candle_core::Tensor;

use crate::error::Result;
use crate::nn::activation::{silu, Activation};
use crate::nn::attention::{Mask, MultiHeadAttention, Rotary};
use crate::nn::elementwise::add;
use crate::nn::kv_cache::LayerCache;
use crate::nn::norm::Norm;
use crate::nn::projection::Projection;
use crate::nn::{dropout, ForwardCtx};

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
            Mlp::Gelu { fc, proj } => proj.forward(&fc.forward_activated(x, Activation::GeluTanh)?),
            Mlp::StackedSwiGlu {
                gate_up,
                down,
                intermediate,
            } => down.forward(&gate_up.forward_swiglu(x, *intermediate)?),
            Mlp::SwiGlu { gate, up, down } => {
                down.forward(&(silu(&gate.forward(x)?)? * up.forward(x)?)?)
            }
        }
    }
}

/// One pre-norm block: `x + attn(norm1(x))`, then `x + mlp(norm2(x))`.
#[derive(Clone)]
pub struct Block {
    /// Norm before attention.
    pub norm1: Norm,
    /// Causal self-attention.
    pub attention: MultiHeadAttention,
    /// Norm before the feed-forward layer.
    pub norm2: Norm,
    /// Feed-forward layer.
    pub mlp: Mlp,
    /// Residual dropout after the feed-forward layer while training.
    pub dropout: f32,
}

impl Block {
    /// Applies the block to the newest positions `x` (batch, seq, hidden); `pad_bias`
    /// (batch, 1, 1, cached + seq) masks padding. With `last_only`, the output of the last
    /// position alone (batch, 1, hidden): the attention runs for every position (their keys and
    /// values go into the cache), the feed-forward for the last row only — all that a next-token
    /// prediction reads of the last block (llama.cpp skips its last layer's unused rows the
    /// same way).
    pub fn forward(
        &self,
        x: &Tensor,
        rotary: Option<&Rotary>,
        pad_bias: &Tensor,
        cache: Option<&mut LayerCache>,
        ctx: &mut ForwardCtx,
        last_only: bool,
    ) -> Result<Tensor> {
        let attended = self.attention.forward(
            &self.norm1.forward(x)?,
            Mask::Causal(pad_bias),
            rotary,
            cache,
            ctx,
        )?;
        if !last_only {
            return self.feed_forward(&add(x, &attended)?, ctx);
        }
        let seq = x.dim(1)?;
        let last = |t: &Tensor| t.narrow(1, seq - 1, 1)?.contiguous();
        self.feed_forward(&add(&last(x)?, &last(&attended)?)?, ctx)
    }

    /// `x + mlp(norm2(x))`, with dropout on the feed-forward's output while training.
    fn feed_forward(&self, x: &Tensor, ctx: &mut ForwardCtx) -> Result<Tensor> {
        let fed = dropout(
            &self.mlp.forward(&self.norm2.forward(x)?)?,
            self.dropout,
            ctx,
        )?;
        add(x, &fed)
    }

    /// One new position per sequence, each sequence with its own cache (continuous batching):
    /// `x` (rows, 1, hidden), `caches[i]` the layer cache of row `i`. Inference only.
    pub fn forward_rows(
        &self,
        x: &Tensor,
        rotary: Option<&Rotary>,
        caches: &mut [&mut LayerCache],
    ) -> Result<Tensor> {
        let attended = self
            .attention
            .forward_rows(&self.norm1.forward(x)?, rotary, caches)?;
        let x = add(x, &attended)?;
        let fed = self.mlp.forward(&self.norm2.forward(&x)?)?;
        add(&x, &fed)
    }
}

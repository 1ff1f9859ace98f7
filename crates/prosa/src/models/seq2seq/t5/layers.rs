//! T5's stacks (Raffel et al. 2020), with transformers' parameter names:
//!
//! ```text
//! block:  x = x + SelfAttention(rms(x), relative position bias + masks)      layer.0
//!         x = x + EncDecAttention(rms(x), encoder output)   (decoder only)   layer.1
//!         x = x + wo(act(wi·x))   or   wo(act(wi_0·x) ⊙ wi_1·x)  (gated)     layer.1 / layer.2
//! stack:  embeddings → blocks → final_layer_norm
//! ```
//!
//! Attention is `nn::attention::MultiHeadAttention` without the 1/√d scale (T5's
//! initialisation absorbs it) and with a full additive bias: one learned scalar per head and
//! relative-position bucket, computed by the first block and shared by all.

use candle_core::{DType, Device, Tensor};

use super::config::{FeedForwardKind, T5Config};
use crate::error::Result;
use crate::nn::attention::{padding_bias_value, Mask, MultiHeadAttention, Qkv};
use crate::nn::kv_cache::{CrossMemory, KvCache};
use crate::nn::norm::Norm;
use crate::nn::projection::Projection;
use crate::nn::{dropout, ForwardCtx, Init, ParamBuilder};

/// transformers' `_relative_position_bucket`: the bucket of `key − query` distances, exact
/// for small ones and logarithmic up to `max_distance`; bidirectional stacks give later keys
/// their own half of the buckets, a causal decoder only looks back.
pub fn relative_position_bucket(
    relative: i64,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
) -> usize {
    let mut buckets = num_buckets as i64;
    let mut bucket = 0i64;
    let distance = if bidirectional {
        buckets /= 2;
        if relative > 0 {
            bucket += buckets;
        }
        relative.abs()
    } else {
        (-relative).max(0)
    };
    let max_exact = buckets / 2;
    if distance < max_exact {
        bucket += distance;
    } else {
        let scaled = (distance as f32 / max_exact as f32).ln()
            / (max_distance as f32 / max_exact as f32).ln()
            * (buckets - max_exact) as f32;
        bucket += (max_exact + scaled as i64).min(buckets - 1);
    }
    bucket as usize
}

/// The feed-forward sub-layer.
struct FeedForward {
    kind: FeedForwardKind,
    /// `wi` (plain) or `wi_0` (gated).
    wi: Projection,
    /// `wi_1` (gated only).
    wi_1: Option<Projection>,
    wo: Projection,
    dropout: f32,
}

impl FeedForward {
    fn new(vb: &ParamBuilder, c: &T5Config, kind: FeedForwardKind) -> Result<Self> {
        let vb = vb.pp("DenseReluDense");
        let (d, f) = (c.d_model, c.d_ff);
        let init = |fan_in: usize| Init::Normal {
            std: (fan_in as f64).powf(-0.5),
        };
        let dense =
            |name: &str, i: usize, o: usize| Projection::dense(&vb, name, i, o, init(i), false);
        Ok(Self {
            kind,
            wi: dense(if kind.gated { "wi_0" } else { "wi" }, d, f)?,
            wi_1: kind.gated.then(|| dense("wi_1", d, f)).transpose()?,
            wo: dense("wo", f, d)?,
            dropout: c.dropout_rate,
        })
    }

    fn forward(&self, x: &Tensor, ctx: &mut ForwardCtx) -> Result<Tensor> {
        let mut h = self.kind.activation.apply(&self.wi.forward(x)?)?;
        if let Some(wi_1) = &self.wi_1 {
            h = (h * wi_1.forward(x)?)?;
        }
        self.wo.forward(&dropout(&h, self.dropout, ctx)?)
    }
}

/// `T5Attention` as a `MultiHeadAttention`: `q`, `k`, `v`, `o` without biases, no score scale.
fn attention(vb: &ParamBuilder, c: &T5Config) -> Result<MultiHeadAttention> {
    let inner = c.num_heads * c.d_kv;
    let dense = |name: &str, i: usize, o: usize, std: f64| {
        Projection::dense(vb, name, i, o, Init::Normal { std }, false)
    };
    let d = c.d_model as f64;
    Ok(MultiHeadAttention {
        qkv: Qkv::separate(
            dense("q", c.d_model, inner, (d * c.d_kv as f64).powf(-0.5))?,
            dense("k", c.d_model, inner, d.powf(-0.5))?,
            dense("v", c.d_model, inner, d.powf(-0.5))?,
        ),
        out: dense("o", inner, c.d_model, (inner as f64).powf(-0.5))?,
        heads: c.num_heads,
        kv_heads: c.num_heads,
        head_dim: c.d_kv,
        attention_dropout: c.dropout_rate,
        output_dropout: c.dropout_rate,
        scale: Some(1.0),
    })
}

/// One block: self-attention, cross-attention (decoder), feed-forward; each pre-normed and
/// residual.
struct Block {
    self_attention: MultiHeadAttention,
    self_norm: Norm,
    cross: Option<(MultiHeadAttention, Norm)>,
    ff: FeedForward,
    ff_norm: Norm,
}

impl Block {
    fn new(vb: &ParamBuilder, c: &T5Config, decoder: bool, kind: FeedForwardKind) -> Result<Self> {
        let eps = c.layer_norm_epsilon;
        let layer0 = vb.pp("layer.0");
        let cross = if decoder {
            let layer1 = vb.pp("layer.1");
            Some((
                attention(&layer1.pp("EncDecAttention"), c)?,
                Norm::rms(&layer1, "layer_norm", c.d_model, eps)?,
            ))
        } else {
            None
        };
        let ff_layer = vb.pp(if decoder { "layer.2" } else { "layer.1" });
        Ok(Self {
            self_attention: attention(&layer0.pp("SelfAttention"), c)?,
            self_norm: Norm::rms(&layer0, "layer_norm", c.d_model, eps)?,
            cross,
            ff: FeedForward::new(&ff_layer, c, kind)?,
            ff_norm: Norm::rms(&ff_layer, "layer_norm", c.d_model, eps)?,
        })
    }
}

/// An encoder or decoder stack.
pub struct Stack {
    blocks: Vec<Block>,
    final_norm: Norm,
    /// (buckets, heads): the learned bias of each relative-position bucket.
    relative_bias: Tensor,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
    dropout: f32,
}

impl Stack {
    /// The stack under `vb` (`encoder` or `decoder`): `block.{i}.layer.{j}.…`,
    /// `block.0.layer.0.SelfAttention.relative_attention_bias`, `final_layer_norm`.
    pub fn new(vb: &ParamBuilder, c: &T5Config, decoder: bool) -> Result<Self> {
        let kind = c
            .feed_forward()
            .map_err(|m| crate::error::Error::config("feed_forward_proj", m))?;
        let layers = if decoder {
            c.decoder_layers()
        } else {
            c.num_layers
        };
        let relative_bias = vb
            .pp("block.0.layer.0.SelfAttention.relative_attention_bias")
            .param(
                "weight",
                &[c.relative_attention_num_buckets, c.num_heads],
                Init::Normal {
                    std: (c.d_model as f64).powf(-0.5),
                },
            )?;
        Ok(Self {
            blocks: (0..layers)
                .map(|i| Block::new(&vb.pp(&format!("block.{i}")), c, decoder, kind))
                .collect::<Result<_>>()?,
            final_norm: Norm::rms(vb, "final_layer_norm", c.d_model, c.layer_norm_epsilon)?,
            relative_bias,
            bidirectional: !decoder,
            num_buckets: c.relative_attention_num_buckets,
            max_distance: c.relative_attention_max_distance,
            dropout: c.dropout_rate,
        })
    }

    /// Blocks in the stack.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// True without blocks.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The full attention bias (batch, heads, queries, keys) of queries at positions
    /// `first..first+queries` over keys `0..mask[0].len()`: relative position bias, padding
    /// of `mask` (batch, keys), and — in the decoder — the causal mask.
    fn bias(
        &self,
        first: usize,
        queries: usize,
        mask: &[Vec<u32>],
        device: &Device,
    ) -> Result<Tensor> {
        let keys = mask.first().map_or(0, Vec::len);
        let mut buckets = Vec::with_capacity(queries * keys);
        for q in first..first + queries {
            for k in 0..keys {
                buckets.push(relative_position_bucket(
                    k as i64 - q as i64,
                    self.bidirectional,
                    self.num_buckets,
                    self.max_distance,
                ) as u32);
            }
        }
        let heads = self.relative_bias.dim(1)?;
        let position = self
            .relative_bias
            .index_select(&Tensor::from_vec(buckets, queries * keys, device)?, 0)?
            .reshape((queries, keys, heads))?
            .permute((2, 0, 1))?
            .unsqueeze(0)?;
        let low = padding_bias_value(DType::F32);
        let mut masks = Vec::with_capacity(mask.len() * queries * keys);
        for row in mask {
            for q in first..first + queries {
                for (k, &m) in row.iter().enumerate() {
                    let hidden = m == 0 || (!self.bidirectional && k > q);
                    masks.push(if hidden { low } else { 0.0 });
                }
            }
        }
        let masks = Tensor::from_vec(masks, (mask.len(), 1, queries, keys), device)?;
        Ok(masks.broadcast_add(&position)?)
    }

    /// The encoder: hidden states (batch, seq, d) of embedded `x`, `mask` marking real tokens.
    pub fn encode(&self, x: &Tensor, mask: &[Vec<u32>], ctx: &mut ForwardCtx) -> Result<Tensor> {
        let bias = self.bias(0, x.dim(1)?, mask, x.device())?;
        let mut x = dropout(x, self.dropout, ctx)?;
        for block in &self.blocks {
            let h = block.self_norm.forward(&x)?;
            x = (x + block
                .self_attention
                .forward(&h, Mask::Biased(&bias), None, None, ctx)?)?;
            x = (&x
                + dropout(
                    &block.ff.forward(&block.ff_norm.forward(&x)?, ctx)?,
                    self.dropout,
                    ctx,
                )?)?;
        }
        dropout(&self.final_norm.forward(&x)?, self.dropout, ctx)
    }

    /// Each decoder block's keys and values of the encoder output, projected once.
    pub fn memories(&self, encoded: &Tensor, source_mask: &[Vec<u32>]) -> Result<Vec<CrossMemory>> {
        let pad =
            crate::nn::attention::padding_bias(source_mask, encoded.dtype(), encoded.device())?;
        self.blocks
            .iter()
            .filter_map(|b| b.cross.as_ref())
            .map(|(attention, _)| attention.memory(encoded, &pad))
            .collect()
    }

    /// The decoder: hidden states (batch, new, d) of embedded new positions `y`; `mask`
    /// (batch, cached + new) marks real tokens; `cache` holds earlier positions and receives
    /// these.
    pub fn decode(
        &self,
        y: &Tensor,
        mask: &[Vec<u32>],
        memories: &[CrossMemory],
        mut cache: Option<&mut KvCache>,
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        let new = y.dim(1)?;
        let keys = mask.first().map_or(0, Vec::len);
        let bias = self.bias(keys - new, new, mask, y.device())?;
        let mut y = dropout(y, self.dropout, ctx)?;
        for (i, block) in self.blocks.iter().enumerate() {
            let h = block.self_norm.forward(&y)?;
            let layer_cache = cache.as_deref_mut().map(|c| c.layer(i));
            y = (y + block.self_attention.forward(
                &h,
                Mask::Biased(&bias),
                None,
                layer_cache,
                ctx,
            )?)?;
            if let Some((attention, norm)) = &block.cross {
                y = (&y + attention.cross(&norm.forward(&y)?, &memories[i], ctx)?)?;
            }
            y = (&y
                + dropout(
                    &block.ff.forward(&block.ff_norm.forward(&y)?, ctx)?,
                    self.dropout,
                    ctx,
                )?)?;
        }
        dropout(&self.final_norm.forward(&y)?, self.dropout, ctx)
    }
}

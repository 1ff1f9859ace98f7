//! Multi-head attention, the one implementation every Transformer in prosa uses ("Attention is
//! all you need", §3.2; the e-book's Figure 23):
//!
//! ```text
//! Attention(Q, K, V) = softmax(Q·Kᵀ / √d_k + mask) · V
//! MultiHead(x)       = Concat(head_1, …, head_h) · W_O,   head_i = Attention(x·W_Qi, x·W_Ki, x·W_Vi)
//! ```
//!
//! - **bidirectional self-attention** (BERT's encoder): every token sees every real token; the
//!   mask is the padding bias;
//! - **causal self-attention** (GPT-2, Llama): token `t` sees tokens `≤ t`, with a key/value
//!   cache for generation, rotary positions, and grouped-query heads (`kv_heads < heads`);
//! - **cross-attention** (encoder–decoders): queries from the decoder, keys and values from the
//!   encoder's output, projected once into a [`CrossMemory`] that every decoding step reads.
//!
//! Masks are additive biases (batch, 1, 1, keys): 0 for real tokens and [`padding_bias`] for
//! padding, the same value for every family.

use candle_core::{DType, Device, Tensor};

use super::context::{AttentionKind, ForwardCtx};
use super::decode_attention::{cross_attention, decode_attention, DecodeShape};
use super::dense_panels::PanelCache;
use super::dropout::dropout;
use super::kv_cache::{CrossMemory, LayerCache};
use super::projection::Projection;
use super::rope::{rope, RopeStyle};
use super::softmax::{causal_masked_softmax, masked_softmax};
use crate::error::{Error, Result};

/// The bias added to the attention scores of padding keys: the lowest finite value of the
/// scores' type, as transformers uses (`torch.finfo(dtype).min`). Finite, so a padding query
/// whose keys are all padding still gets finite (ignored) values.
pub fn padding_bias_value(dtype: DType) -> f32 {
    match dtype {
        DType::F16 => half::f16::MIN.to_f32(),
        _ => f32::MIN,
    }
}

/// The additive attention bias of a padding mask (batch, keys) of 1 (token) / 0 (padding):
/// (batch, 1, 1, keys) in `dtype`.
pub fn padding_bias(mask: &[Vec<u32>], dtype: DType, device: &Device) -> Result<Tensor> {
    let (batch, keys) = (mask.len(), mask.first().map_or(0, Vec::len));
    let low = padding_bias_value(dtype);
    let values: Vec<f32> = mask
        .iter()
        .flatten()
        .map(|&m| if m == 0 { low } else { 0.0 })
        .collect();
    Ok(Tensor::from_vec(values, (batch, 1, 1, keys), device)?.to_dtype(dtype)?)
}

/// transformers' position ids for a (left-)padded batch: `cumsum(mask) − 1`, padding at 0.
pub fn position_ids(attention_mask: &[Vec<u32>]) -> Vec<Vec<u32>> {
    attention_mask
        .iter()
        .map(|row| {
            let mut seen = 0u32;
            row.iter()
                .map(|&m| {
                    seen += m;
                    if m == 0 {
                        0
                    } else {
                        seen - 1
                    }
                })
                .collect()
        })
        .collect()
}

/// Rotary position tables (Llama) for the queries and keys of one forward pass.
pub struct Rotary<'a> {
    /// Cosines (batch, seq, head_dim/2).
    pub cos: &'a Tensor,
    /// Sines, same shape.
    pub sin: &'a Tensor,
    /// Channel pairing.
    pub style: RopeStyle,
}

/// Which positions a self-attention query may see.
#[derive(Clone, Copy)]
pub enum Mask<'a> {
    /// Every real key (an encoder): the padding bias (batch, 1, 1, keys).
    Bidirectional(&'a Tensor),
    /// Keys up to the query's own position (a decoder); the padding bias covers the cached
    /// positions and the new ones.
    Causal(&'a Tensor),
    /// A full additive bias, broadcastable to (batch, heads, queries, keys), that already holds
    /// whatever the model needs: T5's relative position bias plus its padding and causal masks.
    Biased(&'a Tensor),
}

/// The query, key and value projections.
#[derive(Clone)]
pub enum Qkv {
    /// One projection to `[q | k | v]` (GPT-2's `c_attn`, or stacked at load).
    Fused(Projection),
    /// Separate projections (BERT, Llama; cross-attention needs these).
    Separate {
        /// Queries.
        q: Projection,
        /// Keys.
        k: Projection,
        /// Values.
        v: Projection,
        /// The three dense weights packed side by side, made by the first inference product
        /// that can use it: queries, keys and values in one product ([`Qkv::separate`]).
        stacked: PanelCache,
    },
}

impl Qkv {
    /// Separate projections, their stacked packed copy not made yet.
    pub fn separate(q: Projection, k: Projection, v: Projection) -> Self {
        Qkv::Separate {
            q,
            k,
            v,
            stacked: PanelCache::default(),
        }
    }

    /// The queries, keys and values of `x` side by side (…, q + k + v widths) in one product
    /// through the stacked packed weights, where the projections are separate dense `nn.Linear`
    /// weights and the packed path applies ([`dense_panels::stacked_product`]).
    fn stacked(&self, x: &Tensor) -> Result<Option<Tensor>> {
        match self {
            Qkv::Separate { q, k, v, stacked } => {
                Projection::stacked_forward(&[q, k, v], x, stacked)
            }
            Qkv::Fused(_) => Ok(None),
        }
    }
}

/// Multi-head attention with its projections.
#[derive(Clone)]
pub struct MultiHeadAttention {
    /// Query/key/value projections.
    pub qkv: Qkv,
    /// The output projection `W_O`.
    pub out: Projection,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `heads`).
    pub kv_heads: usize,
    /// Width of a head `d_k`.
    pub head_dim: usize,
    /// Dropout on the attention probabilities while training.
    pub attention_dropout: f32,
    /// Dropout on the output while training.
    pub output_dropout: f32,
    /// The factor of the scores `Q·Kᵀ`; `None`: 1/√d_k (T5 uses 1, its initialisation
    /// absorbing the scale).
    pub scale: Option<f64>,
}

impl MultiHeadAttention {
    /// Self-attention of the newest positions `x` (batch, seq, hidden) → (batch, seq, hidden).
    /// `cache` (causal only) holds the keys and values of earlier positions and receives these;
    /// `rotary` rotates queries and keys first.
    pub fn forward(
        &self,
        x: &Tensor,
        mask: Mask,
        rotary: Option<&Rotary>,
        cache: Option<&mut LayerCache>,
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        if let (Mask::Bidirectional(bias), Qkv::Separate { q, k, v, .. }, None, None) =
            (mask, &self.qkv, rotary, &cache)
        {
            let fusable = ctx.inference
                && !ctx.train
                && ctx.attention.is_none()
                && self.heads == self.kv_heads;
            if fusable && super::fused_attention::supported(x) {
                let scale = self.scale_factor() as f32;
                let context = match self.qkv.stacked(x)? {
                    Some(all) => super::fused_attention::stacked_bidirectional_attention(
                        &all, bias, self.heads, scale,
                    )?,
                    None => super::fused_attention::bidirectional_attention(
                        &q.forward(x)?,
                        &k.forward(x)?,
                        &v.forward(x)?,
                        bias,
                        self.heads,
                        scale,
                    )?,
                };
                return self.out.forward(&context);
            }
        }
        let (batch, seq, _) = x.dims3()?;
        let (h, kvh, dh) = (self.heads, self.kv_heads, self.head_dim);
        let (q, k, v) = self.project_heads(x, rotary)?;
        let mut cache = cache;
        let (k, v) = match cache.as_deref_mut() {
            Some(c) => c.append(k, v)?,
            None => (k, v),
        };
        // One new token per sequence: its attention reads the cache in place (the kernel the
        // fused decode step shares); `None` when the buffers are not f32 in CPU memory.
        if let (Mask::Causal(bias), Some(c)) = (&mask, cache.as_deref()) {
            if seq == 1 && !ctx.train && ctx.attention.is_none() {
                if let Some(context) = self.decode_step(&q, c, Some(bias))? {
                    return self.merge_and_project(&context, ctx);
                }
            }
        }
        let scale = self.scale_factor();
        // A prompt (or any causal pass) with no backward pass and no maps to record: one fused
        // pass per block of queries, keys and values read per group (no repeated copies).
        if let Mask::Causal(bias) = mask {
            let fusable = ctx.inference && !ctx.train && ctx.attention.is_none() && seq > 1;
            if fusable && super::fused_attention::supported(&q) {
                let context =
                    super::fused_attention::causal_attention(&q, &k, &v, bias, scale as f32)?;
                return dropout(&self.out.forward(&context)?, self.output_dropout, ctx);
            }
        }
        let group = h / kvh;
        let context = match mask {
            Mask::Causal(bias) if seq == 1 && group > 1 => {
                // One new token sees every cached key: group its query heads per key/value
                // head instead of copying the keys and values `group` times.
                let q = q.reshape((batch, kvh, group, dh))?;
                let probs = masked_softmax(&q.matmul(&k.t()?)?, bias, scale)?;
                if ctx.attention.is_some() {
                    let keys = probs.dim(3)?;
                    let per_head = probs.reshape((batch, h, 1, keys))?;
                    ctx.record_attention(AttentionKind::SelfAttention, &per_head);
                }
                probs.matmul(&v)?.reshape((batch, h, 1, dh))?
            }
            Mask::Causal(bias) => {
                let (k, v) = (repeat_kv(&k, group)?, repeat_kv(&v, group)?);
                let probs = causal_masked_softmax(&q.matmul(&k.t()?)?, bias, scale)?;
                ctx.record_attention(AttentionKind::SelfAttention, &probs);
                dropout(&probs, self.attention_dropout, ctx)?.matmul(&v)?
            }
            Mask::Biased(bias) => {
                let (k, v) = (repeat_kv(&k, group)?, repeat_kv(&v, group)?);
                let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(bias)?;
                let probs = super::softmax::softmax_last_dim(&scores)?;
                ctx.record_attention(AttentionKind::SelfAttention, &probs);
                dropout(&probs, self.attention_dropout, ctx)?.matmul(&v)?
            }
            Mask::Bidirectional(bias) => {
                let (k, v) = (repeat_kv(&k, group)?, repeat_kv(&v, group)?);
                let probs = masked_softmax(&q.matmul(&k.t()?)?, bias, scale)?;
                ctx.record_attention(AttentionKind::SelfAttention, &probs);
                dropout(&probs, self.attention_dropout, ctx)?.matmul(&v)?
            }
        };
        self.merge_and_project(&context, ctx)
    }

    /// Self-attention of one new position per sequence where every sequence has its own cache
    /// (continuous batching): `x` (rows, 1, hidden), row `i` attends to `caches[i]`'s positions
    /// and to itself. The projections run on all rows at once; only the score and mixing
    /// products are per row, over that row's real positions (no padding).
    pub fn forward_rows(
        &self,
        x: &Tensor,
        rotary: Option<&Rotary>,
        caches: &mut [&mut LayerCache],
    ) -> Result<Tensor> {
        let rows = x.dim(0)?;
        if rows != caches.len() || x.dim(1)? != 1 {
            return Err(Error::config(
                "attention",
                format!(
                    "forward_rows takes one position per row and one cache per row \
                     ({rows} rows, {} caches, {} positions)",
                    caches.len(),
                    x.dim(1)?
                ),
            ));
        }
        let (h, kvh, dh) = (self.heads, self.kv_heads, self.head_dim);
        let group = h / kvh;
        let (q, k, v) = self.project_heads(x, rotary)?;
        let scale = self.scale_factor();
        let mut contexts = Vec::with_capacity(rows);
        for (i, cache) in caches.iter_mut().enumerate() {
            let (keys, values) = cache.append(k.narrow(0, i, 1)?, v.narrow(0, i, 1)?)?;
            // The decode-step kernel `generate` uses too, so a request served alongside others
            // gets the tokens it would get alone.
            let row = q.narrow(0, i, 1)?;
            if let Some(context) = self.decode_step(&row, cache, None)? {
                contexts.push(context);
                continue;
            }
            // The row's query heads grouped per key/value head, as in the one-token case above.
            let q = row.reshape((1, kvh, group, dh))?;
            let scores = (q.matmul(&keys.t()?)? * scale)?;
            let probs = super::softmax::softmax_last_dim(&scores)?;
            contexts.push(probs.matmul(&values)?.reshape((1, h, 1, dh))?);
        }
        self.merge_and_project(&Tensor::cat(&contexts, 0)?, &mut ForwardCtx::eval())
    }

    /// The contexts (batch, heads, 1, d) of one new query per sequence `q` (batch, heads, 1,
    /// d) over `cache` (its newest position included), `bias` (batch, 1, 1, cached) masking
    /// padding (`None`: none); `None` when the cache is not f32 in CPU memory.
    fn decode_step(
        &self,
        q: &Tensor,
        cache: &LayerCache,
        bias: Option<&Tensor>,
    ) -> Result<Option<Tensor>> {
        if !q.device().is_cpu() || q.dtype() != DType::F32 {
            return Ok(None);
        }
        let batch = q.dim(0)?;
        let queries = q.flatten_all()?.to_vec1::<f32>()?;
        let bias = match bias {
            Some(b) => Some(b.flatten_all()?.to_vec1::<f32>()?),
            None => None,
        };
        let context = cache.read_f32(|keys, values, capacity, len| {
            let bias = bias.unwrap_or_else(|| vec![0f32; batch * len]);
            if bias.len() != batch * len {
                return None;
            }
            let shape = DecodeShape {
                heads: self.heads,
                kv_heads: self.kv_heads,
                head_dim: self.head_dim,
                capacity,
                len,
                scale: self.scale_factor() as f32,
            };
            Some(decode_attention(&queries, keys, values, &bias, shape))
        });
        self.step_contexts(context.flatten(), batch, q.device())
    }

    /// Queries, keys and values of `x` (batch, seq, hidden), split into heads (batch, heads,
    /// seq, d) and rotated by `rotary`.
    fn project_heads(
        &self,
        x: &Tensor,
        rotary: Option<&Rotary>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (h, kvh, dh) = (self.heads, self.kv_heads, self.head_dim);
        // Inference: each of the three split (and rotated) in one pass from where the
        // projection wrote it.
        let rotation = rotary.map(|r| (r.cos, r.sin, r.style));
        let split = |all: &Tensor, first, heads, rotation| {
            super::head_split::split_heads(all, first, heads, dh, rotation)
        };
        // All three side by side from one product, or the separate projections to run.
        let side_by_side = match &self.qkv {
            Qkv::Fused(p) => Ok(p.forward(x)?),
            Qkv::Separate { q, k, v, .. } => self.qkv.stacked(x)?.ok_or((q, k, v)),
        };
        let (q, k, v) = match side_by_side {
            Ok(all) => {
                let q = split(&all, 0, h, rotation)?;
                let k = split(&all, h * dh, kvh, rotation)?;
                let v = split(&all, (h + kvh) * dh, kvh, None)?;
                if let (Some(q), Some(k), Some(v)) = (q, k, v) {
                    return Ok((q, k, v));
                }
                (
                    all.narrow(2, 0, h * dh)?,
                    all.narrow(2, h * dh, kvh * dh)?,
                    all.narrow(2, (h + kvh) * dh, kvh * dh)?,
                )
            }
            Err((q, k, v)) => {
                let (q, k, v) = (q.forward(x)?, k.forward(x)?, v.forward(x)?);
                let split_q = split(&q, 0, h, rotation)?;
                let split_k = split(&k, 0, kvh, rotation)?;
                let split_v = split(&v, 0, kvh, None)?;
                if let (Some(q), Some(k), Some(v)) = (split_q, split_k, split_v) {
                    return Ok((q, k, v));
                }
                (q, k, v)
            }
        };
        let (mut q, mut k, v) = (
            split_heads(&q, h, dh)?,
            split_heads(&k, kvh, dh)?,
            split_heads(&v, kvh, dh)?,
        );
        if let Some(r) = rotary {
            q = rope(&q, r.cos, r.sin, r.style)?;
            k = rope(&k, r.cos, r.sin, r.style)?;
        }
        Ok((q, k, v))
    }

    /// The keys and values of an encoder's output `memory` (batch, source, hidden) for
    /// [`cross`](Self::cross), projected once; `pad_bias` (batch, 1, 1, source) masks the
    /// source's padding.
    pub fn memory(&self, memory: &Tensor, pad_bias: &Tensor) -> Result<CrossMemory> {
        let Qkv::Separate { k, v, .. } = &self.qkv else {
            return Err(Error::config(
                "attention",
                "cross-attention needs separate query and key/value projections",
            ));
        };
        Ok(CrossMemory::new(
            split_heads(&k.forward(memory)?, self.kv_heads, self.head_dim)?,
            split_heads(&v.forward(memory)?, self.kv_heads, self.head_dim)?,
            pad_bias.clone(),
        ))
    }

    /// Cross-attention: queries from the decoder positions `x` (batch, seq, hidden), keys and
    /// values from the encoder's `memory`; every real source token is visible.
    pub fn cross(&self, x: &Tensor, memory: &CrossMemory, ctx: &mut ForwardCtx) -> Result<Tensor> {
        let Qkv::Separate { q, .. } = &self.qkv else {
            return Err(Error::config(
                "attention",
                "cross-attention needs separate query and key/value projections",
            ));
        };
        let q = split_heads(&q.forward(x)?, self.heads, self.head_dim)?;
        // One new position per row in generation: the decode-step kernel, reading each row's
        // source in place (no gathered copy for the beams). It records no graph: not while one
        // is recorded for a backward pass.
        if q.dim(2)? == 1 && !ctx.train && ctx.attention.is_none() && !q.track_op() {
            if let Some(context) = self.cross_step(&q, memory)? {
                return self.merge_and_project(&context, ctx);
            }
        }
        let (keys, values, pad_bias) = memory.per_row()?;
        let group = self.heads / self.kv_heads;
        let (k, v) = (repeat_kv(&keys, group)?, repeat_kv(&values, group)?);
        let probs = masked_softmax(&q.matmul(&k.t()?)?, &pad_bias, self.scale_factor())?;
        ctx.record_attention(AttentionKind::Cross, &probs);
        let context = dropout(&probs, self.attention_dropout, ctx)?.matmul(&v)?;
        self.merge_and_project(&context, ctx)
    }

    /// The contexts (batch, heads, 1, d) of one query per row `q` (batch, heads, 1, d) over
    /// `memory`; `None` when it is not f32 in CPU memory.
    fn cross_step(&self, q: &Tensor, memory: &CrossMemory) -> Result<Option<Tensor>> {
        if !q.device().is_cpu() || q.dtype() != DType::F32 {
            return Ok(None);
        }
        let batch = q.dim(0)?;
        let queries = q.flatten_all()?.to_vec1::<f32>()?;
        let context = memory.read_f32(|keys, values, bias, sources, len| {
            let shape = DecodeShape {
                heads: self.heads,
                kv_heads: self.kv_heads,
                head_dim: self.head_dim,
                capacity: len,
                len,
                scale: self.scale_factor() as f32,
            };
            let fits = sources.len() == batch
                && keys.len() == bias.len() * self.kv_heads * self.head_dim
                && values.len() == keys.len();
            fits.then(|| cross_attention(&queries, keys, values, bias, shape, sources))
        });
        self.step_contexts(context.flatten(), batch, q.device())
    }

    /// The contexts (batch, heads, 1, d) a decode-step kernel computed, as a tensor.
    fn step_contexts(
        &self,
        context: Option<Vec<f32>>,
        batch: usize,
        device: &Device,
    ) -> Result<Option<Tensor>> {
        let shape = (batch, self.heads, 1, self.head_dim);
        Ok(match context {
            Some(c) => Some(Tensor::from_vec(c, shape, device)?),
            None => None,
        })
    }

    /// The factor of the scores.
    /// Whether [`MultiHeadAttention::forward_packed`] runs on `x` in `ctx`: inference (no
    /// training, no attention maps kept) of f32 on the CPU, separate projections, as many key
    /// and value heads as query heads.
    pub fn packs(&self, x: &Tensor, ctx: &ForwardCtx) -> bool {
        matches!(self.qkv, Qkv::Separate { .. })
            && ctx.inference
            && !ctx.train
            && ctx.attention.is_none()
            && self.heads == self.kv_heads
            && super::fused_attention::supported(x)
    }

    /// Bidirectional self-attention of sequences packed without padding: `x` (tokens, hidden)
    /// holds the sequences of `lengths` one after another, and each token attends to its own
    /// sequence's. Only where [`MultiHeadAttention::packs`] says so (an error otherwise).
    pub fn forward_packed(
        &self,
        x: &Tensor,
        lengths: &[usize],
        ctx: &ForwardCtx,
    ) -> Result<Tensor> {
        self.out.forward(&self.context_packed(x, lengths, ctx)?)
    }

    /// [`MultiHeadAttention::forward_packed`] before the output projection `W_O`: the heads
    /// side by side (tokens, heads·d), for a caller that projects them itself.
    pub fn context_packed(
        &self,
        x: &Tensor,
        lengths: &[usize],
        ctx: &ForwardCtx,
    ) -> Result<Tensor> {
        let Qkv::Separate { q, k, v, .. } = &self.qkv else {
            return Err(Error::config(
                "attention",
                "packed sequences need separate projections",
            ));
        };
        if !self.packs(x, ctx) {
            return Err(Error::config(
                "attention",
                "packed sequences: inference of f32 on the CPU, one key/value head per query head",
            ));
        }
        let scale = self.scale_factor() as f32;
        match self.qkv.stacked(x)? {
            Some(all) => {
                super::packed_attention::stacked_packed_attention(&all, lengths, self.heads, scale)
            }
            None => super::packed_attention::packed_attention(
                &q.forward(x)?,
                &k.forward(x)?,
                &v.forward(x)?,
                lengths,
                self.heads,
                scale,
            ),
        }
    }

    pub(crate) fn scale_factor(&self) -> f64 {
        self.scale
            .unwrap_or_else(|| 1.0 / (self.head_dim as f64).sqrt())
    }

    /// (batch, heads, seq, d) → concatenated heads (batch, seq, heads·d) → `W_O` → dropout.
    fn merge_and_project(&self, context: &Tensor, ctx: &mut ForwardCtx) -> Result<Tensor> {
        let (batch, heads, seq, dh) = context.dims4()?;
        let merged = context.transpose(1, 2)?.reshape((batch, seq, heads * dh))?;
        dropout(&self.out.forward(&merged)?, self.output_dropout, ctx)
    }
}

/// (batch, seq, n·d) → (batch, n, seq, d), contiguous.
fn split_heads(x: &Tensor, n: usize, d: usize) -> Result<Tensor> {
    let (batch, seq, _) = x.dims3()?;
    Ok(x.reshape((batch, seq, n, d))?
        .transpose(1, 2)?
        .contiguous()?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_ids_count_real_tokens_of_left_padded_rows() {
        assert_eq!(
            position_ids(&[vec![0, 0, 1, 1, 1], vec![1, 1, 1, 1, 1]]),
            [vec![0, 0, 0, 1, 2], vec![0, 1, 2, 3, 4]]
        );
    }

    #[test]
    fn the_padding_bias_is_the_lowest_finite_value_of_the_type() {
        let bias = padding_bias(&[vec![1, 0]], DType::F32, &crate::device::host()).unwrap();
        assert_eq!(
            bias.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [0.0, f32::MIN]
        );
        assert!(padding_bias_value(DType::F16).is_finite());
    }
}

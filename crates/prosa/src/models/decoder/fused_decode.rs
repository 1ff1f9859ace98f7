//! One new token of a quantized Llama, decoded on plain buffers.
//!
//! A decode step through the layers' tensor code runs about 25 candle ops per layer — norms,
//! the four products, the head split and merge copies, rotary, the cache writes, scores,
//! softmax, mixing, residual adds — each allocating its output and checking layouts: for
//! SmolLM2-135M (30 layers) some 750 ops a token, about half the step beside the integer
//! products. When every product of the model is one of prosa's quantized matrices (a GGUF file
//! of Q4_0, Q4_1 or Q8_0 blocks, or F16) and one sequence decodes one token, this path runs the step
//! on f32 vectors instead, with the same kernels and arithmetic as the ops
//! ([`rms_norm_row`], [`rotate_head`], the quantized row products, and the decode-step
//! attention the layers' code also calls); only the two cache writes per layer remain tensor
//! ops. The products are shared by threads that spin between them (`nn/decode_team.rs`)
//! instead of waking rayon's pool ~120 times a token. `tests/assets.rs` holds its logits bit-equal to the layers' path on SmolLM2.

use std::sync::Arc;

use candle_core::{Device, Tensor};

use super::block::{Block, Mlp};
use super::config::{DecoderConfig, DecoderFamily};
use crate::error::{Error, Result};
use crate::nn::activation::swiglu;
use crate::nn::attention::Qkv;
use crate::nn::decode_attention::DecodeShape;
use crate::nn::decode_team::{with_team, AttentionWork, Driver};
use crate::nn::kv_cache::KvCache;
use crate::nn::norm::{rms_norm_row, Norm};
use crate::nn::projection::{Projection, Weight};
use crate::nn::quantized::QuantMatrix;
use crate::nn::rope::{rope_angles, rotate_head, RopeStyle};

/// A Llama's weights in the form the one-token step reads them.
pub(crate) struct FusedDecoder {
    layers: Vec<FusedLayer>,
    final_norm: (Vec<f32>, f32),
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    intermediate: usize,
    /// The factor of the scores (1/√d unless the attention says otherwise).
    scale: f32,
    rope_style: RopeStyle,
    rope_theta: f64,
    /// The output layer when it is a quantized matrix too (else the caller applies it).
    lm_head: Option<Arc<QuantMatrix>>,
    device: Device,
}

struct FusedLayer {
    norm1: (Vec<f32>, f32),
    qkv: Arc<QuantMatrix>,
    out: Arc<QuantMatrix>,
    norm2: (Vec<f32>, f32),
    gate_up: Arc<QuantMatrix>,
    down: Arc<QuantMatrix>,
}

/// The quantized matrix of a projection without bias, if it is one.
fn blocks(p: &Projection) -> Option<Arc<QuantMatrix>> {
    match (&p.weight, &p.bias) {
        (Weight::Blocks(m), None) => Some(m.clone()),
        _ => None,
    }
}

/// γ and ε of an RMS norm in CPU memory.
fn rms(norm: &Norm) -> Option<(Vec<f32>, f32)> {
    match norm {
        Norm::Rms { weight, eps } if weight.device().is_cpu() => {
            Some((weight.to_vec1::<f32>().ok()?, *eps as f32))
        }
        _ => None,
    }
}

impl FusedDecoder {
    /// The plan for a model, or `None` when any part is not of the fusable kind (another
    /// family, dense weights, a layer with biases, a norm that is not RMS).
    pub(crate) fn plan(
        config: &DecoderConfig,
        blocks_: &[Block],
        final_norm: &Norm,
        lm_head: &Projection,
    ) -> Option<Self> {
        if config.family != DecoderFamily::Llama || blocks_.is_empty() {
            return None;
        }
        let first = &blocks_[0].attention;
        let (heads, kv_heads, head_dim) = (first.heads, first.kv_heads, first.head_dim);
        if kv_heads == 0 || heads % kv_heads != 0 || head_dim % 2 != 0 {
            return None;
        }
        let mut layers = Vec::with_capacity(blocks_.len());
        let mut intermediate = 0;
        for block in blocks_ {
            let a = &block.attention;
            if (a.heads, a.kv_heads, a.head_dim) != (heads, kv_heads, head_dim)
                || a.scale != first.scale
            {
                return None;
            }
            let Qkv::Fused(qkv) = &a.qkv else { return None };
            let Mlp::StackedSwiGlu {
                gate_up,
                down,
                intermediate: width,
            } = &block.mlp
            else {
                return None;
            };
            intermediate = *width;
            let layer = FusedLayer {
                norm1: rms(&block.norm1)?,
                qkv: blocks(qkv)?,
                out: blocks(&a.out)?,
                norm2: rms(&block.norm2)?,
                gate_up: blocks(gate_up)?,
                down: blocks(down)?,
            };
            let hidden = layer.norm1.0.len();
            let shapes_fit = layer.qkv.dims() == ((heads + 2 * kv_heads) * head_dim, hidden)
                && layer.out.dims() == (hidden, heads * head_dim)
                && layer.gate_up.dims() == (2 * intermediate, hidden)
                && layer.down.dims() == (hidden, intermediate);
            if !shapes_fit {
                return None;
            }
            layers.push(layer);
        }
        let device = match final_norm {
            Norm::Rms { weight, .. } => weight.device().clone(),
            Norm::Layer { .. } => return None,
        };
        Some(Self {
            layers,
            final_norm: rms(final_norm)?,
            heads,
            kv_heads,
            head_dim,
            intermediate,
            scale: first.scale_factor() as f32,
            rope_style: config.rope_style,
            rope_theta: config.rope_theta,
            lm_head: blocks(lm_head),
            device,
        })
    }

    /// The next-token logits (1, 1, vocab) of one token whose embedding is `x`, at `position`;
    /// every layer's keys and values go into `cache` (one sequence). The products are shared
    /// by a team of `threads` ([`with_team`]); `lm_head` is applied here unless the plan holds
    /// it.
    pub(crate) fn logits(
        &self,
        x: Vec<f32>,
        position: u32,
        cache: &mut KvCache,
        lm_head: &Projection,
        threads: usize,
    ) -> Result<Tensor> {
        let (normed, logits) = with_team(threads, |team| -> Result<_> {
            let normed = self.hidden(team, x, position, cache)?;
            let logits = self.lm_head.as_ref().map(|m| team.matvec(m, &normed));
            Ok((normed, logits))
        })?;
        match logits {
            Some(logits) => {
                let vocab = logits.len();
                Ok(Tensor::from_vec(logits, (1, 1, vocab), &self.device)?)
            }
            None => {
                let width = normed.len();
                let hidden = Tensor::from_vec(normed, (1, 1, width), &self.device)?;
                Ok(lm_head.forward(&hidden)?)
            }
        }
    }

    /// The final hidden state (after the last norm) of one token.
    fn hidden(
        &self,
        team: &Driver,
        mut x: Vec<f32>,
        position: u32,
        cache: &mut KvCache,
    ) -> Result<Vec<f32>> {
        let (h, kvh, dh) = (self.heads, self.kv_heads, self.head_dim);
        let (cos, sin) = rope_angles(&[position], dh, self.rope_theta);
        let mut normed = vec![0f32; x.len()];
        let mut q = vec![0f32; h * dh];
        for (i, layer) in self.layers.iter().enumerate() {
            rms_norm_row(&x, &layer.norm1.0, layer.norm1.1, &mut normed);
            let qkv = team.matvec(&layer.qkv, &normed);
            let (q_raw, rest) = qkv.split_at(h * dh);
            let (k_raw, v) = rest.split_at(kvh * dh);
            let mut k = vec![0f32; kvh * dh];
            for (raw, out) in q_raw.chunks_exact(dh).zip(q.chunks_exact_mut(dh)) {
                rotate_head(raw, &cos, &sin, self.rope_style, 1.0, out);
            }
            for (raw, out) in k_raw.chunks_exact(dh).zip(k.chunks_exact_mut(dh)) {
                rotate_head(raw, &cos, &sin, self.rope_style, 1.0, out);
            }
            let layer_cache = cache.layer(i);
            layer_cache.append(
                Tensor::from_vec(k, (1, kvh, 1, dh), &self.device)?,
                Tensor::from_vec(v.to_vec(), (1, kvh, 1, dh), &self.device)?,
            )?;
            let (keys, values, len) = layer_cache.buffers().ok_or_else(|| {
                Error::config("decode", "the key/value cache is empty after an append")
            })?;
            let shape = DecodeShape {
                heads: h,
                kv_heads: kvh,
                head_dim: dh,
                capacity: keys.dims()[2],
                len,
                scale: self.scale,
            };
            // One unpadded sequence: nothing is masked.
            let work = AttentionWork {
                q: q.clone(),
                keys,
                values,
                bias: vec![0f32; len],
                shape,
            };
            let context = team.attention(work).ok_or_else(|| {
                Error::config("decode", "the key/value cache is not f32 in CPU memory")
            })?;
            add(&mut x, &team.matvec(&layer.out, &context));
            rms_norm_row(&x, &layer.norm2.0, layer.norm2.1, &mut normed);
            let gate_up = team.matvec(&layer.gate_up, &normed);
            let (gate, up) = gate_up.split_at(self.intermediate);
            // The layers' SwiGLU, value for value.
            let mixed = swiglu(gate, up);
            add(&mut x, &team.matvec(&layer.down, &mixed));
        }
        rms_norm_row(&x, &self.final_norm.0, self.final_norm.1, &mut normed);
        Ok(normed)
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

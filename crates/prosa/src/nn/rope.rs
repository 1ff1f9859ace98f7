//! Rotary position embeddings (RoPE) as a candle op with a backward pass: each pair of channels
//! of a query or key is rotated by an angle proportional to its position. Llama checkpoints of
//! Hugging Face pair channel `i` with `i + d/2` ("rotate half"); GGUF files, whose converter
//! permuted the query and key weights, pair neighbours `2i, 2i + 1`. The rotation's gradient is
//! the inverse rotation, so the backward pass is the same kernel with the sine negated.

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::gemm::cpu_f32;
use crate::error::{Error, Result};

/// Which channels are rotated together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Channel `i` with `i + d/2` (transformers' `rotate_half`).
    Half,
    /// Channels `2i` and `2i + 1` (llama.cpp, GGUF).
    Interleaved,
}

/// Rotates one head's vector `v` (head_dim) by the angles of `cos`/`sin` (head_dim/2) into `out`;
/// `sign` -1 rotates back (the backward pass). The op's own arithmetic, for slice callers.
pub(crate) fn rotate_head(
    v: &[f32],
    cos: &[f32],
    sin: &[f32],
    style: RopeStyle,
    sign: f32,
    out: &mut [f32],
) {
    let half = v.len() / 2;
    for i in 0..half {
        let (a, b) = match style {
            RopeStyle::Half => (i, i + half),
            RopeStyle::Interleaved => (2 * i, 2 * i + 1),
        };
        let (ci, si) = (cos[i], sign * sin[i]);
        out[a] = v[a] * ci - v[b] * si;
        out[b] = v[b] * ci + v[a] * si;
    }
}

struct RopeOp {
    style: RopeStyle,
    /// True for the backward pass: rotate by the opposite angle.
    inverse: bool,
}

impl CustomOp3 for RopeOp {
    fn name(&self) -> &'static str {
        "prosa-rope"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = cpu_f32(s1, l1, "rope input")?;
        let cos = cpu_f32(s2, l2, "rope cos")?;
        let sin = cpu_f32(s3, l3, "rope sin")?;
        let (batch, heads, seq, d) = l1.shape().dims4()?;
        let half = d / 2;
        // cos/sin are (seq, d/2) shared by the batch, or (batch, seq, d/2).
        let per_batch = cos.len() == batch * seq * half;
        let sign = if self.inverse { -1.0 } else { 1.0 };
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(seq * d)
            .zip(x.par_chunks(seq * d))
            .enumerate()
            .for_each(|(bh, (out, x))| {
                let b = bh / heads;
                let table = if per_batch { b * seq * half } else { 0 };
                for p in 0..seq {
                    let (c, s) = (
                        &cos[table + p * half..table + (p + 1) * half],
                        &sin[table + p * half..table + (p + 1) * half],
                    );
                    let (o, v) = (&mut out[p * d..(p + 1) * d], &x[p * d..(p + 1) * d]);
                    rotate_head(v, c, s, self.style, sign, o);
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = RopeOp {
            style: self.style,
            inverse: !self.inverse,
        };
        let dx = grad.contiguous()?.apply_op3_no_bwd(cos, sin, &op)?;
        Ok((Some(dx), None, None))
    }
}

/// Rotates `x` (batch, heads, seq, head_dim) by the angles whose cosines and sines are `cos` and
/// `sin`, (seq, head_dim/2) or (batch, seq, head_dim/2).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, style: RopeStyle) -> Result<Tensor> {
    let (batch, _, seq, d) = x.dims4()?;
    let expected = seq * d / 2;
    if cos.elem_count() != expected && cos.elem_count() != batch * expected {
        return Err(Error::config(
            "rope",
            format!(
                "cos/sin tables of shape {:?} do not fit queries of shape {:?}",
                cos.dims(),
                x.dims()
            ),
        ));
    }
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        let op = RopeOp {
            style,
            inverse: false,
        };
        return Ok(x
            .contiguous()?
            .apply_op3(&cos.contiguous()?, &sin.contiguous()?, op)?);
    }
    let (cos, sin) = (cos.to_dtype(x.dtype())?, sin.to_dtype(x.dtype())?);
    let (cos, sin) = if cos.rank() == 2 {
        (cos.unsqueeze(0)?, sin.unsqueeze(0)?)
    } else {
        (cos, sin)
    };
    let x = x.contiguous()?;
    Ok(match style {
        RopeStyle::Half => candle_nn::rotary_emb::rope(&x, &cos.contiguous()?, &sin.contiguous()?)?,
        RopeStyle::Interleaved => {
            candle_nn::rotary_emb::rope_i(&x, &cos.contiguous()?, &sin.contiguous()?)?
        }
    })
}

/// Cosine and sine tables (rows, head_dim/2) for the given positions: angle
/// `position · theta^(−2i/head_dim)`.
pub fn rope_tables(
    positions: &[u32],
    head_dim: usize,
    theta: f64,
    device: &candle_core::Device,
) -> Result<(Tensor, Tensor)> {
    let half = head_dim / 2;
    let (cos, sin) = rope_angles(positions, head_dim, theta);
    Ok((
        Tensor::from_vec(cos, (positions.len(), half), device)?,
        Tensor::from_vec(sin, (positions.len(), half), device)?,
    ))
}

/// The values of [`rope_tables`] as plain vectors (positions × head_dim/2 each).
pub(crate) fn rope_angles(positions: &[u32], head_dim: usize, theta: f64) -> (Vec<f32>, Vec<f32>) {
    let half = head_dim / 2;
    let inv_freq: Vec<f64> = (0..half)
        .map(|i| 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64))
        .collect();
    let mut cos = Vec::with_capacity(positions.len() * half);
    let mut sin = Vec::with_capacity(positions.len() * half);
    for &p in positions {
        for f in &inv_freq {
            // transformers computes the angle in f32: position (f32) × inv_freq (f32).
            let angle = (p as f32) * (*f as f32);
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    (cos, sin)
}

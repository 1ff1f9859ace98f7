//! The last-dimension softmax, and the scaled softmax of attention scores with an additive
//! padding bias (and optionally a causal mask), as candle ops with a backward pass: one pass per
//! row over `f32` slices, rows in parallel, each row's loops in vector lanes (AVX-512 where
//! present) with the branch-free [`exp_fast`].

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::activation::exp_fast;
use super::gemm::cpu_f32 as f32_slice;
use super::lanes::{dot, fold, vectorized};
use super::norm::rows_per_task;
use crate::error::Result;

/// `eˣ`, or exactly 0 below −87 (where [`exp_fast`] stops at ≈1e-38): masked keys, `−∞` or a
/// large negative bias, get no weight at all.
#[inline(always)]
fn exp_or_zero(x: f32) -> f32 {
    let e = exp_fast(x);
    if x < -87.0 {
        0.0
    } else {
        e
    }
}

/// `row ← softmax(row)` in place: the maximum and the sum in sixteen lanes, entries more than 87
/// below the maximum exactly 0. Inline it into a [`vectorized`] body.
#[inline(always)]
pub(crate) fn softmax_in_place(row: &mut [f32]) {
    const LANES: usize = 16;
    let max = fold(row, f32::NEG_INFINITY, f32::max, f32::max);
    // Sixteen at a time, the tail too (padded), so no exponential runs one lane at a time —
    // each entry's value is the same either way.
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        chunk.iter_mut().for_each(|s| *s = exp_or_zero(*s - max));
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mut padded = [0f32; LANES];
        padded[..tail.len()].copy_from_slice(tail);
        padded.iter_mut().for_each(|s| *s = exp_or_zero(*s - max));
        tail.copy_from_slice(&padded[..tail.len()]);
    }
    let inv = 1.0 / fold(row, 0.0, |a, s| a + s, |a, b| a + b);
    row.iter_mut().for_each(|s| *s *= inv);
}

struct SoftmaxOp;

impl CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "prosa-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "softmax input")?;
        let d = l.dims().last().copied().unwrap_or(1);
        let mut out = x.to_vec();
        out.par_chunks_mut(rows_per_task(d) * d).for_each(|rows| {
            vectorized(
                #[inline(always)]
                || rows.chunks_exact_mut(d).for_each(softmax_in_place),
            )
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(softmax_grad(y, grad, 1.0)?))
    }
}

/// The gradient of `softmax(scale · x)` from its output `y` and upstream `grad`:
/// `scale · y ⊙ (grad − Σ grad ⊙ y)` per row.
fn softmax_grad(y: &Tensor, grad: &Tensor, scale: f32) -> candle_core::Result<Tensor> {
    let d = y.dim(candle_core::D::Minus1)?;
    let ys = y.flatten_all()?.to_vec1::<f32>()?;
    let mut dx = grad.flatten_all()?.to_vec1::<f32>()?;
    dx.par_chunks_mut(rows_per_task(d) * d)
        .zip(ys.par_chunks(rows_per_task(d) * d))
        .for_each(|(dx, y)| {
            vectorized(
                #[inline(always)]
                || {
                    for (dx, y) in dx.chunks_exact_mut(d).zip(y.chunks_exact(d)) {
                        let dot = dot(dx, y);
                        dx.iter_mut()
                            .zip(y)
                            .for_each(|(g, y)| *g = scale * y * (*g - dot));
                    }
                },
            )
        });
    Tensor::from_vec(dx, y.shape(), y.device())
}

/// Softmax over the last dimension, fused with a backward pass on the CPU in f32.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        return Ok(x.contiguous()?.apply_op1(SoftmaxOp)?);
    }
    Ok(candle_nn::ops::softmax(x, candle_core::D::Minus1)?)
}

/// Softmax over the last dimension of `scale · scores + bias`, where `bias` (batch, 1, 1, keys)
/// masks padded keys of `scores` (batch, heads, queries, keys): one pass instead of a scale, a
/// broadcast add and a softmax.
struct MaskedSoftmaxOp {
    scale: f32,
    /// For a causal mask: query `q` (of the last `queries` positions) sees keys `0..=q + offset`.
    causal_offset: Option<usize>,
}

impl candle_core::CustomOp2 for MaskedSoftmaxOp {
    fn name(&self) -> &'static str {
        "prosa-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "attention scores")?;
        let bias = f32_slice(s2, l2, "attention mask")?;
        let keys = l1.dims().last().copied().unwrap_or(1);
        let queries = l1.dims().iter().rev().nth(1).copied().unwrap_or(1);
        let causal_offset = self.causal_offset;
        // Rows of one batch entry share its mask row.
        let rows_per_batch = x.len() / keys / (bias.len() / keys).max(1);
        let mut out = vec![0f32; x.len()];
        let step = rows_per_task(keys) * keys;
        out.par_chunks_mut(step)
            .zip(x.par_chunks(step))
            .enumerate()
            .for_each(|(c, (out, x))| {
                let first_row = c * step / keys;
                for (r, (o, row)) in out
                    .chunks_exact_mut(keys)
                    .zip(x.chunks_exact(keys))
                    .enumerate()
                {
                    let b = (first_row + r) / rows_per_batch;
                    let mask = &bias[b * keys..(b + 1) * keys];
                    let visible = match causal_offset {
                        Some(offset) => ((first_row + r) % queries + offset + 1).min(keys),
                        None => keys,
                    };
                    // Keys after the query's position keep the allocation's zeros.
                    vectorized(
                        #[inline(always)]
                        || {
                            for ((o, v), m) in o[..visible].iter_mut().zip(row).zip(mask) {
                                *o = v * self.scale + m;
                            }
                            softmax_in_place(&mut o[..visible]);
                        },
                    );
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _bias: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(softmax_grad(y, grad, self.scale)?), None))
    }
}

/// `softmax(scale · scores + bias)` over the last dimension, `bias` (batch, 1, 1, keys)
/// broadcast over heads and queries of `scores` (batch, heads, queries, keys). Fused with a
/// backward pass (to the scores) on the CPU in f32.
pub fn masked_softmax(scores: &Tensor, bias: &Tensor, scale: f64) -> Result<Tensor> {
    if scores.device().is_cpu() && scores.dtype() == DType::F32 {
        let op = MaskedSoftmaxOp {
            scale: scale as f32,
            causal_offset: None,
        };
        return Ok(scores.contiguous()?.apply_op2(&bias.contiguous()?, op)?);
    }
    softmax_last_dim(&(scores * scale)?.broadcast_add(bias)?)
}

/// [`masked_softmax`] with a causal mask as well: scores (batch, heads, queries, keys) belong to
/// the last `queries` of `keys` positions (earlier ones come from a cache), and query `q` sees
/// keys up to its own position. `bias` (batch, 1, 1, keys) masks padding.
pub fn causal_masked_softmax(scores: &Tensor, bias: &Tensor, scale: f64) -> Result<Tensor> {
    let (_, _, queries, keys) = scores.dims4()?;
    let offset = keys.checked_sub(queries).ok_or_else(|| {
        crate::error::Error::config("attention", "more queries than keys in a causal mask")
    })?;
    if scores.device().is_cpu() && scores.dtype() == DType::F32 {
        let op = MaskedSoftmaxOp {
            scale: scale as f32,
            causal_offset: Some(offset),
        };
        return Ok(scores.contiguous()?.apply_op2(&bias.contiguous()?, op)?);
    }
    let allowed: Vec<f32> = (0..queries)
        .flat_map(|q| {
            (0..keys).map(move |k| {
                if k <= q + offset {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    let causal = Tensor::from_vec(allowed, (1, 1, queries, keys), scores.device())?
        .to_dtype(scores.dtype())?;
    softmax_last_dim(
        &(scores * scale)?
            .broadcast_add(bias)?
            .broadcast_add(&causal)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rows_tail_is_exponentiated_to_the_bits_of_one_entry_at_a_time() {
        for len in 1..=50 {
            let row: Vec<f32> = (0..len)
                .map(|i| match i % 7 {
                    3 => f32::NEG_INFINITY,
                    5 => -1.0e9,
                    _ => ((i * 37) % 11) as f32 * 0.9 - 4.0,
                })
                .collect();
            // The reference: every exponential on its own.
            let max = fold(&row, f32::NEG_INFINITY, f32::max, f32::max);
            let mut expected: Vec<f32> = row.iter().map(|&s| exp_or_zero(s - max)).collect();
            let inv = 1.0 / fold(&expected, 0.0, |a, s| a + s, |a, b| a + b);
            expected.iter_mut().for_each(|s| *s *= inv);
            let mut got = row.clone();
            vectorized(|| softmax_in_place(&mut got));
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&expected), "length {len}");
        }
    }
}

//! Layer normalisation, the last-dimension softmax and GELU as candle ops with a backward pass, for the
//! Transformer models. candle-nn's fused versions have no gradient and its composed versions
//! build a dozen temporaries; these run one pass per row over `f32` slices, rows in parallel.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::fused_recurrent::tanh;
use super::gemm::{cpu_f32 as f32_slice, with_f32};
use crate::error::Result;

/// Rows per parallel task: enough work per task to outweigh scheduling.
fn rows_per_task(width: usize) -> usize {
    (16_384 / width.max(1)).max(1)
}

/// Mean and 1/standard deviation of one row.
#[inline]
fn moments(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

struct LayerNormOp {
    eps: f32,
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "prosa-layer-norm"
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
        let x = f32_slice(s1, l1, "layer norm input")?;
        let gamma = f32_slice(s2, l2, "layer norm weight")?;
        let beta = f32_slice(s3, l3, "layer norm bias")?;
        let d = gamma.len();
        let mut out = vec![0f32; x.len()];
        let step = rows_per_task(d) * d;
        out.par_chunks_mut(step)
            .zip(x.par_chunks(step))
            .for_each(|(out, x)| {
                for (o, row) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                    let (mean, rstd) = moments(row, self.eps);
                    for (((o, v), g), b) in o.iter_mut().zip(row).zip(gamma).zip(beta) {
                        *o = (v - mean) * rstd * g + b;
                    }
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = gamma.elem_count();
        let eps = self.eps;
        // The inputs are read in place, without copies.
        let [dx, dg, db] = with_f32(x, |xs| {
            with_f32(gamma, |gs| {
                with_f32(grad, |dys| layer_norm_grads(xs, gs, dys, eps))
            })
        })???;
        let device = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), device)?),
            Some(Tensor::from_vec(dg, d, device)?),
            Some(Tensor::from_vec(db, d, device)?),
        ))
    }
}

/// The gradients of a layer norm: `(dx, dγ, dβ)`; rows in parallel, each task summing its own
/// dγ and dβ.
fn layer_norm_grads(xs: &[f32], gs: &[f32], dys: &[f32], eps: f32) -> [Vec<f32>; 3] {
    let d = gs.len();
    let mut dx = vec![0f32; xs.len()];
    let step = rows_per_task(d) * d;
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(step)
        .zip(xs.par_chunks(step))
        .zip(dys.par_chunks(step))
        .map(|((dx, x), dy)| {
            let (mut dg, mut db) = (vec![0f32; d], vec![0f32; d]);
            let mut xhat = vec![0f32; d];
            for ((dx, row), dy) in dx
                .chunks_exact_mut(d)
                .zip(x.chunks_exact(d))
                .zip(dy.chunks_exact(d))
            {
                let (mean, rstd) = moments(row, eps);
                let (mut mean_dxhat, mut mean_dxhat_xhat) = (0f32, 0f32);
                for j in 0..d {
                    xhat[j] = (row[j] - mean) * rstd;
                    let dxhat = dy[j] * gs[j];
                    mean_dxhat += dxhat;
                    mean_dxhat_xhat += dxhat * xhat[j];
                    dg[j] += dy[j] * xhat[j];
                    db[j] += dy[j];
                }
                mean_dxhat /= d as f32;
                mean_dxhat_xhat /= d as f32;
                for j in 0..d {
                    dx[j] = rstd * (dy[j] * gs[j] - mean_dxhat - xhat[j] * mean_dxhat_xhat);
                }
            }
            (dg, db)
        })
        .collect();
    let (mut dg, mut db) = (vec![0f32; d], vec![0f32; d]);
    for (pg, pb) in partials {
        dg.iter_mut().zip(pg).for_each(|(a, v)| *a += v);
        db.iter_mut().zip(pb).for_each(|(a, v)| *a += v);
    }
    [dx, dg, db]
}

/// Layer normalisation over the last dimension: `(x - mean) / sqrt(var + eps) · γ + β`
/// (biased variance, as PyTorch). Fused with a backward pass on the CPU in f32; composed of
/// tensor ops elsewhere.
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        let op = LayerNormOp { eps: eps as f32 };
        return Ok(x.contiguous()?.apply_op3(gamma, beta, op)?);
    }
    Ok(candle_nn::ops::layer_norm_slow(x, gamma, beta, eps as f32)?)
}

/// `1 / sqrt(mean(x²) + eps)` of one row.
#[inline]
fn inverse_rms(row: &[f32], eps: f32) -> f32 {
    let mean_square = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
    1.0 / (mean_square + eps).sqrt()
}

struct RmsNormOp {
    eps: f32,
}

impl CustomOp2 for RmsNormOp {
    fn name(&self) -> &'static str {
        "prosa-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "RMS norm input")?;
        let gamma = f32_slice(s2, l2, "RMS norm weight")?;
        let d = gamma.len();
        let mut out = vec![0f32; x.len()];
        let step = rows_per_task(d) * d;
        out.par_chunks_mut(step)
            .zip(x.par_chunks(step))
            .for_each(|(out, x)| {
                for (o, row) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                    let r = inverse_rms(row, self.eps);
                    for ((o, v), g) in o.iter_mut().zip(row).zip(gamma) {
                        *o = v * r * g;
                    }
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let d = gamma.elem_count();
        let eps = self.eps;
        let (dx, dg) = with_f32(x, |xs| {
            with_f32(gamma, |gs| {
                with_f32(grad, |dys| rms_norm_grads(xs, gs, dys, eps))
            })
        })???;
        let device = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), device)?),
            Some(Tensor::from_vec(dg, d, device)?),
        ))
    }
}

/// The gradients of an RMS norm `y = x·r·γ`, `r = 1/rms(x)`: `dx = r·(dy⊙γ) − x·r³·mean(dy⊙γ⊙x)`
/// and `dγ = Σ dy⊙x·r`.
fn rms_norm_grads(xs: &[f32], gs: &[f32], dys: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let d = gs.len();
    let mut dx = vec![0f32; xs.len()];
    let step = rows_per_task(d) * d;
    let partials: Vec<Vec<f32>> = dx
        .par_chunks_mut(step)
        .zip(xs.par_chunks(step))
        .zip(dys.par_chunks(step))
        .map(|((dx, x), dy)| {
            let mut dg = vec![0f32; d];
            for ((dx, row), dy) in dx
                .chunks_exact_mut(d)
                .zip(x.chunks_exact(d))
                .zip(dy.chunks_exact(d))
            {
                let r = inverse_rms(row, eps);
                let mut dot = 0f32;
                for j in 0..d {
                    dot += dy[j] * gs[j] * row[j];
                    dg[j] += dy[j] * row[j] * r;
                }
                let c = r * r * r * dot / d as f32;
                for j in 0..d {
                    dx[j] = r * dy[j] * gs[j] - row[j] * c;
                }
            }
            dg
        })
        .collect();
    let mut dg = vec![0f32; d];
    for p in partials {
        dg.iter_mut().zip(p).for_each(|(a, v)| *a += v);
    }
    (dx, dg)
}

/// RMS normalisation over the last dimension, `x / sqrt(mean(x²) + eps) · γ` (Llama's
/// `LlamaRMSNorm`). Fused with a backward pass on the CPU in f32; composed elsewhere.
pub fn rms_norm(x: &Tensor, gamma: &Tensor, eps: f64) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        return Ok(x
            .contiguous()?
            .apply_op2(gamma, RmsNormOp { eps: eps as f32 })?);
    }
    Ok(candle_nn::ops::rms_norm_slow(x, gamma, eps as f32)?)
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
            for row in rows.chunks_exact_mut(d) {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for v in row.iter_mut() {
                    *v = (*v - max).exp();
                    sum += *v;
                }
                let inv = 1.0 / sum;
                row.iter_mut().for_each(|v| *v *= inv);
            }
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
            for (dx, y) in dx.chunks_exact_mut(d).zip(y.chunks_exact(d)) {
                let dot: f32 = dx.iter().zip(y).map(|(g, y)| g * y).sum();
                dx.iter_mut()
                    .zip(y)
                    .for_each(|(g, y)| *g = scale * y * (*g - dot));
            }
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
                    let mut max = f32::NEG_INFINITY;
                    for ((o, v), m) in o[..visible].iter_mut().zip(row).zip(mask) {
                        *o = v * self.scale + m;
                        max = max.max(*o);
                    }
                    o[visible..].iter_mut().for_each(|o| *o = f32::NEG_INFINITY);
                    let mut sum = 0f32;
                    for o in o.iter_mut() {
                        *o = (*o - max).exp();
                        sum += *o;
                    }
                    let inv = 1.0 / sum;
                    o.iter_mut().for_each(|v| *v *= inv);
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

/// erf as a rational function of x (odd degree-13 numerator over an even degree-8
/// denominator, the approximation Eigen and XLA use), clamped where erf is ±1 in f32.
/// Branch-free, so loops over it vectorise; within 1e-6 of libm (tested below).
#[inline(always)]
#[allow(clippy::excessive_precision)]
pub(crate) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = x2 * -2.726_142_258_013_06e-10 + 2.770_681_424_959_02e-08;
    let p = p * x2 - 2.101_024_020_825_08e-06;
    let p = p * x2 - 5.692_506_394_623_46e-05;
    let p = p * x2 - 7.349_906_303_268_55e-04;
    let p = p * x2 - 2.954_599_808_540_25e-03;
    let p = p * x2 - 1.609_603_332_624_15e-02;
    let q = x2 * -1.456_607_184_649_96e-05 - 2.133_740_552_789_05e-04;
    let q = q * x2 - 1.682_826_974_382_03e-03;
    let q = q * x2 - 7.373_329_167_204_68e-03;
    let q = q * x2 - 1.426_473_905_141_89e-02;
    x * p / q
}

/// √(2/π), of the tanh GELU.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

struct GeluTanhOp;

impl CustomOp1 for GeluTanhOp {
    fn name(&self) -> &'static str {
        "prosa-gelu-tanh"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "gelu input")?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(1 << 14)
            .zip(x.par_chunks(1 << 14))
            .for_each(|(o, x)| {
                for (o, &v) in o.iter_mut().zip(x) {
                    let u = SQRT_2_OVER_PI * (v + 0.044_715 * v * v * v);
                    *o = 0.5 * v * (1.0 + tanh(u));
                }
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        // d/dx ½x(1 + t) = ½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²), t = tanh(u).
        let mut dx = grad.flatten_all()?.to_vec1::<f32>()?;
        with_f32(x, |xs| {
            dx.par_chunks_mut(1 << 14)
                .zip(xs.par_chunks(1 << 14))
                .for_each(|(g, x)| {
                    for (g, &v) in g.iter_mut().zip(x) {
                        let t = tanh(SQRT_2_OVER_PI * (v + 0.044_715 * v * v * v));
                        let du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044_715 * v * v);
                        *g *= 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du;
                    }
                })
        })?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// The tanh approximation of GELU (transformers' `gelu_new`, GPT-2's activation), fused with a
/// backward pass on the CPU in f32; candle's `gelu` elsewhere.
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        return Ok(x.contiguous()?.apply_op1(GeluTanhOp)?);
    }
    Ok(x.gelu()?)
}

struct GeluOp;

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;

impl CustomOp1 for GeluOp {
    fn name(&self) -> &'static str {
        "prosa-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "gelu input")?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(1 << 14)
            .zip(x.par_chunks(1 << 14))
            .for_each(|(o, x)| {
                for (o, &v) in o.iter_mut().zip(x) {
                    *o = 0.5 * v * (1.0 + erf(v * FRAC_1_SQRT_2));
                }
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        // d/dx [x Φ(x)] = Φ(x) + x φ(x).
        let mut dx = grad.flatten_all()?.to_vec1::<f32>()?;
        let inv_sqrt_2pi = 0.5 * std::f32::consts::FRAC_2_SQRT_PI * FRAC_1_SQRT_2;
        with_f32(x, |xs| {
            dx.par_chunks_mut(1 << 14)
                .zip(xs.par_chunks(1 << 14))
                .for_each(|(g, x)| {
                    for (g, &v) in g.iter_mut().zip(x) {
                        let cdf = 0.5 * (1.0 + erf(v * FRAC_1_SQRT_2));
                        let pdf = inv_sqrt_2pi * (-0.5 * v * v).exp();
                        *g *= cdf + v * pdf;
                    }
                })
        })?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// Exact (erf) GELU, `x Φ(x)`, as transformers' `gelu`: fused with a backward pass on the CPU
/// in f32 (a vectorisable erf instead of libm's), candle's `gelu_erf` elsewhere.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        return Ok(x.contiguous()?.apply_op1(GeluOp)?);
    }
    Ok(x.gelu_erf()?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn fast_tanh_is_within_1e6_of_libm() {
        let mut worst = 0f32;
        for i in -120_000..=120_000 {
            let x = i as f32 * 1e-4;
            worst = worst.max((super::tanh(x) - (x as f64).tanh() as f32).abs());
        }
        assert!(worst < 1e-6, "max error {worst}");
        assert_eq!(super::tanh(20.0), 1.0);
    }

    #[test]
    fn fast_erf_is_within_1e6_of_libm() {
        let mut worst = 0f32;
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4;
            let exact = libm_erf(x as f64) as f32;
            worst = worst.max((super::erf(x) - exact).abs());
        }
        assert!(worst < 1e-6, "max error {worst}");
        assert_eq!(super::erf(9.0), 1.0);
    }

    /// erf in f64 by its Maclaurin series (|x| ≤ 3) or the continued fraction of erfc beyond.
    fn libm_erf(x: f64) -> f64 {
        if x.abs() > 3.0 {
            let t = x.abs();
            // Lentz-free continued fraction, 60 terms: erfc(t) = exp(-t²)/√π · 1/(t + 1/2/(t + 1/(t + …))).
            let mut f = t;
            for k in (1..60).rev() {
                f = t + (k as f64 / 2.0) / f;
            }
            let erfc = (-t * t).exp() / std::f64::consts::PI.sqrt() / f;
            return x.signum() * (1.0 - erfc);
        }
        let mut sum = 0.0;
        let mut term = x;
        let mut n = 0.0;
        while term.abs() > 1e-17 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -x * x / n;
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    }
}

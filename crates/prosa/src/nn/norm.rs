//! Layer normalisation and the last-dimension softmax as candle ops with a backward pass, for the
//! Transformer models. candle-nn's fused versions have no gradient and its composed versions
//! build a dozen temporaries; these run one pass per row over `f32` slices, rows in parallel.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::gemm::cpu_f32 as f32_slice;
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
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let gs = gamma.to_vec1::<f32>()?;
        let dys = grad.flatten_all()?.to_vec1::<f32>()?;
        let mut dx = vec![0f32; xs.len()];
        let step = rows_per_task(d) * d;
        // Each task returns its partial sums of dγ and dβ.
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
                    let (mean, rstd) = moments(row, self.eps);
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
        let device = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), device)?),
            Some(Tensor::from_vec(dg, d, device)?),
            Some(Tensor::from_vec(db, d, device)?),
        ))
    }
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
        let d = y.dim(candle_core::D::Minus1)?;
        let ys = y.flatten_all()?.to_vec1::<f32>()?;
        let mut dx = grad.flatten_all()?.to_vec1::<f32>()?;
        dx.par_chunks_mut(rows_per_task(d) * d)
            .zip(ys.par_chunks(rows_per_task(d) * d))
            .for_each(|(dx, y)| {
                for (dx, y) in dx.chunks_exact_mut(d).zip(y.chunks_exact(d)) {
                    let dot: f32 = dx.iter().zip(y).map(|(g, y)| g * y).sum();
                    dx.iter_mut().zip(y).for_each(|(g, y)| *g = y * (*g - dot));
                }
            });
        Ok(Some(Tensor::from_vec(dx, y.shape(), y.device())?))
    }
}

/// Softmax over the last dimension, fused with a backward pass on the CPU in f32.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        return Ok(x.contiguous()?.apply_op1(SoftmaxOp)?);
    }
    Ok(candle_nn::ops::softmax(x, candle_core::D::Minus1)?)
}

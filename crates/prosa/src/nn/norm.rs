//! Layer normalisation and RMS normalisation as candle ops with a backward pass. candle-nn's
//! fused versions have no gradient and its composed versions build a dozen temporaries; these
//! run one pass per row over `f32` slices, rows in parallel.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::gemm::{cpu_f32 as f32_slice, with_f32};
use super::lanes::{fold, vectorized};
use super::params::{Init, ParamBuilder};
use super::{spin_pool, uninit};
use crate::error::Result;

/// Rows per parallel task: enough work per task to outweigh scheduling.
pub(crate) fn rows_per_task(width: usize) -> usize {
    (16_384 / width.max(1)).max(1)
}

/// A norm's forward pass: `row_fn(i, row, out_row)` for each row `i` of width `d` of `x`, rows in
/// parallel chunks (on the spinning helpers in inference), each chunk's loop compiled for
/// AVX-512 where present (mark `row_fn` `#[inline(always)]`). `row_fn` writes every value of
/// its output row (the output is not zeroed first).
#[inline(always)]
fn map_rows(
    x: &[f32],
    d: usize,
    row_fn: impl Fn(usize, &[f32], &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let mut out = uninit::buffer(x.len());
    let rows_per_task = rows_per_task(d);
    let step = rows_per_task * d;
    spin_pool::for_each_chunk_mut(&mut out, step, |i, out| {
        let x = &x[i * step..i * step + out.len()];
        vectorized(
            #[inline(always)]
            || {
                let rows = out.chunks_exact_mut(d).zip(x.chunks_exact(d));
                for (r, (o, row)) in rows.enumerate() {
                    row_fn(i * rows_per_task + r, row, o);
                }
            },
        )
    });
    // SAFETY: the chunks cover `out` in whole rows (`step` is a multiple of `d`, and so is
    // `x.len()`: both ops check that the input's last dimension is `d`), and `row_fn` writes
    // each row whole.
    unsafe { uninit::assume_written(out) }
}

/// A layer norm's output for value `v` of a row with those moments, weight `g` and bias `b`.
#[inline(always)]
fn normed_value(v: f32, (mean, rstd): (f32, f32), g: f32, b: f32) -> f32 {
    (v - mean) * rstd * g + b
}

/// Mean and 1/standard deviation of one row (sums in vector lanes).
#[inline(always)]
fn moments(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = fold(row, 0.0, |a, v| a + v, |a, b| a + b) / n;
    let var = fold(row, 0.0, |a, v| a + (v - mean) * (v - mean), |a, b| a + b) / n;
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
        if l1.dims().last() != Some(&d) || beta.len() != d {
            candle_core::bail!("norm input's last dimension or bias is not the weight's length {d}")
        }
        let out = map_rows(
            x,
            d,
            #[inline(always)]
            |_, row, o| {
                let (mean, rstd) = moments(row, self.eps);
                let normed = row.iter().zip(gamma).zip(beta);
                uninit::write(
                    o,
                    normed.map(|((&v, &g), &b)| normed_value(v, (mean, rstd), g, b)),
                );
            },
        );
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

/// `layer_norm(x + residual)` in inference (nothing tracked, f32 on the CPU, `x` and `residual`
/// of one shape): each row's sum written to the output row and normalised there, so the sum
/// is never a tensor of its own — one pass over the rows where the add and the norm took two.
/// The same bits as [`layer_norm`] of [`super::elementwise::add`]. `None` where it does not
/// apply.
fn add_layer_norm(
    x: &Tensor,
    residual: &Tensor,
    (gamma, beta): (&Tensor, &Tensor),
    eps: f64,
) -> Result<Option<Tensor>> {
    let plain = |t: &Tensor| !t.track_op() && t.device().is_cpu() && t.dtype() == DType::F32;
    let d = gamma.elem_count();
    let fits = x.dims() == residual.dims() && x.dims().last() == Some(&d) && beta.elem_count() == d;
    if !fits || ![x, residual, gamma, beta].into_iter().all(plain) {
        return Ok(None);
    }
    let eps = eps as f32;
    let (x, residual) = (x.contiguous()?, residual.contiguous()?);
    let out = with_f32(&x, |xs| {
        with_f32(&residual, |rs| {
            with_f32(gamma, |gamma| {
                with_f32(beta, |beta| {
                    map_rows(
                        xs,
                        d,
                        #[inline(always)]
                        |i, x, o| {
                            let r = &rs[i * d..(i + 1) * d];
                            let row = uninit::write_all(o, x.iter().zip(r).map(|(a, b)| a + b));
                            layer_norm_in_place(row, (gamma, beta), eps);
                        },
                    )
                })
            })
        })
    })????;
    Ok(Some(Tensor::from_vec(out, x.dims(), x.device())?))
}

/// A row's layer norm, written over it.
#[inline(always)]
fn layer_norm_in_place(row: &mut [f32], (gamma, beta): (&[f32], &[f32]), eps: f32) {
    let moments = moments(row, eps);
    for ((v, &g), &b) in row.iter_mut().zip(gamma).zip(beta) {
        *v = normed_value(*v, moments, g, b);
    }
}

/// One row of [`add_layer_norm`] written over `row`: `layer_norm(row + residual)`, the same
/// arithmetic (so the same bits), for a product that norms its output rows as it finishes them
/// (`dense_panels::residual_normed_product`).
pub(crate) fn add_layer_norm_row(
    row: &mut [f32],
    residual: &[f32],
    (gamma, beta): (&[f32], &[f32]),
    eps: f32,
) {
    vectorized(
        #[inline(always)]
        || {
            row.iter_mut().zip(residual).for_each(|(v, r)| *v += r);
            layer_norm_in_place(row, (gamma, beta), eps);
        },
    )
}

/// `1 / sqrt(mean(x²) + eps)` of one row (sums in vector lanes).
#[inline(always)]
fn inverse_rms(row: &[f32], eps: f32) -> f32 {
    let mean_square = fold(row, 0.0, |a, v| a + v * v, |a, b| a + b) / row.len() as f32;
    1.0 / (mean_square + eps).sqrt()
}

/// One row of an RMS norm: `out = row / rms(row) · γ` (the op's own arithmetic, for callers
/// that work on slices: the fused decode step).
#[inline(always)]
pub(crate) fn rms_norm_row(row: &[f32], gamma: &[f32], eps: f32, out: &mut [f32]) {
    let r = inverse_rms(row, eps);
    for ((o, v), g) in out.iter_mut().zip(row).zip(gamma) {
        *o = v * r * g;
    }
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
        if l1.dims().last() != Some(&d) {
            candle_core::bail!("norm input's last dimension is not the weight's length {d}")
        }
        let out = map_rows(
            x,
            d,
            #[inline(always)]
            |_, row, o| {
                // `rms_norm_row`'s arithmetic (the fused decode step's), into unset values.
                let r = inverse_rms(row, self.eps);
                uninit::write(o, row.iter().zip(gamma).map(|(v, g)| v * r * g));
            },
        );
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

/// A normalisation layer with its parameters: a layer norm (BERT, GPT-2) or an RMS norm
/// (Llama, T5).
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
    /// A layer norm `name.weight` (ones) and `name.bias` (zeros) of width `size`.
    pub fn layer(vb: &ParamBuilder, name: &str, size: usize, eps: f64) -> Result<Self> {
        let vb = vb.pp(name);
        Ok(Norm::Layer {
            weight: vb.param("weight", &[size], Init::Const(1.0))?,
            bias: vb.param("bias", &[size], Init::Zeros)?,
            eps,
        })
    }

    /// An RMS norm `name.weight` (ones) of width `size`.
    pub fn rms(vb: &ParamBuilder, name: &str, size: usize, eps: f64) -> Result<Self> {
        Ok(Norm::Rms {
            weight: vb.pp(name).param("weight", &[size], Init::Const(1.0))?,
            eps,
        })
    }

    /// Normalises the last dimension.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Norm::Layer { weight, bias, eps } => layer_norm(x, weight, bias, *eps),
            Norm::Rms { weight, eps } => rms_norm(x, weight, *eps),
        }
    }

    /// A layer norm's weight, bias and epsilon; `None` for an RMS norm.
    pub(crate) fn layer_parts(&self) -> Option<(&Tensor, &Tensor, f32)> {
        match self {
            Norm::Layer { weight, bias, eps } => Some((weight, bias, *eps as f32)),
            _ => None,
        }
    }

    /// Normalises `x + residual` (a post-norm block's sublayer output and its input): in
    /// inference, a layer norm takes each row's sum where it writes the row (no tensor for the
    /// sum), with the same bits as the norm of [`super::elementwise::add`]'s sum.
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        if let Norm::Layer { weight, bias, eps } = self {
            if let Some(y) = add_layer_norm(x, residual, (weight, bias), *eps)? {
                return Ok(y);
            }
        }
        self.forward(&super::elementwise::add(x, residual)?)
    }
}

//! `y = x Wᵀ + b` as one candle op on the CPU: the bias is the product's starting value (no
//! separate broadcast pass), and the backward pass makes `dx`, `dW` and `db` directly (candle's
//! composed version transposes, copies and reduces a broadcast with a strided sum).

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};

use super::gemm::{cpu_f32 as slice, matmul, with_f32};
use crate::error::Result;

/// Products with more multiply-adds than this use the thread pool.
const PARALLEL_WORK: usize = 1 << 18;

struct LinearOp;

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "prosa-linear"
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
        let (x, w, b) = (
            slice(s1, l1, "x")?,
            slice(s2, l2, "weight")?,
            slice(s3, l3, "bias")?,
        );
        let (outputs, inputs) = l2.shape().dims2()?;
        let rows = x.len() / inputs.max(1);
        let mut y = Vec::with_capacity(rows * outputs);
        for _ in 0..rows {
            y.extend_from_slice(b);
        }
        // y (rows × out) += x (rows × in) · Wᵀ, Wᵀ[k][n] = w[n·in + k].
        matmul(
            rows,
            outputs,
            inputs,
            &mut y,
            (1, outputs as isize),
            x,
            (1, inputs as isize),
            w,
            (inputs as isize, 1),
            true,
            rows * outputs * inputs > PARALLEL_WORK,
        );
        let mut dims = l1.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = outputs;
        }
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (outputs, inputs) = w.dims2()?;
        let rows = x.elem_count() / inputs.max(1);
        let big = rows * outputs * inputs > PARALLEL_WORK;
        let (dx, dw, db) = with_f32(x, |xs| {
            with_f32(w, |ws| {
                with_f32(grad, |dy| {
                    // dx (rows × in) = dy (rows × out) · W (out × in).
                    let mut dx = vec![0f32; rows * inputs];
                    matmul(
                        rows,
                        inputs,
                        outputs,
                        &mut dx,
                        (1, inputs as isize),
                        dy,
                        (1, outputs as isize),
                        ws,
                        (1, inputs as isize),
                        false,
                        big,
                    );
                    // dW (out × in) = dyᵀ · x.
                    let mut dw = vec![0f32; outputs * inputs];
                    matmul(
                        outputs,
                        inputs,
                        rows,
                        &mut dw,
                        (1, inputs as isize),
                        dy,
                        (outputs as isize, 1),
                        xs,
                        (1, inputs as isize),
                        false,
                        big,
                    );
                    let mut db = vec![0f32; outputs];
                    for row in dy.chunks_exact(outputs) {
                        db.iter_mut().zip(row).for_each(|(a, v)| *a += v);
                    }
                    (dx, dw, db)
                })
            })
        })???;
        let device = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), device)?),
            Some(Tensor::from_vec(dw, (outputs, inputs), device)?),
            Some(Tensor::from_vec(db, outputs, device)?),
        ))
    }
}

/// `x Wᵀ + b` over the last dimension of `x`, with PyTorch's `weight` (out, in) and `bias` (out).
pub fn linear(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 && weight.dtype() == DType::F32 {
        return Ok(x
            .contiguous()?
            .apply_op3(&weight.contiguous()?, bias, LinearOp)?);
    }
    let dims = x.dims().to_vec();
    let inputs = *dims.last().unwrap_or(&1);
    let rows = x.elem_count() / inputs.max(1);
    let y = x
        .reshape((rows, inputs))?
        .matmul(&weight.t()?)?
        .broadcast_add(bias)?;
    let mut out = dims;
    if let Some(last) = out.last_mut() {
        *last = weight.dim(0)?;
    }
    Ok(y.reshape(out)?)
}

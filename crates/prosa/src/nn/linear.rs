//! `y = x Wᵀ + b` as one candle op on the CPU: the bias is the product's starting value (no
//! separate broadcast pass), and the backward pass makes `dx`, `dW` and `db` directly (candle's
//! composed version transposes, copies and reduces a broadcast with a strided sum). The weight is
//! PyTorch's `nn.Linear` layout (out, in) or GPT-2's `Conv1D` layout (in, out), read in place.

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::gemm::{cpu_f32 as slice, matmul, with_f32};
use crate::error::Result;

/// Products with more multiply-adds than this use the thread pool.
pub(super) const PARALLEL_WORK: usize = 1 << 18;
/// Products of at most this many rows put the weight on the left (see `cpu_fwd`).
const FEW_ROWS: usize = 64;

/// How the weight matrix is stored.
#[derive(Clone, Copy)]
enum WeightLayout {
    /// `nn.Linear`: (out, in).
    OutIn,
    /// GPT-2's `Conv1D`: (in, out).
    InOut,
}

impl WeightLayout {
    /// (outputs, inputs) of a weight of shape `dims`.
    fn extents(self, dims: (usize, usize)) -> (usize, usize) {
        match self {
            WeightLayout::OutIn => dims,
            WeightLayout::InOut => (dims.1, dims.0),
        }
    }

    /// Strides (column, row) of Wᵀ as an (in × out) operand: element (k, n) is `x·k + y·n`.
    fn transposed_strides(self, inputs: usize, outputs: usize) -> (isize, isize) {
        match self {
            WeightLayout::OutIn => (inputs as isize, 1),
            WeightLayout::InOut => (1, outputs as isize),
        }
    }

    /// Strides (column, row) of W as an (out × in) matrix, read as an operand or written as the
    /// gradient.
    fn strides(self, inputs: usize, outputs: usize) -> (isize, isize) {
        match self {
            WeightLayout::OutIn => (1, inputs as isize),
            WeightLayout::InOut => (outputs as isize, 1),
        }
    }
}

/// `y` (rows × outputs) = the transpose of `yt` (outputs × rows), in blocks of outputs whose
/// rows stay in cache; `parallel` gives each thread of the pool a share of the rows.
fn transpose_into(yt: &[f32], rows: usize, outputs: usize, y: &mut [f32], parallel: bool) {
    const BLOCK: usize = 256;
    let share = if parallel {
        rows.div_ceil(rayon::current_num_threads()).max(1)
    } else {
        rows.max(1)
    };
    y.par_chunks_mut(share * outputs)
        .enumerate()
        .for_each(|(task, part)| {
            let first_row = task * share;
            for first in (0..outputs).step_by(BLOCK) {
                let last = (first + BLOCK).min(outputs);
                for (i, y_row) in part.chunks_mut(outputs).enumerate() {
                    let r = first_row + i;
                    for o in first..last {
                        y_row[o] = yt[o * rows + r];
                    }
                }
            }
        });
}

/// The op; `with_bias = false` means the third input is a placeholder: no bias is added and no
/// bias gradient is computed.
struct LinearOp(WeightLayout, bool);

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
        let (outputs, inputs) = self.0.extents(l2.shape().dims2()?);
        let rows = x.len() / inputs.max(1);
        let with_bias = self.1;
        let mut y = if with_bias {
            let mut y = Vec::with_capacity(rows * outputs);
            for _ in 0..rows {
                y.extend_from_slice(b);
            }
            y
        } else {
            vec![0f32; rows * outputs]
        };
        let parallel = rows * outputs * inputs > PARALLEL_WORK;
        if rows <= FEW_ROWS {
            // Few rows (a decoding step): yᵀ (out × rows) = W (out × in) · xᵀ into a row-major
            // buffer, transposed into y: `gemm` then streams the large weight as its left
            // operand instead of repacking it (2–3× faster at 16 rows).
            let (w_cs, w_rs) = self.0.strides(inputs, outputs);
            let mut yt = vec![0f32; outputs * rows];
            if with_bias {
                for (o, chunk) in yt.chunks_mut(rows).enumerate() {
                    chunk.fill(b[o]);
                }
            }
            // In parallel, each thread multiplies a share of the weight's rows, one product each
            // (gemm's own split of so few columns kept the second thread mostly idle: 116 µs
            // against one thread's 94 at 20 × 384 × 384; shared by weight rows, 60).
            let share = if parallel {
                outputs
                    .div_ceil(rayon::current_num_threads())
                    .next_multiple_of(16)
            } else {
                outputs.max(1)
            };
            yt.par_chunks_mut(share * rows.max(1))
                .enumerate()
                .for_each(|(part, yt)| {
                    let first = part * share;
                    matmul(
                        yt.len() / rows.max(1),
                        rows,
                        inputs,
                        yt,
                        (1, rows as isize),
                        &w[first * w_rs as usize..],
                        (w_cs, w_rs),
                        x,
                        (inputs as isize, 1),
                        with_bias,
                        false,
                    );
                });
            transpose_into(&yt, rows, outputs, &mut y, parallel);
        } else {
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
                self.0.transposed_strides(inputs, outputs),
                with_bias,
                parallel,
            );
        }
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
        let layout = self.0;
        let (outputs, inputs) = layout.extents(w.dims2()?);
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
                        layout.strides(inputs, outputs),
                        false,
                        big,
                    );
                    // dW = dyᵀ · x (out × in), written in the weight's own layout.
                    let mut dw = vec![0f32; outputs * inputs];
                    matmul(
                        outputs,
                        inputs,
                        rows,
                        &mut dw,
                        layout.strides(inputs, outputs),
                        dy,
                        (outputs as isize, 1),
                        xs,
                        (1, inputs as isize),
                        false,
                        big,
                    );
                    let db = self.1.then(|| {
                        let mut db = vec![0f32; outputs];
                        for row in dy.chunks_exact(outputs) {
                            db.iter_mut().zip(row).for_each(|(a, v)| *a += v);
                        }
                        db
                    });
                    (dx, dw, db)
                })
            })
        })???;
        let device = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), device)?),
            Some(Tensor::from_vec(dw, w.shape(), device)?),
            db.map(|db| Tensor::from_vec(db, outputs, device))
                .transpose()?,
        ))
    }
}

/// `x Wᵀ + b` over the last dimension of `x`, with PyTorch's `weight` (out, in) and `bias` (out).
pub fn linear(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    apply(x, weight, Some(bias), WeightLayout::OutIn)
}

/// `x Wᵀ` over the last dimension of `x`, with PyTorch's `weight` (out, in) and no bias.
pub fn linear_no_bias(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    apply(x, weight, None, WeightLayout::OutIn)
}

/// `x W + b` with GPT-2's `Conv1D` weight (in, out) and `bias` (out).
pub fn conv1d_linear(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    apply(x, weight, Some(bias), WeightLayout::InOut)
}

fn apply(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    layout: WeightLayout,
) -> Result<Tensor> {
    let outputs = match layout {
        WeightLayout::OutIn => weight.dim(0)?,
        WeightLayout::InOut => weight.dim(1)?,
    };
    let with_bias = bias.is_some();
    let zeros;
    let bias = match bias {
        Some(b) => b,
        None => {
            zeros = Tensor::zeros(outputs, x.dtype(), x.device())?;
            &zeros
        }
    };
    if x.device().is_cpu() && x.dtype() == DType::F32 && weight.dtype() == DType::F32 {
        let op = LinearOp(layout, with_bias);
        return Ok(x.contiguous()?.apply_op3(&weight.contiguous()?, bias, op)?);
    }
    let dims = x.dims().to_vec();
    let inputs = *dims.last().unwrap_or(&1);
    let rows = x.elem_count() / inputs.max(1);
    let weight_t = match layout {
        WeightLayout::OutIn => weight.t()?,
        WeightLayout::InOut => weight.clone(),
    };
    let outputs = weight_t.dim(1)?;
    let y = x
        .reshape((rows, inputs))?
        .matmul(&weight_t)?
        .broadcast_add(bias)?;
    let mut out = dims;
    if let Some(last) = out.last_mut() {
        *last = outputs;
    }
    Ok(y.reshape(out)?)
}

//! f32 products in inference through a weight packed once. A sentence's tokens, a decode
//! step's rows or beams are products of a handful of rows against a large weight; `gemm`
//! repacks the whole weight on every call for them and its kernels for so few columns run at
//! about half the core's peak (54–60 GFLOP/s at 20 × 384 × 384 on a Zen 4 core, 11 at two rows).
//! Here a projection keeps its weight repacked in groups of 64 outputs — for every input
//! position, the 64 outputs' weights side by side, four 16-lane vectors — and a pass multiplies
//! one group with up to six activation rows, each row's value broadcast: 24 accumulators whose
//! lanes are outputs, no horizontal sums, the group streamed once per pass (100–112 GFLOP/s at
//! 4–64 rows, 36 at one). Batches of many rows (an encoder's sentences) take the same passes
//! block by block of 96 rows: with the packing already done, the two cores split the groups and
//! run at 165–210 GFLOP/s together where `gemm` reaches 95–175 (384–1,024 rows × 384–3,072).
//!
//! The packed copy lives in the projection's [`PanelCache`], built on the first product that
//! qualifies: no gradient is tracked through it (inference, [`candle_core::no_grad`]), f32 on
//! the CPU, and a CPU with AVX-512F. It is as large as the weight. A product of more than 64
//! rows against a weight of more than 4 MiB with no packed copy kept packs it for that call
//! only: packing costs a few percent of such a product, and a model used only in batches
//! would otherwise hold a second copy of its largest weights. It stays valid while the
//! weight is the same tensor and no variable has been written in place since it was packed
//! ([`candle_core::variable_writes`]: optimizer steps, loading a checkpoint), so evaluating
//! between training steps repacks once per evaluation.

use std::sync::{Arc, Mutex};

use candle_core::{Tensor, TensorId};
use rayon::prelude::*;

use super::gemm::with_f32;
use super::huge_pages;
use super::linear::PARALLEL_WORK;
use super::panel_tasks::panel_tasks;
use crate::error::Result;

/// Outputs per group: four 16-lane vectors.
const GROUP: usize = 64;

/// Activation rows per pass, at most (24 accumulators of 32 registers).
const PASS: usize = 6;

/// Products of at most this many rows keep the packed weight (decode steps, a sentence).
const MAX_ROWS_KEPT: usize = 64;

/// Larger products keep it only for weights of at most this many values (4 MiB).
const MAX_BATCH_KEPT: usize = 1 << 20;

/// Activation rows a task takes through all of its groups before the next rows: 96 rows of up
/// to 2,048 inputs stay in the core's L2 cache beside the group being read.
const ROW_BLOCK: usize = 96;

/// A weight repacked for the group kernel.
struct DensePanels {
    /// The tensor it was packed from.
    weight: TensorId,
    /// [`candle_core::variable_writes`] read before packing.
    generation: u64,
    outputs: usize,
    inputs: usize,
    /// Group `g`, input position `k`: outputs `64g..64g + 64` at `(g·inputs + k)·64`; outputs
    /// past the last are zero. On 2 MiB pages where the system has them: every decode step
    /// streams it whole.
    data: Vec<f32>,
}

impl DensePanels {
    /// Packs `w`, in `nn.Linear`'s layout (outputs, inputs) when `out_in`, else `Conv1D`'s.
    fn pack(w: &[f32], outputs: usize, inputs: usize, out_in: bool) -> Vec<f32> {
        let mut data = huge_pages::zeroed_vec(outputs.div_ceil(GROUP) * inputs * GROUP);
        data.par_chunks_mut((inputs * GROUP).max(1))
            .enumerate()
            .for_each(|(g, block)| {
                let first = g * GROUP;
                let width = GROUP.min(outputs - first);
                if out_in {
                    for j in 0..width {
                        let row = &w[(first + j) * inputs..(first + j + 1) * inputs];
                        for (k, &v) in row.iter().enumerate() {
                            block[k * GROUP + j] = v;
                        }
                    }
                } else {
                    for (k, position) in block.chunks_exact_mut(GROUP).enumerate() {
                        let at = k * outputs + first;
                        position[..width].copy_from_slice(&w[at..at + width]);
                    }
                }
            });
        data
    }

    /// `x · Wᵀ (+ b)` for `m` rows of `x`, row-major `m × outputs`: block by block of
    /// [`ROW_BLOCK`] rows (which stay in cache while every group of the task passes over them),
    /// each block in equal passes of at most [`PASS`] rows.
    fn product(
        &self,
        x: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        parallel: bool,
        pass: PassKernel,
    ) -> Vec<f32> {
        let inputs = self.inputs;
        panel_tasks(self.outputs, m, GROUP, parallel, |start, n, part| {
            let mut lanes = [[0f32; GROUP]; PASS];
            for block in (0..m).step_by(ROW_BLOCK) {
                let rows = ROW_BLOCK.min(m - block);
                // Equal passes: 20 rows as 5 + 5 + 5 + 5 rather than 6 + 6 + 6 + 2.
                let per_pass = rows.div_ceil(rows.div_ceil(PASS)).max(1);
                for first in (start..start + n).step_by(GROUP) {
                    let width = GROUP.min(start + n - first);
                    let column = first - start;
                    let group = &self.data[first * inputs..(first + GROUP) * inputs];
                    for i in (block..block + rows).step_by(per_pass) {
                        let count = per_pass.min(block + rows - i);
                        pass(
                            group,
                            &x[i * inputs..(i + count) * inputs],
                            &mut lanes[..count],
                        );
                        for (j, sums) in lanes[..count].iter().enumerate() {
                            let sums = &sums[..width];
                            match bias {
                                Some(b) => part.write(
                                    i + j,
                                    column,
                                    sums.iter().zip(&b[first..]).map(|(s, b)| s + b),
                                ),
                                None => part.write(i + j, column, sums.iter().copied()),
                            }
                        }
                    }
                }
            }
        })
    }
}

/// Where a projection keeps its packed weight (see the module's doc); clones share it.
#[derive(Clone, Default)]
pub struct PanelCache(Arc<Mutex<Option<Arc<DensePanels>>>>);

impl PanelCache {
    /// Whether a packed weight is held.
    pub fn is_packed(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// The packed form of `weight`: the one kept when it is still valid, else packed now —
    /// and kept only when `keep`.
    fn panels(&self, weight: &Tensor, out_in: bool, keep: bool) -> Result<Arc<DensePanels>> {
        // Read before the weight's values: a write after this read makes the next call repack.
        let generation = candle_core::variable_writes();
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = kept.as_ref() {
            if p.weight == weight.id() && p.generation == generation {
                return Ok(p.clone());
            }
        }
        // A stale copy goes first, so the weight is never held packed twice.
        *kept = None;
        let (a, b) = weight.dims2()?;
        let (outputs, inputs) = if out_in { (a, b) } else { (b, a) };
        let data = with_f32(weight, |w| DensePanels::pack(w, outputs, inputs, out_in))?;
        let packed = Arc::new(DensePanels {
            weight: weight.id(),
            generation,
            outputs,
            inputs,
            data,
        });
        if keep {
            *kept = Some(packed.clone());
        }
        Ok(packed)
    }
}

/// `x · Wᵀ + b` over the last dimension of `x` through `cache`'s packed weight (`weight` in
/// `nn.Linear`'s layout when `out_in`, else GPT-2's `Conv1D`), or `None` where this path does
/// not apply (see the module's doc) and the caller multiplies as usual.
pub fn product(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    out_in: bool,
    cache: &PanelCache,
) -> Result<Option<Tensor>> {
    let Some(pass) = pass_kernel() else {
        return Ok(None);
    };
    let f32_cpu = |t: &Tensor| t.device().is_cpu() && t.dtype() == candle_core::DType::F32;
    let tracked = x.track_op() || weight.track_op() || bias.is_some_and(|b| b.track_op());
    if tracked || !f32_cpu(x) || !f32_cpu(weight) || !bias.is_none_or(f32_cpu) {
        return Ok(None);
    }
    let (a, b) = weight.dims2()?;
    let (outputs, inputs) = if out_in { (a, b) } else { (b, a) };
    let rows = x.elem_count() / inputs.max(1);
    // Mismatched extents are left to the linear op, which names them in its error.
    let bias_fits = bias.is_none_or(|b| b.elem_count() == outputs);
    if x.dims().last() != Some(&inputs) || !bias_fits || rows == 0 {
        return Ok(None);
    }
    // A batch against a large weight packs it for the call only (packing is a few percent of
    // such a product), so a model used only in batches (BERT-base on 8 × 128 ids) does not hold
    // a second copy of its largest weights; few-row products keep theirs.
    let keep = rows <= MAX_ROWS_KEPT || outputs * inputs <= MAX_BATCH_KEPT;
    let panels = cache.panels(weight, out_in, keep)?;
    let parallel = rows * outputs * inputs > PARALLEL_WORK;
    let y = with_f32(x, |xs| match bias {
        Some(b) => with_f32(b, |bs| panels.product(xs, rows, Some(bs), parallel, pass)),
        None => Ok(panels.product(xs, rows, None, parallel, pass)),
    })??;
    let mut dims = x.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = outputs;
    }
    Ok(Some(Tensor::from_vec(y, dims, x.device())?))
}

/// Whether this CPU has the kernel (AVX-512F); without it every product goes through `gemm`.
pub fn supported() -> bool {
    pass_kernel().is_some()
}

/// One pass: a group (`inputs × 64`) against `lanes.len()` (1–6) activation rows of `x`.
type PassKernel = fn(&[f32], &[f32], &mut [[f32; GROUP]]);

/// The pass kernel, where the CPU has AVX-512F.
fn pass_kernel() -> Option<PassKernel> {
    #[cfg(target_arch = "x86_64")]
    let kernel: Option<PassKernel> = Some(x86::pass);
    #[cfg(not(target_arch = "x86_64"))]
    let kernel = None;
    kernel.filter(|_| super::panel_tasks::has_avx512f())
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{GROUP, PASS};

    /// A pass of the group kernel; only handed out by `pass_kernel` once the CPU was found to
    /// have AVX-512F.
    pub(super) fn pass(group: &[f32], x: &[f32], lanes: &mut [[f32; GROUP]]) {
        let rows = lanes.len();
        assert!((1..=PASS).contains(&rows) && x.len().is_multiple_of(rows));
        let inputs = x.len() / rows;
        assert!(group.len() >= inputs * GROUP);
        let (g, xp) = (group.as_ptr(), x.as_ptr());
        // SAFETY: AVX-512F is present (checked by `pass_kernel`); the asserts bound every read.
        unsafe {
            match rows {
                1 => kernel::<1>(g, xp, inputs, lanes),
                2 => kernel::<2>(g, xp, inputs, lanes),
                3 => kernel::<3>(g, xp, inputs, lanes),
                4 => kernel::<4>(g, xp, inputs, lanes),
                5 => kernel::<5>(g, xp, inputs, lanes),
                _ => kernel::<6>(g, xp, inputs, lanes),
            }
        }
    }

    /// `R` rows against one group: per input position, the group's four vectors loaded once
    /// and multiplied with each row's value there, broadcast.
    #[target_feature(enable = "avx512f")]
    unsafe fn kernel<const R: usize>(
        group: *const f32,
        x: *const f32,
        inputs: usize,
        lanes: &mut [[f32; GROUP]],
    ) {
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        for k in 0..inputs {
            let w = group.add(k * GROUP);
            let weights = [0, 1, 2, 3].map(|v| _mm512_loadu_ps(w.add(16 * v)));
            for (j, row) in acc.iter_mut().enumerate() {
                let value = _mm512_set1_ps(*x.add(j * inputs + k));
                for (a, w) in row.iter_mut().zip(weights) {
                    *a = _mm512_fmadd_ps(w, value, *a);
                }
            }
        }
        for (out, row) in lanes.iter_mut().zip(acc) {
            for (v, a) in row.into_iter().enumerate() {
                _mm512_storeu_ps(out.as_mut_ptr().add(16 * v), a);
            }
        }
    }
}

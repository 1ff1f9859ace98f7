//! Long prompts through F16 weights without expanding them: each task repacks sixteen weight rows
//! at a time into a panel — for every input position `k`, the sixteen rows' half-precision values
//! side by side — and a pass converts one position's sixteen values to f32 (one AVX-512
//! instruction) and adds their products with eight activation rows' value at `k`, broadcast, into
//! eight accumulators whose lanes are the sixteen rows. No f32 copy of the weights is written and
//! no gemm packing runs; the activations stay f32, so the product is as exact as the weights.
//!
//! Needs AVX-512F; elsewhere [`QuantMatrix::half_matmul_tiles`] answers `None` and the caller
//! expands tiles to f32 for the gemm.

use half::f16;

use super::QuantMatrix;
use crate::nn::panel_tasks::panel_tasks;

/// Weight rows per panel: the sixteen f32 lanes of a 512-bit vector.
const PANEL: usize = 16;

/// Activation rows per pass.
const PASS: usize = 8;

impl QuantMatrix {
    /// `x · Wᵀ` for `m` rows of `x` and an F16 matrix through the panel kernel, or `None`
    /// where the CPU lacks AVX-512F.
    pub(super) fn half_matmul_tiles(&self, x: &[f32], m: usize) -> Option<Vec<f32>> {
        let pass = pass_kernel()?;
        let cols = self.cols;
        Some(panel_tasks(self.rows, m, PANEL, true, |start, n, part| {
            let mut panel = vec![f16::ZERO; cols * PANEL];
            for first in (start..start + n).step_by(PANEL) {
                let width = PANEL.min(start + n - first);
                self.pack_half_panel(first, width, &mut panel);
                let column = first - start;
                for i in (0..m).step_by(PASS) {
                    let count = PASS.min(m - i);
                    let sums = pass(&panel, &x[i * cols..(i + count) * cols], cols);
                    for (j, lanes) in sums.iter().enumerate().take(count) {
                        part.write(i + j, column, lanes[..width].iter().copied());
                    }
                }
            }
        }))
    }

    /// Weight rows `first..first + width` (`width` ≤ 16) transposed into `panel` (position `k`
    /// of row `r` at `k·16 + r`); missing rows are zero.
    fn pack_half_panel(&self, first: usize, width: usize, panel: &mut [f16]) {
        if width < PANEL {
            panel.fill(f16::ZERO);
        }
        let rows: Vec<&[f16]> = (first..first + width).map(|r| self.half_row(r)).collect();
        // Position by position: sixteen reads from rows that each stream in order, one write.
        for (k, position) in panel.chunks_exact_mut(PANEL).enumerate() {
            for (w, row) in position.iter_mut().zip(&rows) {
                *w = row[k];
            }
        }
    }
}

/// One pass: a panel against up to eight activation rows (`x`, whole rows of `cols`): sixteen
/// sums per row.
type PassKernel = fn(&[f16], &[f32], usize) -> [[f32; PANEL]; PASS];

fn pass_kernel() -> Option<PassKernel> {
    #[cfg(target_arch = "x86_64")]
    return crate::nn::panel_tasks::has_avx512f().then_some(x86::pass as PassKernel);
    #[cfg(not(target_arch = "x86_64"))]
    None
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::{PANEL, PASS};

    /// A pass of the panel kernel; only handed out by `pass_kernel` once the CPU was found to
    /// have AVX-512F.
    pub(super) fn pass(panel: &[f16], x: &[f32], cols: usize) -> [[f32; PANEL]; PASS] {
        let count = x.len() / cols.max(1);
        assert!((1..=PASS).contains(&count) && x.len() == count * cols);
        assert!(panel.len() >= cols * PANEL);
        let mut out = [[0f32; PANEL]; PASS];
        // SAFETY: AVX-512F is present (checked by `pass_kernel`); the asserts bound every read.
        unsafe {
            if count == PASS {
                kernel::<PASS>(panel, x, cols, &mut out);
            } else {
                for (j, o) in out.iter_mut().enumerate().take(count) {
                    kernel::<1>(
                        panel,
                        &x[j * cols..(j + 1) * cols],
                        cols,
                        std::slice::from_mut(o),
                    );
                }
            }
        }
        out
    }

    /// `R` activation rows against one panel: for each position, sixteen weights converted once
    /// and multiplied with each row's value there, one accumulator per row.
    #[target_feature(enable = "avx512f")]
    unsafe fn kernel<const R: usize>(
        panel: &[f16],
        x: &[f32],
        cols: usize,
        out: &mut [[f32; PANEL]],
    ) {
        let (w, xp) = (panel.as_ptr() as *const __m256i, x.as_ptr());
        let mut acc = [_mm512_setzero_ps(); R];
        for k in 0..cols {
            let weights = _mm512_cvtph_ps(_mm256_loadu_si256(w.add(k)));
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm512_fmadd_ps(weights, _mm512_set1_ps(*xp.add(j * cols + k)), *a);
            }
        }
        for (o, a) in out.iter_mut().zip(acc) {
            _mm512_storeu_ps(o.as_mut_ptr(), a);
        }
    }
}

//! Long prompts through F16 weights: each task widens one group of 64 weight rows at a time to
//! f32 — the groups are kept packed as the dense f32 weights are (`dense_panels.rs`: for every
//! input position, the 64 rows' values side by side; `quantized_half.rs` packs them at load),
//! so widening is one F16C conversion per sixteen values, in order — and passes every
//! activation row over it with the dense kernel: 24 sums in registers, four weight vectors per
//! position for six rows. The widening is exact and the sums are the dense kernel's (each
//! output's products added in position order from zero), so the product is as exact as the
//! weights and no f32 copy of the whole matrix is kept.
//!
//! Needs AVX-512F; elsewhere [`QuantMatrix::half_matmul_tiles`] answers `None` and the caller
//! expands tiles to f32 for the gemm.

use std::ops::Range;

use super::half_rows::HALF_GROUP;
use super::QuantMatrix;
use crate::nn::filled_groups::product_of_groups;

impl QuantMatrix {
    /// `x · Wᵀ` for `m` rows of `x` and an F16 matrix through the dense kernel, or `None`
    /// where the CPU lacks AVX-512F.
    pub(super) fn half_matmul_tiles(&self, x: &[f32], m: usize) -> Option<Vec<f32>> {
        let fill = |first: usize, positions: Range<usize>, span: &mut [f32]| {
            let group = self.half_group(first / HALF_GROUP);
            widen(
                &group[positions.start * HALF_GROUP..positions.end * HALF_GROUP],
                span,
            )
        };
        let source = |first: usize, end: usize| {
            let len = self.cols * HALF_GROUP;
            let groups = first / HALF_GROUP..end.div_ceil(HALF_GROUP);
            let halves = &self.halves[groups.start * len..groups.end * len];
            // SAFETY: the bytes of initialised half-precision values, borrowed as long as they are.
            unsafe { std::slice::from_raw_parts(halves.as_ptr() as *const u8, size_of_val(halves)) }
        };
        product_of_groups(self.rows, self.cols, x, m, fill, source)
    }
}

/// `halves` widened to f32 into `out` (as long).
fn widen(halves: &[half::f16], out: &mut [f32]) {
    // SAFETY: AVX-512F is present (the dense kernel was handed out).
    #[cfg(target_arch = "x86_64")]
    let done = unsafe { x86::widen(halves, out) };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for (o, h) in out[done..].iter_mut().zip(&halves[done..]) {
        *o = h.to_f32();
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::f16;

    /// The first `16·⌊n / 16⌋` values of `halves` widened into `out`; returns how many.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn widen(halves: &[f16], out: &mut [f32]) -> usize {
        let done = halves.len().min(out.len()) / 16 * 16;
        for k in (0..done).step_by(16) {
            let h = _mm256_loadu_si256(halves.as_ptr().add(k) as *const __m256i);
            _mm512_storeu_ps(out.as_mut_ptr().add(k), _mm512_cvtph_ps(h));
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use half::f16;

    use super::*;

    #[test]
    fn f16_prompt_products_add_each_outputs_products_in_position_order() {
        // 70 and 130 rows end inside a group; 1,100 positions are filled in spans (512, 512,
        // 76), the sums carried from span to span.
        for (rows, cols, m) in [(70, 100, 13), (130, 576, 70), (70, 1100, 13)] {
            let bytes: Vec<u8> = (0..rows * cols)
                .flat_map(|i| f16::from_f32((i as f32 * 0.37).sin() * 0.8).to_le_bytes())
                .collect();
            let matrix = QuantMatrix::from_f16_bytes(rows, cols, &bytes).expect("whole rows");
            let x: Vec<f32> = (0..m * cols).map(|i| (i as f32 * 0.11).cos()).collect();
            let Some(got) = matrix.half_matmul_tiles(&x, m) else {
                return; // no AVX-512F: the caller takes the gemm
            };
            for i in 0..m {
                for r in 0..rows {
                    let row: Vec<f16> = matrix.half_row(r).collect();
                    let expected = (0..cols)
                        .fold(0f32, |acc, k| row[k].to_f32().mul_add(x[i * cols + k], acc));
                    let g = got[i * rows + r];
                    assert_eq!(
                        g.to_bits(),
                        expected.to_bits(),
                        "({i}, {r}): {g} vs {expected}"
                    );
                }
            }
        }
    }
}

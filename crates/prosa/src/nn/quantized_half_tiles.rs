//! Long prompts through F16 weights: each task widens one group of 64 weight rows at a time to
//! f32, packed as the dense f32 weights are (`dense_panels.rs`: for every input position, the
//! 64 rows' values side by side), and passes every activation row over it with the dense
//! kernel — 24 sums in registers, four weight vectors per position for six rows. The group is
//! widened sixteen rows by sixteen positions at a time: sixteen F16C conversions, then a
//! transpose in registers. The widening is exact and the sums are the dense kernel's (each
//! output's products added in position order from zero), so the product is as exact as the
//! weights and no f32 copy of the whole matrix is kept.
//!
//! Needs AVX-512F; elsewhere [`QuantMatrix::half_matmul_tiles`] answers `None` and the caller
//! expands tiles to f32 for the gemm.

use super::QuantMatrix;
use crate::nn::dense_panels::product_of_groups;

/// Weight rows per group of the dense kernel.
const GROUP: usize = 64;

/// Rows and positions of one widened block: the sixteen f32 lanes of a 512-bit vector.
const BLOCK: usize = 16;

impl QuantMatrix {
    /// `x · Wᵀ` for `m` rows of `x` and an F16 matrix through the dense kernel, or `None`
    /// where the CPU lacks AVX-512F.
    pub(super) fn half_matmul_tiles(&self, x: &[f32], m: usize) -> Option<Vec<f32>> {
        let fill = |first, group: &mut [f32]| self.widen_group(first, group);
        let source = |first: usize, end: usize| {
            let halves = &self.halves[first * self.cols..end * self.cols];
            // SAFETY: the bytes of initialised half-precision values, borrowed as long as they are.
            unsafe { std::slice::from_raw_parts(halves.as_ptr() as *const u8, size_of_val(halves)) }
        };
        product_of_groups(self.rows, self.cols, x, m, fill, source)
    }

    /// Weight rows `first..first + 64` widened to f32 into `group` (position `k` of row
    /// `first + j` at `k·64 + j`); rows past the matrix are zero.
    fn widen_group(&self, first: usize, group: &mut [f32]) {
        let cols = self.cols;
        for block in 0..GROUP / BLOCK {
            let top = first + block * BLOCK;
            let rows: Vec<&[half::f16]> = (top..(top + BLOCK).min(self.rows))
                .map(|r| self.half_row(r))
                .collect();
            let mut k = 0;
            #[cfg(target_arch = "x86_64")]
            if rows.len() == BLOCK && crate::nn::panel_tasks::has_avx512f() {
                // SAFETY: AVX-512F is present (checked); `widen_blocks` reads the first
                // `cols` values of sixteen rows and writes within `group`.
                k = unsafe { x86::widen_blocks(&rows, cols, &mut group[block * BLOCK..]) };
            }
            for k in k..cols {
                let out = &mut group[k * GROUP + block * BLOCK..][..BLOCK];
                for (j, o) in out.iter_mut().enumerate() {
                    *o = rows.get(j).map_or(0.0, |row| row[k].to_f32());
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::{BLOCK, GROUP};

    /// Positions `0..16·⌊cols / 16⌋` of sixteen F16 rows, widened and transposed sixteen at
    /// a time: position `k`'s sixteen values go to `out[k·64..k·64 + 16]`. Returns the
    /// positions done.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn widen_blocks(rows: &[&[f16]], cols: usize, out: &mut [f32]) -> usize {
        let done = cols / BLOCK * BLOCK;
        assert!(rows.len() == BLOCK && rows.iter().all(|r| r.len() >= done));
        assert!(done == 0 || out.len() >= (done - 1) * GROUP + BLOCK);
        let swaps = [8, 4, 2, 1].map(|d| swap_indices(d));
        for k in (0..done).step_by(BLOCK) {
            let mut v: [__m512; BLOCK] = std::array::from_fn(|j| {
                _mm512_cvtph_ps(_mm256_loadu_si256(rows[j].as_ptr().add(k) as *const __m256i))
            });
            // Four block swaps (8, 4, 2, 1): rows i and i + d trade the lanes of the
            // off-diagonal d × d blocks of every 2d × 2d block, which transposes the 16 × 16.
            swap::<8>(&mut v, swaps[0]);
            swap::<4>(&mut v, swaps[1]);
            swap::<2>(&mut v, swaps[2]);
            swap::<1>(&mut v, swaps[3]);
            for (i, row) in v.iter().enumerate() {
                _mm512_storeu_ps(out.as_mut_ptr().add((k + i) * GROUP), *row);
            }
        }
        done
    }

    /// One block swap at distance `D` over the sixteen rows.
    #[inline(always)]
    unsafe fn swap<const D: usize>(v: &mut [__m512; BLOCK], (low, high): (__m512i, __m512i)) {
        for i in 0..BLOCK {
            if i & D == 0 {
                let (a, b) = (v[i], v[i + D]);
                v[i] = _mm512_permutex2var_ps(a, low, b);
                v[i + D] = _mm512_permutex2var_ps(a, high, b);
            }
        }
    }

    /// Lane picks of a block swap at distance `d` (16 and above: the second row's lanes):
    /// the first row keeps its lanes outside the swapped blocks and takes the second's from
    /// `d` lanes before; the second takes the first's from `d` lanes after.
    #[inline(always)]
    unsafe fn swap_indices(d: usize) -> (__m512i, __m512i) {
        let low: [i32; BLOCK] =
            std::array::from_fn(|l| if l & d == 0 { l } else { BLOCK + l - d } as i32);
        let high: [i32; BLOCK] =
            std::array::from_fn(|l| if l & d == 0 { l + d } else { BLOCK + l } as i32);
        (
            _mm512_loadu_si512(low.as_ptr() as *const _),
            _mm512_loadu_si512(high.as_ptr() as *const _),
        )
    }
}

#[cfg(test)]
mod tests {
    use half::f16;

    use super::*;

    #[test]
    fn f16_prompt_products_add_each_outputs_products_in_position_order() {
        // 70 and 130 rows end inside a group and inside a sixteen-row block; 100 positions end
        // with a tail of four past the widened blocks.
        for (rows, cols, m) in [(70, 100, 13), (130, 576, 70)] {
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
                    let row = matrix.half_row(r);
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

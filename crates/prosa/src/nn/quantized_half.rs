//! GGUF F16 weights in [`QuantMatrix`], multiplied with f32 activations in f32, so F16 files
//! take the same products — and the fused decode step — as the block-quantized ones. The
//! activations are not quantized: an F16 product is as exact as the weights.
//!
//! The values are repacked at load in groups of 64 rows, position by position: for every input
//! position, the 64 rows' values side by side — the layout of the dense f32 kernel's weights
//! (`dense_panels.rs`), in half precision. A long prompt widens a group with one F16C
//! conversion per sixteen values and no transpose (`quantized_half_tiles.rs`; from the GGUF
//! file's row order, the transpose cost sixteen permutes per sixteen values, ~6% of SmolLM2's
//! prompt). A decode step streams the groups once, converting four vectors of sixteen per
//! position as they arrive, 64 sums in lanes: no horizontal sums, no f32 copy in memory.
//!
//! Every output, whatever the number of activation rows, is its products added in position
//! order from zero, each a fused multiply-add — the dense kernel's sums — so a prompt's last row
//! and the decode step of the same row agree bit for bit, on every CPU.

use std::ops::Range;

use half::f16;

use super::{Packing, QuantMatrix, DEQUANTIZED_GEMM_ROWS};
use crate::error::{Error, Result};
use crate::nn::panel_tasks::panel_tasks;

/// Weight rows per group of the packed layout.
pub(super) const HALF_GROUP: usize = 64;

impl QuantMatrix {
    /// A (rows × cols) matrix from the little-endian F16 values of a GGUF tensor.
    pub(super) fn from_f16_bytes(rows: usize, cols: usize, data: &[u8]) -> Result<Self> {
        if data.len() != rows * cols * 2 {
            return Err(Error::config(
                "gguf tensor",
                format!("{} bytes for {rows}×{cols} F16 values", data.len()),
            ));
        }
        // The file's bytes are the values themselves where they are aligned (little-endian).
        if let (true, Ok(values)) = (
            cfg!(target_endian = "little"),
            bytemuck::try_cast_slice::<u8, f16>(data),
        ) {
            return Ok(Self::from_f16_rows(rows, cols, values));
        }
        let values: Vec<f16> = data
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]))
            .collect();
        Ok(Self::from_f16_rows(rows, cols, &values))
    }

    /// A (rows × cols) F16 matrix from its values row by row.
    pub(super) fn from_f16_rows(rows: usize, cols: usize, values: &[f16]) -> Self {
        Self {
            packing: Packing::Half,
            rows,
            cols,
            scales: Vec::new(),
            mins: Vec::new(),
            quants: Vec::new(),
            halves: pack_groups(values, rows, cols),
        }
    }

    /// Weight rows `64g..64g + 64`, position by position (zero past the last row).
    pub(super) fn half_group(&self, g: usize) -> &[f16] {
        let len = self.cols * HALF_GROUP;
        &self.halves[g * len..(g + 1) * len]
    }

    /// The values of weight row `r`, in order.
    pub(super) fn half_row(&self, r: usize) -> impl Iterator<Item = f16> + '_ {
        let (group, lane) = (self.half_group(r / HALF_GROUP), r % HALF_GROUP);
        group.iter().skip(lane).step_by(HALF_GROUP).copied()
    }

    /// The values of an F16 matrix row by row (to stack matrices whose rows do not fill
    /// whole groups).
    pub(super) fn half_rows(&self) -> Vec<f16> {
        (0..self.rows).flat_map(|r| self.half_row(r)).collect()
    }

    /// Rows `rows` of `x · Wᵀ` for one activation row `x` (cols values): each group that holds
    /// them once over `x`.
    pub(super) fn half_dot_rows(&self, x: &[f32], rows: Range<usize>) -> Vec<f32> {
        let mut out = Vec::with_capacity(rows.len());
        if rows.is_empty() {
            return out;
        }
        let mut sums = [0f32; HALF_GROUP];
        for g in rows.start / HALF_GROUP..rows.end.div_ceil(HALF_GROUP) {
            group_sums(self.half_group(g), x, &mut sums);
            let first = g * HALF_GROUP;
            let wanted = rows.start.max(first) - first..rows.end.min(first + HALF_GROUP) - first;
            out.extend_from_slice(&sums[wanted]);
        }
        out
    }

    /// `x · Wᵀ` for an F16 matrix and `values` holding whole rows of `cols` values.
    pub(super) fn half_matmul_rows(&self, values: &[f32]) -> Vec<f32> {
        let cols = self.cols.max(1);
        let m = values.len() / cols;
        if m > 1 {
            if let Some(out) = self.half_matmul_tiles(values, m) {
                return out;
            }
            if m >= DEQUANTIZED_GEMM_ROWS {
                return self.matmul_dequantized(values, m);
            }
        }
        // Tasks own groups of weight rows, each read once for every activation row.
        let parallel = m * self.rows * cols > crate::nn::linear::PARALLEL_WORK;
        panel_tasks(self.rows, m, HALF_GROUP, parallel, |first, n, part| {
            let mut sums = [0f32; HALF_GROUP];
            for top in (first..first + n).step_by(HALF_GROUP) {
                let width = HALF_GROUP.min(first + n - top);
                for (i, x) in values.chunks_exact(cols).enumerate() {
                    group_sums(self.half_group(top / HALF_GROUP), x, &mut sums);
                    part.write(i, top - first, sums[..width].iter().copied());
                }
            }
        })
    }
}

/// `values` (rows × cols, row by row) in groups of 64 rows, position by position: row
/// `64g + j`'s position `k` at `(g·cols + k)·64 + j`; zero past the last row.
fn pack_groups(values: &[f16], rows: usize, cols: usize) -> Vec<f16> {
    use rayon::prelude::*;
    let mut out = vec![f16::ZERO; rows.div_ceil(HALF_GROUP) * cols * HALF_GROUP];
    out.par_chunks_mut((cols * HALF_GROUP).max(1))
        .enumerate()
        .for_each(|(g, group)| {
            for j in 0..HALF_GROUP.min(rows - g * HALF_GROUP) {
                let row = &values[(g * HALF_GROUP + j) * cols..][..cols];
                for (position, &v) in group.chunks_exact_mut(HALF_GROUP).zip(row) {
                    position[j] = v;
                }
            }
        });
    out
}

/// The 64 sums of a packed `group` (cols positions of 64 rows) over `x`: each row's products
/// added in position order from zero, fused — with AVX-512F or AVX2, FMA and F16C where the
/// CPU has them, the same bits either way.
fn group_sums(group: &[f16], x: &[f32], sums: &mut [f32; HALF_GROUP]) {
    let cols = group.len() / HALF_GROUP;
    assert!(
        x.len() >= cols,
        "{} activations for {cols} positions",
        x.len()
    );
    #[cfg(target_arch = "x86_64")]
    {
        if crate::nn::panel_tasks::has_avx512f() {
            // SAFETY: AVX-512F is present (checked); the group holds `cols` positions of 64
            // and `x` at least `cols` values (asserted).
            return unsafe { x86::group_sums_zmm(group, x, sums) };
        }
        if super::avx2() {
            // SAFETY: AVX2, FMA and F16C are present (checked); extents as above.
            return unsafe { x86::group_sums_ymm(group, x, sums) };
        }
    }
    *sums = [0.0; HALF_GROUP];
    for (position, &value) in group.chunks_exact(HALF_GROUP).zip(x) {
        for (sum, w) in sums.iter_mut().zip(position) {
            *sum = w.to_f32().mul_add(value, *sum);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::HALF_GROUP;

    /// [`super::group_sums`] in four 16-lane sums.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `group` holds whole positions of 64 and `x` one value per position.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn group_sums_zmm(group: &[f16], x: &[f32], sums: &mut [f32; HALF_GROUP]) {
        let cols = group.len() / HALF_GROUP;
        let (w, xp) = (group.as_ptr() as *const __m256i, x.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 4];
        for k in 0..cols {
            let value = _mm512_set1_ps(*xp.add(k));
            for (v, a) in acc.iter_mut().enumerate() {
                let weights = _mm512_cvtph_ps(_mm256_loadu_si256(w.add(4 * k + v)));
                *a = _mm512_fmadd_ps(weights, value, *a);
            }
        }
        for (v, a) in acc.into_iter().enumerate() {
            _mm512_storeu_ps(sums.as_mut_ptr().add(16 * v), a);
        }
    }

    /// [`super::group_sums`] in eight 8-lane sums.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C; extents as for [`group_sums_zmm`].
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn group_sums_ymm(group: &[f16], x: &[f32], sums: &mut [f32; HALF_GROUP]) {
        let cols = group.len() / HALF_GROUP;
        let (w, xp) = (group.as_ptr() as *const __m128i, x.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 8];
        for k in 0..cols {
            let value = _mm256_set1_ps(*xp.add(k));
            for (v, a) in acc.iter_mut().enumerate() {
                let weights = _mm256_cvtph_ps(_mm_loadu_si128(w.add(8 * k + v)));
                *a = _mm256_fmadd_ps(weights, value, *a);
            }
        }
        for (v, a) in acc.into_iter().enumerate() {
            _mm256_storeu_ps(sums.as_mut_ptr().add(8 * v), a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    /// An F16 matrix of (rows × cols) made the way a GGUF file holds one, and its values.
    fn matrix(rows: usize, cols: usize) -> (QuantMatrix, Vec<f32>) {
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| (i as f32 * 0.37).sin() * 0.8)
            .collect();
        let w = Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::F16).unwrap();
        let m = QuantMatrix::from_qtensor(&q).unwrap().unwrap();
        let exact = q
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        (m, exact)
    }

    #[test]
    fn every_f16_product_adds_each_outputs_products_in_position_order() {
        // 70 rows: a group and six rows of the next (padding past them); 1 and 3 activation
        // rows take the group sums, 70 the widened groups (with AVX-512F; else the gemm, whose
        // order differs: compared to f32 rounding there).
        let (rows, cols) = (70, 100);
        let (m, w) = matrix(rows, cols);
        assert_eq!(m.dequantize(), w);
        let exact_kernels = crate::nn::panel_tasks::has_avx512f();
        for n in [1, 3, 70] {
            let x: Vec<f32> = (0..n * cols).map(|i| (i as f32 * 0.11).cos()).collect();
            let got = m.matmul_rows(&x);
            for i in 0..n {
                for r in 0..rows {
                    let expected = (0..cols)
                        .fold(0f32, |acc, c| w[r * cols + c].mul_add(x[i * cols + c], acc));
                    let g = got[i * rows + r];
                    if n < DEQUANTIZED_GEMM_ROWS || exact_kernels {
                        assert_eq!(g.to_bits(), expected.to_bits(), "{n} rows, ({i}, {r})");
                    } else {
                        let close = (g - expected).abs() <= 1e-5 * expected.abs().max(1.0);
                        assert!(close, "{n} rows, ({i}, {r}): {g} vs {expected}");
                    }
                }
            }
        }
    }

    #[test]
    fn shared_f16_products_equal_the_whole_and_stacking_keeps_rows() {
        let (rows, cols) = (150, 96);
        let (m, w) = matrix(rows, cols);
        let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin()).collect();
        let whole = m.matmul_rows(&x);
        let input = m.quantize_input(&x);
        let mut parts = m.dot_rows(&input, 0..7);
        parts.extend(m.dot_rows(&input, 7..100));
        parts.extend(m.dot_rows(&input, 100..rows));
        assert_eq!(parts, whole);
        // Stacked with a matrix that ends inside a group, then with one of whole groups.
        let (small, small_w) = matrix(5, cols);
        let stacked = QuantMatrix::stack(&[&m, &small, &m]).unwrap();
        let expected: Vec<f32> = [&w[..], &small_w[..], &w[..]].concat();
        assert_eq!(stacked.dequantize(), expected);
        let (whole_groups, _) = matrix(128, cols);
        let stacked = QuantMatrix::stack(&[&whole_groups, &whole_groups]).unwrap();
        assert_eq!(
            stacked.dequantize()[128 * cols..],
            whole_groups.dequantize()[..]
        );
    }

    #[test]
    fn a_short_f16_buffer_is_an_error_naming_its_size() {
        let err = QuantMatrix::from_f16_bytes(2, 4, &[0; 10]).unwrap_err();
        assert!(
            err.to_string().contains("10 bytes for 2×4 F16 values"),
            "{err}"
        );
    }
}

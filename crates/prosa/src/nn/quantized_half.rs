//! GGUF F16 weights in [`QuantMatrix`]: rows of IEEE half-precision values multiplied with f32
//! activations in f32 (F16C converts eight weights at a time, FMA accumulates), so F16 files
//! take the same products — and the fused decode step — as the block-quantized ones. The
//! activations are not quantized: an F16 product is as exact as the weights.
//!
//! A decode step reads every weight once, so its speed is the memory's: each row is converted
//! as it streams in, never expanded to f32 in memory. Long prompts (from
//! [`DEQUANTIZED_GEMM_ROWS`] rows on) go through the dense f32 kernel, a group of rows widened at
//! a time (`quantized_half_tiles.rs`), where the CPU has AVX-512F, and otherwise expand tiles to
//! f32 for the gemm like the other packings.

use half::f16;
use rayon::prelude::*;

use super::{Packing, QuantMatrix, DEQUANTIZED_GEMM_ROWS};
use crate::error::{Error, Result};

impl QuantMatrix {
    /// A (rows × cols) matrix from the little-endian F16 values of a GGUF tensor.
    pub(super) fn from_f16_bytes(rows: usize, cols: usize, data: &[u8]) -> Result<Self> {
        if data.len() != rows * cols * 2 {
            return Err(Error::config(
                "gguf tensor",
                format!("{} bytes for {rows}×{cols} F16 values", data.len()),
            ));
        }
        Ok(Self {
            packing: Packing::Half,
            rows,
            cols,
            scales: Vec::new(),
            mins: Vec::new(),
            quants: Vec::new(),
            halves: data
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]))
                .collect(),
        })
    }

    /// Weight row `r` of an F16 matrix.
    pub(super) fn half_row(&self, r: usize) -> &[f16] {
        &self.halves[r * self.cols..(r + 1) * self.cols]
    }

    /// Dot product of F16 weight row `r` with `x` (cols values); every F16 product of one
    /// activation row goes through here, so shared and whole products agree bit for bit.
    pub(super) fn half_dot(&self, r: usize, x: &[f32]) -> f32 {
        dot(self.half_row(r), x)
    }

    /// `x · Wᵀ` for an F16 matrix and `values` holding whole rows of `cols` values.
    pub(super) fn half_matmul_rows(&self, values: &[f32]) -> Vec<f32> {
        let cols = self.cols.max(1);
        let m = values.len() / cols;
        if m >= DEQUANTIZED_GEMM_ROWS {
            return match self.half_matmul_tiles(values, m) {
                Some(out) => out,
                None => self.matmul_dequantized(values, m),
            };
        }
        // Tasks own a range of weight rows, each read once for every activation row.
        let tasks = 2 * rayon::current_num_threads();
        let rows_per_task = self.rows.div_ceil(tasks).max(8);
        let tiles: Vec<(usize, Vec<f32>)> = (0..self.rows)
            .step_by(rows_per_task)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|start| {
                let end = (start + rows_per_task).min(self.rows);
                let mut tile = Vec::with_capacity((end - start) * m);
                for r in start..end {
                    tile.extend(values.chunks_exact(cols).map(|x| self.half_dot(r, x)));
                }
                (start, tile)
            })
            .collect();
        let mut out = vec![0f32; m * self.rows];
        for (start, tile) in tiles {
            for (r, products) in tile.chunks_exact(m.max(1)).enumerate() {
                for (i, p) in products.iter().enumerate() {
                    out[i * self.rows + start + r] = *p;
                }
            }
        }
        out
    }
}

/// Σ w[i]·x[i], on F16C + FMA where the CPU has them.
fn dot(w: &[f16], x: &[f32]) -> f32 {
    debug_assert_eq!(w.len(), x.len());
    #[cfg(target_arch = "x86_64")]
    {
        if f16c() {
            // SAFETY: AVX2, FMA and F16C are present (checked); both slices hold w.len() values.
            return unsafe { x86::dot(w, x) };
        }
    }
    dot_portable(w, x)
}

fn dot_portable(w: &[f16], x: &[f32]) -> f32 {
    w.iter().zip(x).map(|(w, x)| w.to_f32() * x).sum()
}

/// F16C (with AVX2 and FMA).
#[cfg(target_arch = "x86_64")]
fn f16c() -> bool {
    static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DETECTED.get_or_init(|| super::avx2() && std::is_x86_feature_detected!("f16c"))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::f16;

    /// Σ w[i]·x[i]: 32 values per pass into four accumulators, then the rest one by one.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot(w: &[f16], x: &[f32]) -> f32 {
        let n = w.len().min(x.len());
        let (wp, xp) = (w.as_ptr() as *const __m128i, x.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (j, a) in acc.iter_mut().enumerate() {
                let at = i + 8 * j;
                let weights = _mm256_cvtph_ps(_mm_loadu_si128(wp.add(at / 8)));
                *a = _mm256_fmadd_ps(weights, _mm256_loadu_ps(xp.add(at)), *a);
            }
            i += 32;
        }
        while i + 8 <= n {
            let weights = _mm256_cvtph_ps(_mm_loadu_si128(wp.add(i / 8)));
            acc[0] = _mm256_fmadd_ps(weights, _mm256_loadu_ps(xp.add(i)), acc[0]);
            i += 8;
        }
        let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let mut sum = _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
        while i < n {
            sum += w[i].to_f32() * x[i];
            i += 1;
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    /// An F16 matrix of (rows × cols) made the way a GGUF file holds one.
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
    fn f16_products_equal_the_f32_product_of_the_same_weights() {
        // 100 columns: three passes of 32, a pass of 8 and a tail of 4.
        let (rows, cols) = (24, 100);
        let (m, w) = matrix(rows, cols);
        assert_eq!(m.dequantize(), w);
        // 3 rows take the row kernels, 70 the widened groups (with AVX-512F; else the gemm).
        for n in [1, 3, 70] {
            let x: Vec<f32> = (0..n * cols).map(|i| (i as f32 * 0.11).cos()).collect();
            let got = m.matmul_rows(&x);
            for i in 0..n {
                for r in 0..rows {
                    let exact: f32 = (0..cols).map(|c| x[i * cols + c] * w[r * cols + c]).sum();
                    let g = got[i * rows + r];
                    let close = (g - exact).abs() <= 1e-5 * exact.abs().max(1.0);
                    assert!(close, "{n} rows, ({i}, {r}): {g} vs {exact}");
                }
            }
        }
    }

    #[test]
    fn f16_kernel_agrees_with_the_portable_dot_and_shared_products_with_the_whole() {
        let (rows, cols) = (19, 576);
        let (m, _) = matrix(rows, cols);
        let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin()).collect();
        for r in 0..rows {
            let (a, b) = (m.half_dot(r, &x), dot_portable(m.half_row(r), &x));
            // Sums of 576 terms in another order: equal to f32 rounding.
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "row {r}: {a} vs {b}"
            );
        }
        let whole = m.matmul_rows(&x);
        let input = m.quantize_input(&x);
        let mut parts = m.dot_rows(&input, 0..7);
        parts.extend(m.dot_rows(&input, 7..rows));
        assert_eq!(parts, whole);
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

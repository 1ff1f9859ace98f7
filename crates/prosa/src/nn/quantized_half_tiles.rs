//! Long prompts through F16 weights: the groups are kept packed as the dense f32 weights are
//! (`dense_panels.rs`: for every input position, the 64 rows' values side by side;
//! `quantized_half.rs` packs them at load), so every activation row passes over them with the
//! dense kernel: 24 sums in registers, four weight vectors per position for six rows, the first
//! pass over a span widening it to f32 as it goes (one F16C conversion per sixteen values, in
//! order; `half_groups.rs`). The widening is exact and the sums are the dense kernel's (each
//! output's products added in position order from zero), so the product is as exact as the
//! weights and no f32 copy of the whole matrix is kept.
//!
//! Needs AVX-512F; elsewhere [`QuantMatrix::half_matmul_tiles`] answers `None` and the caller
//! expands tiles to f32 for the gemm.

use candle_core::{DType, Tensor};

use super::{Packing, QuantMatrix};
use crate::error::Result;
use crate::nn::half_groups::{product_of_half_groups, swiglu_product_of_half_groups};

impl QuantMatrix {
    /// `x · Wᵀ` for `m` rows of `x` and an F16 matrix through the dense kernel, or `None`
    /// where the CPU lacks AVX-512F.
    pub(super) fn half_matmul_tiles(&self, x: &[f32], m: usize) -> Option<Vec<f32>> {
        product_of_half_groups(self.rows, self.cols, &self.halves, x, m)
    }

    /// SwiGLU of `x · Wᵀ` for an F16 matrix stacked as `[gate | up]` (`2·width` rows) and
    /// `x` (…, cols) of several rows: `silu(x·gateᵀ) ⊙ x·upᵀ` (…, `width`), each gate group's
    /// sums taken with its up group's as they are written — the bits of [`Self::matmul`]
    /// followed by [`crate::nn::activation::swiglu_stacked`]. `None` where that path does not
    /// apply: another packing or shape, a single row (decode steps take the group sums), an f32
    /// CPU tensor not given, or no AVX-512F.
    pub fn swiglu_matmul(&self, x: &Tensor, width: usize) -> Result<Option<Tensor>> {
        let dims = x.dims();
        let cols = dims.last().copied().unwrap_or(0);
        let m = x.elem_count() / cols.max(1);
        let applies = self.packing == Packing::Half
            && self.rows == 2 * width
            && cols == self.cols
            && m > 1
            && x.device().is_cpu()
            && x.dtype() == DType::F32;
        if !applies {
            return Ok(None);
        }
        let out = crate::nn::gemm::with_f32(x, |values| {
            swiglu_product_of_half_groups(width, self.cols, &self.halves, values, m)
        })?;
        let Some(out) = out else { return Ok(None) };
        let mut shape = dims.to_vec();
        if let Some(last) = shape.last_mut() {
            *last = width;
        }
        Ok(Some(Tensor::from_vec(out, shape, x.device())?))
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

    #[test]
    fn a_fused_swiglu_has_the_bits_of_the_product_then_swiglu() {
        use candle_core::{Device, Tensor};

        use crate::nn::activation::swiglu_stacked;

        // Halves of two groups (whole groups per task), of three (on two threads with 70 rows,
        // past `MIN_SHARE` a thread, the third group split by rows) and of one; 1,100 inputs in
        // spans.
        let cases = [(128, 96, 3), (128, 1100, 70), (192, 200, 70), (64, 40, 2)];
        for (width, cols, m) in cases {
            let rows = 2 * width;
            let bytes: Vec<u8> = (0..rows * cols)
                .flat_map(|i| f16::from_f32((i as f32 * 0.37).sin() * 0.8).to_le_bytes())
                .collect();
            let matrix = QuantMatrix::from_f16_bytes(rows, cols, &bytes).expect("whole rows");
            let x: Vec<f32> = (0..m * cols).map(|i| (i as f32 * 0.11).cos()).collect();
            let x = Tensor::from_vec(x, (1, m, cols), &Device::Cpu).unwrap();
            let Some(fused) = matrix.swiglu_matmul(&x, width).unwrap() else {
                return; // no AVX-512F: the caller takes the product, then the SwiGLU
            };
            let apart = swiglu_stacked(&matrix.matmul(&x).unwrap(), width).unwrap();
            assert_eq!(fused.dims(), &[1, m, width]);
            let (fused, apart) = (flat(&fused), flat(&apart));
            for (i, (f, a)) in fused.iter().zip(&apart).enumerate() {
                assert_eq!(f.to_bits(), a.to_bits(), "{m} rows, value {i}: {f} vs {a}");
            }
            // Not a stacked pair of this width: no fused path.
            assert!(matrix.swiglu_matmul(&x, width / 2).unwrap().is_none());
        }
    }

    fn flat(t: &candle_core::Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }
}

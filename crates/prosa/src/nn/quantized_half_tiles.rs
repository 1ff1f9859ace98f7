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

use super::QuantMatrix;
use crate::nn::half_groups::product_of_half_groups;

impl QuantMatrix {
    /// `x · Wᵀ` for `m` rows of `x` and an F16 matrix through the dense kernel, or `None`
    /// where the CPU lacks AVX-512F.
    pub(super) fn half_matmul_tiles(&self, x: &[f32], m: usize) -> Option<Vec<f32>> {
        product_of_half_groups(self.rows, self.cols, &self.halves, x, m)
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

//! One activation row multiplied by a quantized (or F16) matrix in parts — rows `a..b` of the result —
//! so the threads of a decode step can share one product: the activations are quantized once
//! ([`QuantMatrix::quantize_input`]), each thread takes a range of weight rows
//! ([`QuantMatrix::dot_rows`]). Each row is the same dot product
//! [`QuantMatrix::matmul_rows`] computes for a single activation row, so the parts put
//! together equal it bit for bit.

use std::ops::Range;

use super::{quantize_rows, Packing, QuantMatrix, QuantizedRows, BLOCK};

/// One activation row prepared for a matrix's kernels and shared by the threads of a product:
/// quantized to 8-bit blocks for the block packings, kept in f32 for F16.
pub(crate) struct QuantizedInput(Prepared);

enum Prepared {
    Blocks(QuantizedRows),
    Floats(Vec<f32>),
}

impl QuantMatrix {
    /// `x` (one row of `cols` values) prepared for [`dot_rows`](Self::dot_rows) of this matrix.
    pub(crate) fn quantize_input(&self, x: &[f32]) -> QuantizedInput {
        debug_assert_eq!(x.len(), self.cols);
        match self.packing {
            Packing::Half => QuantizedInput(Prepared::Floats(x.to_vec())),
            Packing::Nibbles | Packing::Bytes => {
                QuantizedInput(Prepared::Blocks(quantize_rows(x, self.cols, false)))
            }
        }
    }

    /// Rows `rows` of `x · Wᵀ`, for an input this matrix (or one of its packing) prepared.
    pub(crate) fn dot_rows(&self, x: &QuantizedInput, rows: Range<usize>) -> Vec<f32> {
        match &x.0 {
            Prepared::Floats(x) => self.half_dot_rows(x, rows),
            Prepared::Blocks(x) => {
                let blocks = self.cols / BLOCK;
                self.rows_dot(rows, x, blocks)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    #[test]
    fn parts_equal_the_whole_product() {
        let (rows, cols) = (37, 96);
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919) % 211) as f32 / 105.0 - 1.0)
            .collect();
        let w = Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap();
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let q = QTensor::quantize(&w, dtype).unwrap();
            let m = QuantMatrix::from_qtensor(&q).unwrap().unwrap();
            let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin()).collect();
            let whole = m.matmul_rows(&x);
            let input = m.quantize_input(&x);
            let mut parts = m.dot_rows(&input, 0..20);
            parts.extend(m.dot_rows(&input, 20..rows));
            assert_eq!(parts, whole, "{dtype:?}");
        }
    }
}

//! A decoder's token embeddings: an f32 tensor (folders, and what a GGUF file cannot keep
//! packed), or a GGUF file's quantized matrix — for a tied model the output layer's own —
//! whose rows are expanded as they are looked up. SmolLM2-135M's table as f32 was 113 MB, more
//! than the whole Q4_1 file; expanded row by row it costs nothing to keep, and the values are
//! those candle's `dequantize` gave (each is one product, and for Q4_1 one sum, of values exact
//! in f32, computed in the same order; only Q4_0's zeros may have the other sign).

use std::sync::Arc;

use candle_core::{Device, Tensor};

use crate::error::Result;
use crate::nn::quantized::QuantMatrix;

/// Token embeddings (vocab, hidden).
#[derive(Clone)]
pub(crate) enum TokenTable {
    /// An f32 tensor, trained or loaded.
    Dense(Tensor),
    /// Quantized rows, expanded when looked up, on `device` (the CPU).
    Quantized {
        /// The matrix (vocab, hidden).
        rows: Arc<QuantMatrix>,
        /// Where looked-up rows go.
        device: Device,
    },
}

impl TokenTable {
    /// The device lookups produce tensors on.
    pub fn device(&self) -> &Device {
        match self {
            TokenTable::Dense(t) => t.device(),
            TokenTable::Quantized { device, .. } => device,
        }
    }

    /// The number of rows (the vocabulary).
    pub fn rows(&self) -> Result<usize> {
        match self {
            TokenTable::Dense(t) => Ok(t.dim(0)?),
            TokenTable::Quantized { rows, .. } => Ok(rows.dims().0),
        }
    }

    /// The rows of `ids` (already checked against the vocabulary), (ids, hidden) in f32.
    pub fn lookup(&self, ids: Vec<u32>) -> Result<Tensor> {
        match self {
            TokenTable::Dense(t) => {
                let n = ids.len();
                Ok(t.index_select(&Tensor::from_vec(ids, n, t.device())?, 0)?)
            }
            TokenTable::Quantized { rows, device } => {
                let values = rows.dequantize_rows(&ids);
                Ok(Tensor::from_vec(
                    values,
                    (ids.len(), rows.dims().1),
                    device,
                )?)
            }
        }
    }

    /// The row of one token id, as values.
    pub fn row(&self, id: u32) -> Result<Vec<f32>> {
        match self {
            TokenTable::Dense(t) => Ok(t.get(id as usize)?.to_vec1::<f32>()?),
            TokenTable::Quantized { rows, .. } => Ok(rows.dequantize_rows(&[id])),
        }
    }
}

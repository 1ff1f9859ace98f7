//! The key/value caches of generation. Self-attention: each layer keeps the keys and values of
//! the positions already processed, so a new token attends to them without recomputing them.
//! Cross-attention: the keys and values of an encoder's output, projected once per layer. Beam
//! search reorders the rows of both when beams are re-ranked.

use candle_core::Tensor;

use crate::error::Result;

/// Keys and values of one layer, (batch, kv_heads, positions, head_dim) each, written into
/// buffers with room to spare (doubled when full) instead of concatenated at every step.
#[derive(Clone, Default)]
pub struct LayerCache {
    keys: Option<Tensor>,
    values: Option<Tensor>,
    len: usize,
}

/// Positions a buffer has room for at first.
const INITIAL_CAPACITY: usize = 32;

impl LayerCache {
    /// Appends the newest keys and values and returns all of them.
    pub fn append(&mut self, k: Tensor, v: Tensor) -> Result<(Tensor, Tensor)> {
        let added = k.dim(2)?;
        let capacity = self.keys.as_ref().map_or(0, |t| t.dims()[2]);
        if self.len + added > capacity {
            let new_capacity = (2 * capacity).max(self.len + added).max(INITIAL_CAPACITY);
            self.keys = Some(grow(self.keys.as_ref(), &k, self.len, new_capacity)?);
            self.values = Some(grow(self.values.as_ref(), &v, self.len, new_capacity)?);
        }
        let (keys, values) = (
            self.keys.as_ref().expect("allocated above"),
            self.values.as_ref().expect("allocated above"),
        );
        keys.slice_set(&k.contiguous()?, 2, self.len)?;
        values.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len += added;
        Ok((keys.narrow(2, 0, self.len)?, values.narrow(2, 0, self.len)?))
    }

    /// Positions cached so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first positions are appended.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A zeroed buffer like `like` with `capacity` positions, holding the first `len` of `old`.
fn grow(old: Option<&Tensor>, like: &Tensor, len: usize, capacity: usize) -> Result<Tensor> {
    let (b, h, _, d) = like.dims4()?;
    let buffer = Tensor::zeros((b, h, capacity, d), like.dtype(), like.device())?;
    if let (Some(old), true) = (old, len > 0) {
        buffer.slice_set(&old.narrow(2, 0, len)?.contiguous()?, 2, 0)?;
    }
    Ok(buffer)
}

/// The cache of every layer.
#[derive(Clone)]
pub struct KvCache {
    layers: Vec<LayerCache>,
}

impl KvCache {
    /// An empty cache for `layers` layers.
    pub fn new(layers: usize) -> Self {
        Self {
            layers: vec![LayerCache::default(); layers],
        }
    }

    /// Positions cached so far.
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, LayerCache::len)
    }

    /// True before the first forward pass.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cache of layer `i`.
    pub fn layer(&mut self, i: usize) -> &mut LayerCache {
        &mut self.layers[i]
    }

    /// Keeps rows `rows` (in that order) of every layer: beam search's re-ranking.
    pub fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        let Some(device) = self
            .layers
            .first()
            .and_then(|l| l.keys.as_ref())
            .map(|k| k.device().clone())
        else {
            return Ok(());
        };
        let index = Tensor::new(rows, &device)?;
        for layer in &mut self.layers {
            if let (Some(k), Some(v)) = (&layer.keys, &layer.values) {
                layer.keys = Some(k.index_select(&index, 0)?);
                layer.values = Some(v.index_select(&index, 0)?);
            }
        }
        Ok(())
    }
}

/// The keys and values one cross-attention layer reads from an encoder's output, projected
/// once, (batch, kv_heads, source, head_dim) each, with the source's padding bias
/// (batch, 1, 1, source).
#[derive(Clone)]
pub struct CrossMemory {
    /// Keys.
    pub keys: Tensor,
    /// Values.
    pub values: Tensor,
    /// 0 for source tokens, the padding bias for padding.
    pub pad_bias: Tensor,
}

impl CrossMemory {
    /// Keeps rows `rows` (in that order; a row may repeat): beams of one source share it.
    pub fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        let index = Tensor::new(rows, self.keys.device())?;
        self.keys = self.keys.index_select(&index, 0)?;
        self.values = self.values.index_select(&index, 0)?;
        self.pad_bias = self.pad_bias.index_select(&index, 0)?;
        Ok(())
    }
}

//! The key/value cache of generation: each layer keeps the keys and values of the positions
//! already processed, so a new token attends to them without recomputing them. Beam search
//! reorders the rows when beams are re-ranked.

use candle_core::Tensor;

use crate::error::Result;

/// Keys and values of one layer, (batch, kv_heads, positions, head_dim) each.
#[derive(Clone, Default)]
pub struct LayerCache {
    keys: Option<Tensor>,
    values: Option<Tensor>,
}

impl LayerCache {
    /// Appends the newest keys and values and returns all of them.
    pub fn append(&mut self, k: Tensor, v: Tensor) -> Result<(Tensor, Tensor)> {
        let (k, v) = match (&self.keys, &self.values) {
            (Some(pk), Some(pv)) => (Tensor::cat(&[pk, &k], 2)?, Tensor::cat(&[pv, &v], 2)?),
            _ => (k, v),
        };
        self.keys = Some(k.clone());
        self.values = Some(v.clone());
        Ok((k, v))
    }

    fn len(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| k.dims()[2])
    }
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

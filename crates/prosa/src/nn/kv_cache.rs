//! The key/value caches of generation. Self-attention: each layer keeps the keys and values of
//! the positions already processed, so a new token attends to them without recomputing them.
//! Cross-attention: the keys and values of an encoder's output, projected once per layer. Beam
//! search reorders the rows of both when beams are re-ranked.

use candle_core::{DType, Storage, Tensor};

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

    /// Runs `read` on the cached keys and values as f32 slices laid out (batch, kv_heads,
    /// capacity, head_dim), with the capacity and the number of positions cached; `None` when
    /// nothing is cached or the buffers are not f32 in CPU memory.
    pub(crate) fn read_f32<R>(
        &self,
        read: impl FnOnce(&[f32], &[f32], usize, usize) -> R,
    ) -> Option<R> {
        let (keys, values) = (self.keys.as_ref()?, self.values.as_ref()?);
        let capacity = keys.dims()[2];
        with_cpu_f32(keys, |k| {
            with_cpu_f32(values, |v| read(k, v, capacity, self.len))
        })
        .flatten()
    }

    /// The key and value buffers (batch, kv_heads, capacity, head_dim; shared, not copied) and
    /// the number of positions cached, once anything is.
    pub(crate) fn buffers(&self) -> Option<(Tensor, Tensor, usize)> {
        Some((self.keys.clone()?, self.values.clone()?, self.len))
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

/// Runs `read` on the f32 values of `t` (contiguous, in CPU memory); `None` otherwise.
pub(crate) fn with_cpu_f32<R>(t: &Tensor, read: impl FnOnce(&[f32]) -> R) -> Option<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return None;
    };
    let values = cpu.as_slice::<f32>().ok()?;
    if !layout.is_contiguous() {
        return None;
    }
    let start = layout.start_offset();
    Some(read(values.get(start..start + t.elem_count())?))
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

    /// Keeps rows `rows` (in that order) of every layer: beam search's re-ranking. A
    /// permutation of the same number of rows on the CPU moves only the rows that change, and
    /// only their cached positions, in place (clones of this cache share its buffers, as they
    /// share appends); anything else makes new buffers.
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
        // Buffers reordered in place, each with its cached length and the outcome.
        let mut in_place: Vec<(Tensor, usize, Result<()>)> = Vec::new();
        for layer in &mut self.layers {
            if let (Some(k), Some(v)) = (&layer.keys, &layer.values) {
                if device.is_cpu() && k.dtype() == DType::F32 && k.dim(0)? == rows.len() {
                    in_place.push((k.clone(), layer.len, Ok(())));
                    in_place.push((v.clone(), layer.len, Ok(())));
                } else {
                    layer.keys = Some(k.index_select(&index, 0)?);
                    layer.values = Some(v.index_select(&index, 0)?);
                }
            }
        }
        // The buffers are independent: the threads share them out.
        super::spin_pool::for_each_chunk_mut(&mut in_place, 1, |_, item| {
            let (buffer, len, outcome) = &mut item[0];
            let reorder = ReorderRows { rows, len: *len };
            *outcome = buffer.inplace_op1(&reorder).map_err(Into::into);
        });
        in_place.into_iter().try_for_each(|(_, _, outcome)| outcome)
    }
}

/// Row `i` of a (rows, heads, capacity, head_dim) buffer becomes row `rows[i]`, for the first
/// `len` positions of every head; rows that keep themselves are not touched.
struct ReorderRows<'a> {
    rows: &'a [u32],
    len: usize,
}

impl candle_core::InplaceOp1 for ReorderRows<'_> {
    fn name(&self) -> &'static str {
        "prosa-kv-reorder-rows"
    }

    fn cpu_fwd(
        &self,
        storage: &mut candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        let (Some((start, end)), candle_core::CpuStorage::F32(values)) =
            (layout.contiguous_offsets(), storage)
        else {
            candle_core::bail!("the key/value cache is not a contiguous f32 buffer");
        };
        let (batch, heads, capacity, head_dim) = layout.shape().dims4()?;
        let values = &mut values[start..end];
        let (row_size, head_size, used) = (
            heads * capacity * head_dim,
            capacity * head_dim,
            self.len * head_dim,
        );
        if batch != self.rows.len() || self.rows.iter().any(|&r| r as usize >= batch) {
            candle_core::bail!(
                "a row reordering of {} rows for a cache of {batch}",
                self.rows.len()
            );
        }
        // The cached part of every row some other row takes and that is itself overwritten,
        // copied before anything is written; the other sources are read where they are.
        let overwritten = |r: usize| self.rows[r] as usize != r;
        let mut sources: Vec<(usize, Vec<f32>)> = Vec::new();
        for (to, &from) in self.rows.iter().enumerate() {
            let from = from as usize;
            if from != to && overwritten(from) && !sources.iter().any(|(r, _)| *r == from) {
                let mut copy = Vec::with_capacity(heads * used);
                for h in 0..heads {
                    let at = from * row_size + h * head_size;
                    copy.extend_from_slice(&values[at..at + used]);
                }
                sources.push((from, copy));
            }
        }
        for (to, &from) in self.rows.iter().enumerate() {
            let from = from as usize;
            if from == to {
                continue;
            }
            match sources.iter().find(|(r, _)| *r == from) {
                Some((_, copy)) => {
                    for h in 0..heads {
                        let at = to * row_size + h * head_size;
                        values[at..at + used].copy_from_slice(&copy[h * used..(h + 1) * used]);
                    }
                }
                // A row that keeps itself: never written, so read in place.
                None => {
                    for h in 0..heads {
                        let (at, src) = (
                            to * row_size + h * head_size,
                            from * row_size + h * head_size,
                        );
                        values.copy_within(src..src + used, at);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The keys and values one cross-attention layer reads from an encoder's output, projected
/// once, (sources, kv_heads, source, head_dim) each, with the source's padding bias
/// (sources, 1, 1, source), and which source each decoder row reads. Beams of one source share
/// its memory: expanding to beams and re-ranking them only changes that map, so nothing is
/// copied at every step.
#[derive(Clone)]
pub struct CrossMemory {
    keys: Tensor,
    values: Tensor,
    pad_bias: Tensor,
    /// Decoder row `i` reads source `rows[i]`; `None`: row `i` reads source `i`.
    rows: Option<Vec<u32>>,
}

impl CrossMemory {
    /// The memory of projected `keys` and `values` (sources, kv_heads, source, head_dim) and
    /// `pad_bias` (sources, 1, 1, source); decoder row `i` reads source `i`.
    pub fn new(keys: Tensor, values: Tensor, pad_bias: Tensor) -> Self {
        Self {
            keys,
            values,
            pad_bias,
            rows: None,
        }
    }

    /// Keeps rows `rows` (in that order; a row may repeat): beams of one source share it.
    pub fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        let sources = self.keys.dim(0)?;
        let mapped = rows
            .iter()
            .map(|&r| match &self.rows {
                Some(map) => map.get(r as usize).copied(),
                None => Some(r).filter(|&r| (r as usize) < sources),
            })
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| {
                candle_core::Error::Msg(format!(
                    "cross-attention memory: row selection {rows:?} past its {} rows",
                    self.rows.as_ref().map_or(sources, Vec::len)
                ))
            })?;
        self.rows = Some(mapped);
        Ok(())
    }

    /// Keys, values and padding bias with one row per decoder row (gathered where rows share
    /// a source).
    pub fn per_row(&self) -> Result<(Tensor, Tensor, Tensor)> {
        let Some(rows) = &self.rows else {
            return Ok((
                self.keys.clone(),
                self.values.clone(),
                self.pad_bias.clone(),
            ));
        };
        let index = Tensor::new(rows.as_slice(), self.keys.device())?;
        Ok((
            self.keys.index_select(&index, 0)?,
            self.values.index_select(&index, 0)?,
            self.pad_bias.index_select(&index, 0)?,
        ))
    }

    /// Runs `read` on the keys and values (sources, kv_heads, source, head_dim) and the padding
    /// bias (sources, source) as f32 slices, with the source each decoder row reads and the
    /// source length (`None` when a tensor is not contiguous f32 in CPU memory).
    pub(crate) fn read_f32<R>(
        &self,
        read: impl FnOnce(&[f32], &[f32], &[f32], &[u32], usize) -> R,
    ) -> Option<R> {
        let len = self.keys.dims().get(2).copied()?;
        let identity: Vec<u32>;
        let rows = match &self.rows {
            Some(rows) => rows.as_slice(),
            None => {
                identity = (0..self.keys.dims()[0] as u32).collect();
                identity.as_slice()
            }
        };
        with_cpu_f32(&self.keys, |k| {
            with_cpu_f32(&self.values, |v| {
                with_cpu_f32(&self.pad_bias, |b| read(k, v, b, rows, len))
            })
        })
        .flatten()
        .flatten()
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    fn step(seed: f64) -> Result<Tensor> {
        Ok(Tensor::arange(0f32, 24.0, &Device::Cpu)?
            .affine(1.0, seed)?
            .reshape((4, 2, 1, 3))?)
    }

    #[test]
    fn an_in_place_reordering_keeps_what_a_gather_keeps() -> Result<()> {
        // Sources that are overwritten, sources that keep themselves, a row copied to three.
        for rows in [
            [2u32, 2, 0, 3],
            [0, 0, 1, 3],
            [1, 1, 1, 0],
            [3, 2, 1, 0],
            [0, 1, 2, 3],
        ] {
            let mut cache = KvCache::new(3);
            let mut cached = Vec::new();
            for t in 0..3 {
                cached.clear();
                for layer in 0..3 {
                    let seed = 100.0 * t as f64 + layer as f64;
                    let (k, v) = cache.layer(layer).append(step(seed)?, step(-seed)?)?;
                    cached.push((k.contiguous()?.copy()?, v.contiguous()?.copy()?));
                }
            }
            let index = Tensor::new(&rows, &Device::Cpu)?;
            cache.select_rows(&rows)?;
            for (layer, (keys, values)) in cached.iter().enumerate() {
                let (new_keys, new_values) = cache.layer(layer).append(step(1e3)?, step(-1e3)?)?;
                for (got, before) in [(new_keys, keys), (new_values, values)] {
                    assert_eq!(
                        got.narrow(2, 0, 3)?.flatten_all()?.to_vec1::<f32>()?,
                        before
                            .index_select(&index, 0)?
                            .flatten_all()?
                            .to_vec1::<f32>()?,
                        "rows {rows:?}, layer {layer}"
                    );
                }
            }
        }
        Ok(())
    }

    #[test]
    fn cross_memory_row_selections_compose_as_gathers_do() -> Result<()> {
        let dev = Device::Cpu;
        let keys = Tensor::arange(0f32, 12.0, &dev)?.reshape((3, 1, 2, 2))?;
        let values = (&keys * 10.0)?;
        let bias = Tensor::arange(0f32, 6.0, &dev)?.reshape((3, 1, 1, 2))?;
        let mut memory = CrossMemory::new(keys.clone(), values.clone(), bias.clone());
        // Expand three sources to two beams each, then re-rank the beams twice.
        memory.select_rows(&[0, 0, 1, 1, 2, 2])?;
        memory.select_rows(&[1, 0, 3, 3, 4, 5])?;
        memory.select_rows(&[0, 0, 2, 3, 5, 4])?;
        let sources = Tensor::new(&[0u32, 0, 1, 1, 2, 2], &dev)?;
        let (k, v, b) = memory.per_row()?;
        for (ours, full) in [(k, keys), (v, values), (b, bias)] {
            let expected = full.index_select(&sources, 0)?;
            assert_eq!(
                ours.flatten_all()?.to_vec1::<f32>()?,
                expected.flatten_all()?.to_vec1::<f32>()?
            );
        }
        let read = memory.read_f32(|_, _, _, rows, len| (rows.to_vec(), len));
        assert_eq!(read, Some((vec![0, 0, 1, 1, 2, 2], 2)));
        assert!(memory.select_rows(&[6]).is_err());
        Ok(())
    }
}

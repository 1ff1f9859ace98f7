//! Matrix products with GGUF block-quantized weights (Q4_0, Q4_1, Q8_0), the way llama.cpp does
//! them (F16 weights: `quantized_half.rs`): each row of activations is quantized to 8-bit blocks
//! of 32, and every weight block meets its activation block in an integer dot product (AVX2
//! `maddubs`/`madd`, or `vpdpbusd` in its AVX-VNNI or AVX-512 VNNI encoding, whichever the CPU
//! has; plain Rust otherwise), scaled once per block. candle's own kernels for these types are
//! scalar unless the whole program is compiled for AVX2; these pick theirs at run time.
//!
//! Weights are repacked at load: per block a scale, a minimum (Q4 types; Q4_0's is `−8·scale`)
//! and the packed quants, so the inner loop reads three flat arrays. Scales and minimums stay in
//! half precision, as the file holds them, and the kernels widen them (F16C): a decode step is
//! bound by the bytes it streams, and f32 copies would add a fifth to a Q4_1 model's.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Tensor;
use half::f16;
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Values per block.
const BLOCK: usize = 32;

/// From this many activation rows on (long prompts), products go through the integer tile
/// kernels (`quantized_tiles.rs`: eight weight rows — sixteen with AVX-512 VNNI — × four
/// activation rows per pass, VNNI), or, without VNNI, weights are expanded to f32 tile by tile
/// and multiplied by a gemm. Fewer rows — decode steps, continuous batches of up to 63
/// sequences, short prompts — take the integer row kernels, whose results do not depend on the
/// number of rows.
pub const DEQUANTIZED_GEMM_ROWS: usize = 64;

/// The packing of the quants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Packing {
    /// 4-bit unsigned quants, two per byte (low nibbles: values 0–15, high: 16–31);
    /// `w = scale·q + min`.
    Nibbles,
    /// 8-bit signed quants; `w = scale·q`.
    Bytes,
    /// IEEE half-precision values (`halves`), multiplied with f32 activations.
    Half,
}

/// A quantized (rows × cols) weight matrix, multiplied as `x · Wᵀ`.
pub struct QuantMatrix {
    packing: Packing,
    rows: usize,
    cols: usize,
    /// Per block, as the GGUF file holds them (half precision: fewer bytes to stream).
    scales: Vec<f16>,
    /// Per block of the 4-bit packings (Q4_0's is `−8·scale`, exact in half precision).
    mins: Vec<f16>,
    quants: Vec<u8>,
    /// The values of an F16 matrix in groups of 64 rows, position by position
    /// (`quantized_half.rs`; empty for the block packings).
    halves: Vec<f16>,
}

impl std::fmt::Debug for QuantMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "QuantMatrix({:?}, {}×{})",
            self.packing, self.rows, self.cols
        )
    }
}

/// One field of every part, one after another (copied slice by slice).
fn concat<T: Copy>(parts: &[&QuantMatrix], field: impl Fn(&QuantMatrix) -> &Vec<T>) -> Vec<T> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| field(p).len()).sum());
    for part in parts {
        out.extend_from_slice(field(part));
    }
    out
}

impl QuantMatrix {
    /// Repacks a GGUF tensor of type Q4_0, Q4_1, Q8_0 or F16 (rows × cols); `None` for other
    /// types.
    pub fn from_qtensor(t: &QTensor) -> Result<Option<Self>> {
        let (rows, cols) = t.shape().dims2()?;
        if t.dtype() == GgmlDType::F16 {
            return Self::from_f16_bytes(rows, cols, &t.data()?).map(Some);
        }
        if cols % BLOCK != 0 {
            return Ok(None);
        }
        let (packing, bytes) = match t.dtype() {
            GgmlDType::Q4_0 => (Packing::Nibbles, 18),
            GgmlDType::Q4_1 => (Packing::Nibbles, 20),
            GgmlDType::Q8_0 => (Packing::Bytes, 34),
            _ => return Ok(None),
        };
        let data = t.data()?;
        let blocks = rows * cols / BLOCK;
        if data.len() != blocks * bytes {
            return Err(Error::config(
                "gguf tensor",
                format!(
                    "{} bytes for {blocks} blocks of {:?}",
                    data.len(),
                    t.dtype()
                ),
            ));
        }
        let half = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]);
        let mut m = Self {
            packing,
            rows,
            cols,
            scales: Vec::with_capacity(blocks),
            mins: Vec::with_capacity(if packing == Packing::Nibbles {
                blocks
            } else {
                0
            }),
            quants: Vec::with_capacity(blocks * if packing == Packing::Nibbles { 16 } else { 32 }),
            halves: Vec::new(),
        };
        for block in data.chunks_exact(bytes) {
            let d = half(block);
            m.scales.push(d);
            match t.dtype() {
                GgmlDType::Q4_0 => {
                    // Exact unless −8·scale overflows half precision (no real model's does):
                    // such a tensor is left to candle's kernels.
                    let min = f16::from_f32(-8.0 * d.to_f32());
                    if !min.is_finite() {
                        return Ok(None);
                    }
                    m.mins.push(min);
                    m.quants.extend_from_slice(&block[2..18]);
                }
                GgmlDType::Q4_1 => {
                    m.mins.push(half(&block[2..4]));
                    m.quants.extend_from_slice(&block[4..20]);
                }
                _ => m.quants.extend_from_slice(&block[2..34]),
            }
        }
        Ok(Some(m))
    }

    /// The rows of `parts` stacked (all of one packing and width), so projections that read the
    /// same input (query/key/value, gate/up) run as one product; `None` if they differ.
    pub fn stack(parts: &[&QuantMatrix]) -> Option<Self> {
        let first = parts.first()?;
        if parts
            .iter()
            .any(|p| p.packing != first.packing || p.cols != first.cols)
        {
            return None;
        }
        if first.packing == Packing::Half {
            // Groups of 64 rows stack as they are only when every part fills its last one.
            let rows = parts.iter().map(|p| p.rows).sum();
            if parts.iter().all(|p| p.rows % half_rows::HALF_GROUP == 0) {
                let mut m = Self::from_f16_rows(0, first.cols, &[]);
                m.rows = rows;
                m.halves = concat(parts, |p| &p.halves);
                return Some(m);
            }
            let values: Vec<f16> = parts.iter().flat_map(|p| p.half_rows()).collect();
            return Some(Self::from_f16_rows(rows, first.cols, &values));
        }
        Some(Self {
            packing: first.packing,
            rows: parts.iter().map(|p| p.rows).sum(),
            cols: first.cols,
            scales: concat(parts, |p| &p.scales),
            mins: concat(parts, |p| &p.mins),
            quants: concat(parts, |p| &p.quants),
            halves: Vec::new(),
        })
    }

    /// (rows, cols).
    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// The rows a product computes together (an F16 matrix's groups): threads sharing a
    /// product split it at multiples of this.
    pub(crate) fn row_granule(&self) -> usize {
        match self.packing {
            Packing::Half => half_rows::HALF_GROUP,
            Packing::Nibbles | Packing::Bytes => 1,
        }
    }

    /// The weights as f32 (rows × cols).
    pub fn dequantize(&self) -> Vec<f32> {
        self.dequantize_rows(&(0..self.rows as u32).collect::<Vec<_>>())
    }

    /// Rows `ids` as f32 (ids × cols): an embedding lookup. Each id must be below `rows`.
    pub fn dequantize_rows(&self, ids: &[u32]) -> Vec<f32> {
        let mut out = vec![0f32; ids.len() * self.cols];
        for (&r, row) in ids.iter().zip(out.chunks_exact_mut(self.cols.max(1))) {
            self.dequantize_row(r as usize, row);
        }
        out
    }

    /// `x · Wᵀ` for `x` (…, cols) in f32: (…, rows).
    pub fn matmul(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let cols = *dims.last().unwrap_or(&0);
        if cols != self.cols {
            return Err(Error::config(
                "quantized matmul",
                format!("input width {cols}, weight width {}", self.cols),
            ));
        }
        let out = crate::nn::gemm::with_f32(x, |values| self.matmul_rows(values))?;
        let mut shape = dims;
        if let Some(last) = shape.last_mut() {
            *last = self.rows;
        }
        Ok(Tensor::from_vec(out, shape, x.device())?)
    }

    /// `x · Wᵀ` for `x` holding whole rows of `cols` values: rows × `rows` values.
    pub fn matmul_rows(&self, values: &[f32]) -> Vec<f32> {
        if self.packing == Packing::Half {
            return self.half_matmul_rows(values);
        }
        let cols = self.cols;
        let m = values.len() / cols.max(1);
        if m >= DEQUANTIZED_GEMM_ROWS {
            return match self.matmul_tiles(values, m) {
                Some(out) => out,
                None => self.matmul_dequantized(values, m),
            };
        }
        let xq = quantize_rows(values, cols, false);
        let mut out = vec![0f32; m * self.rows];
        // Tasks own a range of weight rows (each read once) and every activation row.
        // Two tasks per thread: few enough that waking the pool costs little per product.
        let tasks = 2 * rayon::current_num_threads();
        let rows_per_task = self.rows.div_ceil(tasks).max(8);
        let blocks = cols / BLOCK;
        let partial: Vec<(usize, Vec<f32>)> = (0..self.rows)
            .step_by(rows_per_task)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|start| {
                let end = (start + rows_per_task).min(self.rows);
                let mut tile = vec![0f32; (end - start) * m];
                for r in start..end {
                    let out = &mut tile[(r - start) * m..(r - start + 1) * m];
                    // Four activation rows per pass over the weight row, then the rest.
                    let mut i = 0;
                    while i + 4 <= m {
                        let firsts = [0, 1, 2, 3].map(|j| (i + j) * blocks);
                        out[i..i + 4].copy_from_slice(&self.row_dot4(r, &xq, firsts, blocks));
                        i += 4;
                    }
                    for (i, o) in out.iter_mut().enumerate().skip(i) {
                        *o = self.row_dot(r, &xq, i * blocks, blocks);
                    }
                }
                (start, tile)
            })
            .collect();
        for (start, tile) in partial {
            let n = tile.len() / m.max(1);
            for r in 0..n {
                for i in 0..m {
                    out[i * self.rows + start + r] = tile[r * m + i];
                }
            }
        }
        out
    }

    /// Many activation rows (a prompt): each task expands a tile of weight rows to f32 in a
    /// cache-sized buffer and multiplies it with every activation row in f32 (a gemm), so each
    /// weight is expanded once per call and the arithmetic runs at f32 matrix-product speed.
    fn matmul_dequantized(&self, x: &[f32], m: usize) -> Vec<f32> {
        // About 256 KB of f32 weights per tile, a multiple of the gemm micro-kernel's 6 columns.
        let tile_rows = ((65_536 / self.cols).clamp(24, 192) / 6) * 6;
        let tiles: Vec<(usize, Vec<f32>)> = (0..self.rows)
            .step_by(tile_rows)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|start| {
                let end = (start + tile_rows).min(self.rows);
                let n = end - start;
                let mut w = vec![0f32; n * self.cols];
                for (r, row) in w.chunks_exact_mut(self.cols).enumerate() {
                    self.dequantize_row(start + r, row);
                }
                // out (m × n) = x (m × cols) · wᵀ.
                let mut out = vec![0f32; m * n];
                super::gemm::matmul(
                    m,
                    n,
                    self.cols,
                    &mut out,
                    (1, n as isize),
                    x,
                    (1, self.cols as isize),
                    &w,
                    (self.cols as isize, 1),
                    false,
                    false,
                );
                (start, out)
            })
            .collect();
        let mut out = vec![0f32; m * self.rows];
        for (start, tile) in tiles {
            let n = tile.len() / m;
            for i in 0..m {
                out[i * self.rows + start..i * self.rows + start + n]
                    .copy_from_slice(&tile[i * n..(i + 1) * n]);
            }
        }
        out
    }

    /// Expands weight row `r` into `out` (cols values).
    fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        if self.packing == Packing::Half {
            for (o, v) in out.iter_mut().zip(self.half_row(r)) {
                *o = v.to_f32();
            }
            return;
        }
        let blocks = self.cols / BLOCK;
        for (b, o) in out.chunks_exact_mut(BLOCK).enumerate() {
            let w = r * blocks + b;
            let d = self.scales[w].to_f32();
            match self.packing {
                Packing::Nibbles => {
                    let q = &self.quants[w * 16..(w + 1) * 16];
                    let m = self.mins[w].to_f32();
                    let (lo, hi) = o.split_at_mut(16);
                    for ((l, h), v) in lo.iter_mut().zip(hi.iter_mut()).zip(q) {
                        *l = d * (v & 0x0F) as f32 + m;
                        *h = d * (v >> 4) as f32 + m;
                    }
                }
                Packing::Bytes => {
                    let q = &self.quants[w * 32..(w + 1) * 32];
                    for (o, &v) in o.iter_mut().zip(q) {
                        *o = d * (v as i8) as f32;
                    }
                }
                Packing::Half => unreachable!("F16 rows are expanded above"),
            }
        }
    }

    /// Scales, minimums (4-bit packings) and quants of weight row `r` (`blocks` blocks).
    fn weight_row(&self, r: usize, blocks: usize) -> (&[f16], &[f16], &[u8]) {
        // Bytes of quants per block, from the packing (not a division per row: this runs for
        // every weight row of every decode step).
        let per_block = match self.packing {
            Packing::Nibbles => BLOCK / 2,
            Packing::Bytes | Packing::Half => BLOCK,
        };
        let wb = r * blocks;
        let mins = self.mins.get(wb..wb + blocks).unwrap_or(&[]);
        (
            &self.scales[wb..wb + blocks],
            mins,
            &self.quants[wb * per_block..(wb + blocks) * per_block],
        )
    }

    /// Weight rows `rows` against one activation row of `blocks` blocks, the kernel chosen
    /// once for all of them (the 512-bit kernels loop over the rows themselves).
    fn rows_dot(&self, rows: std::ops::Range<usize>, x: &QuantizedRows, blocks: usize) -> Vec<f32> {
        #[cfg(target_arch = "x86_64")]
        if vnni() == Some(Vnni::Evex) && self.packing != Packing::Half {
            let mut out = Vec::with_capacity(rows.len());
            let (xs, xsum) = (&x.scales[..blocks], &x.sums[..blocks]);
            let xq = &x.quants[..blocks * BLOCK];
            // SAFETY: `vnni()` found AVX-512 VNNI, F, BW and VL besides AVX2, FMA and F16C;
            // each row's slices are taken (bounds-checked) inside the loops.
            unsafe {
                match self.packing {
                    Packing::Nibbles => x86::nibble_rows(
                        &self.scales,
                        &self.mins,
                        &self.quants,
                        (xs, xsum, xq),
                        rows,
                        blocks,
                        &mut out,
                    ),
                    _ => {
                        x86::byte_rows(&self.scales, &self.quants, (xs, xq), rows, blocks, &mut out)
                    }
                }
            }
            return out;
        }
        rows.map(|r| self.row_dot(r, x, 0, blocks)).collect()
    }

    /// Dot product of weight row `r` with the activation blocks starting at `first`.
    fn row_dot(&self, r: usize, x: &QuantizedRows, first: usize, blocks: usize) -> f32 {
        #[cfg(target_arch = "x86_64")]
        {
            if avx2() {
                let (ws, wm, wq) = self.weight_row(r, blocks);
                let (xs, xsum) = (
                    &x.scales[first..first + blocks],
                    &x.sums[first..first + blocks],
                );
                let xq = &x.quants[first * BLOCK..(first + blocks) * BLOCK];
                // SAFETY: AVX2 and FMA are present (checked; the VNNI kind where used); every
                // slice has `blocks` whole blocks (row r of the weights, one row of activations).
                return unsafe {
                    match (self.packing, vnni()) {
                        (Packing::Nibbles, Some(Vnni::Vex)) => {
                            x86::dot_nibbles_vnni(ws, wm, wq, xs, xsum, xq)
                        }
                        (Packing::Nibbles, Some(Vnni::Evex)) => {
                            x86::dot_nibbles_vnni512(ws, wm, wq, xs, xsum, xq)
                        }
                        (Packing::Nibbles, None) => x86::dot_nibbles(ws, wm, wq, xs, xsum, xq),
                        (Packing::Bytes, Some(Vnni::Vex)) => x86::dot_bytes_vnni(ws, wq, xs, xq),
                        (Packing::Bytes, Some(Vnni::Evex)) => {
                            x86::dot_bytes_vnni512(ws, wq, xs, xq)
                        }
                        (Packing::Bytes, None) => x86::dot_bytes(ws, wq, xs, xq),
                        (Packing::Half, _) => unreachable!("{HALF_ROUTED}"),
                    }
                };
            }
        }
        self.row_dot_portable(r * blocks, x, first, blocks)
    }

    /// [`row_dot`](Self::row_dot) of weight row `r` with four activation rows starting at
    /// blocks `firsts`, each weight block unpacked once for the four.
    fn row_dot4(&self, r: usize, x: &QuantizedRows, firsts: [usize; 4], blocks: usize) -> [f32; 4] {
        #[cfg(target_arch = "x86_64")]
        {
            if avx2() {
                let (ws, wm, wq) = self.weight_row(r, blocks);
                let (xs, xsum, xq) = (&x.scales[..], &x.sums[..], &x.quants[..]);
                // SAFETY: as in `row_dot`; each of the four rows has `blocks` whole blocks
                // from its first block.
                return unsafe {
                    match (self.packing, vnni()) {
                        (Packing::Nibbles, Some(Vnni::Vex)) => {
                            x86::dot_nibbles_x4_vnni(ws, wm, wq, xs, xsum, xq, firsts)
                        }
                        (Packing::Nibbles, Some(Vnni::Evex)) => {
                            x86::dot_nibbles_x4_vnni512(ws, wm, wq, xs, xsum, xq, firsts)
                        }
                        (Packing::Nibbles, None) => {
                            x86::dot_nibbles_x4(ws, wm, wq, xs, xsum, xq, firsts)
                        }
                        (Packing::Bytes, Some(Vnni::Vex)) => {
                            x86::dot_bytes_x4_vnni(ws, wq, xs, xq, firsts)
                        }
                        (Packing::Bytes, Some(Vnni::Evex)) => {
                            x86::dot_bytes_x4_vnni512(ws, wq, xs, xq, firsts)
                        }
                        (Packing::Bytes, None) => x86::dot_bytes_x4(ws, wq, xs, xq, firsts),
                        (Packing::Half, _) => unreachable!("{HALF_ROUTED}"),
                    }
                };
            }
        }
        firsts.map(|first| self.row_dot_portable(r * blocks, x, first, blocks))
    }

    fn row_dot_portable(&self, wb: usize, x: &QuantizedRows, first: usize, blocks: usize) -> f32 {
        let mut total = 0f32;
        for b in 0..blocks {
            let xq = &x.quants[(first + b) * BLOCK..(first + b + 1) * BLOCK];
            let w = wb + b;
            match self.packing {
                Packing::Nibbles => {
                    let q = &self.quants[w * 16..(w + 1) * 16];
                    let mut dot = 0i32;
                    for j in 0..16 {
                        dot += (q[j] & 0x0F) as i32 * xq[j] as i32;
                        dot += (q[j] >> 4) as i32 * xq[j + 16] as i32;
                    }
                    total += self.scales[w].to_f32() * x.scales[first + b] * dot as f32
                        + self.mins[w].to_f32() * x.sums[first + b];
                }
                Packing::Bytes => {
                    let q = &self.quants[w * 32..(w + 1) * 32];
                    let dot: i32 = q
                        .iter()
                        .zip(xq)
                        .map(|(&a, &b)| (a as i8) as i32 * b as i32)
                        .sum();
                    total += self.scales[w].to_f32() * x.scales[first + b] * dot as f32;
                }
                Packing::Half => unreachable!("{HALF_ROUTED}"),
            }
        }
        total
    }
}

/// F16 matrices never reach the block kernels: `matmul_rows` and `dot_rows` send them to
/// `quantized_half.rs`.
const HALF_ROUTED: &str = "an F16 matrix in a block kernel";

/// AVX2 with FMA and F16C (every AVX2 CPU has the last two), detected once.
#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DETECTED.get_or_init(|| {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
    })
}

/// The encoding of `vpdpbusd` on 256-bit vectors the CPU has (with AVX2 and FMA).
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vnni {
    /// AVX-VNNI.
    Vex,
    /// AVX-512 VNNI with AVX-512 F, VL and BW (the single-row kernels run on 512-bit vectors).
    Evex,
}

/// The VNNI kind of the one-row kernels (decode steps, bound by memory): AVX-512 VNNI where the
/// CPU has it, for its 512-bit row loops (Q8_0 generation ×1.13 over the AVX-VNNI kernels on a
/// Zen 5 core that has both), else AVX-VNNI.
#[cfg(target_arch = "x86_64")]
fn vnni() -> Option<Vnni> {
    static DETECTED: std::sync::OnceLock<Option<Vnni>> = std::sync::OnceLock::new();
    *DETECTED.get_or_init(|| {
        if !avx2() {
            None
        } else if avx512_vnni() {
            Some(Vnni::Evex)
        } else if std::is_x86_feature_detected!("avxvnni") {
            Some(Vnni::Vex)
        } else {
            None
        }
    })
}

/// AVX-512 VNNI with the F, VL and BW subsets the EVEX kernels use.
#[cfg(target_arch = "x86_64")]
fn avx512_vnni() -> bool {
    std::is_x86_feature_detected!("avx512vnni")
        && std::is_x86_feature_detected!("avx512vl")
        && std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
}

#[cfg(target_arch = "x86_64")]
#[path = "quantized_x86.rs"]
mod x86;

#[path = "quantized_half.rs"]
mod half_rows;

#[path = "quantized_tiles.rs"]
mod tiles;

#[path = "quantized_half_tiles.rs"]
mod half_tiles;

#[path = "quantized_activations.rs"]
mod activations;
use activations::{quantize_rows, QuantizedRows};

#[path = "quantized_split.rs"]
mod split;
pub(crate) use split::QuantizedInput;

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::QMatMul;
    use candle_core::{Device, Module};

    pub(super) fn weights(rows: usize, cols: usize) -> Tensor {
        let v: Vec<f32> = (0..rows * cols)
            .map(|i| (i as f32 * 0.37).sin() * 0.8)
            .collect();
        Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
    }

    #[test]
    fn products_match_candles_quantized_matmul_for_each_type() {
        let (rows, cols) = (48, 128);
        let w = weights(rows, cols);
        // 3 and 6 rows take the integer path (6: one pass of four rows, then two single
        // rows), 40 the dequantized gemm.
        for m in [3, 6, 40] {
            check_type_products(rows, cols, m, &w);
        }
    }

    #[test]
    fn looked_up_rows_equal_candles_dequantize() {
        let (rows, cols) = (70, 96);
        let w = weights(rows, cols);
        let ids = [5u32, 0, 69, 64, 5];
        for dtype in [
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::Q8_0,
            GgmlDType::F16,
        ] {
            let q = QTensor::quantize(&w, dtype).unwrap();
            let reference = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            let ours = QuantMatrix::from_qtensor(&q).unwrap().unwrap();
            let rows_out = ours.dequantize_rows(&ids);
            for (i, &id) in ids.iter().enumerate() {
                // Equal as numbers (Q4_0 gives +0 where candle's (q − 8)·d gives −0).
                let got = &rows_out[i * cols..(i + 1) * cols];
                assert_eq!(got, &reference[id as usize][..], "{dtype:?} row {id}");
            }
        }
    }

    fn check_type_products(rows: usize, cols: usize, m: usize, w: &Tensor) {
        let x: Vec<f32> = (0..m * cols).map(|i| (i as f32 * 0.11).cos()).collect();
        let x = Tensor::from_vec(x, (m, cols), &Device::Cpu).unwrap();
        for dtype in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let q = QTensor::quantize(w, dtype).unwrap();
            let ours = QuantMatrix::from_qtensor(&q).unwrap().unwrap();
            let deq = Tensor::from_vec(ours.dequantize(), (rows, cols), &Device::Cpu).unwrap();
            let reference = q.dequantize(&Device::Cpu).unwrap();
            let diff = (deq - &reference)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap();
            assert!(
                diff.to_scalar::<f32>().unwrap() < 1e-6,
                "{dtype:?} dequantize"
            );
            // Against the exact product with the dequantized weights, prosa's error (8-bit
            // activations with f32 scales) is no larger than candle's (f16 scales).
            let exact = x.matmul(&reference.t().unwrap()).unwrap();
            let error = |t: Tensor| {
                let d = (t - &exact).unwrap().abs().unwrap().max_all().unwrap();
                d.to_scalar::<f32>().unwrap()
            };
            let theirs = error(QMatMul::from_qtensor(q).unwrap().forward(&x).unwrap());
            let got = error(ours.matmul(&x).unwrap());
            assert!(
                got < 0.05 && got <= theirs * 1.01,
                "{dtype:?}: error {got}, candle's {theirs}"
            );
            // The SIMD and the portable dot products agree.
            let xq = quantize_rows(
                &x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                cols,
                false,
            );
            let blocks = cols / BLOCK;
            for r in 0..rows {
                let (a, b) = (
                    ours.row_dot(r, &xq, blocks, blocks),
                    ours.row_dot_portable(r * blocks, &xq, blocks, blocks),
                );
                assert!((a - b).abs() < 1e-4, "{dtype:?} row {r}: {a} vs {b}");
                if m >= 4 {
                    let four = ours.row_dot4(r, &xq, [0, 1, 2, 3].map(|i| i * blocks), blocks);
                    for (i, f) in four.iter().enumerate() {
                        let one = ours.row_dot(r, &xq, i * blocks, blocks);
                        assert!(
                            (f - one).abs() < 1e-4,
                            "{dtype:?} row {r}×{i}: {f} vs {one}"
                        );
                    }
                }
            }
        }
    }
}

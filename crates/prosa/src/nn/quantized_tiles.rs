//! Long prompts through integer tiles: the product of many activation rows (a prompt of 64
//! tokens or more) with 4- or 8-bit block weights, kept in 8-bit integers end to end, the way
//! llama.cpp's repacked kernels do it — instead of expanding the weights to f32 for a gemm.
//!
//! Each task takes a range of weight rows and repacks them eight at a time into a *panel*: per
//! block of 32 values, eight 32-byte chunks, chunk `c` holding values `4c..4c+4` of each of the
//! eight rows side by side. One `vpdpbusd` of a chunk with four activation bytes broadcast to
//! every lane then advances eight dot products at once, one per i32 lane, with no horizontal sums;
//! a pass multiplies one panel with four activation rows, and a panel (at most 12 KB) stays in
//! L1 while every activation row streams past it. Where the CPU has AVX-512 VNNI, panels are
//! sixteen rows, two eight-row packs side by side in 64-byte chunks, and each 512-bit
//! `vpdpbusd` advances sixteen dot products: the same instruction count for twice the work
//! (SmolLM2 prompts ×1.36 in Q8_0 and ×1.5 in Q4_1 on a Zen 5 core, whose 512-bit units run
//! as many `vpdpbusd` a cycle as its 256-bit ones). Each lane does what a 256-bit lane does, so
//! both widths give the same bits.
//!
//! `vpdpbusd` multiplies unsigned by signed bytes. 4-bit quants are unsigned (0–15) and the
//! activations are the signed operand; for 8-bit weights the activations are offset to unsigned
//! (`q + 128`, an XOR with 0x80) and each block's sum starts at `−128·Σ w`, which the offset adds
//! back. So the integer sums are exact, and each row's result is the same whether it is
//! multiplied with three others or alone (every row runs the same operations in the same order).
//!
//! The kernels need VNNI (AVX-VNNI or AVX-512 VNNI); without it [`QuantMatrix::matmul_tiles`]
//! answers `None` and the caller takes the f32 gemm path.

use super::{quantize_rows, Packing, QuantMatrix, QuantizedRows, BLOCK};
use crate::nn::lanes::prefetch_l2;
use crate::nn::panel_tasks::panel_tasks;

/// Weight rows per panel for the 256-bit kernels: the eight i32 lanes of a vector.
const PANEL: usize = 8;

/// Weight rows per panel for the 512-bit kernel: sixteen i32 lanes, two 8-row packs side by
/// side in every chunk.
const WIDE: usize = 16;

/// Activation rows per kernel pass.
const PASS: usize = 4;

/// One panel of `P` weight rows (8 or 16) in the kernels' layout.
struct Panel<const P: usize> {
    /// Per block, eight chunks of `P` words of four bytes (values `4c..4c + 4` of row `r` in
    /// word `r` of chunk `c`): 4-bit quants unpacked to bytes, or 8-bit quants as they are.
    quants: Vec<u32>,
    /// Per block, the rows' scales.
    scales: Vec<f32>,
    /// Per block, the rows' minimums (4-bit packings; zero for 8-bit ones).
    mins: Vec<f32>,
    /// Per block, `−128·Σ q` for each row (8-bit packing; zero for 4-bit ones).
    offsets: Vec<i32>,
}

impl<const P: usize> Panel<P> {
    fn new(blocks: usize) -> Self {
        Self {
            quants: vec![0; blocks * 8 * P],
            scales: vec![0.0; blocks * P],
            mins: vec![0.0; blocks * P],
            offsets: vec![0; blocks * P],
        }
    }
}

/// The activation rows in the kernels' form: 8-bit quants (offset to unsigned for 8-bit
/// weights), per block the scale and scale × Σq.
type Activations = QuantizedRows;

impl QuantMatrix {
    /// `x · Wᵀ` for `m` activation rows through the integer tile kernels, or `None` where this
    /// CPU lacks VNNI or the matrix is not a block packing.
    pub(super) fn matmul_tiles(&self, x: &[f32], m: usize) -> Option<Vec<f32>> {
        let kernel = tile_kernel(self.packing)?;
        let activations = quantize_rows(x, self.cols, self.packing == Packing::Bytes);
        Some(match kernel {
            TileKernel::Narrow(kernel) => self.tiles(&activations, m, kernel),
            TileKernel::Wide(kernel) => self.tiles(&activations, m, kernel),
        })
    }

    /// The tile product through panels of `P` rows and `kernel`.
    fn tiles<const P: usize>(
        &self,
        activations: &Activations,
        m: usize,
        kernel: Pass<P>,
    ) -> Vec<f32> {
        let blocks = self.cols / BLOCK;
        let row_bytes = blocks
            * if self.packing == Packing::Nibbles {
                16
            } else {
                32
            };
        let passes = m.div_ceil(PASS);
        panel_tasks(self.rows, m, P, true, |start, n, part| {
            let mut panel = Panel::<P>::new(blocks);
            for first in (start..start + n).step_by(P) {
                let width = P.min(start + n - first);
                self.pack_panel(first, width, &mut panel);
                let column = first - start;
                // The next panel's quants come into L2 a share per pass while this one is
                // multiplied, so packing it reads cache rather than waiting on memory.
                let next = (first + P).min(start + n)..(first + 2 * P).min(start + n);
                let ahead = &self.quants[next.start * row_bytes..next.end * row_bytes];
                let share = ahead.len().div_ceil(64).div_ceil(passes) * 64;
                for (k, i) in (0..m).step_by(PASS).enumerate() {
                    let from = (k * share).min(ahead.len());
                    prefetch_l2(&ahead[from..(from + share).min(ahead.len())]);
                    let sums = kernel(&panel, activations, blocks, i, PASS.min(m - i));
                    for (j, lanes) in sums.iter().enumerate().take(PASS.min(m - i)) {
                        part.write(i + j, column, lanes[..width].iter().copied());
                    }
                }
            }
        })
    }

    /// Repacks weight rows `first..first + width` (`width` ≤ `P`) into `panel`; missing rows
    /// are zero.
    fn pack_panel<const P: usize>(&self, first: usize, width: usize, panel: &mut Panel<P>) {
        let blocks = self.cols / BLOCK;
        if width < P {
            panel.quants.fill(0);
            panel.scales.fill(0.0);
            panel.mins.fill(0.0);
            panel.offsets.fill(0);
        }
        let nibbles = self.packing == Packing::Nibbles;
        for b in 0..blocks {
            let chunks = &mut panel.quants[b * 8 * P..(b + 1) * 8 * P];
            for r in 0..width {
                let (w, lane) = ((first + r) * blocks + b, b * P + r);
                panel.scales[lane] = self.scales[w].to_f32();
                // The block's 32 values as eight words of four bytes, word c into chunk c.
                if nibbles {
                    let q: &[u8; 16] = self.quants[w * 16..(w + 1) * 16]
                        .try_into()
                        .expect("a 4-bit block is 16 bytes");
                    for c in 0..4 {
                        let four = u32::from_le_bytes([
                            q[4 * c],
                            q[4 * c + 1],
                            q[4 * c + 2],
                            q[4 * c + 3],
                        ]);
                        // Chunks 0–3 are the low nibbles (values 0–15), 4–7 the high ones.
                        chunks[c * P + r] = four & 0x0F0F_0F0F;
                        chunks[(c + 4) * P + r] = (four >> 4) & 0x0F0F_0F0F;
                    }
                    panel.mins[lane] = self.mins[w].to_f32();
                }
            }
            if !nibbles {
                const ZERO: [u8; 32] = [0; 32];
                // Eight rows at a time: lanes `lane..lane + 8` of every chunk.
                for lane in (0..P).step_by(PANEL) {
                    let rows: [&[u8; 32]; PANEL] = std::array::from_fn(|r| {
                        let w = (first + lane + r) * blocks + b;
                        match lane + r < width {
                            true => self.quants[w * 32..(w + 1) * 32]
                                .try_into()
                                .expect("an 8-bit block is 32 bytes"),
                            false => &ZERO,
                        }
                    });
                    let offsets = &mut panel.offsets[b * P + lane..b * P + lane + PANEL];
                    pack_bytes(&rows, &mut chunks[lane..], P, offsets);
                }
            }
        }
    }
}

/// One block of eight 8-bit weight rows into a panel block whose chunks are `stride` words
/// apart (`chunks` starts at the rows' first lane): word `c` (values `4c..4c + 4`) of row `r`
/// into word `r` of chunk `c`, and each row's `−128·Σq`.
fn pack_bytes(rows: &[&[u8; 32]; PANEL], chunks: &mut [u32], stride: usize, offsets: &mut [i32]) {
    assert!(chunks.len() >= 7 * stride + PANEL && offsets.len() >= PANEL);
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2; the assert bounds the writes.
        unsafe { x86::pack_bytes(rows, chunks, stride, offsets) };
        return;
    }
    for (r, q) in rows.iter().enumerate() {
        for c in 0..8 {
            chunks[c * stride + r] =
                u32::from_le_bytes([q[4 * c], q[4 * c + 1], q[4 * c + 2], q[4 * c + 3]]);
        }
        offsets[r] = -128 * q.iter().map(|&v| v as i8 as i32).sum::<i32>();
    }
}

/// One pass: a panel of `P` rows against activation rows `i..i + count` (`count` ≤ 4), `P`
/// sums per row.
type Pass<const P: usize> = fn(&Panel<P>, &Activations, usize, usize, usize) -> [[f32; P]; PASS];

/// A pass on 256-bit vectors (eight-row panels) or on 512-bit ones (sixteen).
enum TileKernel {
    Narrow(Pass<PANEL>),
    Wide(Pass<WIDE>),
}

/// The tile kernel for `packing` on this CPU, if it has one: the 512-bit one where the CPU has
/// AVX-512 VNNI, else the 256-bit AVX-VNNI one. (The EVEX encoding of the 256-bit kernel, its
/// activations folded into `vpdpbusd` as a broadcast operand, ran Q8_0 prompts ~15% slower than
/// the VEX one on a Zen 5 core; CPUs with AVX-512 VNNI now take the 512-bit kernel.)
fn tile_kernel(packing: Packing) -> Option<TileKernel> {
    #[cfg(target_arch = "x86_64")]
    {
        let nibbles = packing == Packing::Nibbles;
        if packing == Packing::Half || !super::avx2() {
            None
        } else if super::avx512_vnni() {
            Some(TileKernel::Wide(match nibbles {
                true => x86::pass_zmm::<true>,
                false => x86::pass_zmm::<false>,
            }))
        } else if std::is_x86_feature_detected!("avxvnni") {
            Some(TileKernel::Narrow(match nibbles {
                true => x86::pass_vex::<true>,
                false => x86::pass_vex::<false>,
            }))
        } else {
            None
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = packing;
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Activations, Panel, BLOCK, PANEL, PASS, WIDE};

    /// Defines a pass (safe to call once the CPU is known to have `$features`) and its kernel
    /// for one encoding of `vpdpbusd`: `$dot(acc, u, s)` adds the products of 32 unsigned bytes
    /// `u` with 32 signed bytes `s`, in groups of four, to the eight i32 lanes of `acc`.
    macro_rules! tile_pass {
        ($features:literal, $pass:ident, $kernel:ident, |$acc:ident, $u:ident, $s:ident| $dot:expr) => {
            /// A pass of the tile kernel (see [`super::TileKernel`]); only handed out by
            /// `tile_kernel` after the CPU was found to have the instructions.
            pub(super) fn $pass<const NIBBLES: bool>(
                panel: &Panel<PANEL>,
                x: &Activations,
                blocks: usize,
                first: usize,
                count: usize,
            ) -> [[f32; PANEL]; PASS] {
                assert!((1..=PASS).contains(&count));
                assert!((first + count) * blocks <= x.scales.len());
                assert!(x.quants.len() >= x.scales.len() * BLOCK);
                assert!(panel.quants.len() >= blocks * 8 * PANEL);
                assert!(panel.scales.len() >= blocks * PANEL);
                let rows = [0, 1, 2, 3].map(|j| (first + j.min(count - 1)) * blocks);
                let mut out = [[0f32; PANEL]; PASS];
                // SAFETY: `tile_kernel` hands this pass out only where the CPU has $features;
                // the asserts above bound every read (rows past `count` repeat the last one).
                unsafe {
                    if count == PASS {
                        $kernel::<NIBBLES, 4>(panel, x, blocks, rows, &mut out);
                    } else {
                        for j in 0..count {
                            let mut one = [[0f32; PANEL]; 1];
                            $kernel::<NIBBLES, 1>(panel, x, blocks, [rows[j]], &mut one);
                            out[j] = one[0];
                        }
                    }
                }
                out
            }

            /// `R` activation rows (first blocks `rows`) against one panel.
            #[target_feature(enable = $features)]
            unsafe fn $kernel<const NIBBLES: bool, const R: usize>(
                panel: &Panel<PANEL>,
                x: &Activations,
                blocks: usize,
                rows: [usize; R],
                out: &mut [[f32; PANEL]],
            ) {
                let (wq, ws) = (panel.quants.as_ptr(), panel.scales.as_ptr());
                let (wm, wo) = (panel.mins.as_ptr(), panel.offsets.as_ptr());
                let (xq, xs, xsum) = (x.quants.as_ptr(), x.scales.as_ptr(), x.sums.as_ptr());
                let mut acc = [_mm256_setzero_ps(); R];
                for b in 0..blocks {
                    let w = wq.add(b * 8 * PANEL) as *const __m256i;
                    let scales = _mm256_loadu_ps(ws.add(b * PANEL));
                    // Per panel block: the integer sums' start (8-bit) and the minimums (4-bit).
                    let (start, mins) = if NIBBLES {
                        (_mm256_setzero_si256(), _mm256_loadu_ps(wm.add(b * PANEL)))
                    } else {
                        let offsets = _mm256_loadu_si256(wo.add(b * PANEL) as *const __m256i);
                        (offsets, _mm256_setzero_ps())
                    };
                    for j in 0..R {
                        let at = rows[j] + b;
                        let xb = xq.add(at * BLOCK);
                        let xb = xb as *const i32;
                        // Two chains of four, so consecutive `vpdpbusd`s do not wait.
                        let (mut lo, mut hi) = (start, _mm256_setzero_si256());
                        for c in 0..4 {
                            let xa = _mm256_set1_epi32(xb.add(c).read_unaligned());
                            let xc = _mm256_set1_epi32(xb.add(c + 4).read_unaligned());
                            let (wa, wc) = (
                                _mm256_loadu_si256(w.add(c)),
                                _mm256_loadu_si256(w.add(c + 4)),
                            );
                            if NIBBLES {
                                lo = {
                                    let ($acc, $u, $s) = (lo, wa, xa);
                                    $dot
                                };
                                hi = {
                                    let ($acc, $u, $s) = (hi, wc, xc);
                                    $dot
                                };
                            } else {
                                lo = {
                                    let ($acc, $u, $s) = (lo, xa, wa);
                                    $dot
                                };
                                hi = {
                                    let ($acc, $u, $s) = (hi, xc, wc);
                                    $dot
                                };
                            }
                        }
                        let p = _mm256_cvtepi32_ps(_mm256_add_epi32(lo, hi));
                        let scale = _mm256_mul_ps(scales, _mm256_set1_ps(*xs.add(at)));
                        acc[j] = _mm256_fmadd_ps(p, scale, acc[j]);
                        if NIBBLES {
                            acc[j] = _mm256_fmadd_ps(mins, _mm256_set1_ps(*xsum.add(at)), acc[j]);
                        }
                    }
                }
                for (o, a) in out.iter_mut().zip(acc) {
                    _mm256_storeu_ps(o.as_mut_ptr(), a);
                }
            }
        };
    }

    /// [`super::pack_bytes`] with AVX2: an 8 × 8 transpose of 32-bit words, and each row's sum
    /// as `Σ(q + 128) − 32·128` from `vpsadbw`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn pack_bytes(
        rows: &[&[u8; 32]; PANEL],
        chunks: &mut [u32],
        stride: usize,
        offsets: &mut [i32],
    ) {
        let r = rows.map(|q| _mm256_loadu_si256(q.as_ptr() as *const __m256i));
        // Rows (a, b): a0 b0 a1 b1 | a4 b4 a5 b5 and a2 b2 a3 b3 | a6 b6 a7 b7, word by word.
        let t = [0, 2, 4, 6].map(|i| {
            (
                _mm256_unpacklo_epi32(r[i], r[i + 1]),
                _mm256_unpackhi_epi32(r[i], r[i + 1]),
            )
        });
        // Four rows: words 0/4, 1/5 (from the low halves), 2/6, 3/7 (from the high ones).
        let four = |x: (__m256i, __m256i), y: (__m256i, __m256i)| {
            [
                _mm256_unpacklo_epi64(x.0, y.0),
                _mm256_unpackhi_epi64(x.0, y.0),
                _mm256_unpacklo_epi64(x.1, y.1),
                _mm256_unpackhi_epi64(x.1, y.1),
            ]
        };
        let (first, last) = (four(t[0], t[1]), four(t[2], t[3]));
        let base = chunks.as_mut_ptr();
        let out = |c: usize| base.add(c * stride) as *mut __m256i;
        for c in 0..4 {
            // Word c of rows 0–3 then of rows 4–7 (low lanes), and word c + 4 (high lanes).
            _mm256_storeu_si256(out(c), _mm256_permute2x128_si256(first[c], last[c], 0x20));
            _mm256_storeu_si256(
                out(c + 4),
                _mm256_permute2x128_si256(first[c], last[c], 0x31),
            );
        }
        let flip = _mm256_set1_epi8(-128);
        for (o, row) in offsets.iter_mut().zip(r) {
            let sums = _mm256_sad_epu8(_mm256_xor_si256(row, flip), _mm256_setzero_si256());
            let pair = _mm_add_epi64(
                _mm256_castsi256_si128(sums),
                _mm256_extracti128_si256(sums, 1),
            );
            let total = _mm_cvtsi128_si64(pair) + _mm_extract_epi64(pair, 1);
            *o = -128 * (total as i32 - 32 * 128);
        }
    }

    /// The 512-bit pass (see [`super::TileKernel`]): a panel of sixteen rows against up to four
    /// activation rows; only handed out by `tile_kernel` where the CPU has AVX-512 F, BW and
    /// VNNI besides AVX2.
    pub(super) fn pass_zmm<const NIBBLES: bool>(
        panel: &Panel<WIDE>,
        x: &Activations,
        blocks: usize,
        first: usize,
        count: usize,
    ) -> [[f32; WIDE]; PASS] {
        assert!((1..=PASS).contains(&count));
        assert!((first + count) * blocks <= x.scales.len());
        assert!(x.quants.len() >= x.scales.len() * BLOCK);
        assert!(panel.quants.len() >= blocks * 8 * WIDE);
        assert!(panel.scales.len() >= blocks * WIDE);
        let rows = [0, 1, 2, 3].map(|j| (first + j.min(count - 1)) * blocks);
        let mut out = [[0f32; WIDE]; PASS];
        // SAFETY: `tile_kernel` hands this pass out only where the CPU has the instructions; the
        // asserts above bound every read (rows past `count` repeat the last one).
        unsafe {
            if count == PASS {
                kernel_zmm::<NIBBLES, 4>(panel, x, blocks, rows, &mut out);
            } else {
                for j in 0..count {
                    let mut one = [[0f32; WIDE]; 1];
                    kernel_zmm::<NIBBLES, 1>(panel, x, blocks, [rows[j]], &mut one);
                    out[j] = one[0];
                }
            }
        }
        out
    }

    /// `R` activation rows (first blocks `rows`) against one sixteen-row panel: lane `r` does
    /// what lane `r % 8` of the 256-bit kernel does for its panel.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vnni")]
    unsafe fn kernel_zmm<const NIBBLES: bool, const R: usize>(
        panel: &Panel<WIDE>,
        x: &Activations,
        blocks: usize,
        rows: [usize; R],
        out: &mut [[f32; WIDE]],
    ) {
        let (wq, ws) = (panel.quants.as_ptr(), panel.scales.as_ptr());
        let (wm, wo) = (panel.mins.as_ptr(), panel.offsets.as_ptr());
        let (xq, xs, xsum) = (x.quants.as_ptr(), x.scales.as_ptr(), x.sums.as_ptr());
        let mut acc = [_mm512_setzero_ps(); R];
        for b in 0..blocks {
            let w = wq.add(b * 8 * WIDE) as *const __m512i;
            let scales = _mm512_loadu_ps(ws.add(b * WIDE));
            let (start, mins) = if NIBBLES {
                (_mm512_setzero_si512(), _mm512_loadu_ps(wm.add(b * WIDE)))
            } else {
                let offsets = _mm512_loadu_si512(wo.add(b * WIDE) as *const __m512i);
                (offsets, _mm512_setzero_ps())
            };
            for j in 0..R {
                let at = rows[j] + b;
                let xb = xq.add(at * BLOCK) as *const i32;
                // Two chains of four, so consecutive `vpdpbusd`s do not wait.
                let (mut lo, mut hi) = (start, _mm512_setzero_si512());
                for c in 0..4 {
                    let xa = _mm512_set1_epi32(xb.add(c).read_unaligned());
                    let xc = _mm512_set1_epi32(xb.add(c + 4).read_unaligned());
                    let (wa, wc) = (
                        _mm512_loadu_si512(w.add(c)),
                        _mm512_loadu_si512(w.add(c + 4)),
                    );
                    if NIBBLES {
                        lo = _mm512_dpbusd_epi32(lo, wa, xa);
                        hi = _mm512_dpbusd_epi32(hi, wc, xc);
                    } else {
                        lo = _mm512_dpbusd_epi32(lo, xa, wa);
                        hi = _mm512_dpbusd_epi32(hi, xc, wc);
                    }
                }
                let p = _mm512_cvtepi32_ps(_mm512_add_epi32(lo, hi));
                let scale = _mm512_mul_ps(scales, _mm512_set1_ps(*xs.add(at)));
                acc[j] = _mm512_fmadd_ps(p, scale, acc[j]);
                if NIBBLES {
                    acc[j] = _mm512_fmadd_ps(mins, _mm512_set1_ps(*xsum.add(at)), acc[j]);
                }
            }
        }
        for (o, a) in out.iter_mut().zip(acc) {
            _mm512_storeu_ps(o.as_mut_ptr(), a);
        }
    }

    tile_pass!("avx2,fma,avxvnni", pass_vex, kernel_vex, |acc, u, s| {
        _mm256_dpbusd_avx_epi32(acc, u, s)
    });
}

#[cfg(test)]
mod tests {
    use super::super::tests::weights;
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};

    /// The tile product of 70 rows equals the integer row kernels' (the same 8-bit activations,
    /// the same exact integer sums; only the order of the f32 sums differs), and each row's
    /// result is the same alone as with the others.
    #[test]
    fn tiles_equal_the_row_kernels_and_do_not_depend_on_the_rows_beside() {
        let (rows, cols, m) = (45, 160, 70);
        let x: Vec<f32> = (0..m * cols).map(|i| (i as f32 * 0.11).cos()).collect();
        for dtype in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let q = QTensor::quantize(&weights(rows, cols), dtype).unwrap();
            let w = QuantMatrix::from_qtensor(&q).unwrap().unwrap();
            let Some(tiles) = w.matmul_tiles(&x, m) else {
                eprintln!("no VNNI on this CPU: the tile kernels are not tested");
                return;
            };
            let reference: Vec<f32> = x
                .chunks_exact(cols)
                .flat_map(|row| w.matmul_rows(row))
                .collect();
            for (i, (a, b)) in tiles.iter().zip(&reference).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                    "{dtype:?} {i}: {a} vs {b}"
                );
            }
            // Row 65 shares a pass with three others (64..68); alone it takes the one-row kernel.
            let alone = w.matmul_tiles(&x[65 * cols..66 * cols], 1).unwrap();
            assert_eq!(alone, tiles[65 * rows..66 * rows], "{dtype:?}");
        }
    }

    /// The 512-bit kernel's sixteen-row panels give the 256-bit kernel's bits (each of its
    /// lanes does what a 256-bit lane does), for 45 weight rows (two whole panels and a
    /// part-filled one) and 70 activation rows (a short last pass).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn wide_panels_give_the_narrow_kernels_bits() {
        let avx_vnni = std::is_x86_feature_detected!("avxvnni");
        if !(super::super::avx2() && super::super::avx512_vnni() && avx_vnni) {
            eprintln!("not both VNNI encodings on this CPU: the two tile widths are not compared");
            return;
        }
        let (rows, cols, m) = (45, 160, 70);
        let x: Vec<f32> = (0..m * cols).map(|i| (i as f32 * 0.11).cos()).collect();
        for dtype in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let q = QTensor::quantize(&weights(rows, cols), dtype).unwrap();
            let w = QuantMatrix::from_qtensor(&q).unwrap().unwrap();
            let activations = quantize_rows(&x, cols, w.packing == Packing::Bytes);
            let (narrow, wide): (Pass<PANEL>, Pass<WIDE>) = match w.packing {
                Packing::Nibbles => (x86::pass_vex::<true>, x86::pass_zmm::<true>),
                _ => (x86::pass_vex::<false>, x86::pass_zmm::<false>),
            };
            assert_eq!(
                w.tiles(&activations, m, wide),
                w.tiles(&activations, m, narrow),
                "{dtype:?}"
            );
        }
    }
}

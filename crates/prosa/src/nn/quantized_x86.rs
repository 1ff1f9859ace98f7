//! The dot products of [`super`] on x86 — AVX2, and the same with AVX-VNNI or AVX-512 VNNI: one
//! 4- or 8-bit weight row against one row of 8-bit activations, or against four rows at once
//! (each weight block loaded and unpacked once for the four: continuous batching decodes
//! several sequences per step).
//!
//! Every kernel sums in the same order — block `b` into accumulator `b % 4` (4-bit weights) or
//! `b % 2` (8-bit), then the accumulators pairwise — so a row gets bit-identical results alone
//! or with others, and a sequence decodes the same whether it shares its steps or not.

use std::arch::x86_64::*;

use half::f16;

/// A weight block's half-precision scale or minimum as f32 (F16C; exact).
#[inline(always)]
unsafe fn widen(h: f16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h.to_bits() as i32)))
}

/// 4-bit block `b`'s 32 quants as bytes, in the activations' order: the low nibbles (values
/// 0–15) in the low 128 bits, the high nibbles (values 16–31) in the high 128 bits.
#[inline(always)]
unsafe fn unpack_nibbles(wq: *const u8, b: usize) -> __m256i {
    let packed = _mm_loadu_si128(wq.add(b * 16) as *const __m128i);
    let low = _mm_set1_epi8(0x0F);
    let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low);
    _mm256_set_m128i(hi, _mm_and_si128(packed, low))
}

/// An 8-bit weight block `w` and activation block `x` as the operands of an unsigned-by-signed
/// byte product: `|w|`, and `x` carrying `w`'s sign.
#[inline(always)]
unsafe fn signed_operands(w: __m256i, x: __m256i) -> (__m256i, __m256i) {
    (_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w))
}

#[inline(always)]
unsafe fn horizontal_sum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// Σ_b min_w[b]·sum_x[b] over `n` blocks, eight at a time (then the rest in order): the term
/// the 4-bit blocks' minimums add. Every 4-bit kernel calls this one, so results stay
/// bit-identical whether a row is multiplied alone or with three others.
#[inline(always)]
unsafe fn mins_dot(wm: *const f16, xsum: *const f32, n: usize) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut b = 0;
    while b + 8 <= n {
        acc = _mm256_fmadd_ps(
            _mm256_cvtph_ps(_mm_loadu_si128(wm.add(b) as *const __m128i)),
            _mm256_loadu_ps(xsum.add(b)),
            acc,
        );
        b += 8;
    }
    let mut sum = horizontal_sum(acc);
    while b < n {
        sum += widen(*wm.add(b)) * *xsum.add(b);
        b += 1;
    }
    sum
}

/// Adds block `b`'s products `p` (8 lanes), weighted by the two scales, to `acc`.
#[inline(always)]
unsafe fn accumulate(acc: __m256, p: __m256, ws: *const f16, xs: *const f32, b: usize) -> __m256 {
    _mm256_fmadd_ps(_mm256_set1_ps(widen(*ws.add(b)) * *xs.add(b)), p, acc)
}

/// Σ over blocks of `block(b)` into four accumulators, block `b` into accumulator `b % 4` in
/// increasing `b` (the order of the four-row kernels), held in registers; then pairwise.
#[inline(always)]
unsafe fn sum_blocks4(
    n: usize,
    block: impl Fn(usize) -> __m256,
    ws: *const f16,
    xs: *const f32,
) -> __m256 {
    let mut a = [_mm256_setzero_ps(); 4];
    let mut b = 0;
    while b + 4 <= n {
        a[0] = accumulate(a[0], block(b), ws, xs, b);
        a[1] = accumulate(a[1], block(b + 1), ws, xs, b + 1);
        a[2] = accumulate(a[2], block(b + 2), ws, xs, b + 2);
        a[3] = accumulate(a[3], block(b + 3), ws, xs, b + 3);
        b += 4;
    }
    for (j, acc) in a.iter_mut().enumerate().take(n - b) {
        *acc = accumulate(*acc, block(b + j), ws, xs, b + j);
    }
    _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]))
}

/// As [`sum_blocks4`] with two accumulators (8-bit weights: block `b` into `b % 2`).
#[inline(always)]
unsafe fn sum_blocks2(
    n: usize,
    block: impl Fn(usize) -> __m256,
    ws: *const f16,
    xs: *const f32,
) -> __m256 {
    let mut a = [_mm256_setzero_ps(); 2];
    let mut b = 0;
    while b + 2 <= n {
        a[0] = accumulate(a[0], block(b), ws, xs, b);
        a[1] = accumulate(a[1], block(b + 1), ws, xs, b + 1);
        b += 2;
    }
    if b < n {
        a[0] = accumulate(a[0], block(b), ws, xs, b);
    }
    _mm256_add_ps(a[0], a[1])
}

/// Defines the four-row kernels for one instruction set: `$nibbles` (4-bit weights) and `$bytes`
/// (8-bit weights), one weight row against four activation rows (`firsts[j]` is row j's first
/// block in the activation arrays), each weight block loaded and unpacked once for the four.
/// `$dot(u, s)` is the integer dot product of 32 unsigned by 32 signed bytes, summed in groups
/// of four into eight i32 lanes.
macro_rules! four_row_kernels {
    ($features:literal, $nibbles:ident, $bytes:ident, |$u:ident, $s:ident| $dot:expr) => {
        #[doc = concat!("One 4-bit weight row against four activation rows (", $features, ").")]
        #[target_feature(enable = $features)]
        pub(super) unsafe fn $nibbles(
            ws: &[f16],
            wm: &[f16],
            wq: &[u8],
            xs: &[f32],
            xsums: &[f32],
            xq: &[i8],
            firsts: [usize; 4],
        ) -> [f32; 4] {
            let n = ws.len();
            debug_assert!(wm.len() == n && wq.len() >= n * 16);
            debug_assert!(firsts
                .iter()
                .all(|&f| f + n <= xs.len() && (f + n) * 32 <= xq.len()));
            let mut acc = [[_mm256_setzero_ps(); 4]; 4];
            let (wsp, wqp, xsp, xqp) = (ws.as_ptr(), wq.as_ptr(), xs.as_ptr(), xq.as_ptr());
            for b in 0..n {
                let $u = unpack_nibbles(wqp, b);
                let d = widen(*wsp.add(b));
                for (j, row) in acc.iter_mut().enumerate() {
                    let at = firsts[j] + b;
                    let $s = _mm256_loadu_si256(xqp.add(at * 32) as *const __m256i);
                    let p = _mm256_cvtepi32_ps($dot);
                    let a = &mut row[b % 4];
                    *a = _mm256_fmadd_ps(_mm256_set1_ps(d * *xsp.add(at)), p, *a);
                }
            }
            let mut out = [0f32; 4];
            for (j, o) in out.iter_mut().enumerate() {
                let mins = mins_dot(wm.as_ptr(), xsums.as_ptr().add(firsts[j]), n);
                let [a0, a1, a2, a3] = acc[j];
                let sum = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
                *o = horizontal_sum(sum) + mins;
            }
            out
        }

        #[doc = concat!("One 8-bit weight row against four activation rows (", $features, ").")]
        #[target_feature(enable = $features)]
        pub(super) unsafe fn $bytes(
            ws: &[f16],
            wq: &[u8],
            xs: &[f32],
            xq: &[i8],
            firsts: [usize; 4],
        ) -> [f32; 4] {
            let n = ws.len();
            debug_assert!(wq.len() >= n * 32);
            debug_assert!(firsts
                .iter()
                .all(|&f| f + n <= xs.len() && (f + n) * 32 <= xq.len()));
            let mut acc = [[_mm256_setzero_ps(); 2]; 4];
            let (wsp, wqp, xsp, xqp) = (ws.as_ptr(), wq.as_ptr(), xs.as_ptr(), xq.as_ptr());
            for b in 0..n {
                let w = _mm256_loadu_si256(wqp.add(b * 32) as *const __m256i);
                let d = widen(*wsp.add(b));
                for (j, row) in acc.iter_mut().enumerate() {
                    let at = firsts[j] + b;
                    let x = _mm256_loadu_si256(xqp.add(at * 32) as *const __m256i);
                    let ($u, $s) = signed_operands(w, x);
                    let p = _mm256_cvtepi32_ps($dot);
                    let a = &mut row[b % 2];
                    *a = _mm256_fmadd_ps(_mm256_set1_ps(d * *xsp.add(at)), p, *a);
                }
            }
            let mut out = [0f32; 4];
            for (j, o) in out.iter_mut().enumerate() {
                let [a0, a1] = acc[j];
                *o = horizontal_sum(_mm256_add_ps(a0, a1));
            }
            out
        }
    };
}

/// Defines the single-row kernels for one instruction set: `$nibbles` (Σ_b scale_w·scale_x·
/// (q_w · q_x) + min_w·sum_x over 4-bit weight blocks, four blocks per iteration into separate
/// accumulators, so consecutive FMAs do not wait on each other) and `$bytes` (8-bit weights,
/// two blocks per iteration). `$dot(w, x)` is the integer dot product of 32 unsigned by 32
/// signed bytes summed in groups of four into eight i32 lanes: AVX2's maddubs + madd, or VNNI's
/// `vpdpbusd` doing both in one instruction — the same products and sums, the same result.
macro_rules! row_kernels {
    ($features:literal, $nibbles:ident, $bytes:ident, |$w:ident, $x:ident| $dot:expr) => {
        #[doc = concat!("One 4-bit weight row against one activation row (", $features, ").")]
        #[target_feature(enable = $features)]
        pub(super) unsafe fn $nibbles(
            ws: &[f16],
            wm: &[f16],
            wq: &[u8],
            xs: &[f32],
            xsum: &[f32],
            xq: &[i8],
        ) -> f32 {
            let n = ws.len();
            debug_assert!(xs.len() >= n && wq.len() >= n * 16 && xq.len() >= n * 32);
            let (wqp, xqp) = (wq.as_ptr(), xq.as_ptr());
            let block = |b: usize| {
                let $x = _mm256_loadu_si256(xqp.add(b * 32) as *const __m256i);
                let $w = unpack_nibbles(wqp, b);
                _mm256_cvtepi32_ps($dot)
            };
            let sum = sum_blocks4(n, block, ws.as_ptr(), xs.as_ptr());
            horizontal_sum(sum) + mins_dot(wm.as_ptr(), xsum.as_ptr(), n)
        }

        #[doc = concat!("One 8-bit weight row against one activation row (", $features, ").")]
        #[target_feature(enable = $features)]
        pub(super) unsafe fn $bytes(ws: &[f16], wq: &[u8], xs: &[f32], xq: &[i8]) -> f32 {
            let n = ws.len();
            debug_assert!(xs.len() >= n && wq.len() >= n * 32 && xq.len() >= n * 32);
            let (wqp, xqp) = (wq.as_ptr(), xq.as_ptr());
            let block = |b: usize| {
                let w = _mm256_loadu_si256(wqp.add(b * 32) as *const __m256i);
                let x = _mm256_loadu_si256(xqp.add(b * 32) as *const __m256i);
                let ($w, $x) = signed_operands(w, x);
                _mm256_cvtepi32_ps($dot)
            };
            horizontal_sum(sum_blocks2(n, block, ws.as_ptr(), xs.as_ptr()))
        }
    };
}

/// The single- and four-row kernels of one instruction set.
macro_rules! kernels {
    ($features:literal, [$nibbles:ident, $bytes:ident, $nibbles4:ident, $bytes4:ident],
     |$w:ident, $x:ident| $dot:expr) => {
        row_kernels!($features, $nibbles, $bytes, |$w, $x| $dot);
        four_row_kernels!($features, $nibbles4, $bytes4, |$w, $x| $dot);
    };
}

// AVX2: maddubs (u8 × i8 pairs summed to i16), then madd with ones (pairs summed to i32).
kernels!(
    "avx2,fma,f16c",
    [dot_nibbles, dot_bytes, dot_nibbles_x4, dot_bytes_x4],
    |w, x| _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1))
);

// AVX-VNNI (VEX encoding: Intel from Alder Lake, AMD from Zen 5): `vpdpbusd` does maddubs +
// madd in one instruction (and without saturation).
kernels!(
    "avx2,fma,avxvnni,f16c",
    [
        dot_nibbles_vnni,
        dot_bytes_vnni,
        dot_nibbles_x4_vnni,
        dot_bytes_x4_vnni
    ],
    |w, x| _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), w, x)
);

// AVX-512 VNNI (EVEX encoding: Ice Lake and later Xeons, AMD Zen 4): the four-row kernels on
// 256-bit vectors, the single-row ones on 512-bit vectors (`quantized_x86_zmm.rs`).
four_row_kernels!(
    "avx2,fma,avx512vnni,avx512vl,f16c",
    dot_nibbles_x4_vnni512,
    dot_bytes_x4_vnni512,
    |w, x| _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, x)
);

#[path = "quantized_x86_zmm.rs"]
mod zmm;
pub(super) use zmm::{byte_rows, dot_bytes_vnni512, dot_nibbles_vnni512, nibble_rows};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::quantized::tests::weights;
    use crate::nn::quantized::{avx2, avx512_vnni, quantize_rows, Packing, QuantMatrix, BLOCK};
    use candle_core::quantized::{GgmlDType, QTensor};

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_kernel_equals_the_avx2_single_row_kernel_bit_for_bit() {
        if !avx2() {
            return;
        }
        // 5, 6, 7 and 18 blocks a row: every tail the wide kernels have (one block, a pair, a
        // pair and one) and SmolLM2's width.
        for cols in [160, 192, 224, 576] {
            let rows = 8;
            let x: Vec<f32> = (0..4 * cols).map(|i| (i as f32 * 0.13).sin()).collect();
            let xq = quantize_rows(&x, cols, false);
            let n = cols / BLOCK;
            let firsts = [0, 1, 2, 3].map(|i| i * n);
            let (xs, xsums, xqs) = (&xq.scales[..], &xq.sums[..], &xq.quants[..]);
            let row = |f: usize| {
                (
                    &xs[f..f + n],
                    &xsums[f..f + n],
                    &xqs[f * BLOCK..(f + n) * BLOCK],
                )
            };
            for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
                let q = QTensor::quantize(&weights(rows, cols), dtype).unwrap();
                let m = QuantMatrix::from_qtensor(&q).unwrap().unwrap();
                for r in 0..rows {
                    let wb = r * n;
                    let (ws, wm) = (&m.scales[wb..wb + n], m.mins.get(wb..wb + n).unwrap_or(&[]));
                    // SAFETY: AVX2 and FMA checked above, each VNNI kind where the CPU has it;
                    // every row has n blocks.
                    let (single, others): ([f32; 4], Vec<(&str, [f32; 4])>) = unsafe {
                        match m.packing {
                            Packing::Nibbles => {
                                let wq = &m.quants[wb * 16..(wb + n) * 16];
                                let one = |f: usize| {
                                    let (s, sums, q) = row(f);
                                    dot_nibbles(ws, wm, wq, s, sums, q)
                                };
                                let mut others = vec![(
                                    "x4",
                                    dot_nibbles_x4(ws, wm, wq, xs, xsums, xqs, firsts),
                                )];
                                let (vex, evex) =
                                    (std::is_x86_feature_detected!("avxvnni"), avx512_vnni());
                                if vex {
                                    let one_vnni = |f: usize| {
                                        let (s, sums, q) = row(f);
                                        dot_nibbles_vnni(ws, wm, wq, s, sums, q)
                                    };
                                    others.push(("vnni", firsts.map(one_vnni)));
                                    let four =
                                        dot_nibbles_x4_vnni(ws, wm, wq, xs, xsums, xqs, firsts);
                                    others.push(("vnni x4", four));
                                }
                                if evex {
                                    let one_vnni = |f: usize| {
                                        let (s, sums, q) = row(f);
                                        dot_nibbles_vnni512(ws, wm, wq, s, sums, q)
                                    };
                                    others.push(("vnni512", firsts.map(one_vnni)));
                                    let four =
                                        dot_nibbles_x4_vnni512(ws, wm, wq, xs, xsums, xqs, firsts);
                                    others.push(("vnni512 x4", four));
                                }
                                (firsts.map(one), others)
                            }
                            Packing::Bytes => {
                                let wq = &m.quants[wb * 32..(wb + n) * 32];
                                let one = |f: usize| {
                                    let (s, _, q) = row(f);
                                    dot_bytes(ws, wq, s, q)
                                };
                                let mut others =
                                    vec![("x4", dot_bytes_x4(ws, wq, xs, xqs, firsts))];
                                let (vex, evex) =
                                    (std::is_x86_feature_detected!("avxvnni"), avx512_vnni());
                                if vex {
                                    let one_vnni = |f: usize| {
                                        let (s, _, q) = row(f);
                                        dot_bytes_vnni(ws, wq, s, q)
                                    };
                                    others.push(("vnni", firsts.map(one_vnni)));
                                    others.push((
                                        "vnni x4",
                                        dot_bytes_x4_vnni(ws, wq, xs, xqs, firsts),
                                    ));
                                }
                                if evex {
                                    let one_vnni = |f: usize| {
                                        let (s, _, q) = row(f);
                                        dot_bytes_vnni512(ws, wq, s, q)
                                    };
                                    others.push(("vnni512", firsts.map(one_vnni)));
                                    let four = dot_bytes_x4_vnni512(ws, wq, xs, xqs, firsts);
                                    others.push(("vnni512 x4", four));
                                }
                                (firsts.map(one), others)
                            }
                            Packing::Half => unreachable!("only block types are made above"),
                        }
                    };
                    let bits = |v: [f32; 4]| v.map(f32::to_bits);
                    for (name, v) in others {
                        assert_eq!(
                            bits(v),
                            bits(single),
                            "{dtype:?} {cols} columns, row {r}, {name}"
                        );
                    }
                }
            }
        }
    }
}

//! The single-row kernels of `quantized_x86.rs` for AVX-512 VNNI, on 512-bit vectors: two
//! weight blocks per instruction where the 256-bit kernels take one. A decode step runs one
//! activation row against every weight row, so these carry most of its arithmetic.
//!
//! Every lane does what the same lane of the 256-bit kernel does, in the same order: a vector's
//! low eight lanes are accumulator `b % 4` (4-bit weights) or `b % 2` (8-bit) of the even block
//! of a pair, its high eight lanes that of the odd block. So the results are bit-identical to
//! the other kernels' (the kernel test compares them), and a row gets the same value alone, in
//! four-row passes, or on another CPU.

use std::arch::x86_64::*;
use std::ops::Range;

use half::f16;

use super::{accumulate, horizontal_sum, mins_dot, signed_operands, unpack_nibbles};

/// Blocks `b` and `b + 1`'s products' factors (`scale_w · scale_x`), the first over the low
/// eight lanes, the second over the high eight.
#[inline(always)]
unsafe fn pair_scales(ws: *const f16, xs: *const f32, b: usize) -> __m512 {
    let halves = _mm_cvtsi32_si128((ws.add(b) as *const i32).read_unaligned());
    let weights = _mm_cvtph_ps(halves);
    let activations = _mm_castpd_ps(_mm_load_sd(xs.add(b) as *const f64));
    let products = _mm_mul_ps(weights, activations);
    let spread = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(products))
}

/// The low and high eight lanes of `v`.
#[inline(always)]
unsafe fn halves(v: __m512) -> (__m256, __m256) {
    let high = _mm512_extractf64x4_pd(_mm512_castps_pd(v), 1);
    (_mm512_castps512_ps256(v), _mm256_castpd_ps(high))
}

/// One 4-bit weight row against one activation row: blocks `4i, 4i + 1` in one vector
/// (accumulators 0 | 1), `4i + 2, 4i + 3` in another (2 | 3).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
pub(in crate::nn::quantized) unsafe fn dot_nibbles_vnni512(
    ws: &[f16],
    wm: &[f16],
    wq: &[u8],
    xs: &[f32],
    xsum: &[f32],
    xq: &[i8],
) -> f32 {
    let n = ws.len();
    debug_assert!(xs.len() >= n && wq.len() >= n * 16 && xq.len() >= n * 32);
    let (wsp, wqp, xsp, xqp) = (ws.as_ptr(), wq.as_ptr(), xs.as_ptr(), xq.as_ptr());
    let low = _mm256_set1_epi8(0x0F);
    // Blocks c and c + 1: the low nibbles (values 0–15) and high nibbles (16–31) of each, in
    // the 128-bit lanes [low c, high c, low c+1, high c+1], against 64 activation bytes.
    let pair = |c: usize| {
        let packed = _mm256_loadu_si256(wqp.add(c * 16) as *const __m256i);
        let lo = _mm256_and_si256(packed, low);
        let hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low);
        let both = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        let w = _mm512_shuffle_i64x2(both, both, 0b11_01_10_00);
        let x = _mm512_loadu_si512(xqp.add(c * 32) as *const __m512i);
        let p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), w, x));
        (pair_scales(wsp, xsp, c), p)
    };
    let add = |acc: __m512, (scales, p): (__m512, __m512)| _mm512_fmadd_ps(scales, p, acc);
    let (mut first, mut second) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let mut b = 0;
    while b + 4 <= n {
        first = add(first, pair(b));
        second = add(second, pair(b + 2));
        b += 4;
    }
    if b + 2 <= n {
        first = add(first, pair(b));
        b += 2;
    }
    let ((a0, a1), (a2, a3)) = (halves(first), halves(second));
    let mut a = [a0, a1, a2, a3];
    for c in b..n {
        let x = _mm256_loadu_si256(xqp.add(c * 32) as *const __m256i);
        let w = unpack_nibbles(wqp, c);
        let p = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), w, x));
        a[c % 4] = accumulate(a[c % 4], p, wsp, xsp, c);
    }
    let sum = _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
    horizontal_sum(sum) + mins_dot(wm.as_ptr(), xsum.as_ptr(), n)
}

/// One 8-bit weight row against one activation row: blocks `2i, 2i + 1` in one vector
/// (accumulators 0 | 1).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
pub(in crate::nn::quantized) unsafe fn dot_bytes_vnni512(
    ws: &[f16],
    wq: &[u8],
    xs: &[f32],
    xq: &[i8],
) -> f32 {
    let n = ws.len();
    debug_assert!(xs.len() >= n && wq.len() >= n * 32 && xq.len() >= n * 32);
    let (wsp, wqp, xsp, xqp) = (ws.as_ptr(), wq.as_ptr(), xs.as_ptr(), xq.as_ptr());
    let mut acc = _mm512_setzero_ps();
    let mut b = 0;
    while b + 2 <= n {
        let w = _mm512_loadu_si512(wqp.add(b * 32) as *const __m512i);
        let x = _mm512_loadu_si512(xqp.add(b * 32) as *const __m512i);
        // The unsigned operand is |w|; the activations carry w's sign (where w is 0 the
        // product is 0 either way).
        let negative = _mm512_movepi8_mask(w);
        let x = _mm512_mask_sub_epi8(x, negative, _mm512_setzero_si512(), x);
        let p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), x);
        acc = _mm512_fmadd_ps(pair_scales(wsp, xsp, b), _mm512_cvtepi32_ps(p), acc);
        b += 2;
    }
    let (mut a0, a1) = halves(acc);
    if b < n {
        let w = _mm256_loadu_si256(wqp.add(b * 32) as *const __m256i);
        let x = _mm256_loadu_si256(xqp.add(b * 32) as *const __m256i);
        let (u, s) = signed_operands(w, x);
        let p = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s));
        a0 = accumulate(a0, p, wsp, xsp, b);
    }
    horizontal_sum(_mm256_add_ps(a0, a1))
}

/// Weight rows `rows` of a 4-bit matrix (`n` blocks a row; its scales, minimums and quants)
/// against one activation row, appended to `out`: the kernel inlined into the loop, so a
/// decode step's ~150,000 rows pay no call or dispatch each.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(in crate::nn::quantized) unsafe fn nibble_rows(
    ws: &[f16],
    wm: &[f16],
    wq: &[u8],
    (xs, xsum, xq): (&[f32], &[f32], &[i8]),
    rows: Range<usize>,
    n: usize,
    out: &mut Vec<f32>,
) {
    for r in rows {
        let b = r * n;
        let (s, m, q) = (&ws[b..b + n], &wm[b..b + n], &wq[b * 16..(b + n) * 16]);
        out.push(dot_nibbles_vnni512(s, m, q, xs, xsum, xq));
    }
}

/// As [`nibble_rows`] for an 8-bit matrix.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(in crate::nn::quantized) unsafe fn byte_rows(
    ws: &[f16],
    wq: &[u8],
    (xs, xq): (&[f32], &[i8]),
    rows: Range<usize>,
    n: usize,
    out: &mut Vec<f32>,
) {
    for r in rows {
        let b = r * n;
        out.push(dot_bytes_vnni512(
            &ws[b..b + n],
            &wq[b * 32..(b + n) * 32],
            xs,
            xq,
        ));
    }
}

//! The AVX2 dot products of [`super`]: one 4- or 8-bit weight row against one row of 8-bit
//! activations, or against four rows at once (each weight block loaded and unpacked once for
//! the four: continuous batching decodes several sequences per step).
//!
//! Every kernel sums in the same order — block `b` into accumulator `b % 4` (4-bit weights) or
//! `b % 2` (8-bit), then the accumulators pairwise — so a row gets bit-identical results alone
//! or with others, and a sequence decodes the same whether it shares its steps or not.

use std::arch::x86_64::*;

#[inline(always)]
unsafe fn horizontal_sum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// The integer dot product of one 4-bit weight block with one 8-bit activation block, as
/// 8 lanes of i32 converted to f32.
#[inline(always)]
unsafe fn nibble_block(wq: *const u8, xq: *const i8) -> __m256 {
    let low = _mm_set1_epi8(0x0F);
    let packed = _mm_loadu_si128(wq as *const __m128i);
    let lo = _mm_and_si128(packed, low);
    let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low);
    let w = _mm256_set_m128i(hi, lo);
    let x = _mm256_loadu_si256(xq as *const __m256i);
    let products = _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1));
    _mm256_cvtepi32_ps(products)
}

/// Σ_b scale_w·scale_x·(q_w · q_x) + min_w·sum_x over 4-bit weight blocks; two blocks per
/// iteration into separate accumulators, so consecutive FMAs do not wait on each other.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn dot_nibbles(
    ws: &[f32],
    wm: &[f32],
    wq: &[u8],
    xs: &[f32],
    xsum: &[f32],
    xq: &[i8],
) -> f32 {
    let n = ws.len();
    let mut acc = [_mm256_setzero_ps(); 4];
    for b in 0..n {
        let p = nibble_block(wq.as_ptr().add(b * 16), xq.as_ptr().add(b * 32));
        let a = &mut acc[b % 4];
        *a = _mm256_fmadd_ps(_mm256_set1_ps(ws[b] * xs[b]), p, *a);
    }
    let (acc0, acc1) = (_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mins: f32 = wm.iter().zip(xsum).map(|(m, s)| m * s).sum();
    horizontal_sum(_mm256_add_ps(acc0, acc1)) + mins
}

/// The integer dot product of one 8-bit weight block with one 8-bit activation block.
#[inline(always)]
unsafe fn byte_block(wq: *const u8, xq: *const i8) -> __m256 {
    let w = _mm256_loadu_si256(wq as *const __m256i);
    let x = _mm256_loadu_si256(xq as *const __m256i);
    // maddubs needs an unsigned operand: |w| and x carrying w's sign.
    let products = _mm256_madd_epi16(
        _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w)),
        _mm256_set1_epi16(1),
    );
    _mm256_cvtepi32_ps(products)
}

/// Σ_b scale_w·scale_x·(q_w · q_x) over 8-bit weight blocks, two blocks per iteration.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn dot_bytes(ws: &[f32], wq: &[u8], xs: &[f32], xq: &[i8]) -> f32 {
    let n = ws.len();
    let mut acc = [_mm256_setzero_ps(); 2];
    for b in 0..n {
        let p = byte_block(wq.as_ptr().add(b * 32), xq.as_ptr().add(b * 32));
        let a = &mut acc[b % 2];
        *a = _mm256_fmadd_ps(_mm256_set1_ps(ws[b] * xs[b]), p, *a);
    }
    let (acc0, acc1) = (acc[0], acc[1]);
    horizontal_sum(_mm256_add_ps(acc0, acc1))
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
            ws: &[f32],
            wm: &[f32],
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
            let low = _mm_set1_epi8(0x0F);
            let mut acc = [[_mm256_setzero_ps(); 4]; 4];
            let (wsp, wqp, xsp, xqp) = (ws.as_ptr(), wq.as_ptr(), xs.as_ptr(), xq.as_ptr());
            for b in 0..n {
                let packed = _mm_loadu_si128(wqp.add(b * 16) as *const __m128i);
                let lo = _mm_and_si128(packed, low);
                let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low);
                let $u = _mm256_set_m128i(hi, lo);
                let d = *wsp.add(b);
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
                let mins: f32 = wm
                    .iter()
                    .zip(&xsums[firsts[j]..firsts[j] + n])
                    .map(|(m, s)| m * s)
                    .sum();
                let [a0, a1, a2, a3] = acc[j];
                let sum = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
                *o = horizontal_sum(sum) + mins;
            }
            out
        }

        #[doc = concat!("One 8-bit weight row against four activation rows (", $features, ").")]
        #[target_feature(enable = $features)]
        pub(super) unsafe fn $bytes(
            ws: &[f32],
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
                // The unsigned operand is |w|; the activations carry w's sign.
                let $u = _mm256_sign_epi8(w, w);
                let d = *wsp.add(b);
                for (j, row) in acc.iter_mut().enumerate() {
                    let at = firsts[j] + b;
                    let x = _mm256_loadu_si256(xqp.add(at * 32) as *const __m256i);
                    let $s = _mm256_sign_epi8(x, w);
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

four_row_kernels!("avx2,fma", dot_nibbles_x4, dot_bytes_x4, |u, s| {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
});

// AVX-VNNI: `vpdpbusd` does maddubs + madd in one instruction (and without saturation).
four_row_kernels!(
    "avx2,fma,avxvnni",
    dot_nibbles_x4_vnni,
    dot_bytes_x4_vnni,
    |u, s| _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s)
);

/// [`dot_nibbles`] with AVX-VNNI.
#[target_feature(enable = "avx2,fma,avxvnni")]
pub(super) unsafe fn dot_nibbles_vnni(
    ws: &[f32],
    wm: &[f32],
    wq: &[u8],
    xs: &[f32],
    xsum: &[f32],
    xq: &[i8],
) -> f32 {
    let n = ws.len();
    debug_assert!(xs.len() >= n && wq.len() >= n * 16 && xq.len() >= n * 32);
    let low = _mm_set1_epi8(0x0F);
    let zero = _mm256_setzero_si256();
    let mut acc = [_mm256_setzero_ps(); 4];
    let (wsp, wqp, xsp, xqp) = (ws.as_ptr(), wq.as_ptr(), xs.as_ptr(), xq.as_ptr());
    for b in 0..n {
        let packed = _mm_loadu_si128(wqp.add(b * 16) as *const __m128i);
        let lo = _mm_and_si128(packed, low);
        let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low);
        let x = _mm256_loadu_si256(xqp.add(b * 32) as *const __m256i);
        let p = _mm256_cvtepi32_ps(_mm256_dpbusd_avx_epi32(zero, _mm256_set_m128i(hi, lo), x));
        let a = &mut acc[b % 4];
        *a = _mm256_fmadd_ps(_mm256_set1_ps(*wsp.add(b) * *xsp.add(b)), p, *a);
    }
    let (acc0, acc1) = (_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mins: f32 = wm.iter().zip(xsum).map(|(m, s)| m * s).sum();
    horizontal_sum(_mm256_add_ps(acc0, acc1)) + mins
}

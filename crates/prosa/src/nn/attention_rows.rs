//! One head of a fused attention block (`fused_attention.rs`) row by row in AVX-512
//! registers, for heads of a multiple of 16 values: each query row's scores against keys
//! transposed once per head (16 × 16 blocks in registers; 16 keys per vector), the scaled,
//! masked softmax on those vectors (masked lanes instead of scalar tails; in registers, before
//! the weights are stored, when a row has at most 64 keys) and the mixing of the values — no
//! `gemm` call and no scalar loop per row. A tweet's attention (30 keys, heads of 32) is short
//! rows: through two `gemm` calls per head and a softmax with a 14-value scalar tail per row it
//! took a tenth of MiniLM's time (~9% of the profile; 6.1% with the kernel's first form, whose
//! keys were transposed one value at a time and softmax made on stored scores; 4.5% now).

/// What one head of a block of query rows reads.
pub(super) struct HeadBlock<'a> {
    /// Query row `i` at `q[i·q_row..][..head_dim]`.
    pub q: &'a [f32],
    pub q_row: usize,
    /// Key `j` at `k[j·kv_row..][..head_dim]`, its value at `v[j·kv_row..][..head_dim]`.
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub kv_row: usize,
    /// Keys scored (the bias has one entry per key).
    pub keys: usize,
    pub head_dim: usize,
    /// Added to the scaled scores: the padding bias.
    pub bias: &'a [f32],
    pub scale: f32,
    /// Causal: query row `i` sees keys `..first_seen + i + 1` (and none past `keys`).
    pub first_seen: Option<usize>,
}

impl HeadBlock<'_> {
    /// The keys query row `i` of the block sees: all of them, or when causal those up to its
    /// position.
    #[inline(always)]
    fn seen(&self, i: usize) -> usize {
        self.first_seen
            .map_or(self.keys, |f| (f + i + 1).min(self.keys))
    }
}

/// Buffers a task keeps from head to head: the transposed keys and a few rows' scores.
#[derive(Default)]
pub(super) struct Buffers {
    keys_t: Vec<f32>,
    /// Where the keys in `keys_t` came from (first key's address, keys, row stride, head
    /// width): the query heads of a group read the same keys, transposed once.
    keys_from: Option<(usize, usize, usize, usize)>,
    scores: Vec<f32>,
}

/// Whether [`attend_head`] runs here: AVX-512F and heads of a multiple of 16 values.
pub(super) fn applies(head_dim: usize) -> bool {
    head_dim > 0 && head_dim.is_multiple_of(16) && super::panel_tasks::has_avx512f()
}

/// `softmax(scale · q·kᵀ + bias) · v` for `rows` query rows of one head, row `i` written to
/// `out[i·out_row..][..head_dim]`. Only where [`applies`] said so.
pub(super) fn attend_head(
    h: &HeadBlock,
    rows: usize,
    out: &mut [f32],
    out_row: usize,
    buffers: &mut Buffers,
) {
    let (keys, d) = (h.keys, h.head_dim);
    assert!(applies(d), "attend_head: AVX-512F and heads of 16·n values");
    if rows == 0 {
        return;
    }
    assert!(out.len() >= (rows - 1) * out_row + d);
    if keys == 0 {
        // Nothing to attend to: the mixing of no values, as `gemm` gives it.
        (0..rows).for_each(|i| out[i * out_row..i * out_row + d].fill(0.0));
        return;
    }
    let padded = keys.div_ceil(16) * 16;
    assert!(h.bias.len() >= keys);
    assert!(h.k.len() >= (keys - 1) * h.kv_row + d);
    assert!(h.v.len() >= (keys - 1) * h.kv_row + d);
    assert!(h.q.len() >= (rows - 1) * h.q_row + d);
    // Key j's value c at c·padded + j; keys past the last are 0.
    let source = (h.k.as_ptr() as usize, keys, h.kv_row, d);
    let keys_t = &mut buffers.keys_t;
    if keys_t.len() < d * padded {
        keys_t.resize(d * padded, 0.0);
    }
    buffers.scores.resize(ROWS * padded, 0.0);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is present (`applies`); the asserts above bound every row read and
    // written, and the buffers are at least `d × padded` (keys) and `ROWS × padded` (scores)
    // long.
    unsafe {
        if buffers.keys_from != Some(source) {
            x86::transpose_keys(h, &mut keys_t[..d * padded]);
            buffers.keys_from = Some(source);
        }
        x86::rows(h, rows, out, out_row, keys_t, &mut buffers.scores)
    }
}

/// Query rows taken together: each key vector and value row loaded once for six rows, and six
/// rows' independent sums hide the multiply-add latency — a tweet's heads (32 keys, 32 values)
/// have two vectors per row, so four rows kept only eight sums in flight (MiniLM A/B ×1.008).
const ROWS: usize = 6;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{HeadBlock, ROWS};
    use crate::nn::activation::exp_fast_lanes;
    use crate::nn::transpose::x86::transpose16;

    /// Vectors (of keys, or of a value row) kept in registers at once per row.
    const VECTORS: usize = 4;

    /// Calls `$f::<R, N>($args)` for the `R` in 1..=6 and `N` in 1..=4 given at run time.
    macro_rules! dispatch {
        ($r:expr, $n:expr, $f:ident($($arg:expr),*)) => {
            match $r {
                1 => dispatch!(@n 1, $n, $f($($arg),*)),
                2 => dispatch!(@n 2, $n, $f($($arg),*)),
                3 => dispatch!(@n 3, $n, $f($($arg),*)),
                4 => dispatch!(@n 4, $n, $f($($arg),*)),
                5 => dispatch!(@n 5, $n, $f($($arg),*)),
                _ => dispatch!(@n 6, $n, $f($($arg),*)),
            }
        };
        (@n $r:literal, $n:expr, $f:ident($($arg:expr),*)) => {
            match $n {
                1 => $f::<$r, 1>($($arg),*),
                2 => $f::<$r, 2>($($arg),*),
                3 => $f::<$r, 3>($($arg),*),
                _ => $f::<$r, 4>($($arg),*),
            }
        };
    }

    /// Writes key `j`'s value `c` at `keys_t[c·padded + j]`, `padded` = `keys_t.len() / d`
    /// (a multiple of 16), keys past the last as 0: 16 × 16 blocks transposed in registers.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transpose_keys(h: &HeadBlock, keys_t: &mut [f32]) {
        let (keys, d) = (h.keys, h.head_dim);
        let padded = keys_t.len() / d;
        let out = keys_t.as_mut_ptr();
        for first_key in (0..padded).step_by(16) {
            for first_value in (0..d).step_by(16) {
                let rows: [__m512; 16] = std::array::from_fn(|j| {
                    let key = first_key + j;
                    if key < keys {
                        _mm512_loadu_ps(h.k.as_ptr().add(key * h.kv_row + first_value))
                    } else {
                        _mm512_setzero_ps()
                    }
                });
                for (c, column) in transpose16(rows).into_iter().enumerate() {
                    _mm512_storeu_ps(out.add((first_value + c) * padded + first_key), column);
                }
            }
        }
    }

    /// `scores` holds [`ROWS`] rows of `padded` scores.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn rows(
        h: &HeadBlock,
        rows: usize,
        out: &mut [f32],
        out_row: usize,
        keys_t: &[f32],
        scores: &mut [f32],
    ) {
        let d = h.head_dim;
        let padded = scores.len() / ROWS;
        for first in (0..rows).step_by(ROWS) {
            let r = ROWS.min(rows - first);
            let q = h.q.as_ptr().add(first * h.q_row);
            // Causal: no row of these sees keys past the last row's; their scores are not made.
            let seen = h.seen(first + r - 1);
            let span = seen.div_ceil(16) * 16;
            if span <= 16 * VECTORS {
                // The whole rows fit in registers: their softmax is taken there, before the
                // weights are stored.
                let sums = Broadcast {
                    weights: q,
                    weight_row: h.q_row,
                    vectors: keys_t.as_ptr(),
                    vector_row: padded,
                    steps: d,
                    out: scores.as_mut_ptr(),
                    out_row: padded,
                };
                dispatch!(r, span / 16, scores_in_registers(sums, h, first));
            } else {
                scores_then_softmax(h, (first, r), keys_t, scores);
            }
            // Mixing: the weights of keys past the last row's `seen` are 0 for every row.
            let o = out.as_mut_ptr().add(first * out_row);
            for at in (0..d).step_by(16 * VECTORS) {
                let n = ((d - at) / 16).min(VECTORS);
                // Mixing: each row's weights against the value rows.
                let sums = Broadcast {
                    weights: scores.as_ptr(),
                    weight_row: padded,
                    vectors: h.v.as_ptr().add(at),
                    vector_row: h.kv_row,
                    steps: seen,
                    out: o.add(at),
                    out_row,
                };
                dispatch!(r, n, broadcast_sums(sums));
            }
        }
    }

    /// Rows' scores past [`VECTORS`] vectors: made a vector chunk at a time into `scores`, then
    /// each row's softmax over them there.
    #[inline(always)]
    unsafe fn scores_then_softmax(
        h: &HeadBlock,
        (first, r): (usize, usize),
        keys_t: &[f32],
        scores: &mut [f32],
    ) {
        let padded = scores.len() / ROWS;
        let q = h.q.as_ptr().add(first * h.q_row);
        let span = h.seen(first + r - 1).div_ceil(16) * 16;
        for at in (0..span).step_by(16 * VECTORS) {
            let n = ((span - at) / 16).min(VECTORS);
            // Scores: each row's query values against the transposed keys.
            let sums = Broadcast {
                weights: q,
                weight_row: h.q_row,
                vectors: keys_t.as_ptr().add(at),
                vector_row: padded,
                steps: h.head_dim,
                out: scores.as_mut_ptr().add(at),
                out_row: padded,
            };
            dispatch!(r, n, broadcast_sums(sums));
        }
        for (i, row) in scores.chunks_exact_mut(padded).take(r).enumerate() {
            softmax(&mut row[..span], h.bias, h.scale, h.seen(first + i));
        }
    }

    /// Where one of the kernel's two products lies: `R` rows of `steps` weights (row `r`'s
    /// weight `j` at `weights[r·weight_row + j]`) against `steps` rows of vectors (`N` vectors
    /// of 16 from `vectors[j·vector_row]`), row `r`'s `N` sums written from `out[r·out_row]`.
    #[derive(Clone, Copy)]
    struct Broadcast {
        weights: *const f32,
        weight_row: usize,
        vectors: *const f32,
        vector_row: usize,
        steps: usize,
        out: *mut f32,
        out_row: usize,
    }

    /// `out[r·out_row + 16t..][..16] = Σ_j weights[r·weight_row + j] ·
    /// vectors[j·vector_row + 16t..][..16]` for `R` rows and `N` vectors: each step's vectors
    /// loaded once for the rows, each weight broadcast.
    #[inline(always)]
    unsafe fn broadcast_sums<const R: usize, const N: usize>(b: Broadcast) {
        for (r, sums) in sums::<R, N>(&b).into_iter().enumerate() {
            for (t, a) in sums.into_iter().enumerate() {
                _mm512_storeu_ps(b.out.add(r * b.out_row + 16 * t), a);
            }
        }
    }

    /// [`broadcast_sums`] of the scores of the block's rows `first..first + R`, each row's
    /// [`softmax`] taken in registers before the weights are stored: `N` vectors are the
    /// whole (padded) row.
    #[inline(always)]
    unsafe fn scores_in_registers<const R: usize, const N: usize>(
        b: Broadcast,
        h: &HeadBlock,
        first: usize,
    ) {
        let scale = _mm512_set1_ps(h.scale);
        // Each step for every row before the next: the rows' chains (a maximum, the
        // exponentials, a sum, each ending in a reduction across lanes) are independent, and
        // side by side their latencies overlap — row by row, the softmax took half the kernel.
        let mut rows = sums::<R, N>(&b);
        let mut maxima = [_mm512_setzero_ps(); R];
        for (r, (row, maximum)) in rows.iter_mut().zip(&mut maxima).enumerate() {
            let seen = h.seen(first + r);
            let mut max = _mm512_set1_ps(f32::NEG_INFINITY);
            for (t, x) in row.iter_mut().enumerate() {
                *x = scaled_seen(*x, h.bias, scale, (seen, t));
                max = _mm512_max_ps(max, *x);
            }
            *maximum = _mm512_set1_ps(_mm512_reduce_max_ps(max));
        }
        let mut totals = [_mm512_setzero_ps(); R];
        for ((row, max), total) in rows.iter_mut().zip(maxima).zip(&mut totals) {
            for x in row.iter_mut() {
                *x = exp_or_zero(_mm512_sub_ps(*x, max));
                *total = _mm512_add_ps(*total, *x);
            }
        }
        for (r, (row, total)) in rows.into_iter().zip(totals).enumerate() {
            let inv = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(total));
            for (t, x) in row.into_iter().enumerate() {
                _mm512_storeu_ps(b.out.add(r * b.out_row + 16 * t), _mm512_mul_ps(x, inv));
            }
        }
    }

    /// Vector `t` of a row's scores (keys `16t..16t + 16`) scaled plus the `bias`, −∞ in the
    /// lanes past the row's first `seen` keys (whose bias is not read).
    #[inline(always)]
    unsafe fn scaled_seen(
        x: __m512,
        bias: &[f32],
        scale: __m512,
        (seen, t): (usize, usize),
    ) -> __m512 {
        let n = seen.saturating_sub(16 * t).min(16);
        let mask = ((1u32 << n) - 1) as __mmask16;
        let b = _mm512_maskz_loadu_ps(mask, bias.as_ptr().add(16 * t));
        let scaled = _mm512_add_ps(_mm512_mul_ps(x, scale), b);
        _mm512_mask_blend_ps(mask, _mm512_set1_ps(f32::NEG_INFINITY), scaled)
    }

    /// `exp(x)`, exactly 0 below −87 (masked lanes: −∞).
    #[inline(always)]
    unsafe fn exp_or_zero(x: __m512) -> __m512 {
        let e = exp_fast_lanes(x);
        _mm512_maskz_mov_ps(
            _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, _mm512_set1_ps(-87.0)),
            e,
        )
    }

    /// The `R` rows' `N` sums of [`broadcast_sums`], in registers.
    #[inline(always)]
    unsafe fn sums<const R: usize, const N: usize>(b: &Broadcast) -> [[__m512; N]; R] {
        let mut acc = [[_mm512_setzero_ps(); N]; R];
        for j in 0..b.steps {
            let row = b.vectors.add(j * b.vector_row);
            let vectors = std::array::from_fn::<__m512, N, _>(|t| _mm512_loadu_ps(row.add(16 * t)));
            for (r, sums) in acc.iter_mut().enumerate() {
                let weight = _mm512_set1_ps(*b.weights.add(r * b.weight_row + j));
                for (a, v) in sums.iter_mut().zip(vectors) {
                    *a = _mm512_fmadd_ps(v, weight, *a);
                }
            }
        }
        acc
    }

    /// `scores ← softmax(scale · scores + bias)` over the first `seen` keys, 0 past them (the
    /// padded lanes too); entries more than 87 below the maximum exactly 0.
    #[inline(always)]
    unsafe fn softmax(scores: &mut [f32], bias: &[f32], scale: f32, seen: usize) {
        let s = scores.as_mut_ptr();
        let scale = _mm512_set1_ps(scale);
        let mut max = _mm512_set1_ps(f32::NEG_INFINITY);
        let vectors = scores.len() / 16;
        for t in 0..vectors {
            let x = scaled_seen(_mm512_loadu_ps(s.add(16 * t)), bias, scale, (seen, t));
            _mm512_storeu_ps(s.add(16 * t), x);
            max = _mm512_max_ps(max, x);
        }
        let max = _mm512_set1_ps(_mm512_reduce_max_ps(max));
        let mut sum = _mm512_setzero_ps();
        for t in 0..vectors {
            let e = exp_or_zero(_mm512_sub_ps(_mm512_loadu_ps(s.add(16 * t)), max));
            _mm512_storeu_ps(s.add(16 * t), e);
            sum = _mm512_add_ps(sum, e);
        }
        let inv = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(sum));
        for t in 0..vectors {
            _mm512_storeu_ps(
                s.add(16 * t),
                _mm512_mul_ps(_mm512_loadu_ps(s.add(16 * t)), inv),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_transposed_with_zeros_past_the_last() {
        if !applies(16) {
            return;
        }
        // 37 keys (three blocks of 16, the last partly padding), heads of 48, rows of 100.
        let (keys, d, row) = (37, 48, 100);
        let k: Vec<f32> = (0..keys * row).map(|i| i as f32).collect();
        let head = HeadBlock {
            q: &[],
            q_row: 0,
            k: &k,
            v: &k,
            kv_row: row,
            keys,
            head_dim: d,
            bias: &[],
            scale: 1.0,
            first_seen: None,
        };
        let padded = 48;
        let mut keys_t = vec![f32::NAN; d * padded];
        // SAFETY: AVX-512F is present (`applies`); 37 rows of 100 values hold every key read.
        unsafe { x86::transpose_keys(&head, &mut keys_t) };
        for c in 0..d {
            for j in 0..padded {
                let expected = if j < keys { k[j * row + c] } else { 0.0 };
                assert_eq!(keys_t[c * padded + j], expected, "value {c} of key {j}");
            }
        }
    }
}

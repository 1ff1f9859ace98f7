//! One head of a fused attention block (`fused_attention.rs`) row by row in AVX-512
//! registers, for heads of a multiple of 16 values: each query row's scores against keys
//! transposed once per head (16 keys per vector), the scaled, masked softmax on those vectors
//! (masked lanes instead of scalar tails) and the mixing of the values — no `gemm` call and no
//! scalar loop per row. A tweet's attention (30 keys, heads of 32) is short rows: through two
//! `gemm` calls per head and a softmax with a 14-value scalar tail per row it took a tenth of
//! MiniLM's time (~9% of the profile; ~4.5% now).

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
    if buffers.keys_from != Some(source) {
        keys_t.clear();
        keys_t.resize(d * padded, 0.0);
        for j in 0..keys {
            let key = &h.k[j * h.kv_row..j * h.kv_row + d];
            for (c, &value) in key.iter().enumerate() {
                keys_t[c * padded + j] = value;
            }
        }
        buffers.keys_from = Some(source);
    }
    buffers.scores.resize(ROWS * padded, 0.0);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is present (`applies`); the asserts above bound every row read and
    // written, and the buffers are `d × padded` (keys) and `ROWS × padded` (scores) long.
    unsafe {
        x86::rows(h, rows, out, out_row, keys_t, &mut buffers.scores)
    }
}

/// Query rows taken together: each key vector and value row loaded once for four rows, and
/// four rows' independent sums hide the multiply-add latency.
const ROWS: usize = 4;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{HeadBlock, ROWS};
    use crate::nn::activation::exp_fast_lanes;

    /// Vectors (of keys, or of a value row) kept in registers at once per row.
    const VECTORS: usize = 4;

    /// Calls `$f::<R, N>($args)` for the `R` in 1..=4 and `N` in 1..=4 given at run time.
    macro_rules! dispatch {
        ($r:expr, $n:expr, $f:ident($($arg:expr),*)) => {
            match ($r, $n) {
                (1, 1) => $f::<1, 1>($($arg),*),
                (1, 2) => $f::<1, 2>($($arg),*),
                (1, 3) => $f::<1, 3>($($arg),*),
                (1, _) => $f::<1, 4>($($arg),*),
                (2, 1) => $f::<2, 1>($($arg),*),
                (2, 2) => $f::<2, 2>($($arg),*),
                (2, 3) => $f::<2, 3>($($arg),*),
                (2, _) => $f::<2, 4>($($arg),*),
                (3, 1) => $f::<3, 1>($($arg),*),
                (3, 2) => $f::<3, 2>($($arg),*),
                (3, 3) => $f::<3, 3>($($arg),*),
                (3, _) => $f::<3, 4>($($arg),*),
                (_, 1) => $f::<4, 1>($($arg),*),
                (_, 2) => $f::<4, 2>($($arg),*),
                (_, 3) => $f::<4, 3>($($arg),*),
                (_, _) => $f::<4, 4>($($arg),*),
            }
        };
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
        let (keys, d) = (h.keys, h.head_dim);
        let padded = scores.len() / ROWS;
        let seen_by = |i: usize| h.first_seen.map_or(keys, |f| (f + i + 1).min(keys));
        for first in (0..rows).step_by(ROWS) {
            let r = ROWS.min(rows - first);
            let q = h.q.as_ptr().add(first * h.q_row);
            // Causal: no row of these sees keys past the last row's; their scores are not made.
            let seen = seen_by(first + r - 1);
            let span = seen.div_ceil(16) * 16;
            for at in (0..span).step_by(16 * VECTORS) {
                let n = ((span - at) / 16).min(VECTORS);
                // Scores: each row's query values against the transposed keys.
                let sums = Broadcast {
                    weights: q,
                    weight_row: h.q_row,
                    vectors: keys_t.as_ptr().add(at),
                    vector_row: padded,
                    steps: d,
                    out: scores.as_mut_ptr().add(at),
                    out_row: padded,
                };
                dispatch!(r, n, broadcast_sums(sums));
            }
            for (i, row) in scores.chunks_exact_mut(padded).take(r).enumerate() {
                softmax(&mut row[..span], h.bias, h.scale, seen_by(first + i));
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
        for (r, sums) in acc.into_iter().enumerate() {
            for (t, a) in sums.into_iter().enumerate() {
                _mm512_storeu_ps(b.out.add(r * b.out_row + 16 * t), a);
            }
        }
    }

    /// `scores ← softmax(scale · scores + bias)` over the first `seen` keys, 0 past them (the
    /// padded lanes too); entries more than 87 below the maximum exactly 0.
    #[inline(always)]
    unsafe fn softmax(scores: &mut [f32], bias: &[f32], scale: f32, seen: usize) {
        let s = scores.as_mut_ptr();
        let scale_v = _mm512_set1_ps(scale);
        let minus_inf = _mm512_set1_ps(f32::NEG_INFINITY);
        let mut max = minus_inf;
        let vectors = scores.len() / 16;
        let lanes = |t: usize| -> __mmask16 {
            let n = seen.saturating_sub(16 * t).min(16);
            ((1u32 << n) - 1) as __mmask16
        };
        for t in 0..vectors {
            let mask = lanes(t);
            let b = _mm512_maskz_loadu_ps(mask, bias.as_ptr().add(16 * t));
            let x = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(s.add(16 * t)), scale_v), b);
            let x = _mm512_mask_blend_ps(mask, minus_inf, x);
            _mm512_storeu_ps(s.add(16 * t), x);
            max = _mm512_max_ps(max, x);
        }
        let max = _mm512_set1_ps(_mm512_reduce_max_ps(max));
        let mut sum = _mm512_setzero_ps();
        for t in 0..vectors {
            let x = _mm512_sub_ps(_mm512_loadu_ps(s.add(16 * t)), max);
            // exp_or_zero: below −87 (masked lanes: −∞) exactly 0.
            let e = exp_fast_lanes(x);
            let e = _mm512_maskz_mov_ps(
                _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, _mm512_set1_ps(-87.0)),
                e,
            );
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

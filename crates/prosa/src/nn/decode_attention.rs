//! The attention of one new position per sequence over its key/value cache, on slices.
//!
//! Decoding adds one query per sequence; its scores, masked softmax and mixing over the cached
//! positions are a few dot products per head. The layers' tensor code (a grouped product, the
//! masked-softmax op, a second product) and the fused decode step of a quantized Llama
//! (`models/decoder/fused_decode.rs`) both call this one kernel, so the two paths give the same
//! bits — with 8-bit quantized activations a last-digit difference in one layer can flip a
//! rounding in the next product and grow from there.

use super::lanes::vectorized;
use super::softmax::softmax_in_place;
use super::spin_pool;

/// The shapes of a decode-step attention.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DecodeShape {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (each serves `heads / kv_heads` query heads).
    pub kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
    /// Positions each cache buffer has room for.
    pub capacity: usize,
    /// Positions cached (the new one included).
    pub len: usize,
    /// The factor of the scores.
    pub scale: f32,
}

/// `q` (batch, heads, head_dim) attending to `keys`/`values` (batch, kv_heads, capacity,
/// head_dim; the first `len` positions real) with `bias` (batch, len) added to the scaled
/// scores (0 for a real token, a large negative number for padding): the contexts (batch,
/// heads, head_dim). The arithmetic of the masked-softmax op: `s = q·k · scale + bias`,
/// `exp(s − max)`, times the inverse of their sum.
pub(crate) fn decode_attention(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    bias: &[f32],
    shape: DecodeShape,
) -> Vec<f32> {
    attend_rows(q, keys, values, bias, shape, |b| b)
}

/// Cross-attention of one new query per decoder row: as [`decode_attention`], with `keys`,
/// `values` (sources, kv_heads, capacity, head_dim) and `bias` (sources, len) of the encoded
/// sources, and row `b` reading source `sources[b]` (beams share their source's memory).
pub(crate) fn cross_attention(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    bias: &[f32],
    shape: DecodeShape,
    sources: &[u32],
) -> Vec<f32> {
    attend_rows(q, keys, values, bias, shape, |b| sources[b] as usize)
}

/// Every row's heads, row `b` reading the keys, values and bias of row `memory_row(b)`; rows
/// in parallel when there is enough work (each head's arithmetic is the same either way).
fn attend_rows(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    bias: &[f32],
    shape: DecodeShape,
    memory_row: impl Fn(usize) -> usize + Sync,
) -> Vec<f32> {
    let row = shape.heads * shape.head_dim;
    let mut context = vec![0f32; q.len()];
    let attend = |(b, out): (usize, &mut [f32])| {
        let rows = (b, memory_row(b));
        attend_heads(q, keys, values, bias, shape, rows, 0..shape.heads, out);
    };
    // Multiply-adds of the scores and the mixing.
    let work = q.len() * shape.len * 2;
    if work >= PARALLEL_WORK && q.len() > row {
        spin_pool::for_each_chunk_mut(&mut context, row, |b, out| attend((b, out)));
    } else {
        context.chunks_mut(row).enumerate().for_each(attend);
    }
    context
}

/// Below this many multiply-adds the rows run on the calling thread.
const PARALLEL_WORK: usize = 1 << 17;

/// The contexts of query heads `heads` of batch row 0 (heads.len() × head_dim), each exactly
/// as [`decode_attention`] computes it: the threads of a decode step share the heads.
pub(crate) fn decode_attention_heads(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    bias: &[f32],
    shape: DecodeShape,
    heads: std::ops::Range<usize>,
) -> Vec<f32> {
    let mut context = vec![0f32; heads.len() * shape.head_dim];
    attend_heads(q, keys, values, bias, shape, (0, 0), heads, &mut context);
    context
}

/// Query heads `heads` of row `b` over the keys, values and bias of row `from` into `out`
/// (heads.len() × head_dim, zeroed), compiled for AVX-512 where the CPU has it. The lanes of
/// every sum are fixed by the code, so both builds give the same bits.
#[allow(clippy::too_many_arguments)]
fn attend_heads(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    bias: &[f32],
    shape: DecodeShape,
    rows: (usize, usize),
    heads: std::ops::Range<usize>,
    out: &mut [f32],
) {
    vectorized(
        #[inline(always)]
        || {
            let mut weights = vec![0f32; shape.len];
            for (head, out) in heads.zip(out.chunks_exact_mut(shape.head_dim)) {
                let w = &mut weights;
                if shape.head_dim == 64 {
                    // The common width as a constant: a copy whose loops the compiler unrolls.
                    let shape = DecodeShape {
                        head_dim: 64,
                        ..shape
                    };
                    attend_head(q, keys, values, bias, shape, rows, head, w, out);
                } else {
                    attend_head(q, keys, values, bias, shape, rows, head, w, out);
                }
            }
        },
    )
}

/// One query head of batch row `b` over the keys, values and bias of row `from` into `out`
/// (head_dim, zeroed); `weights` is scratch of `len` values.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attend_head(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    bias: &[f32],
    shape: DecodeShape,
    (b, from): (usize, usize),
    head: usize,
    weights: &mut [f32],
    out: &mut [f32],
) {
    let DecodeShape {
        heads,
        kv_heads,
        head_dim: dh,
        capacity,
        len,
        scale,
    } = shape;
    let mask = &bias[from * len..(from + 1) * len];
    // Query heads per key/value head: no division where each has its own.
    let kv_head = if heads == kv_heads {
        head
    } else {
        head / (heads / kv_heads)
    };
    let base = ((from * kv_heads) + kv_head) * capacity * dh;
    let at = (b * heads + head) * dh;
    let query = &q[at..at + dh];
    let key = |p: usize| &keys[base + p * dh..base + (p + 1) * dh];
    for (p, (w, m)) in weights.iter_mut().zip(mask).enumerate() {
        *w = dot(query, key(p)) * scale + m;
    }
    softmax_in_place(weights);
    // The outputs summed over the positions in position order, 64 or 16 at a time in
    // registers (independent sums, so the additions do not wait on each other).
    let mut c = 0;
    while c + 64 <= dh {
        mix::<64>(weights, values, base + c, dh, &mut out[c..c + 64]);
        c += 64;
    }
    while c + 16 <= dh {
        mix::<16>(weights, values, base + c, dh, &mut out[c..c + 16]);
        c += 16;
    }
    for (i, out) in out.iter_mut().enumerate().skip(c) {
        let mut sum = 0f32;
        for (p, &weight) in weights.iter().enumerate() {
            sum += weight * values[base + p * dh + i];
        }
        *out = sum;
    }
}

/// `out[i] = Σ_p weights[p] · values[at + p·stride + i]` for `W` outputs, summed in position
/// order, the `W` sums held in registers (a fixed width, so the compiler never spills them).
#[inline(always)]
fn mix<const W: usize>(weights: &[f32], values: &[f32], at: usize, stride: usize, out: &mut [f32]) {
    let mut sums = [0f32; W];
    for (p, &weight) in weights.iter().enumerate() {
        let from = at + p * stride;
        let row: &[f32; W] = values[from..from + W]
            .try_into()
            .expect("a slice of W values");
        for (s, v) in sums.iter_mut().zip(row) {
            *s += weight * v;
        }
    }
    out.copy_from_slice(&sums);
}

/// `a · b` in sixteen lanes (every lane summing every sixteenth product, held in one vector
/// register or two), the lanes then halved into each other (16 → 8 → 4 → 2 → 1), and any tail
/// last. One key at a time: the keys' sums are independent, so the CPU overlaps them.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if a.len() == 64 && b.len() == 64 && super::panel_tasks::has_avx512f() {
        // SAFETY: the CPU has AVX-512F, and both slices hold the 64 values read.
        return unsafe { x86::dot64(a.as_ptr(), b.as_ptr()) };
    }
    portable_dot(a, b)
}

/// [`dot`] in plain Rust, for any width.
#[inline(always)]
fn portable_dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut lanes = [0f32; LANES];
    let whole = a.len() / LANES * LANES;
    for (x, y) in a[..whole]
        .chunks_exact(LANES)
        .zip(b[..whole].chunks_exact(LANES))
    {
        let x: &[f32; LANES] = x.try_into().expect("a whole chunk");
        let y: &[f32; LANES] = y.try_into().expect("a whole chunk");
        for i in 0..LANES {
            lanes[i] += x[i] * y[i];
        }
    }
    let tail: f32 = a[whole..].iter().zip(&b[whole..]).map(|(x, y)| x * y).sum();
    halving_sum(lanes) + tail
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// [`super::dot`] of two heads of width 64 in one 16-lane register: each lane multiplies,
    /// then adds, as the portable loop does (which LLVM compiled to pairs of lanes), and the
    /// lanes are halved in the same order, so the bits are the same.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dot64(a: *const f32, b: *const f32) -> f32 {
        let mut lanes = _mm512_setzero_ps();
        for c in 0..4 {
            let product = _mm512_mul_ps(
                _mm512_loadu_ps(a.add(16 * c)),
                _mm512_loadu_ps(b.add(16 * c)),
            );
            lanes = _mm512_add_ps(lanes, product);
        }
        let high = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(lanes));
        let eight = _mm256_add_ps(_mm512_castps512_ps256(lanes), _mm256_castpd_ps(high));
        let four = _mm_add_ps(
            _mm256_castps256_ps128(eight),
            _mm256_extractf128_ps::<1>(eight),
        );
        // [v0 + v2, v1 + v3], then their sum.
        let two = _mm_add_ps(four, _mm_movehl_ps(four, four));
        _mm_cvtss_f32(_mm_add_ss(two, _mm_shuffle_ps::<1>(two, two)))
    }
}

/// The sum of sixteen lanes, each half added to the other half until one is left.
#[inline(always)]
fn halving_sum(v: [f32; 16]) -> f32 {
    let v: [f32; 8] = std::array::from_fn(|i| v[i] + v[i + 8]);
    let v: [f32; 4] = std::array::from_fn(|i| v[i] + v[i + 4]);
    (v[0] + v[2]) + (v[1] + v[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_of_width_64_is_dotted_to_the_bits_of_the_portable_loop() {
        // Values of mixed signs and magnitudes, so the order of the additions shows in the bits.
        let value =
            |i: usize, seed: f32| (i as f32 * 0.618 + seed).sin() * 10f32.powi((i % 7) as i32 - 3);
        for seed in 0..200 {
            let a: Vec<f32> = (0..64).map(|i| value(i, seed as f32)).collect();
            let b: Vec<f32> = (0..64).map(|i| value(i + 5, seed as f32 * 1.3)).collect();
            let wide = vectorized(|| dot(&a, &b));
            assert_eq!(
                wide.to_bits(),
                portable_dot(&a, &b).to_bits(),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn equals_a_softmax_over_the_real_positions() {
        // One sequence, two query heads sharing one key/value head, three of four slots used,
        // the middle position padding.
        let (dh, capacity, len) = (2, 4, 3);
        let q = [1.0, 0.0, 0.0, 2.0];
        let keys = [1.0, 0.0, 5.0, 5.0, 0.0, 1.0, 9.0, 9.0];
        let values = [1.0, 2.0, 7.0, 7.0, 3.0, 4.0, 9.0, 9.0];
        let bias = [0.0, -1e9, 0.0];
        let shape = DecodeShape {
            heads: 2,
            kv_heads: 1,
            head_dim: dh,
            capacity,
            len,
            scale: 0.5,
        };
        let out = decode_attention(&q, &keys, &values, &bias, shape);
        // Head 0: scores 0.5 and 0 over positions 0 and 2; head 1: 0 and 1.
        for (head, (s0, s2)) in [(0.5f32, 0.0f32), (0.0, 1.0)].into_iter().enumerate() {
            let (e0, e2) = (s0.exp(), s2.exp());
            let (p0, p2) = (e0 / (e0 + e2), e2 / (e0 + e2));
            let expected = [p0 * 1.0 + p2 * 3.0, p0 * 2.0 + p2 * 4.0];
            for (o, e) in out[head * dh..(head + 1) * dh].iter().zip(expected) {
                assert!((o - e).abs() < 1e-6, "head {head}: {o} vs {e}");
            }
        }
    }

    #[test]
    fn every_head_width_equals_a_plain_softmax_attention() {
        // 64 (the unrolled copy), 80 (a 64-wide and a 16-wide part), 36 (16-wide and single
        // outputs, a tail in the dot products); three heads sharing one key/value head.
        for dh in [64, 80, 36] {
            let (heads, capacity, len) = (3, 40, 37);
            let value = |i: usize, f: f32| (i as f32 * f).sin();
            let q: Vec<f32> = (0..heads * dh).map(|i| value(i, 0.31)).collect();
            let keys: Vec<f32> = (0..capacity * dh).map(|i| value(i, 0.17)).collect();
            let values: Vec<f32> = (0..capacity * dh).map(|i| value(i, 0.23)).collect();
            let mut bias = vec![0f32; len];
            bias[5] = -1e9;
            let shape = DecodeShape {
                heads,
                kv_heads: 1,
                head_dim: dh,
                capacity,
                len,
                scale: 0.125,
            };
            let ours = decode_attention(&q, &keys, &values, &bias, shape);
            for h in 0..heads {
                let query = &q[h * dh..(h + 1) * dh];
                let scores: Vec<f64> = (0..len)
                    .map(|p| {
                        let key = &keys[p * dh..(p + 1) * dh];
                        let dot: f64 = query.iter().zip(key).map(|(a, b)| (a * b) as f64).sum();
                        dot * 0.125 + bias[p] as f64
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                for i in 0..dh {
                    let expected: f64 = (0..len)
                        .map(|p| (scores[p] - max).exp() / total * values[p * dh + i] as f64)
                        .sum();
                    let got = ours[h * dh + i] as f64;
                    assert!(
                        (got - expected).abs() < 1e-5,
                        "dh {dh} head {h} [{i}]: {got} vs {expected}"
                    );
                }
            }
        }
    }

    #[test]
    fn cross_attention_reads_each_rows_source_as_a_gathered_copy_would() {
        // Two sources of five positions, four rows reading sources 1, 0, 1, 1; rows run in
        // parallel above the work threshold, so the length makes both paths run.
        for len in [5, 3000] {
            let (heads, dh) = (2, 4);
            let shape = DecodeShape {
                heads,
                kv_heads: heads,
                head_dim: dh,
                capacity: len,
                len,
                scale: 0.5,
            };
            let value = |i: usize, f: f32| (i as f32 * f).sin();
            let keys: Vec<f32> = (0..2 * heads * len * dh).map(|i| value(i, 0.7)).collect();
            let values: Vec<f32> = (0..2 * heads * len * dh).map(|i| value(i, 1.3)).collect();
            let mut bias = vec![0f32; 2 * len];
            bias[len + 1] = -1e9;
            let sources = [1u32, 0, 1, 1];
            let q: Vec<f32> = (0..4 * heads * dh).map(|i| value(i, 0.3)).collect();
            let gather = |t: &[f32], width: usize| -> Vec<f32> {
                sources
                    .iter()
                    .flat_map(|&s| t[s as usize * width..(s as usize + 1) * width].to_vec())
                    .collect()
            };
            let block = heads * len * dh;
            let expected = decode_attention(
                &q,
                &gather(&keys, block),
                &gather(&values, block),
                &gather(&bias, len),
                shape,
            );
            let ours = cross_attention(&q, &keys, &values, &bias, shape, &sources);
            assert_eq!(ours, expected, "length {len}");
        }
    }
}

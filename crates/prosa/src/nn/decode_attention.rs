//! The attention of one new position per sequence over its key/value cache, on slices.
//!
//! Decoding adds one query per sequence; its scores, masked softmax and mixing over the cached
//! positions are a few dot products per head. The layers' tensor code (a grouped product, the
//! masked-softmax op, a second product) and the fused decode step of a quantized Llama
//! (`models/decoder/fused_decode.rs`) both call this one kernel, so the two paths give the same
//! bits — with 8-bit quantized activations a last-digit difference in one layer can flip a
//! rounding in the next product and grow from there.

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
    let dh = shape.head_dim;
    let batch = q.len() / (shape.heads * dh);
    let mut context = vec![0f32; q.len()];
    let mut weights = vec![0f32; shape.len];
    for b in 0..batch {
        for head in 0..shape.heads {
            let at = (b * shape.heads + head) * dh;
            let out = &mut context[at..at + dh];
            attend_head(q, keys, values, bias, shape, b, head, &mut weights, out);
        }
    }
    context
}

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
    let dh = shape.head_dim;
    let mut context = vec![0f32; heads.len() * dh];
    let mut weights = vec![0f32; shape.len];
    for (head, out) in heads.zip(context.chunks_exact_mut(dh)) {
        attend_head(q, keys, values, bias, shape, 0, head, &mut weights, out);
    }
    context
}

/// One query head of batch row `b` into `out` (head_dim, zeroed); `weights` is scratch of
/// `len` values.
#[allow(clippy::too_many_arguments)]
fn attend_head(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    bias: &[f32],
    shape: DecodeShape,
    b: usize,
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
    let mask = &bias[b * len..(b + 1) * len];
    let base = ((b * kv_heads) + head / (heads / kv_heads)) * capacity * dh;
    let at = (b * heads + head) * dh;
    let query = &q[at..at + dh];
    let mut max = f32::NEG_INFINITY;
    for (p, (w, m)) in weights.iter_mut().zip(mask).enumerate() {
        let key = &keys[base + p * dh..base + (p + 1) * dh];
        *w = dot(query, key) * scale + m;
        max = max.max(*w);
    }
    let mut sum = 0f32;
    for w in weights.iter_mut() {
        *w = (*w - max).exp();
        sum += *w;
    }
    let inv = 1.0 / sum;
    for (p, w) in weights.iter().enumerate() {
        let weight = w * inv;
        let value = &values[base + p * dh..base + (p + 1) * dh];
        for (o, v) in out.iter_mut().zip(value) {
            *o += weight * v;
        }
    }
}

/// `a · b` in eight lanes (each lane summing every eighth product, so the compiler can keep
/// them in one vector register), the lanes then added in order, and any tail last.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut lanes = [0f32; LANES];
    let whole = a.len() / LANES * LANES;
    for (x, y) in a[..whole]
        .chunks_exact(LANES)
        .zip(b[..whole].chunks_exact(LANES))
    {
        for i in 0..LANES {
            lanes[i] += x[i] * y[i];
        }
    }
    let tail: f32 = a[whole..].iter().zip(&b[whole..]).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

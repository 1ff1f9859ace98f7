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
    let DecodeShape {
        heads,
        kv_heads,
        head_dim: dh,
        capacity,
        len,
        scale,
    } = shape;
    let group = heads / kv_heads;
    let batch = q.len() / (heads * dh);
    let mut context = vec![0f32; q.len()];
    let mut weights = vec![0f32; len];
    for b in 0..batch {
        let mask = &bias[b * len..(b + 1) * len];
        for head in 0..heads {
            let base = ((b * kv_heads) + head / group) * capacity * dh;
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
            let out = &mut context[at..at + dh];
            for (p, w) in weights.iter().enumerate() {
                let weight = w * inv;
                let value = &values[base + p * dh..base + (p + 1) * dh];
                for (o, v) in out.iter_mut().zip(value) {
                    *o += weight * v;
                }
            }
        }
    }
    context
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

//! Bidirectional attention for inference in one pass (an encoder's self-attention when no
//! backward pass follows): for each sequence and block of queries, every head's scores
//! `Q·Kᵀ`, the scaled and masked softmax, and the mixing `P·V` are made in a buffer of the
//! block's own, reading the queries, keys and values straight from the projections' outputs
//! (batch, seq, heads·d) and writing the heads side by side (batch, seq, heads·d) — no
//! split-heads copies, no (batch, heads, seq, seq) score tensor, no merge transpose. The same
//! arithmetic as the composed path of `attention.rs`; it has no backward pass.

use candle_core::{DType, Tensor};

use super::gemm::{matmul, with_f32};
use super::lanes::vectorized;
use super::softmax::softmax_in_place;
use super::spin_pool;
use crate::error::Result;

/// Whether [`bidirectional_attention`] can run on the projections of `x`: f32 on the CPU.
pub fn supported(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// `softmax(scale · Q·Kᵀ + bias) · V` per head, with the heads concatenated: `q` (batch,
/// queries, heads·d), `k` and `v` (batch, keys, heads·d), `bias` (batch, 1, 1, keys) the
/// padding bias. Returns (batch, queries, heads·d).
pub fn bidirectional_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
    heads: usize,
    scale: f32,
) -> Result<Tensor> {
    let (batch, queries, width) = q.dims3()?;
    let keys = k.dim(1)?;
    if k.dims() != [batch, keys, width]
        || v.dims() != k.dims()
        || bias.elem_count() != batch * keys
        || heads == 0
        || width % heads != 0
    {
        return Err(crate::error::Error::config(
            "attention",
            format!(
                "fused attention: queries {:?}, keys {:?}, values {:?}, bias {:?}, {heads} heads",
                q.dims(),
                k.dims(),
                v.dims(),
                bias.dims()
            ),
        ));
    }
    let shape = Shape {
        batch,
        queries,
        keys,
        width,
        heads,
        head_dim: width / heads,
    };
    let (q, k, v, bias) = (
        q.contiguous()?,
        k.contiguous()?,
        v.contiguous()?,
        bias.contiguous()?,
    );
    let mut out = vec![0f32; batch * queries * width];
    with_f32(&q, |qs| {
        with_f32(&k, |ks| {
            with_f32(&v, |vs| {
                with_f32(&bias, |bs| {
                    let inputs = Inputs { qs, ks, vs, bs };
                    attend(&shape, &inputs, scale, &mut out)
                })
            })
        })
    })????;
    Ok(Tensor::from_vec(out, (batch, queries, width), q.device())?)
}

/// The extents of one call.
struct Shape {
    batch: usize,
    queries: usize,
    keys: usize,
    width: usize,
    heads: usize,
    head_dim: usize,
}

/// The operands' values, row-major.
struct Inputs<'a> {
    qs: &'a [f32],
    ks: &'a [f32],
    vs: &'a [f32],
    bs: &'a [f32],
}

fn attend(s: &Shape, x: &Inputs, scale: f32, out: &mut [f32]) {
    if s.batch == 0 || s.queries == 0 || s.width == 0 {
        return;
    }
    // Enough tasks for the pool even for one sequence: blocks of queries within a sequence.
    let threads = rayon::current_num_threads().max(1);
    let blocks_per_sequence = (2 * threads).div_ceil(s.batch).max(1);
    let block = s.queries.div_ceil(blocks_per_sequence).max(1);
    let blocks = s.queries.div_ceil(block);
    // Task `t`: block `t % blocks` of sequence `t / blocks`, rows of `out` in that order.
    let mut parts: Vec<&mut [f32]> = out
        .chunks_mut(s.queries * s.width)
        .flat_map(|out_b| out_b.chunks_mut(block * s.width))
        .collect();
    spin_pool::for_each_chunk_mut(&mut parts, 1, |t, part| {
        let (b, i) = (t / blocks, t % blocks);
        attend_block(s, x, scale, b, i * block, &mut *part[0]);
    });
}

/// Every head for queries `first..first + rows` of sequence `b`, into `out` (rows × width).
fn attend_block(s: &Shape, x: &Inputs, scale: f32, b: usize, first: usize, out: &mut [f32]) {
    let (w, d, keys) = (s.width, s.head_dim, s.keys);
    let rows = out.len() / w;
    let bias = &x.bs[b * keys..(b + 1) * keys];
    let mut scores = vec![0f32; rows * keys];
    let (w_stride, k_stride) = (w as isize, keys as isize);
    for h in 0..s.heads {
        let q = &x.qs[(b * s.queries + first) * w + h * d..];
        let k = &x.ks[b * keys * w + h * d..];
        let v = &x.vs[b * keys * w + h * d..];
        // scores (rows × keys) = Q_h (rows × d) · K_hᵀ (d × keys).
        matmul(
            rows,
            keys,
            d,
            &mut scores,
            (1, k_stride),
            q,
            (1, w_stride),
            k,
            (w_stride, 1),
            false,
            false,
        );
        // The masked softmax of each row: max and sum in vector lanes, the branch-free exp.
        vectorized(
            #[inline(always)]
            || {
                for row in scores.chunks_exact_mut(keys) {
                    for (s, m) in row.iter_mut().zip(bias) {
                        *s = *s * scale + m;
                    }
                    softmax_in_place(row);
                }
            },
        );
        // out[:, h·d..(h+1)·d] (rows × d) = P (rows × keys) · V_h (keys × d).
        matmul(
            rows,
            d,
            keys,
            &mut out[h * d..],
            (1, w_stride),
            &scores,
            (1, k_stride),
            v,
            (1, w_stride),
            false,
            false,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::softmax::masked_softmax;

    /// (batch, seq, heads·d) → (batch, heads, seq, d).
    fn split(x: &Tensor, heads: usize) -> Tensor {
        let (b, s, w) = x.dims3().unwrap();
        x.reshape((b, s, heads, w / heads))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
    }

    #[test]
    fn equals_the_composed_attention_with_padding() {
        // Head widths a multiple of 16 and not, short and long sequences.
        for (batch, seq, heads, d) in [(3, 7, 4, 8), (3, 9, 3, 40), (2, 70, 2, 32)] {
            check_against_composed(batch, seq, heads, d);
        }
    }

    fn check_against_composed(batch: usize, seq: usize, heads: usize, d: usize) {
        let device = crate::device::host();
        let w = heads * d;
        let t = |seed: u64| {
            use rand::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let v: Vec<f32> = (0..batch * seq * w)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            Tensor::from_vec(v, (batch, seq, w), &device).unwrap()
        };
        let (q, k, v) = (t(1), t(2), t(3));
        // The padding bias of rows with seq, then fewer real tokens (7, 3, 6 of 7).
        let bias: Vec<f32> = (0..batch)
            .map(|b| [seq, seq / 2, seq - 1][b % 3])
            .flat_map(|real| (0..seq).map(move |j| if j < real { 0.0 } else { f32::MIN }))
            .collect();
        let bias = Tensor::from_vec(bias, (batch, 1, 1, seq), &device).unwrap();
        let scale = 1.0 / (d as f64).sqrt();
        let fused = bidirectional_attention(&q, &k, &v, &bias, heads, scale as f32).unwrap();
        let scores = split(&q, heads)
            .matmul(&split(&k, heads).t().unwrap())
            .unwrap();
        let composed = masked_softmax(&scores, &bias, scale)
            .unwrap()
            .matmul(&split(&v, heads))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((batch, seq, w))
            .unwrap();
        let values = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let diff = values(fused)
            .iter()
            .zip(values(composed))
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            diff < 1e-6,
            "{batch}×{seq}, {heads} heads of {d}: largest difference {diff}"
        );
    }
}

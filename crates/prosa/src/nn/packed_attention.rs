//! Bidirectional self-attention of sequences packed one after another, without padding (an
//! encoder's inference over a batch of texts of different lengths): sequence `b`'s tokens are
//! rows `start_b..start_b + len_b` of the queries, keys and values, and each of its queries sees
//! exactly its own keys. The kernels are `fused_attention`'s, run per sequence (and block of
//! queries) with a zero bias: the same arithmetic as a padded batch's real rows, with no
//! padded rows projected, normed or attended.

use candle_core::Tensor;

use super::fused_attention::{attend_block, Inputs, Layout, Shape};
use super::gemm::with_f32;
use super::spin_pool;
use crate::error::{Error, Result};

/// `softmax(scale · Q·Kᵀ) · V` per head and sequence, with the heads side by side: `q`, `k`
/// and `v` (tokens, heads·d) hold the sequences of `lengths` one after another. Returns
/// (tokens, heads·d).
pub fn packed_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    lengths: &[usize],
    heads: usize,
    scale: f32,
) -> Result<Tensor> {
    let (tokens, width) = q.dims2()?;
    if k.dims() != q.dims() || v.dims() != q.dims() {
        return Err(mismatch(q.dims(), lengths, heads));
    }
    let shape = Packed::new(tokens, width, lengths, heads)
        .ok_or_else(|| mismatch(q.dims(), lengths, heads))?;
    let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
    let out = with_f32(&q, |qs| {
        with_f32(&k, |ks| {
            with_f32(&v, |vs| shape.attend([qs, ks, vs], width, scale))
        })
    })???;
    Ok(Tensor::from_vec(out, (tokens, width), q.device())?)
}

/// [`packed_attention`] of queries, keys and values side by side in one tensor, as one product
/// of the stacked projections wrote them: `qkv` (tokens, 3·heads·d). Returns (tokens, heads·d).
pub fn stacked_packed_attention(
    qkv: &Tensor,
    lengths: &[usize],
    heads: usize,
    scale: f32,
) -> Result<Tensor> {
    let (tokens, all) = qkv.dims2()?;
    let width = all / 3;
    let shape = (all % 3 == 0)
        .then(|| Packed::new(tokens, width, lengths, heads))
        .flatten()
        .ok_or_else(|| mismatch(qkv.dims(), lengths, heads))?;
    let qkv = qkv.contiguous()?;
    let out = with_f32(&qkv, |values| {
        let operands = [values, &values[width..], &values[2 * width..]];
        shape.attend(operands, all, scale)
    })?;
    Ok(Tensor::from_vec(out, (tokens, width), qkv.device())?)
}

fn mismatch(dims: &[usize], lengths: &[usize], heads: usize) -> Error {
    Error::config(
        "attention",
        format!(
            "packed attention: operands {dims:?} for sequences of {} tokens in all, {heads} heads",
            lengths.iter().sum::<usize>()
        ),
    )
}

/// The extents of one call: the sequences' lengths and the heads.
struct Packed<'a> {
    lengths: &'a [usize],
    heads: usize,
    head_dim: usize,
}

impl<'a> Packed<'a> {
    /// `None` unless the lengths add up to `tokens` and `width` splits into `heads`.
    fn new(tokens: usize, width: usize, lengths: &'a [usize], heads: usize) -> Option<Self> {
        let fits =
            lengths.iter().sum::<usize>() == tokens && heads > 0 && width.is_multiple_of(heads);
        fits.then_some(Self {
            lengths,
            heads,
            head_dim: width / heads,
        })
    }

    /// The heads side by side (tokens, heads·d) row-major, from the queries, keys and values
    /// at `operands` (each `row` apart from one token to the next).
    fn attend(&self, operands: [&[f32]; 3], row: usize, scale: f32) -> Vec<f32> {
        let d = self.head_dim;
        let width = self.heads * d;
        let tokens: usize = self.lengths.iter().sum();
        let mut out = vec![0f32; tokens * width];
        let longest = self.lengths.iter().copied().max().unwrap_or(0);
        let no_bias = vec![0f32; longest];
        // As a padded batch cuts them: enough tasks for the pool even for one sequence.
        let threads = rayon::current_num_threads().max(1);
        let blocks_per_sequence = (2 * threads).div_ceil(self.lengths.len().max(1)).max(1);
        // Task `t`: queries `first..` of the sequence at row `start` of length `len`, into
        // `parts[t]`.
        let mut tasks = Vec::new();
        let mut parts: Vec<&mut [f32]> = Vec::new();
        let mut rest = &mut out[..];
        let mut start = 0;
        for &len in self.lengths {
            let block = len.div_ceil(blocks_per_sequence).max(1);
            for first in (0..len).step_by(block) {
                let (part, tail) =
                    std::mem::take(&mut rest).split_at_mut(block.min(len - first) * width);
                parts.push(part);
                rest = tail;
                tasks.push((start, len, first));
            }
            start += len;
        }
        spin_pool::for_each_chunk_mut(&mut parts, 1, |t, part| {
            let (start, len, first) = tasks[t];
            let shape = Shape::bidirectional(1, len, len, self.heads, d);
            let [q, k, v] = operands.map(|values| (&values[start * row..], Layout::new(0, d, row)));
            let inputs = Inputs {
                q,
                k,
                v,
                bs: &no_bias[..len],
            };
            attend_block(&shape, &inputs, scale, 0, first, &mut *part[0]);
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;
    use crate::nn::attention::padding_bias;
    use crate::nn::attention_rows;
    use crate::nn::fused_attention::bidirectional_attention;

    fn random(seed: u64, dims: &[usize]) -> Tensor {
        let n: usize = dims.iter().product();
        let mut state = seed;
        let values: Vec<f32> = (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect();
        Tensor::from_vec(values, dims, &Device::Cpu).unwrap()
    }

    /// Each sequence's rows of a padded batch's attention, one after another.
    fn padded_then_packed(qkv: [&Tensor; 3], lengths: &[usize], heads: usize) -> Vec<f32> {
        let longest = *lengths.iter().max().unwrap();
        let mut starts = vec![0];
        for len in lengths {
            starts.push(starts.last().unwrap() + len);
        }
        // Sequence b's rows, padded with other rows (masked out) to the longest.
        let pad = |x: &Tensor| {
            let rows: Vec<Tensor> = lengths
                .iter()
                .zip(&starts)
                .map(|(&len, &start)| {
                    let own = x.narrow(0, start, len).unwrap();
                    let filler = x.narrow(0, 0, longest - len).unwrap();
                    Tensor::cat(&[&own, &filler], 0).unwrap()
                })
                .collect();
            Tensor::stack(&rows, 0).unwrap()
        };
        let mask: Vec<Vec<u32>> = lengths
            .iter()
            .map(|&len| (0..longest).map(|i| u32::from(i < len)).collect())
            .collect();
        let bias = padding_bias(&mask, candle_core::DType::F32, &Device::Cpu).unwrap();
        let out =
            bidirectional_attention(&pad(qkv[0]), &pad(qkv[1]), &pad(qkv[2]), &bias, heads, 0.3)
                .unwrap();
        let own_rows = |(b, &len): (usize, &usize)| {
            let rows = out.get(b).unwrap().narrow(0, 0, len).unwrap();
            rows.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        lengths.iter().enumerate().flat_map(own_rows).collect()
    }

    #[test]
    fn packed_sequences_get_the_values_of_a_padded_batch() {
        // Heads of 32 (the AVX-512 rows kernel where the CPU has it) and of 12 (the `gemm`
        // path); lengths across key vectors, one sequence alone (split into query blocks).
        for (heads, d, lengths) in [
            (4, 32, vec![5, 17, 33, 1, 64]),
            (3, 12, vec![9, 2, 20]),
            (2, 32, vec![70]),
        ] {
            let tokens: usize = lengths.iter().sum();
            let width = heads * d;
            let qkv = random(7, &[tokens, 3 * width]);
            let part = |i: usize| {
                qkv.narrow(1, i * width, width)
                    .unwrap()
                    .contiguous()
                    .unwrap()
            };
            let (q, k, v) = (part(0), part(1), part(2));
            let expected = padded_then_packed([&q, &k, &v], &lengths, heads);
            let separate = packed_attention(&q, &k, &v, &lengths, heads, 0.3).unwrap();
            let stacked = stacked_packed_attention(&qkv, &lengths, heads, 0.3).unwrap();
            // The rows kernel makes each row's sums in the same order however many padded
            // keys follow; `gemm` (other heads, other CPUs) may block them differently.
            let tolerance = if attention_rows::applies(d) {
                0.0
            } else {
                1e-6
            };
            for got in [separate, stacked] {
                assert_eq!(got.dims(), [tokens, width]);
                let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let worst = got
                    .iter()
                    .zip(&expected)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    worst <= tolerance,
                    "heads {heads} × {d}, lengths {lengths:?}: {worst}"
                );
            }
        }
    }

    #[test]
    fn lengths_that_do_not_add_up_are_an_error() {
        let qkv = random(1, &[10, 3 * 64]);
        let err = stacked_packed_attention(&qkv, &[4, 5], 2, 1.0).unwrap_err();
        assert!(err.to_string().contains("9 tokens in all"), "{err}");
    }
}

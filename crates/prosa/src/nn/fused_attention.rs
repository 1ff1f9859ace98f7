//! Attention for inference in one pass (an encoder's self-attention, or a decoder's prompt,
//! when no backward pass follows): for each sequence and block of queries, every head's scores
//! `Q·Kᵀ`, the scaled and masked softmax, and the mixing `P·V` are made in a buffer of the
//! block's own, reading the queries, keys and values where they lie — the projections' outputs
//! (batch, seq, heads·d), or heads already split (batch, heads, seq, d) with keys and values
//! from a cache, read per key/value head for every query head of its group — and writing the
//! heads side by side (batch, seq, heads·d): no split-heads or repeated key/value copies, no
//! (batch, heads, seq, seq) score tensor, no merge transpose. The same arithmetic as the
//! composed path of `attention.rs`; it has no backward pass.

use std::ops::Range;

use candle_core::{DType, Tensor};

use super::attention_rows;
use super::gemm::{matmul, with_f32};
use super::lanes::{prefetch_l2, vectorized};
use super::softmax::softmax_in_place;
use super::spin_pool;
use crate::error::{Error, Result};

/// Whether the fused kernels ([`bidirectional_attention`], [`causal_attention`]) can run on
/// `x`: f32 on the CPU.
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
        return Err(mismatch(q, k, v, bias, heads));
    }
    let d = width / heads;
    let shape = Shape::bidirectional(batch, queries, keys, heads, d);
    // Heads side by side: head h of row r at r·width + h·d.
    let q_layout = Layout::new(queries * width, d, width);
    let kv_layout = Layout::new(keys * width, d, width);
    run(
        q,
        k,
        v,
        bias,
        &shape,
        [q_layout, kv_layout, kv_layout],
        scale,
    )
}

/// [`bidirectional_attention`] of queries, keys and values side by side in one tensor, as one
/// product of the stacked projections wrote them: `qkv` (batch, seq, 3·heads·d). Returns
/// (batch, seq, heads·d).
pub fn stacked_bidirectional_attention(
    qkv: &Tensor,
    bias: &Tensor,
    heads: usize,
    scale: f32,
) -> Result<Tensor> {
    let (batch, seq, all) = qkv.dims3()?;
    let width = all / 3;
    if all % 3 != 0 || bias.elem_count() != batch * seq || heads == 0 || width % heads != 0 {
        return Err(Error::config(
            "attention",
            format!(
                "fused attention: stacked queries, keys and values {:?}, bias {:?}, {heads} heads",
                qkv.dims(),
                bias.dims()
            ),
        ));
    }
    let shape = Shape::bidirectional(batch, seq, seq, heads, width / heads);
    // Head h of row r: queries at r·all + h·d, keys `width` after them, values `2·width`.
    let layout = Layout::new(seq * all, width / heads, all);
    let qkv = qkv.contiguous()?;
    with_f32(&qkv, |values| {
        let operand = |offset: usize| (&values[offset..], layout);
        let operands = [operand(0), operand(width), operand(2 * width)];
        attend_operands(&shape, operands, bias, scale)
    })?
    .and_then(|out| finish(out, &shape, qkv.device()))
}

/// [`bidirectional_attention`] for a causal prompt with grouped keys and values: `q` (batch,
/// heads, queries, d), `k` and `v` (batch, kv_heads, keys, d) — the queries are the last
/// `queries` of the `keys` positions (earlier ones come from a cache) and query `i` sees keys
/// up to its own position; query head `h` reads key/value head `h / (heads / kv_heads)`;
/// `bias` (batch, 1, 1, keys) masks padding. Returns (batch, queries, heads·d).
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
    scale: f32,
) -> Result<Tensor> {
    let (batch, heads, queries, d) = q.dims4()?;
    let (_, kv_heads, keys, _) = k.dims4()?;
    if k.dims() != [batch, kv_heads, keys, d]
        || v.dims() != k.dims()
        || bias.elem_count() != batch * keys
        || kv_heads == 0
        || heads % kv_heads != 0
        || queries > keys
    {
        return Err(mismatch(q, k, v, bias, heads));
    }
    let shape = Shape {
        batch,
        queries,
        keys,
        heads,
        group: heads / kv_heads,
        head_dim: d,
        causal_offset: Some(keys - queries),
    };
    let q_layout = Layout::new(heads * queries * d, queries * d, d);
    let kv_layout = Layout::new(kv_heads * keys * d, keys * d, d);
    run(
        q,
        k,
        v,
        bias,
        &shape,
        [q_layout, kv_layout, kv_layout],
        scale,
    )
}

fn mismatch(q: &Tensor, k: &Tensor, v: &Tensor, bias: &Tensor, heads: usize) -> Error {
    Error::config(
        "attention",
        format!(
            "fused attention: queries {:?}, keys {:?}, values {:?}, bias {:?}, {heads} heads",
            q.dims(),
            k.dims(),
            v.dims(),
            bias.dims()
        ),
    )
}

/// The operands' values (contiguous copies where they were views), then [`attend`].
fn run(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
    shape: &Shape,
    [q_layout, k_layout, v_layout]: [Layout; 3],
    scale: f32,
) -> Result<Tensor> {
    let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
    let out = with_f32(&q, |qs| {
        with_f32(&k, |ks| {
            with_f32(&v, |vs| {
                let operands = [(qs, q_layout), (ks, k_layout), (vs, v_layout)];
                attend_operands(shape, operands, bias, scale)
            })
        })
    })????;
    finish(out, shape, q.device())
}

/// [`attend`] on the operands' values and layouts, with `bias`'s values: the heads side by
/// side, (batch, queries, heads·d) row-major.
fn attend_operands(
    shape: &Shape,
    [q, k, v]: [(&[f32], Layout); 3],
    bias: &Tensor,
    scale: f32,
) -> Result<Vec<f32>> {
    let bias = bias.contiguous()?;
    let mut out = vec![0f32; shape.batch * shape.queries * shape.heads * shape.head_dim];
    with_f32(&bias, |bs| {
        attend(shape, &Inputs { q, k, v, bs }, scale, &mut out)
    })?;
    Ok(out)
}

/// The output of [`attend_operands`] as a tensor on `device`.
fn finish(out: Vec<f32>, s: &Shape, device: &candle_core::Device) -> Result<Tensor> {
    let width = s.heads * s.head_dim;
    Ok(Tensor::from_vec(out, (s.batch, s.queries, width), device)?)
}

/// The extents of one call.
pub(super) struct Shape {
    batch: usize,
    queries: usize,
    keys: usize,
    heads: usize,
    /// Query heads per key/value head.
    group: usize,
    head_dim: usize,
    /// Causal: the position of the first query among the keys.
    causal_offset: Option<usize>,
}

impl Shape {
    /// Every query sees every key; one key/value head per query head.
    pub(super) fn bidirectional(
        batch: usize,
        queries: usize,
        keys: usize,
        heads: usize,
        head_dim: usize,
    ) -> Self {
        Self {
            batch,
            queries,
            keys,
            heads,
            group: 1,
            head_dim,
            causal_offset: None,
        }
    }
}

/// Where an operand's rows lie: row `r` of head `h` of sequence `b` starts at
/// `b·batch + h·head + r·row`.
#[derive(Clone, Copy)]
pub(super) struct Layout {
    batch: usize,
    head: usize,
    row: usize,
}

impl Layout {
    pub(super) fn new(batch: usize, head: usize, row: usize) -> Self {
        Self { batch, head, row }
    }

    fn start(&self, b: usize, h: usize, r: usize) -> usize {
        b * self.batch + h * self.head + r * self.row
    }
}

/// The operands' values, row-major, with their layouts, and the padding bias (one entry per
/// key of each sequence).
pub(super) struct Inputs<'a> {
    pub(super) q: (&'a [f32], Layout),
    pub(super) k: (&'a [f32], Layout),
    pub(super) v: (&'a [f32], Layout),
    pub(super) bs: &'a [f32],
}

fn attend(s: &Shape, x: &Inputs, scale: f32, out: &mut [f32]) {
    let width = s.heads * s.head_dim;
    if s.batch == 0 || s.queries == 0 || width == 0 {
        return;
    }
    // Enough tasks for the pool even for one sequence: blocks of queries within a sequence.
    // A causal block's work grows with its position, so causal passes cut finer and hand out
    // the last (largest) blocks first: the small ones even out the threads at the end.
    let threads = rayon::current_num_threads().max(1);
    let per_thread = if s.causal_offset.is_some() { 4 } else { 2 };
    let blocks_per_sequence = (per_thread * threads).div_ceil(s.batch).max(1);
    let block = s.queries.div_ceil(blocks_per_sequence).max(1);
    let blocks = s.queries.div_ceil(block);
    // Task `t`: block `t % blocks` of sequence `t / blocks` (counted from the last block when
    // causal), rows of `out` in that order.
    let mut parts: Vec<&mut [f32]> = out
        .chunks_mut(s.queries * width)
        .flat_map(|out_b| {
            let mut blocks: Vec<&mut [f32]> = out_b.chunks_mut(block * width).collect();
            if s.causal_offset.is_some() {
                blocks.reverse();
            }
            blocks
        })
        .collect();
    spin_pool::for_each_chunk_mut(&mut parts, 1, |t, part| {
        let (b, mut i) = (t / blocks, t % blocks);
        if s.causal_offset.is_some() {
            i = blocks - 1 - i;
        }
        attend_block(s, x, scale, b, i * block, &mut *part[0]);
    });
}

/// Operands (the keys' buffer) of more bytes than this have the next head's rows prefetched.
const PREFETCH_ABOVE: usize = 1 << 20;

/// Asks for the L2 lines of head `h` of sequence `b`: its query rows `queries` and its first
/// `keys` keys and values (unless head `h − 1`, attended now, reads the same ones).
fn prefetch_head(
    s: &Shape,
    x: &Inputs,
    (b, h): (usize, usize),
    queries: Range<usize>,
    keys: usize,
) {
    let d = s.head_dim;
    let ((qs, ql), (ks, kl), (vs, vl)) = (x.q, x.k, x.v);
    let rows = |values: &[f32], layout: Layout, head: usize, range: Range<usize>| {
        for r in range {
            let at = layout.start(b, head, r).min(values.len());
            prefetch_l2(&values[at..(at + d).min(values.len())]);
        }
    };
    rows(qs, ql, h, queries);
    if h == 0 || (h - 1) / s.group != h / s.group {
        rows(ks, kl, h / s.group, 0..keys);
        rows(vs, vl, h / s.group, 0..keys);
    }
}

/// Every head for queries `first..first + rows` of sequence `b`, into `out` (rows × width).
pub(super) fn attend_block(
    s: &Shape,
    x: &Inputs,
    scale: f32,
    b: usize,
    first: usize,
    out: &mut [f32],
) {
    let (d, w) = (s.head_dim, s.heads * s.head_dim);
    let rows = out.len() / w;
    // Causal: the block's last query sees keys up to its own position, so later keys are
    // neither scored nor mixed.
    let keys = match s.causal_offset {
        Some(offset) => (offset + first + rows).min(s.keys),
        None => s.keys,
    };
    let bias = &x.bs[b * s.keys..b * s.keys + keys];
    let ((qs, ql), (ks, kl), (vs, vl)) = (x.q, x.k, x.v);
    if attention_rows::applies(d) && kl.row == vl.row {
        let mut buffers = attention_rows::Buffers::default();
        // The next head's rows come into L2 while a head is attended: the projection wrote them
        // a whole batch earlier, so they would be read from L3 (operands that fit in L2 are left
        // to it).
        let prefetch = size_of_val(x.k.0) > PREFETCH_ABOVE;
        for h in 0..s.heads {
            if prefetch {
                match (h + 1 < s.heads, b + 1 < s.batch) {
                    (true, _) => prefetch_head(s, x, (b, h + 1), first..first + rows, keys),
                    (false, true) => prefetch_head(s, x, (b + 1, 0), first..first + rows, keys),
                    (false, false) => {}
                }
            }
            let head = attention_rows::HeadBlock {
                q: &qs[ql.start(b, h, first)..],
                q_row: ql.row,
                k: &ks[kl.start(b, h / s.group, 0)..],
                v: &vs[vl.start(b, h / s.group, 0)..],
                kv_row: kl.row,
                keys,
                head_dim: d,
                bias,
                scale,
                first_seen: s.causal_offset.map(|offset| offset + first),
            };
            attention_rows::attend_head(&head, rows, &mut out[h * d..], w, &mut buffers);
        }
        return;
    }
    let mut scores = vec![0f32; rows * keys];
    for h in 0..s.heads {
        let q = &qs[ql.start(b, h, first)..];
        let k = &ks[kl.start(b, h / s.group, 0)..];
        let v = &vs[vl.start(b, h / s.group, 0)..];
        // scores (rows × keys) = Q_h (rows × d) · K_hᵀ (d × keys).
        matmul(
            rows,
            keys,
            d,
            &mut scores,
            (1, keys as isize),
            q,
            (1, ql.row as isize),
            k,
            (kl.row as isize, 1),
            false,
            false,
        );
        // The masked softmax of each row: max and sum in vector lanes, the branch-free exp;
        // causally hidden keys get weight 0.
        vectorized(
            #[inline(always)]
            || {
                for (i, row) in scores.chunks_exact_mut(keys).enumerate() {
                    let seen = match s.causal_offset {
                        Some(offset) => (offset + first + i + 1).min(keys),
                        None => keys,
                    };
                    let (seen_part, hidden) = row.split_at_mut(seen);
                    for (s, m) in seen_part.iter_mut().zip(bias) {
                        *s = *s * scale + m;
                    }
                    softmax_in_place(seen_part);
                    hidden.fill(0.0);
                }
            },
        );
        // out[:, h·d..(h+1)·d] (rows × d) = P (rows × keys) · V_h (keys × d).
        matmul(
            rows,
            d,
            keys,
            &mut out[h * d..],
            (1, w as isize),
            &scores,
            (1, keys as isize),
            v,
            (1, vl.row as isize),
            false,
            false,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::softmax::{causal_masked_softmax, masked_softmax};

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

    /// Values uniform in [−1, 1) from `seed`.
    fn random(seed: u64, dims: &[usize]) -> Tensor {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let v: Vec<f32> = (0..dims.iter().product())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        Tensor::from_vec(v, dims, &crate::device::host()).unwrap()
    }

    fn largest_difference(a: &Tensor, b: &Tensor) -> f32 {
        let values = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        values(a)
            .iter()
            .zip(values(b))
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max)
    }

    #[test]
    fn equals_the_composed_attention_with_padding() {
        // Head widths a multiple of 16 (row by row in registers where the CPU has AVX-512F;
        // 144: nine vectors, past the eight kept at once) and not, short and long sequences
        // (150 keys: past the 128 scored at once).
        for (batch, seq, heads, d) in [
            (3, 7, 4, 8),
            (3, 9, 3, 40),
            (2, 70, 2, 32),
            (2, 150, 1, 144),
            (3, 17, 2, 16),
        ] {
            check_against_composed(batch, seq, heads, d);
        }
    }

    fn check_against_composed(batch: usize, seq: usize, heads: usize, d: usize) {
        let device = crate::device::host();
        let w = heads * d;
        let [q, k, v] = [1, 2, 3].map(|seed| random(seed, &[batch, seq, w]));
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
        let diff = largest_difference(&fused, &composed);
        assert!(
            diff < 1e-6,
            "{batch}×{seq}, {heads} heads of {d}: largest difference {diff}"
        );
        // Side by side in one tensor, as the stacked projections write them: the same bits.
        let qkv = Tensor::cat(&[&q, &k, &v], 2).unwrap();
        let stacked = stacked_bidirectional_attention(&qkv, &bias, heads, scale as f32).unwrap();
        assert_eq!(
            largest_difference(&stacked, &fused),
            0.0,
            "stacked, {batch}×{seq}"
        );
    }

    #[test]
    fn causal_equals_the_composed_attention_with_a_cache_groups_and_padding() {
        // (batch, queries, cached before them, heads, kv heads, d): a prompt alone, a prompt
        // after cached positions, grouped and ungrouped heads, head widths a multiple of 16 and
        // not, and more queries than the tasks' blocks.
        for (batch, queries, cached, heads, kv_heads, d) in [
            (2, 7, 0, 4, 2, 8),
            (3, 9, 5, 3, 3, 40),
            (1, 70, 3, 9, 3, 64),
            (2, 140, 20, 2, 1, 16),
            (1, 37, 0, 9, 3, 64),
        ] {
            let device = crate::device::host();
            let keys = cached + queries;
            let q = random(1, &[batch, heads, queries, d]);
            let k = random(2, &[batch, kv_heads, keys, d]);
            let v = random(3, &[batch, kv_heads, keys, d]);
            // Left padding: sequence b's first b positions are masked (the first query rows of
            // the padded sequences see only padding).
            let bias: Vec<f32> = (0..batch)
                .flat_map(|b| (0..keys).map(move |j| if j < b { f32::MIN } else { 0.0 }))
                .collect();
            let bias = Tensor::from_vec(bias, (batch, 1, 1, keys), &device).unwrap();
            let scale = 1.0 / (d as f64).sqrt();
            let fused = causal_attention(&q, &k, &v, &bias, scale as f32).unwrap();
            // The composed path: keys and values repeated per query head.
            let repeat = |x: &Tensor| {
                let group = heads / kv_heads;
                let parts: Vec<Tensor> = (0..heads)
                    .map(|h| x.narrow(1, h / group, 1).unwrap())
                    .collect();
                Tensor::cat(&parts, 1).unwrap()
            };
            let scores = q.matmul(&repeat(&k).t().unwrap()).unwrap();
            let composed = causal_masked_softmax(&scores, &bias, scale)
                .unwrap()
                .matmul(&repeat(&v))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .reshape((batch, queries, heads * d))
                .unwrap();
            let diff = largest_difference(&fused, &composed);
            assert!(
                diff < 1e-6,
                "{batch}×{queries} after {cached}, {heads}/{kv_heads} heads of {d}: {diff}"
            );
        }
    }
}

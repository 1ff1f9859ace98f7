//! f32 products in inference through a weight packed once. A sentence's tokens, a decode
//! step's rows or beams are products of a handful of rows against a large weight; `gemm`
//! repacks the whole weight on every call for them and its kernels for so few columns run at
//! about half the core's peak (54–60 GFLOP/s at 20 × 384 × 384 on a Zen 4 core, 11 at two rows).
//! Here a projection keeps its weight repacked in groups of 64 outputs — for every input
//! position, the 64 outputs' weights side by side, four 16-lane vectors — and a pass multiplies
//! one group with up to six activation rows, each row's value broadcast: 24 accumulators whose
//! lanes are outputs, no horizontal sums, the group streamed once per pass (100–112 GFLOP/s at
//! 4–64 rows, 36 at one). Batches of many rows (an encoder's sentences) take the same passes
//! block by block of 96 rows: with the packing already done, the two cores split the groups and
//! run at 165–210 GFLOP/s together where `gemm` reaches 95–175 (384–1,024 rows × 384–3,072).
//!
//! A product of 7–64 rows (a greedy decode step of a batch of 16, beam search's 64) takes
//! several passes over each group, and only the first read the weights from memory: the core
//! waited on memory in the first pass and on its FMA units in the others. Such products go span
//! by span of the group's input positions (64 of them, 16 KiB kept in L1 through the passes, up
//! to 32 rows; 512 kept in L2 beyond), the sums carried between spans, each pass prefetching its
//! share of the next span into L2: the memory stream runs under the arithmetic. Same sums in the
//! same order, so the same bits.
//!
//! The packed copy lives in the projection's [`PanelCache`], built on the first product that
//! qualifies: no gradient is tracked through it (inference, [`candle_core::no_grad`]), f32 on
//! the CPU, and a CPU with AVX-512F. It is as large as the weight. A product of more than 64
//! rows against a weight of more than 4 MiB with no packed copy kept reads the weight in its
//! own layout instead, a span of a group at a time (`dense_rows.rs`), so a model used only in
//! batches holds no second copy of its largest weights (and no longer packs one for each
//! call: BERT-base's 8 × 128 forward ×1.12). It stays valid while the
//! weight is the same tensor and no variable has been written in place since it was packed
//! ([`candle_core::variable_writes`]: optimizer steps, loading a checkpoint), so evaluating
//! between training steps repacks once per evaluation.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytemuck::cast_slice;
use candle_core::{Tensor, TensorId};

use super::activation::{values, Activation};
use super::dense_pass::{pass_kernel, passes, span_passes, PassKernel, Prefetch, GROUP, PASS};
use super::dense_rows::{self, stacked_bias, with_f32_all, RowGroups, Rows};
use super::dense_writes::{finish_block, finish_rows, write_group, Epilogue, GroupAt, RowFinish};
use super::gemm::with_f32;
use super::half_groups::group_products;
use super::huge_pages;
use super::linear::PARALLEL_WORK;
use super::norm::add_layer_norm_row;
use super::panel_tasks::{panel_tasks, TaskOutput};
use crate::error::Result;

/// Products of at most this many rows keep the packed weight (decode steps, a sentence).
const MAX_ROWS_KEPT: usize = 64;

/// Larger products keep it only for weights of at most this many values (4 MiB).
const MAX_BATCH_KEPT: usize = 1 << 20;

/// Input positions per span of a product of 7–32 rows (a greedy decode step of a batch, a short
/// sentence): 64 × 64 weights, 16 KiB, half of a Zen 4 core's L1 cache.
const L1_SPAN: usize = 64;

/// Input positions per span of a product of 33–64 rows (beam search's steps): 128 KiB, in L2
/// beside the rows' activations; in L1 their sums and activations would crowd the span out
/// (64-position spans were slower at 64 rows; 512 gained ~2% in beam 4 over whole groups).
const L2_SPAN: usize = 512;

/// The span a product of `rows` rows runs in ([`DensePanels::product_in_spans`]), or `None`
/// for whole groups per pass: fewer than seven rows take one pass, bound by memory alone, and
/// batches of more than 64 take row blocks ([`DensePanels::product`]).
fn span_len(rows: usize) -> Option<usize> {
    if rows <= PASS || rows > 64 {
        None
    } else if rows <= 32 {
        Some(L1_SPAN)
    } else {
        Some(L2_SPAN)
    }
}

/// Activation rows a task takes through all of its groups before the next rows: 96 rows of up
/// to 2,048 inputs stay in the core's L2 cache beside the group being read and the next one,
/// which the block's passes prefetch (a model's weights rarely stay in L3 from block to block:
/// MiniLM A/B ×1.018).
const ROW_BLOCK: usize = 96;

/// A weight repacked for the group kernel: one tensor, or several stacked by outputs (their
/// products side by side, as one product).
struct DensePanels {
    /// The tensors it was packed from ([`stack_sources`]).
    sources: Vec<Option<TensorId>>,
    /// A stack's biases side by side, zeros for a weight without one (`None` for one weight,
    /// whose bias is read in place, or a stack without biases).
    bias: Option<Vec<f32>>,
    /// [`candle_core::variable_writes`] read before packing.
    generation: u64,
    outputs: usize,
    inputs: usize,
    /// Group `g`, input position `k`: outputs `64g..64g + 64` at `(g·inputs + k)·64`; outputs
    /// past the last are zero. On 2 MiB pages where the system has them: every decode step
    /// streams it whole.
    data: Vec<f32>,
}

impl DensePanels {
    /// Packs `parts` stacked by outputs, each `inputs` wide: in `nn.Linear`'s layout (outputs,
    /// inputs) when `out_in`, else one weight in `Conv1D`'s.
    fn pack(parts: &[&[f32]], outputs: usize, inputs: usize, out_in: bool) -> Vec<f32> {
        let mut data = huge_pages::zeroed_vec(outputs.div_ceil(GROUP) * inputs * GROUP);
        let rows = Rows {
            parts,
            outputs,
            inputs,
            out_in,
        };
        dense_rows::pack(rows, &mut data);
        data
    }

    /// `x · Wᵀ (+ b)` for 7–64 rows of `x`, row-major `m × outputs`: each group span by span of
    /// `span_len` input positions, every pass over a span before the next (the span stays in
    /// cache while the passes after the first read it), the sums kept in
    /// `lanes` between spans, and the weights of the span after it in memory prefetched a
    /// share per pass — so the stream from memory overlaps the passes that compute from cache.
    #[allow(clippy::too_many_arguments)]
    fn product_in_spans(
        &self,
        x: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        parallel: bool,
        span_len: usize,
        pass: PassKernel,
        epilogue: impl Epilogue,
    ) -> Vec<f32> {
        let inputs = self.inputs;
        panel_tasks(self.outputs, m, GROUP, parallel, |start, n, part| {
            let mut lanes = vec![[0f32; GROUP]; m];
            // The task's groups lie one after another: a span's successor is the next span.
            let task_end = (start + n).div_ceil(GROUP) * GROUP * inputs;
            for first in (start..start + n).step_by(GROUP) {
                for span in (0..inputs).step_by(span_len) {
                    let steps = span_len.min(inputs - span);
                    let at = first * inputs + span * GROUP;
                    let weights = &self.data[at..at + steps * GROUP];
                    let next = (at + steps * GROUP).min(task_end);
                    let ahead = cast_slice(&self.data[next..task_end.min(next + steps * GROUP)]);
                    let pass = |xs: &[f32], sums: &mut [[f32; GROUP]], fresh, prefetch| {
                        pass(weights, xs, inputs, sums, fresh, prefetch)
                    };
                    span_passes(pass, steps, x, inputs, 0..m, span, &mut lanes, ahead);
                }
                let at = GroupAt {
                    first,
                    width: GROUP.min(start + n - first),
                    column: first - start,
                };
                write_group(part, 0..m, &lanes, at, bias, epilogue);
            }
        })
    }

    /// `x · Wᵀ (+ b)` for `m` rows of `x`, row-major `m × outputs`: block by block of
    /// [`ROW_BLOCK`] rows (which stay in cache while every group of the task passes over them),
    /// each block in even [`passes`] of at most [`PASS`] rows; each finished row through
    /// `finish` — right after its block where one task makes the whole product (a batch run on
    /// its thread alone, [`super::side_by_side`]), else after the product.
    #[allow(clippy::too_many_arguments)]
    fn product(
        &self,
        x: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        parallel: bool,
        pass: PassKernel,
        epilogue: impl Epilogue,
        finish: Option<RowFinish>,
    ) -> Vec<f32> {
        let inputs = self.inputs;
        let group_at = |first: usize| &self.data[first * inputs..(first + GROUP) * inputs];
        let split = AtomicBool::new(false);
        let mut out = panel_tasks(self.outputs, m, GROUP, parallel, |start, n, part| {
            let whole_rows = n == self.outputs;
            split.fetch_or(!whole_rows, Ordering::Relaxed);
            for block in (0..m).step_by(ROW_BLOCK) {
                let rows = block..block + ROW_BLOCK.min(m - block);
                let last_block = rows.end == m;
                for first in (start..start + n).step_by(GROUP) {
                    // The group read next: the task's next, or its first again for the next
                    // block (a model's weights rarely stay in L3 from block to block). Not for
                    // a single pass (a decode step's few rows), bound by memory alone and
                    // streaming the groups in order.
                    let next = if m <= PASS {
                        None
                    } else if first + GROUP < start + n {
                        Some(first + GROUP)
                    } else {
                        (!last_block).then_some(start)
                    };
                    let ahead = next.map_or(&[][..], |next| cast_slice(group_at(next)));
                    let at = GroupAt {
                        first,
                        width: GROUP.min(start + n - first),
                        column: first - start,
                    };
                    let rows = rows.clone();
                    let sums = Sums { at, bias, epilogue };
                    rows_over_group(pass, group_at(first), ahead, x, inputs, rows, sums, part);
                }
                if let (Some(finish), true) = (finish, whole_rows) {
                    finish_block(part, rows, finish);
                }
            }
        });
        if let (Some(finish), true) = (finish, split.into_inner()) {
            finish_rows(&mut out, self.outputs, finish);
        }
        out
    }
}

/// How a group's sums are written: where, plus which bias, through which epilogue.
#[derive(Clone, Copy)]
struct Sums<'b, E> {
    at: GroupAt,
    bias: Option<&'b [f32]>,
    epilogue: E,
}

/// Rows `rows` of `x` (`inputs` wide) against one packed `group`, in even [`passes`] of at most
/// [`PASS`], each pass's sums written to the task's output at once as `sums` says, the passes
/// sharing out prefetching `ahead` (the group read next) into L2.
#[allow(clippy::too_many_arguments)]
fn rows_over_group(
    pass: PassKernel,
    group: &[f32],
    ahead: &[u8],
    x: &[f32],
    inputs: usize,
    rows: Range<usize>,
    sums: Sums<impl Epilogue>,
    part: &mut TaskOutput,
) {
    let mut lanes = [[0f32; GROUP]; PASS];
    let shares = rows.len().div_ceil(PASS);
    for (share, pass_rows) in passes(rows).enumerate() {
        let (i, count) = (pass_rows.start, pass_rows.len());
        let xs = &x[i * inputs..(i + count) * inputs];
        let prefetch = Prefetch {
            ahead,
            share,
            shares,
        };
        pass(group, xs, inputs, &mut lanes[..count], true, prefetch);
        let lanes = &lanes[..count];
        write_group(part, i..i + count, lanes, sums.at, sums.bias, sums.epilogue);
    }
}

/// Where a projection keeps its packed weight (see the module's doc); clones share it.
#[derive(Clone, Default)]
pub struct PanelCache(Arc<Mutex<Option<Arc<DensePanels>>>>);

impl PanelCache {
    /// Whether a packed weight is held.
    pub fn is_packed(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// The packed form of `weights` stacked by outputs (`outputs` in all, `inputs` wide; one
    /// weight unless `out_in`): the one kept when it is still valid, else — when `keep` —
    /// packed now and kept, or `None` (a stale copy is dropped either way).
    fn panels(
        &self,
        parts: &[(&Tensor, Option<&Tensor>)],
        (outputs, inputs): (usize, usize),
        out_in: bool,
        keep: bool,
    ) -> Result<Option<Arc<DensePanels>>> {
        // Read before the weights' values: a write after this read makes the next call repack.
        let generation = candle_core::variable_writes();
        let sources = stack_sources(parts);
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = kept.as_ref() {
            if p.sources == sources && p.generation == generation {
                return Ok(Some(p.clone()));
            }
        }
        // A stale copy goes first, so the weights are never held packed twice.
        *kept = None;
        if !keep {
            return Ok(None);
        }
        let weights: Vec<&Tensor> = parts.iter().map(|p| p.0).collect();
        let data = with_f32_all(&weights, &mut |values| {
            DensePanels::pack(values, outputs, inputs, out_in)
        })?;
        let stacked = parts.len() > 1 && parts.iter().any(|p| p.1.is_some());
        let bias = stacked.then(|| stacked_bias(parts)).transpose()?;
        let packed = Arc::new(DensePanels {
            sources,
            bias,
            generation,
            outputs,
            inputs,
            data,
        });
        *kept = Some(packed.clone());
        Ok(Some(packed))
    }
}

/// `x · Wᵀ + b` over the last dimension of `x` through `cache`'s packed weight (`weight` in
/// `nn.Linear`'s layout when `out_in`, else GPT-2's `Conv1D`), or `None` where this path does
/// not apply (see the module's doc) and the caller multiplies as usual.
pub fn product(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    out_in: bool,
    cache: &PanelCache,
) -> Result<Option<Tensor>> {
    product_of_stack(x, &[(weight, bias)], out_in, cache, std::convert::identity)
}

/// `activation(x · Wᵀ + b)`: [`product`] with the activation taken on each output as the
/// product writes it — no second pass over the output in memory, the same bits as the
/// activation applied to the product's output.
pub(crate) fn activated_product(
    x: &Tensor,
    (weight, bias): (&Tensor, Option<&Tensor>),
    out_in: bool,
    cache: &PanelCache,
    activation: Activation,
) -> Result<Option<Tensor>> {
    let parts = [(weight, bias)];
    match activation {
        Activation::Gelu => product_of_stack(x, &parts, out_in, cache, values::gelu),
        Activation::GeluTanh => product_of_stack(x, &parts, out_in, cache, values::gelu_tanh),
        Activation::Silu => product_of_stack(x, &parts, out_in, cache, values::silu),
        Activation::Relu => product_of_stack(x, &parts, out_in, cache, values::relu),
    }
}

/// The products `x · Wᵢᵀ + bᵢ` of several weights in `nn.Linear`'s layout (outputs, inputs),
/// all as wide as the last dimension of `x`, side by side in one output (…, Σ outputs): one
/// product through `cache`'s packed copy of the weights stacked by outputs (an attention's
/// queries, keys and values). `None` where [`product`] would not apply to one of them.
pub fn stacked_product(
    x: &Tensor,
    parts: &[(&Tensor, Option<&Tensor>)],
    cache: &PanelCache,
) -> Result<Option<Tensor>> {
    product_of_stack(x, parts, true, cache, std::convert::identity)
}

/// `layer_norm(x · Wᵀ + b + residual)` (a post-LN layer's output projection with its add &
/// norm): [`product`] with each output row added to its `residual` row and normed as soon as it
/// is written — in a batch run on its thread alone, right after each block of rows, while they
/// are in cache — with the same bits as [`super::norm::Norm::forward_residual`] of the product.
/// `norm` is the layer norm's weight, bias and epsilon. `None` where [`product`] would not
/// apply, or the residual and norm are not plain f32 on the CPU of the output's shape.
pub(crate) fn residual_normed_product(
    x: &Tensor,
    (weight, bias): (&Tensor, Option<&Tensor>),
    out_in: bool,
    cache: &PanelCache,
    residual: &Tensor,
    (gamma, beta, eps): (&Tensor, &Tensor, f32),
) -> Result<Option<Tensor>> {
    let plain =
        |t: &Tensor| !t.track_op() && t.device().is_cpu() && t.dtype() == candle_core::DType::F32;
    let (a, b) = weight.dims2()?;
    let outputs = if out_in { a } else { b };
    let row_of_outputs = residual.dims().last() == Some(&outputs)
        && residual.dims()[..residual.rank() - 1] == x.dims()[..x.rank().saturating_sub(1)];
    let fits = row_of_outputs && gamma.elem_count() == outputs && beta.elem_count() == outputs;
    if !fits || ![residual, gamma, beta].into_iter().all(plain) {
        return Ok(None);
    }
    let residual = residual.contiguous()?;
    with_f32(&residual, |rs| {
        with_f32(gamma, |gamma| {
            with_f32(beta, |beta| {
                let finish = |i: usize, row: &mut [f32]| {
                    let r = &rs[i * outputs..(i + 1) * outputs];
                    add_layer_norm_row(row, r, (gamma, beta), eps);
                };
                let identity = std::convert::identity;
                finished_product(x, &[(weight, bias)], out_in, cache, identity, Some(&finish))
            })
        })
    })???
}

/// [`product`] of one weight or [`stacked_product`] of several (those only when `out_in`).
fn product_of_stack(
    x: &Tensor,
    parts: &[(&Tensor, Option<&Tensor>)],
    out_in: bool,
    cache: &PanelCache,
    epilogue: impl Epilogue,
) -> Result<Option<Tensor>> {
    finished_product(x, parts, out_in, cache, epilogue, None)
}

/// [`product_of_stack`], each finished output row through `finish` where it is given.
fn finished_product(
    x: &Tensor,
    parts: &[(&Tensor, Option<&Tensor>)],
    out_in: bool,
    cache: &PanelCache,
    epilogue: impl Epilogue,
    finish: Option<RowFinish>,
) -> Result<Option<Tensor>> {
    let Some(kernel) = pass_kernel() else {
        return Ok(None);
    };
    if parts.is_empty() || (!out_in && parts.len() > 1) {
        return Ok(None);
    }
    let f32_cpu = |t: &Tensor| t.device().is_cpu() && t.dtype() == candle_core::DType::F32;
    let mut extents = Vec::with_capacity(parts.len());
    for (weight, bias) in parts {
        let tracked = weight.track_op() || bias.is_some_and(|b| b.track_op());
        if tracked || !f32_cpu(weight) || !bias.is_none_or(f32_cpu) {
            return Ok(None);
        }
        let (a, b) = weight.dims2()?;
        let (outputs, inputs) = if out_in { (a, b) } else { (b, a) };
        // Mismatched extents are left to the linear op, which names them in its error.
        if bias.is_some_and(|b| b.elem_count() != outputs) {
            return Ok(None);
        }
        extents.push((outputs, inputs));
    }
    let inputs = extents[0].1;
    let outputs: usize = extents.iter().map(|e| e.0).sum();
    let rows = x.elem_count() / inputs.max(1);
    let same_inputs = extents.iter().all(|e| e.1 == inputs);
    if x.track_op() || !f32_cpu(x) || x.dims().last() != Some(&inputs) || !same_inputs || rows == 0
    {
        return Ok(None);
    }
    // A batch against a large weight reads it in place unless a valid copy is kept, so a model
    // used only in batches (BERT-base on 8 × 128 ids) does not hold a second copy of its
    // largest weights; few-row products keep theirs. A stack is kept when each of its weights
    // would be.
    let largest = extents.iter().map(|(o, i)| o * i).max().unwrap_or(0);
    let keep = rows <= MAX_ROWS_KEPT || largest <= MAX_BATCH_KEPT;
    let Some(panels) = cache.panels(parts, (outputs, inputs), out_in, keep)? else {
        let y = batch_through_rows(x, parts, (outputs, inputs), out_in, epilogue)?;
        let Some(mut y) = y else { return Ok(None) };
        if let Some(finish) = finish {
            finish_rows(&mut y, outputs, finish);
        }
        return output_tensor(y, x, outputs).map(Some);
    };
    let parallel = rows * outputs * inputs > PARALLEL_WORK;
    let multiply = |xs: &[f32], bs: Option<&[f32]>| match span_len(rows) {
        Some(span) => {
            let mut y = panels.product_in_spans(xs, rows, bs, parallel, span, kernel, epilogue);
            if let Some(finish) = finish {
                finish_rows(&mut y, outputs, finish);
            }
            y
        }
        None => panels.product(xs, rows, bs, parallel, kernel, epilogue, finish),
    };
    let y = with_f32(x, |xs| match parts {
        [(_, Some(b))] => with_f32(b, |bs| multiply(xs, Some(bs))),
        _ => Ok(multiply(xs, panels.bias.as_deref())),
    })??;
    output_tensor(y, x, outputs).map(Some)
}

/// A product's values as a tensor shaped as `x` with `outputs` in its last dimension.
fn output_tensor(y: Vec<f32>, x: &Tensor, outputs: usize) -> Result<Tensor> {
    let mut dims = x.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = outputs;
    }
    Ok(Tensor::from_vec(y, dims, x.device())?)
}

/// [`finished_product`] for a batch against weights it does not keep packed: read in their own
/// layout, a span of a group at a time ([`RowGroups`]), the same bits as through a packed copy.
/// `None` where the CPU lacks the kernel.
fn batch_through_rows(
    x: &Tensor,
    parts: &[(&Tensor, Option<&Tensor>)],
    (outputs, inputs): (usize, usize),
    out_in: bool,
    epilogue: impl Epilogue,
) -> Result<Option<Vec<f32>>> {
    let weights: Vec<&Tensor> = parts.iter().map(|p| p.0).collect();
    let stacked = parts.len() > 1 && parts.iter().any(|p| p.1.is_some());
    let stacked = stacked.then(|| stacked_bias(parts)).transpose()?;
    let y = with_f32_all(&weights, &mut |values| {
        let rows = Rows {
            parts: values,
            outputs,
            inputs,
            out_in,
        };
        with_f32(x, |xs| {
            let Some(weight) = RowGroups::new(rows, xs) else {
                return Ok(None);
            };
            let m = xs.len() / inputs.max(1);
            let multiply = |bs: Option<&[f32]>| group_products(&weight, outputs, m, bs, epilogue);
            match parts {
                [(_, Some(b))] => with_f32(b, |bs| Some(multiply(Some(bs)))),
                _ => Ok(Some(multiply(stacked.as_deref()))),
            }
        })?
    })??;
    Ok(y)
}

/// What a packed copy of `parts` was made from: the weights, and a stack's biases (packed with
/// it); one weight's bias is read in place at every call, so it is not part of the key.
fn stack_sources(parts: &[(&Tensor, Option<&Tensor>)]) -> Vec<Option<TensorId>> {
    let weights = parts.iter().map(|p| Some(p.0.id()));
    let biases = parts.iter().map(|p| p.1.map(|b| b.id()));
    match parts.len() {
        1 => weights.collect(),
        _ => weights.chain(biases).collect(),
    }
}

/// Whether this CPU has the kernels (AVX-512F); without them every product goes through `gemm`.
pub fn supported() -> bool {
    pass_kernel().is_some()
}

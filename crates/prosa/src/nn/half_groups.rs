//! Products through F16 weights kept packed as `dense_panels.rs` packs a dense weight
//! (groups of 64 outputs, for every input position the group's 64 values side by side:
//! `quantized_half.rs` packs them at load), by the dense pass kernels: each task takes a group
//! span by span into a scratch buffer of f32, the span's first pass widening the halves as it
//! multiplies them ([`super::dense_pass::WideningPass`]: converted in registers, used, and
//! stored) and the passes after it reading the stored f32. The widening is exact and each output
//! is the same products added in the same order, so the product has the bits of the dense
//! packed product of the widened weights; no f32 copy of a whole weight is kept.
//!
//! The task driver ([`group_products`]: groups split among the threads, each task taking its
//! groups one after another over all of its rows) takes any [`GroupSums`] source: these F16
//! groups, or an f32 weight too large to keep packed, transposed a span at a time
//! (`dense_rows.rs`).
//!
//! A Llama feed-forward layer's stacked `[gate | up]` weight can also be taken with its SwiGLU
//! ([`swiglu_product_of_half_groups`]): a task makes a gate group's sums and the matching up
//! group's, and writes `silu(gate)·up` — half the output, written once, with the value
//! [`super::activation::swiglu_stacked`] gives.

use std::ops::Range;

use bytemuck::cast_slice;
use half::f16;

use super::activation::values::silu;
use super::dense_pass::{pass_kernel, span_passes, widening_pass, PassKernel, WideningPass, GROUP};
use super::dense_writes::{write_group, Epilogue, GroupAt};
use super::lanes::vectorized;
use super::panel_tasks::balanced_panel_tasks;
use super::scratch::Scratch;

/// Input positions per span of a group when a whole group would crowd the rows out of L2
/// (inputs past twice this: Llama's down projection, 1,536 × 64 f32 values, 384 KiB, beside
/// 128 rows of 1,536 activations, 768 KiB).
const SPAN: usize = 512;

/// The span of a group `inputs` wide: [`SPAN`], or the whole group up to twice that.
pub(super) fn span_for(inputs: usize) -> usize {
    if inputs > 2 * SPAN {
        SPAN
    } else {
        inputs.max(1)
    }
}

/// `x · Wᵀ` for `m` rows of `x` (row-major, `inputs` wide) and a weight of `outputs` rows held
/// as F16 `groups`: group `g` (outputs `64g..64g + 64`) at `g·inputs·64`, its output `64g + j`'s
/// input `k` at `k·64 + j`, zero past `outputs`. Each task passes every row of its share over
/// each span of a group, the sums carried from span to span, prefetching the span or group it
/// reads next. `None` where the CPU lacks the kernels.
pub(crate) fn product_of_half_groups(
    outputs: usize,
    inputs: usize,
    groups: &[f16],
    x: &[f32],
    m: usize,
) -> Option<Vec<f32>> {
    let weight = HalfGroups::new(inputs, groups, x)?;
    Some(group_products(
        &weight,
        outputs,
        m,
        None,
        std::convert::identity,
    ))
}

/// SwiGLU of `x · Wᵀ` for a weight stacked as `[gate | up]` (`2·width` rows, F16 groups laid
/// out as for [`product_of_half_groups`]): `silu(x·gateᵀ) ⊙ x·upᵀ`, `m` rows of `width`. The
/// gate's outputs `c..c + 64` and the up's are groups `c/64` and `(width + c)/64`, so `width`
/// must be a whole number of groups. The same bits as the product followed by
/// [`super::activation::swiglu_stacked`]; `None` where the CPU lacks the kernels or `width` is
/// not a multiple of 64.
pub(crate) fn swiglu_product_of_half_groups(
    width: usize,
    inputs: usize,
    groups: &[f16],
    x: &[f32],
    m: usize,
) -> Option<Vec<f32>> {
    if !width.is_multiple_of(GROUP) {
        return None;
    }
    let weight = HalfGroups::new(inputs, groups, x)?;
    let up_offset = width / GROUP;
    Some(balanced_panel_tasks(
        width,
        m,
        GROUP,
        |start, n, rows, part| {
            let mut scratch = Scratch::take(weight.span() * GROUP);
            let mut gates = vec![[0f32; GROUP]; rows.len()];
            let mut ups = vec![[0f32; GROUP]; rows.len()];
            let end = start + n;
            for first in (start..end).step_by(GROUP) {
                let gate = first / GROUP;
                let next = (first + GROUP).min(end) / GROUP;
                weight.sums(
                    gate,
                    gate + up_offset,
                    rows.clone(),
                    &mut gates,
                    &mut scratch,
                );
                weight.sums(gate + up_offset, next, rows.clone(), &mut ups, &mut scratch);
                gate_up_in_place(&mut gates, &ups);
                let at = group_at(first, start..end);
                write_group(part, rows.clone(), &gates, at, None, std::convert::identity);
            }
        },
    ))
}

/// Where the group of output `first` goes in the output of a task that owns `columns`.
fn group_at(first: usize, columns: Range<usize>) -> GroupAt {
    GroupAt {
        first,
        width: GROUP.min(columns.end - first),
        column: first - columns.start,
    }
}

/// `gates[i][j] = silu(gates[i][j])·ups[i][j]`, vectorised.
fn gate_up_in_place(gates: &mut [[f32; GROUP]], ups: &[[f32; GROUP]]) {
    vectorized(
        #[inline(always)]
        || {
            for (g, u) in gates.iter_mut().zip(ups) {
                for (g, &u) in g.iter_mut().zip(u) {
                    *g = silu(*g) * u;
                }
            }
        },
    );
}

/// A weight whose groups of 64 outputs a task can make the sums of, span by span, without a
/// packed copy of the whole weight: F16 groups widened as they are read ([`HalfGroups`]), or
/// an f32 weight's rows transposed a span at a time (`dense_rows.rs`).
pub(super) trait GroupSums: Sync {
    /// Input positions per span: the scratch a task hands to [`GroupSums::sums`] holds a span's
    /// `span × 64` f32 values.
    fn span(&self) -> usize;

    /// Group `g`'s sums for `rows` (`lanes[j]`: row `rows.start + j`), span by span, the sums
    /// carried from span to span; prefetching what comes next, the last span group `next`'s
    /// first (the task's next read).
    fn sums(
        &self,
        g: usize,
        next: usize,
        rows: Range<usize>,
        lanes: &mut [[f32; GROUP]],
        scratch: &mut [f32],
    );
}

/// `x · Wᵀ (+ bias)` through `epilogue` for `m` activation rows and `weight`'s `outputs`:
/// the groups split among the threads ([`balanced_panel_tasks`]), each task taking its groups
/// one after another over all of its rows, and writing each group's sums as it finishes it.
pub(super) fn group_products(
    weight: &impl GroupSums,
    outputs: usize,
    m: usize,
    bias: Option<&[f32]>,
    epilogue: impl Epilogue,
) -> Vec<f32> {
    balanced_panel_tasks(outputs, m, GROUP, |start, n, rows, part| {
        let mut scratch = Scratch::take(weight.span() * GROUP);
        let mut lanes = vec![[0f32; GROUP]; rows.len()];
        let end = start + n;
        for first in (start..end).step_by(GROUP) {
            // What is read after this group: the task's next one.
            let next = (first + GROUP).min(end) / GROUP;
            weight.sums(first / GROUP, next, rows.clone(), &mut lanes, &mut scratch);
            write_group(
                part,
                rows.clone(),
                &lanes,
                group_at(first, start..end),
                bias,
                epilogue,
            );
        }
    })
}

/// An F16 weight packed in groups, the activations it multiplies, and the kernels that do it.
struct HalfGroups<'a> {
    pass: PassKernel,
    widen: WideningPass,
    /// Input positions per span of a group.
    span: usize,
    inputs: usize,
    groups: &'a [f16],
    x: &'a [f32],
}

impl<'a> HalfGroups<'a> {
    /// The weight and the activations, or `None` where the CPU lacks the kernels.
    fn new(inputs: usize, groups: &'a [f16], x: &'a [f32]) -> Option<Self> {
        Some(Self {
            pass: pass_kernel()?,
            widen: widening_pass()?,
            span: span_for(inputs),
            inputs,
            groups,
            x,
        })
    }

    /// Positions `at` of group `g` (empty past the last group).
    fn positions(&self, g: usize, at: Range<usize>) -> &'a [f16] {
        let len = self.inputs * GROUP;
        let start = (g * len).min(self.groups.len());
        let group = &self.groups[start..(start + len).min(self.groups.len())];
        &group[(at.start * GROUP).min(group.len())..(at.end * GROUP).min(group.len())]
    }
}

impl GroupSums for HalfGroups<'_> {
    fn span(&self) -> usize {
        self.span
    }

    /// Each span's first pass widens it into `scratch` as it multiplies; the span after it (or
    /// group `next`'s first) is prefetched meanwhile.
    fn sums(
        &self,
        g: usize,
        next: usize,
        rows: Range<usize>,
        lanes: &mut [[f32; GROUP]],
        scratch: &mut [f32],
    ) {
        let (inputs, span) = (self.inputs, self.span);
        for at in (0..inputs).step_by(span) {
            let steps = span.min(inputs - at);
            let halves = self.positions(g, at..at + steps);
            let ahead = if at + steps < inputs {
                self.positions(g, at + steps..at + 2 * steps)
            } else {
                self.positions(next, 0..steps)
            };
            // Recycled: each span's first pass writes every value of it before any is read.
            let widened = &mut scratch[..steps * GROUP];
            let mut first_pass = true;
            let (pass, widen) = (self.pass, self.widen);
            let pass = |xs: &[f32], sums: &mut [[f32; GROUP]], fresh, prefetch| {
                if std::mem::take(&mut first_pass) {
                    widen(halves, widened, xs, inputs, sums, fresh, prefetch);
                } else {
                    pass(widened, xs, inputs, sums, fresh, prefetch);
                }
            };
            let ahead = cast_slice(ahead);
            span_passes(pass, steps, self.x, inputs, rows.clone(), at, lanes, ahead);
        }
    }
}

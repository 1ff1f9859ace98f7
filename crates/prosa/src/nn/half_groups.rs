//! Products through F16 weights kept packed as [`super::dense_panels`] packs a dense weight
//! (groups of 64 outputs, for every input position the group's 64 values side by side:
//! `quantized_half.rs` packs them at load), by the dense pass kernels: each task takes a group
//! span by span into a scratch buffer of f32, the span's first pass widening the halves as it
//! multiplies them ([`super::dense_pass::WideningPass`]: converted in registers, used, and
//! stored) and the passes after it reading the stored f32. The widening is exact and each output
//! is the same products added in the same order, so the product has the bits of the dense
//! packed product of the widened weights; no f32 copy of a whole weight is kept.

use std::ops::Range;

use bytemuck::cast_slice;
use half::f16;

use super::dense_panels::span_passes;
use super::dense_pass::{pass_kernel, widening_pass, GROUP};
use super::dense_writes::{write_group, GroupAt};
use super::panel_tasks::balanced_panel_tasks;
use super::scratch::Scratch;

/// Input positions per span of a group when a whole group would crowd the rows out of L2
/// (inputs past twice this: Llama's down projection, 1,536 × 64 f32 values, 384 KiB, beside
/// 128 rows of 1,536 activations, 768 KiB).
const SPAN: usize = 512;

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
    let (pass, widen) = (pass_kernel()?, widening_pass()?);
    let span = if inputs > 2 * SPAN {
        SPAN
    } else {
        inputs.max(1)
    };
    let group_len = inputs * GROUP;
    // Positions `at` of the group of output `first` (empty past the last group).
    let positions = |first: usize, at: Range<usize>| {
        let start = (first / GROUP * group_len).min(groups.len());
        let group = &groups[start..(start + group_len).min(groups.len())];
        &group[(at.start * GROUP).min(group.len())..(at.end * GROUP).min(group.len())]
    };
    Some(balanced_panel_tasks(
        outputs,
        m,
        GROUP,
        |start, n, rows, part| {
            // Recycled: each span's first pass writes every value of it before any is read.
            let mut widened = Scratch::take(span * GROUP);
            let mut lanes = vec![[0f32; GROUP]; rows.len()];
            let end = start + n;
            for first in (start..end).step_by(GROUP) {
                for at in (0..inputs).step_by(span) {
                    let steps = span.min(inputs - at);
                    let halves = positions(first, at..at + steps);
                    // What is read next: the group's next span, or the task's next group.
                    let ahead = if at + steps < inputs {
                        positions(first, at + steps..at + 2 * steps)
                    } else {
                        positions((first + GROUP).min(end), 0..steps)
                    };
                    let widened = &mut widened[..steps * GROUP];
                    let mut first_pass = true;
                    let pass = |xs: &[f32], sums: &mut [[f32; GROUP]], fresh, prefetch| {
                        if std::mem::take(&mut first_pass) {
                            widen(halves, widened, xs, inputs, sums, fresh, prefetch);
                        } else {
                            pass(widened, xs, inputs, sums, fresh, prefetch);
                        }
                    };
                    let (ahead, rows) = (cast_slice(ahead), rows.clone());
                    span_passes(pass, steps, x, inputs, rows, at, &mut lanes, ahead);
                }
                let at = GroupAt {
                    first,
                    width: GROUP.min(end - first),
                    column: first - start,
                };
                write_group(part, rows.clone(), &lanes, at, None, std::convert::identity);
            }
        },
    ))
}

//! Products through a weight held in another form (F16 or quantized blocks) that is unpacked
//! group by group into the layout [`super::dense_panels`] packs a dense weight in, span by span
//! into a scratch buffer, and multiplied by the same pass kernels: the sums, and so the bits,
//! of the dense packed product of the unpacked weight.

use std::ops::Range;

use super::dense_panels::{span_passes, write_group, GroupAt};
use super::dense_pass::{pass_kernel, GROUP};
use super::panel_tasks::balanced_panel_tasks;
use super::scratch::Scratch;

/// Input positions per span of a group filled by [`product_of_groups`] when a whole group would
/// crowd the rows out of L2 (inputs past twice this: Llama's down projection, 1,536 × 64 f32
/// values, 384 KiB, beside 128 rows of 1,536 activations, 768 KiB).
const FILLED_SPAN: usize = 512;

/// `x · Wᵀ` for `m` rows of `x` (row-major, `inputs` wide) and a weight of `outputs` rows held
/// in another form, which `fill(first, positions, span)` hands over one group of 64 outputs at
/// a time, a span of its input positions at a time, packed as [`super::dense_panels`] packs a dense weight
/// (output `first + j`'s input `positions.start + k` at `k·64 + j`; zero past `outputs`),
/// reading the memory `source(first, end)` names for outputs `first..end` (prefetched while
/// the group before is multiplied). Each task fills each span of a group once and passes every
/// row over it, the sums carried from span to span, so each output is the same sum, in the
/// same order, as the kept packed weight gives. `None` where the CPU lacks the kernel.
pub(crate) fn product_of_groups<'w>(
    outputs: usize,
    inputs: usize,
    x: &[f32],
    m: usize,
    fill: impl Fn(usize, Range<usize>, &mut [f32]) + Sync,
    source: impl Fn(usize, usize) -> &'w [u8] + Sync,
) -> Option<Vec<f32>> {
    let pass = pass_kernel()?;
    let span = if inputs > 2 * FILLED_SPAN {
        FILLED_SPAN
    } else {
        inputs.max(1)
    };
    Some(balanced_panel_tasks(
        outputs,
        m,
        GROUP,
        |start, n, rows, part| {
            // Recycled: `fill` writes every value of its span.
            let mut group = Scratch::take(span * GROUP);
            let mut lanes = vec![[0f32; GROUP]; rows.len()];
            let end = start + n;
            for first in (start..end).step_by(GROUP) {
                let width = GROUP.min(end - first);
                for at in (0..inputs).step_by(span) {
                    let steps = span.min(inputs - at);
                    let weights = &mut group[..steps * GROUP];
                    fill(first, at..at + steps, weights);
                    // What the group's next span, or the next group, is read from.
                    let ahead = if at + steps < inputs {
                        let group = source(first, width + first);
                        let per_position = group.len() / inputs;
                        let next = at + steps..(at + 2 * steps).min(inputs);
                        &group[next.start * per_position..next.end * per_position]
                    } else {
                        let next = (first + GROUP).min(end);
                        source(next, (next + GROUP).min(end))
                    };
                    span_passes(
                        pass,
                        weights,
                        x,
                        inputs,
                        rows.clone(),
                        at,
                        &mut lanes,
                        ahead,
                    );
                }
                let at = GroupAt {
                    first,
                    width,
                    column: first - start,
                };
                write_group(part, rows.clone(), &lanes, at, None, std::convert::identity);
            }
        },
    ))
}

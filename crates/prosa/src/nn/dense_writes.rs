//! How the dense products (`dense_panels.rs`, `half_groups.rs`) write their output: each
//! group's sums plus the bias, through an epilogue of one value (an activation fused with its
//! product); and each finished row through a function of the whole row (a residual added and a
//! layer norm taken, `norm::add_layer_norm_row`) — where one task wrote every column of a
//! row block, right after the block, while its rows are still in cache.

use std::ops::Range;

use super::dense_pass::GROUP;
use super::lanes::vectorized;
use super::norm::rows_per_task;
use super::panel_tasks::TaskOutput;
use super::spin_pool;

/// Where a group's sums go: outputs `first..first + width`, at the task's `column`.
#[derive(Clone, Copy)]
pub(super) struct GroupAt {
    pub first: usize,
    pub width: usize,
    pub column: usize,
}

/// What a product does to each sum as it writes it, after adding the bias: an activation fused
/// with its product (its function of one value, inlined into the writing loop), or
/// [`std::convert::identity`].
pub(crate) trait Epilogue: Fn(f32) -> f32 + Copy + Send + Sync {}

impl<F: Fn(f32) -> f32 + Copy + Send + Sync> Epilogue for F {}

/// A group's sums for rows `rows` (`lanes[j]`: row `rows.start + j`) written to the task's
/// output `at`, each plus its `bias`, through the `epilogue`.
pub(super) fn write_group(
    part: &mut TaskOutput,
    rows: Range<usize>,
    lanes: &[[f32; GROUP]],
    at: GroupAt,
    bias: Option<&[f32]>,
    epilogue: impl Epilogue,
) {
    vectorized(
        // Inlined into `vectorized`'s AVX-512F function: out of line it was compiled for SSE2,
        // sixteen 16-byte stores per row where four 64-byte ones do.
        #[inline(always)]
        || {
            for (i, sums) in rows.zip(lanes) {
                let bias = bias.map(|b| &b[at.first..]);
                write_sums(part, (i, at.column), &sums[..at.width], bias, epilogue);
            }
        },
    );
}

/// Writes a group's `sums` for output row `i` at the task's `column`, each plus its `bias`,
/// through the `epilogue` (called inside [`vectorized`], so the copy, and the epilogue's
/// arithmetic, run in 16-lane registers).
#[inline(always)]
fn write_sums(
    part: &mut TaskOutput,
    (i, column): (usize, usize),
    sums: &[f32],
    bias: Option<&[f32]>,
    epilogue: impl Epilogue,
) {
    match bias {
        Some(b) => part.write(i, column, sums.iter().zip(b).map(|(s, b)| epilogue(s + b))),
        None => part.write(i, column, sums.iter().map(|&s| epilogue(s))),
    }
}

/// What a product does to each output row once every one of its columns is written:
/// `finish(i, row)` for row `i` (a residual added and a layer norm taken).
pub(crate) type RowFinish<'a> = &'a (dyn Fn(usize, &mut [f32]) + Sync);

/// Rows `rows` of the task's output through `finish`, once the task has written them whole: the
/// task owns every column (its product was not split among tasks).
pub(super) fn finish_block(part: &mut TaskOutput, rows: Range<usize>, finish: RowFinish) {
    for i in rows {
        // SAFETY: the task wrote every column of the block's rows (the caller's promise: each
        // group of the block wrote its sums for them, and the groups cover the row).
        finish(i, unsafe { part.written_row(i) });
    }
}

/// Every row of a finished product (`width` columns each) through `finish`, a few rows per task:
/// for products split among tasks by columns, where no task saw a whole row.
pub(super) fn finish_rows(out: &mut [f32], width: usize, finish: RowFinish) {
    if width == 0 {
        return;
    }
    let rows_per_task = rows_per_task(width);
    spin_pool::for_each_chunk_mut(out, rows_per_task * width, |t, rows| {
        for (r, row) in rows.chunks_exact_mut(width).enumerate() {
            finish(t * rows_per_task + r, row);
        }
    });
}

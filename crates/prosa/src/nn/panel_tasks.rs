//! The driver of the panel kernels (integer tiles, dense f32 panels, F16 groups widened for
//! them): a product `m × rows` split by weight rows into a few tasks per thread, each owning
//! whole panels (or, for the last panels, shares of the rows); and the CPU check of the kernels
//! that need AVX-512F.

use std::mem::MaybeUninit;
use std::ops::Range;

use super::{spin_pool, uninit};

/// The `m × rows` product computed by a few tasks per thread, each owning whole panels of
/// `panel` weight rows: `task(first, n, part)` fills `part`, the output's columns
/// `first..first + n` of each of the `m` rows, with the products of weight rows
/// `first..first + n`. Tasks write straight into the output (no parts put together after).
/// Without `parallel`, one task on the calling thread does the whole product.
pub(crate) fn panel_tasks(
    rows: usize,
    m: usize,
    panel: usize,
    parallel: bool,
    task: impl Fn(usize, usize, &mut TaskOutput) + Sync,
) -> Vec<f32> {
    let mut out = uninit::buffer(m * rows);
    if out.is_empty() {
        return Vec::new();
    }
    let threads = rayon::current_num_threads();
    let tasks = if parallel && threads > 1 {
        4 * threads
    } else {
        1
    };
    let task_rows = (rows.div_ceil(tasks).div_ceil(panel) * panel).max(panel);
    let starts: Vec<usize> = (0..rows).step_by(task_rows).collect();
    let mut parts: Vec<TaskOutput> = starts
        .iter()
        .map(|_| TaskOutput {
            first_row: 0,
            rows: Vec::with_capacity(m),
        })
        .collect();
    for row in out.chunks_mut(rows) {
        for (part, columns) in parts.iter_mut().zip(row.chunks_mut(task_rows)) {
            part.rows.push(columns);
        }
    }
    spin_pool::for_each_chunk_mut(&mut parts, 1, |t, part| {
        task(starts[t], task_rows.min(rows - starts[t]), &mut part[0])
    });
    // SAFETY: every task writes all of its columns of every row (`TaskOutput`'s contract), and
    // the tasks' columns cover each row.
    unsafe { uninit::assume_written(out) }
}

/// As [`panel_tasks`], for products whose panels a task prepares before using them (F16
/// weights widened to f32): the panels that divide evenly among the threads go out whole, one
/// run of consecutive panels per thread, and those left over (a 576-output product has nine
/// panels of 64 for two threads) go out by rows instead, one share of the rows per thread —
/// so no thread waits on another's extra panel (when each thread's share has at least
/// [`MIN_SHARE`] rows; otherwise every panel goes out whole, one task each). `task(first, n,
/// rows, part)` fills columns `first..first + n` of output rows `rows`.
pub(crate) fn balanced_panel_tasks(
    columns: usize,
    m: usize,
    panel: usize,
    task: impl Fn(usize, usize, Range<usize>, &mut TaskOutput) + Sync,
) -> Vec<f32> {
    let mut out = uninit::buffer(m * columns);
    if out.is_empty() {
        return Vec::new();
    }
    let threads = rayon::current_num_threads().max(1);
    let share = m.div_ceil(threads);
    // A share of fewer rows would spend more on preparing its panels than on using them: then
    // every panel is a task of its own, as in `panel_tasks`.
    let (per_thread, whole) = if share >= MIN_SHARE {
        let per_thread = columns.div_ceil(panel) / threads * panel;
        (per_thread, (per_thread * threads).min(columns))
    } else {
        (panel, columns)
    };
    // (first column, columns, rows) of each task: whole runs first, then the rows' shares.
    let mut specs: Vec<(usize, usize, Range<usize>)> = (0..whole)
        .step_by(per_thread.max(1))
        .map(|first| (first, per_thread.min(whole - first), 0..m))
        .collect();
    let by_rows = specs.len();
    if whole < columns {
        specs.extend(
            (0..m)
                .step_by(share)
                .map(|r| (whole, columns - whole, r..(r + share).min(m))),
        );
    }
    let mut parts: Vec<TaskOutput> = specs
        .iter()
        .map(|(_, _, rows)| TaskOutput {
            first_row: rows.start,
            rows: Vec::with_capacity(rows.len()),
        })
        .collect();
    for (i, row) in out.chunks_mut(columns).enumerate() {
        let (left, right) = row.split_at_mut(whole);
        for (part, run) in parts.iter_mut().zip(left.chunks_mut(per_thread.max(1))) {
            part.rows.push(run);
        }
        if !right.is_empty() {
            parts[by_rows + i / share].rows.push(right);
        }
    }
    spin_pool::for_each_chunk_mut(&mut parts, 1, |t, part| {
        let (first, n, rows) = &specs[t];
        task(*first, *n, rows.clone(), &mut part[0])
    });
    // SAFETY: every task writes all of its columns of each of its rows (`TaskOutput`'s
    // contract), and the tasks' columns and rows cover the output.
    unsafe { uninit::assume_written(out) }
}

/// Fewest rows a task of [`balanced_panel_tasks`] takes when panels go out by rows.
const MIN_SHARE: usize = 32;

/// What one task of [`panel_tasks`] fills: its columns of every output row (of its rows, for
/// [`balanced_panel_tasks`]). The task must write every one of them (the output is not zeroed
/// first).
pub(crate) struct TaskOutput<'a> {
    /// The first output row the task fills.
    first_row: usize,
    rows: Vec<&'a mut [MaybeUninit<f32>]>,
}

impl TaskOutput<'_> {
    /// Writes `values` into the task's columns `column..` of output row `i`.
    #[inline(always)]
    pub(crate) fn write(&mut self, i: usize, column: usize, values: impl IntoIterator<Item = f32>) {
        uninit::write(&mut self.rows[i - self.first_row][column..], values);
    }

    /// The task's columns of output row `i`, once it has written them.
    ///
    /// # Safety
    /// The task has written every one of its columns of row `i`.
    pub(crate) unsafe fn written_row(&mut self, i: usize) -> &mut [f32] {
        let row: *mut [MaybeUninit<f32>] = &mut *self.rows[i - self.first_row];
        // SAFETY: every value is written (the caller's promise), and `MaybeUninit<f32>` has the
        // layout of `f32`.
        unsafe { &mut *(row as *mut [f32]) }
    }
}

/// Whether the CPU has AVX-512F, which the dense f32 groups (and F16 prompts through them) need (std caches
/// the detection).
pub(crate) fn has_avx512f() -> bool {
    #[cfg(target_arch = "x86_64")]
    let detected = std::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    let detected = false;
    detected
}

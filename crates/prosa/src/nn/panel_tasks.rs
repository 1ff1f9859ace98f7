//! The driver of the panel kernels (integer tiles, F16 panels, dense f32 panels): a product
//! `m × rows` split by weight rows into a few tasks per thread, each owning whole panels; and
//! the CPU check of the kernels that need AVX-512F.

use std::mem::MaybeUninit;

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
    let tasks = if parallel {
        4 * rayon::current_num_threads()
    } else {
        1
    };
    let task_rows = (rows.div_ceil(tasks).div_ceil(panel) * panel).max(panel);
    let starts: Vec<usize> = (0..rows).step_by(task_rows).collect();
    let mut parts: Vec<TaskOutput> = starts
        .iter()
        .map(|_| TaskOutput {
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

/// What one task of [`panel_tasks`] fills: its columns of every output row. The task must
/// write every one of them (the output is not zeroed first).
pub(crate) struct TaskOutput<'a> {
    rows: Vec<&'a mut [MaybeUninit<f32>]>,
}

impl TaskOutput<'_> {
    /// Writes `values` into the task's columns `column..` of output row `i`.
    #[inline(always)]
    pub(crate) fn write(&mut self, i: usize, column: usize, values: impl IntoIterator<Item = f32>) {
        uninit::write(&mut self.rows[i][column..], values);
    }
}

/// Whether the CPU has AVX-512F, which the F16 panels and the dense f32 groups need (std caches
/// the detection).
pub(crate) fn has_avx512f() -> bool {
    #[cfg(target_arch = "x86_64")]
    let detected = std::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    let detected = false;
    detected
}

//! The driver of the panel kernels (integer tiles, F16 panels, dense f32 panels): a product
//! `m × rows` split by weight rows into a few tasks per thread, each owning whole panels; and
//! the CPU check of the kernels that need AVX-512F.

use rayon::prelude::*;

/// The `m × rows` product computed by a few tasks per thread, each owning whole panels of
/// `panel` weight rows: `task(first, n, part)` fills `part` (`m × n`, row-major) with the
/// products of weight rows `first..first + n`; the parts are put together here. Without
/// `parallel`, one task on the calling thread does the whole product.
pub(crate) fn panel_tasks(
    rows: usize,
    m: usize,
    panel: usize,
    parallel: bool,
    task: impl Fn(usize, usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    let tasks = if parallel {
        4 * rayon::current_num_threads()
    } else {
        1
    };
    let task_rows = (rows.div_ceil(tasks).div_ceil(panel) * panel).max(panel);
    let parts: Vec<(usize, Vec<f32>)> = (0..rows)
        .step_by(task_rows)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|start| {
            let n = task_rows.min(rows - start);
            let mut part = vec![0f32; m * n];
            task(start, n, &mut part);
            (start, part)
        })
        .collect();
    let mut out = vec![0f32; m * rows];
    for (start, part) in parts {
        let n = part.len() / m.max(1);
        for (i, row) in part.chunks_exact(n.max(1)).enumerate() {
            out[i * rows + start..i * rows + start + n].copy_from_slice(row);
        }
    }
    out
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

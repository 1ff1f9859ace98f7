//! Runs side by side: each run's validation loss and one validation metric per epoch, one line
//! per run — how pretraining changes a fine-tuning curve, or two settings compare.

use std::path::Path;

use super::{curve_panel, draw_png, s};
use crate::error::Result;
use crate::train::History;

/// Draws `eval_loss` (left) and `metric` (right, e.g. `eval_bleu`) of each named run.
pub fn compare_runs_png(
    runs: &[(String, History)],
    metric: &str,
    title: &str,
    path: &Path,
) -> Result<()> {
    let series = |name: &str| -> Vec<(String, Vec<(f64, f64)>)> {
        runs.iter()
            .map(|(label, h)| (label.clone(), h.series(name)))
            .collect()
    };
    let (losses, metrics) = (series("eval_loss"), series(metric));
    let range = |s: &[(String, Vec<(f64, f64)>)]| {
        let values: Vec<f64> = s
            .iter()
            .flat_map(|(_, v)| v.iter().map(|p| p.1))
            .filter(|v| v.is_finite())
            .collect();
        let hi = values.iter().copied().fold(0.0, f64::max);
        0.0..hi * 1.1 + 1e-9
    };
    let max_epoch = runs
        .iter()
        .flat_map(|(_, h)| h.entries.iter().map(|e| e.epoch))
        .fold(0.0, f64::max)
        .max(1e-9);
    draw_png(path, (1100, 440), |root| {
        let root = root.titled(title, ("sans-serif", 22)).map_err(s)?;
        let (left, right) = root.split_horizontally(550);
        curve_panel(&left, "validation loss", &losses, max_epoch, range(&losses))?;
        let label = metric.strip_prefix("eval_").unwrap_or(metric);
        curve_panel(&right, label, &metrics, max_epoch, range(&metrics))?;
        Ok(())
    })
}

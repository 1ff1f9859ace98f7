//! The ending every training task shares: save the model folder with its training arguments
//! and history, draw the learning curves, and write the task's results as JSON.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Result;
use crate::fsio;
use crate::report;
use crate::train::{TrainOutcome, TrainingArgs};

/// The folder of the trained model inside a run's output folder.
pub const MODEL_DIR: &str = "model";
/// The results file of a run.
pub const RESULTS_FILE: &str = "results.json";
/// The learning-curves figure of a run.
pub const CURVES_FILE: &str = "learning_curves.png";

/// What the ending wrote.
pub(crate) struct Saved {
    /// The model folder.
    pub model_dir: PathBuf,
    /// The learning-curves PNG.
    pub curves: PathBuf,
}

/// Saves the model (`save` writes the folder it is given), then `training_args.json` and the
/// history beside it, and draws the learning curves titled `title` into the output folder.
pub(crate) fn save_run(
    args: &TrainingArgs,
    outcome: &TrainOutcome,
    title: &str,
    save: impl FnOnce(&Path) -> Result<()>,
) -> Result<Saved> {
    let model_dir = args.output_dir.join(MODEL_DIR);
    save(&model_dir)?;
    fsio::write_json(&model_dir.join("training_args.json"), args)?;
    outcome.state.history.save(&model_dir)?;
    let curves = args.output_dir.join(CURVES_FILE);
    report::learning_curves_png(&outcome.state.history, title, &curves)?;
    Ok(Saved { model_dir, curves })
}

/// Writes the task's results into `results.json` of the output folder and returns them.
pub(crate) fn write_results<T: Serialize>(args: &TrainingArgs, results: T) -> Result<T> {
    fsio::write_json(&args.output_dir.join(RESULTS_FILE), &results)?;
    Ok(results)
}

/// (step, value) of metric `key` (`eval_loss`, `eval_perplexity`, …) at each evaluation.
pub(crate) fn metric_curve(outcome: &TrainOutcome, key: &str) -> Vec<(usize, f64)> {
    outcome
        .state
        .history
        .entries
        .iter()
        .filter_map(|h| h.metrics.get(key).map(|&v| (h.step, v)))
        .collect()
}

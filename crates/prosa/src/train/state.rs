//! Where a training run stands (saved in each checkpoint) and how it ended.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::history::History;

/// Where a run stands; saved in every checkpoint as `trainer_state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainerState {
    /// Optimisation steps done.
    pub global_step: usize,
    /// The epoch in progress (0-based).
    pub epoch: usize,
    /// Micro-batches of `epoch` already consumed.
    pub batch_in_epoch: usize,
    /// Best value of the best-model metric so far.
    pub best_metric: Option<f64>,
    /// Step at which it was reached.
    pub best_step: Option<usize>,
    /// Evaluations since the last improvement.
    pub evals_without_improvement: usize,
    /// Seconds spent training before this (resumed) process started.
    pub elapsed_s: f64,
    /// Training-loss sum and count since the last history entry.
    pub loss_sum: f64,
    /// See `loss_sum`.
    pub loss_count: usize,
    /// Learning rate of the last update.
    pub last_lr: f64,
    /// The record so far.
    pub history: History,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOutcome {
    /// The final state (history included).
    pub state: TrainerState,
    /// True when early stopping ended the run.
    pub stopped_early: bool,
    /// Folder of the best checkpoint, if one was saved.
    pub best_checkpoint: Option<PathBuf>,
    /// Seconds of training in total.
    pub train_seconds: f64,
}

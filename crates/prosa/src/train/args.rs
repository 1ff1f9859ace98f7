//! `TrainingArgs`: every setting of a training run, in the spirit of Hugging Face's
//! `TrainingArguments`. Serialised as `training_args.json` beside the checkpoints.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::optim::{OptimizerConfig, ParamGroup};
use super::schedule::ScheduleKind;
use crate::device::DeviceSpec;
use crate::error::{Error, Result};

/// When to evaluate (and so when to write checkpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvalStrategy {
    /// At the end of every epoch.
    #[default]
    Epoch,
    /// Every `eval_steps` optimisation steps.
    Steps,
}

/// Settings of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainingArgs {
    /// Where checkpoints, history and plots go.
    pub output_dir: PathBuf,
    /// Passes over the training data.
    pub num_train_epochs: usize,
    /// Examples per training micro-batch.
    pub per_device_train_batch_size: usize,
    /// Examples per evaluation batch.
    pub per_device_eval_batch_size: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Optimizer and its hyperparameters (weight decay included).
    pub optimizer: OptimizerConfig,
    /// Per-group learning-rate scales, weight decay and freezing.
    pub param_groups: Vec<ParamGroup>,
    /// Learning-rate schedule.
    pub lr_scheduler_type: ScheduleKind,
    /// Warmup as a fraction of all steps (used when `warmup_steps` is 0).
    pub warmup_ratio: f64,
    /// Warmup steps.
    pub warmup_steps: usize,
    /// Batch examples of similar length together (transformers' `group_by_length`): less
    /// padding, for models whose examples have a length.
    pub group_by_length: bool,
    /// Leave out each epoch's incomplete training batch (transformers' `dataloader_drop_last`;
    /// batch normalisation cannot train on a batch of one row).
    pub dataloader_drop_last: bool,
    /// Micro-batches whose gradients are summed before one update.
    pub gradient_accumulation_steps: usize,
    /// Clip the global gradient norm to this value (0 disables).
    pub max_grad_norm: f64,
    /// When to evaluate.
    pub eval_strategy: EvalStrategy,
    /// Steps between evaluations with `EvalStrategy::Steps`.
    pub eval_steps: usize,
    /// Steps between log lines (0: only at evaluations).
    pub logging_steps: usize,
    /// The metric that decides the best checkpoint and early stopping (`eval_loss`,
    /// `eval_accuracy`, `eval_macro_f1`, …; the `eval_` prefix may be left out).
    pub metric_for_best_model: String,
    /// Whether larger values of the metric are better (`None`: false for losses, true otherwise).
    pub greater_is_better: Option<bool>,
    /// Stop after this many evaluations without improvement (`None`: never).
    pub early_stopping_patience: Option<usize>,
    /// At the end, put the best checkpoint's weights back into the model.
    pub load_best_model_at_end: bool,
    /// Keep `checkpoint-best/` up to date.
    pub save_best: bool,
    /// Keep `checkpoint-last/` up to date (needed to resume).
    pub save_last: bool,
    /// Seed of everything random: initialisation, shuffling, dropout.
    pub seed: u64,
    /// Show a progress bar on a terminal.
    pub progress: bool,
    /// Where the model trains: `cpu`, `cuda` or `cuda:N`.
    pub device: DeviceSpec,
}

impl Default for TrainingArgs {
    fn default() -> Self {
        Self {
            output_dir: PathBuf::from("runs/default"),
            num_train_epochs: 3,
            per_device_train_batch_size: 32,
            per_device_eval_batch_size: 128,
            learning_rate: 1e-3,
            optimizer: OptimizerConfig::default(),
            param_groups: Vec::new(),
            lr_scheduler_type: ScheduleKind::Linear,
            warmup_ratio: 0.0,
            warmup_steps: 0,
            group_by_length: false,
            dataloader_drop_last: false,
            gradient_accumulation_steps: 1,
            max_grad_norm: 1.0,
            eval_strategy: EvalStrategy::Epoch,
            eval_steps: 500,
            logging_steps: 50,
            metric_for_best_model: "eval_loss".into(),
            greater_is_better: None,
            early_stopping_patience: None,
            load_best_model_at_end: true,
            save_best: true,
            save_last: true,
            seed: 42,
            progress: true,
            device: DeviceSpec::Cpu,
        }
    }
}

impl TrainingArgs {
    /// The metric name with its `eval_` prefix.
    pub fn best_metric_key(&self) -> String {
        if self.metric_for_best_model.starts_with("eval_") {
            self.metric_for_best_model.clone()
        } else {
            format!("eval_{}", self.metric_for_best_model)
        }
    }

    /// Whether larger values of the best-model metric are better.
    pub fn greater_is_better(&self) -> bool {
        self.greater_is_better.unwrap_or_else(|| {
            !self.best_metric_key().ends_with("loss")
                && !self.best_metric_key().ends_with("perplexity")
        })
    }

    /// An error unless `metric_for_best_model` is one of `available` (names without `eval_`),
    /// listing them.
    pub fn check_metric(&self, available: &[&str]) -> Result<()> {
        let key = self.best_metric_key();
        if available.contains(&key.trim_start_matches("eval_")) {
            return Ok(());
        }
        Err(Error::config(
            "metric_for_best_model",
            format!(
                "unknown metric '{}' (available: {})",
                self.metric_for_best_model,
                available.join(", ")
            ),
        ))
    }

    /// Checks every setting, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("num_train_epochs", self.num_train_epochs),
            (
                "per_device_train_batch_size",
                self.per_device_train_batch_size,
            ),
            (
                "per_device_eval_batch_size",
                self.per_device_eval_batch_size,
            ),
            (
                "gradient_accumulation_steps",
                self.gradient_accumulation_steps,
            ),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(Error::config(field, "must be at least 1"));
            }
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::config(
                "learning_rate",
                format!("must be positive, got {}", self.learning_rate),
            ));
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return Err(Error::config(
                "warmup_ratio",
                format!("must be in [0, 1), got {}", self.warmup_ratio),
            ));
        }
        if self.eval_strategy == EvalStrategy::Steps && self.eval_steps == 0 {
            return Err(Error::config(
                "eval_steps",
                "must be at least 1 with eval_strategy = steps",
            ));
        }
        if self.max_grad_norm < 0.0 {
            return Err(Error::config("max_grad_norm", "must not be negative"));
        }
        let o = &self.optimizer;
        if !(o.weight_decay >= 0.0 && o.weight_decay.is_finite()) {
            return Err(Error::config(
                "weight_decay",
                format!("must be 0 or more, got {}", o.weight_decay),
            ));
        }
        if !(0.0..1.0).contains(&o.momentum) {
            return Err(Error::config(
                "momentum",
                format!("must be in [0, 1), got {}", o.momentum),
            ));
        }
        Ok(())
    }
}

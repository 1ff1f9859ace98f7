//! Checkpoint folders: written atomically, read back to resume, and refused when they belong to
//! another run.
//!
//! Resuming is exact only when the resumed run has the same batches in the same order as the
//! one that wrote the checkpoint, so each checkpoint records the run's [`RunShape`] (the number
//! of training examples, batch sizes, epochs, seed and the parameters' count); a run with
//! another shape refuses the checkpoint, naming the setting that differs, instead of silently
//! continuing someone else's schedule.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::optim::Optimizer;
use super::state::TrainerState;
use crate::error::{Error, Result};
use crate::fsio;
use crate::nn::ParamStore;

/// The settings a checkpoint and the run that resumes it must share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct RunShape {
    /// Training examples.
    pub train_examples: usize,
    /// `per_device_train_batch_size`.
    pub batch_size: usize,
    /// `gradient_accumulation_steps`.
    pub gradient_accumulation_steps: usize,
    /// `num_train_epochs`.
    pub num_train_epochs: usize,
    /// `seed`.
    pub seed: u64,
    /// Trainable parameter values (a checkpoint of another model of other sizes differs here).
    pub parameter_values: usize,
}

impl RunShape {
    /// The settings that differ between a checkpoint's run (`self`) and this one, as
    /// `name: checkpoint X, this run Y`.
    fn differences(&self, now: &RunShape) -> Vec<String> {
        let fields: [(&str, u64, u64); 6] = [
            (
                "training examples",
                self.train_examples as u64,
                now.train_examples as u64,
            ),
            (
                "per_device_train_batch_size",
                self.batch_size as u64,
                now.batch_size as u64,
            ),
            (
                "gradient_accumulation_steps",
                self.gradient_accumulation_steps as u64,
                now.gradient_accumulation_steps as u64,
            ),
            (
                "num_train_epochs",
                self.num_train_epochs as u64,
                now.num_train_epochs as u64,
            ),
            ("seed", self.seed, now.seed),
            (
                "parameter values",
                self.parameter_values as u64,
                now.parameter_values as u64,
            ),
        ];
        fields
            .iter()
            .filter(|(_, then, now)| then != now)
            .map(|(name, then, now)| format!("{name}: {then} in the checkpoint, {now} now"))
            .collect()
    }
}

/// `trainer_state.json` as written.
#[derive(Serialize)]
struct CheckpointState<'a> {
    optimizer_step: usize,
    run: &'a RunShape,
    state: &'a TrainerState,
}

/// `trainer_state.json` as read (`run` is absent in checkpoints written before it existed).
#[derive(Deserialize)]
struct CheckpointStateOwned {
    optimizer_step: usize,
    #[serde(default)]
    run: Option<RunShape>,
    state: TrainerState,
}

/// Writes a checkpoint folder atomically (into a temporary folder, then renamed).
pub(super) fn write_checkpoint(
    dir: &Path,
    params: &ParamStore,
    optimizer: &Optimizer,
    run: &RunShape,
    state: &TrainerState,
) -> Result<()> {
    let tmp = fsio::temporary_sibling(dir);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    fsio::create_dir(&tmp)?;
    params.save(&tmp.join("model.safetensors"))?;
    optimizer.save(&tmp.join("optimizer.safetensors"))?;
    fsio::write_json(
        &tmp.join("trainer_state.json"),
        &CheckpointState {
            optimizer_step: optimizer.step,
            run,
            state,
        },
    )?;
    fsio::replace_dir(&tmp, dir)
}

/// Reads the checkpoint in `dir` into `params` and `optimizer` and returns where its run stood;
/// an error when there is none, or when it was written by a run of another [`RunShape`].
pub(super) fn restore_checkpoint(
    dir: &Path,
    params: &ParamStore,
    optimizer: &mut Optimizer,
    run: &RunShape,
) -> Result<TrainerState> {
    let state_path = dir.join("trainer_state.json");
    if !state_path.exists() {
        return Err(Error::folder(
            dir,
            "no checkpoint to resume from (trainer_state.json not found): run without --resume \
             to start",
        ));
    }
    let saved: CheckpointStateOwned = fsio::read_json(&state_path)?;
    if let Some(then) = &saved.run {
        let differences = then.differences(run);
        if !differences.is_empty() {
            return Err(Error::folder(
                dir,
                format!(
                    "this checkpoint was written by another run ({}): resume with the settings \
                     it was written with, or start afresh in another --output-dir",
                    differences.join("; ")
                ),
            ));
        }
    }
    params.load(&dir.join("model.safetensors"))?;
    optimizer.load(&dir.join("optimizer.safetensors"), saved.optimizer_step)?;
    Ok(saved.state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_setting_that_changed() {
        let a = RunShape {
            train_examples: 100,
            batch_size: 8,
            gradient_accumulation_steps: 1,
            num_train_epochs: 3,
            seed: 42,
            parameter_values: 1000,
        };
        assert!(a.differences(&a.clone()).is_empty());
        let b = RunShape {
            batch_size: 16,
            seed: 7,
            ..a.clone()
        };
        assert_eq!(
            a.differences(&b),
            [
                "per_device_train_batch_size: 8 in the checkpoint, 16 now",
                "seed: 42 in the checkpoint, 7 now"
            ]
        );
    }
}

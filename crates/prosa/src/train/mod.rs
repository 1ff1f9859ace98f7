//! Training: parameters, optimizers, schedules, the [`Trainer`] loop and its history.

mod args;
mod history;
mod optim;
mod resume;
mod sampler;
mod schedule;
mod state;
mod trainable;
mod trainer;

pub use crate::nn::{load_safetensors, ForwardCtx, Init, ParamBuilder, ParamStore};
pub use args::{EvalStrategy, TrainingArgs};
pub use history::{History, HistoryEntry};
pub use optim::{
    clip_grad_norm, glob_match, Optimizer, OptimizerConfig, OptimizerKind, ParamGroup,
};
pub use schedule::{Schedule, ScheduleKind};
pub use trainer::{
    StepOutput, TrainOutcome, Trainable, Trainer, TrainerState, CHECKPOINT_BEST, CHECKPOINT_LAST,
};

//! The training loop every prosa model uses.
//!
//! A model implements [`Trainable`]: given a batch of its examples it returns a scalar loss (and,
//! for classifiers, predictions). The [`Trainer`] does the rest: seeded shuffling, gradient
//! accumulation, clipping, the optimizer and schedule, evaluation, early stopping, checkpoints
//! that can be resumed after a crash, a progress bar and the history.
//!
//! Resuming is exact: the batch order of epoch `e` and the dropout randomness of step `s` are
//! derived from the seed alone, so a run killed and resumed from `checkpoint-last/` takes the
//! same steps as one never interrupted.

use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::Tensor;
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::args::{EvalStrategy, TrainingArgs};
use super::history::HistoryEntry;
use super::optim::{clip_grad_norm, Optimizer, ParamGroup};
use super::resume::{restore_checkpoint, write_checkpoint, RunShape};
use super::schedule::Schedule;
use crate::error::{Error, Result};
use crate::fsio;
use crate::metrics::ClassificationReport;
use crate::nn::ForwardCtx;

pub use super::state::{TrainOutcome, TrainerState};
pub use super::trainable::{StepOutput, Trainable};

/// Names of the checkpoint folders inside `output_dir`.
pub const CHECKPOINT_LAST: &str = "checkpoint-last";
/// See [`CHECKPOINT_LAST`].
pub const CHECKPOINT_BEST: &str = "checkpoint-best";

/// Runs training as [`TrainingArgs`] say.
pub struct Trainer {
    args: TrainingArgs,
    label_names: Vec<String>,
    interrupt_after_step: Option<usize>,
}

fn mix_seed(seed: u64, a: u64, b: u64) -> u64 {
    // SplitMix-style mixing so nearby (epoch, step) pairs give unrelated streams.
    let mut z =
        seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Trainer {
    /// A trainer; `label_names` (class names in id order) enable classification metrics (empty:
    /// accuracy only, when the model returns predictions).
    pub fn new(args: TrainingArgs, label_names: Vec<String>) -> Result<Self> {
        args.validate()?;
        Ok(Self {
            args,
            label_names,
            interrupt_after_step: None,
        })
    }

    /// The settings.
    pub fn args(&self) -> &TrainingArgs {
        &self.args
    }

    /// Makes [`Trainer::train`] stop with an error right after step `step`, as if the process
    /// had been killed there (for testing resumption).
    pub fn interrupt_after_step(&mut self, step: usize) {
        self.interrupt_after_step = Some(step);
    }

    /// Trains `model` on `train`, evaluating on `eval` if given. With `resume`, continues from
    /// `output_dir/checkpoint-last/`.
    pub fn train<M: Trainable>(
        &self,
        model: &M,
        train: &[M::Example],
        eval: Option<&[M::Example]>,
        resume: bool,
    ) -> Result<TrainOutcome> {
        let args = &self.args;
        if train.is_empty() {
            return Err(Error::config("train_dataset", "the training set is empty"));
        }
        args.check_metric(&self.metric_names(model))?;
        fsio::create_dir(&args.output_dir)?;
        fsio::write_json(&args.output_dir.join("training_args.json"), args)?;
        let groups: Vec<ParamGroup> = model
            .buffers()
            .into_iter()
            .map(|name| ParamGroup {
                pattern: name.to_string(),
                lr_scale: None,
                weight_decay: None,
                frozen: true,
            })
            .chain(args.param_groups.iter().cloned())
            .collect();
        let mut optimizer = Optimizer::new(model.params(), args.optimizer, &groups)?;
        let accum = args.gradient_accumulation_steps;
        let batch_size = args.per_device_train_batch_size;
        let drop_last = args.dataloader_drop_last && train.len() >= batch_size;
        let batches_per_epoch = if drop_last {
            train.len() / batch_size
        } else {
            train.len().div_ceil(batch_size)
        };
        let steps_per_epoch = batches_per_epoch.div_ceil(accum);
        let total_steps = steps_per_epoch * args.num_train_epochs;
        let warmup_steps = if args.warmup_steps > 0 {
            args.warmup_steps
        } else {
            (args.warmup_ratio * total_steps as f64).ceil() as usize
        };
        let schedule = Schedule {
            kind: args.lr_scheduler_type,
            warmup_steps,
            total_steps,
        };

        let run = RunShape {
            train_examples: train.len(),
            batch_size,
            gradient_accumulation_steps: accum,
            num_train_epochs: args.num_train_epochs,
            seed: args.seed,
            parameter_values: model.params().num_parameters(),
        };
        let mut state = TrainerState::default();
        if resume {
            let dir = args.output_dir.join(CHECKPOINT_LAST);
            state = restore_checkpoint(&dir, model.params(), &mut optimizer, &run)?;
        }
        let started = Instant::now();
        let base_elapsed = state.elapsed_s;
        let elapsed = || base_elapsed + started.elapsed().as_secs_f64();

        let lengths = if args.group_by_length {
            let lengths: Option<Vec<usize>> =
                train.iter().map(|e| model.example_length(e)).collect();
            Some(lengths.ok_or_else(|| {
                Error::config("group_by_length", "this model's examples have no length")
            })?)
        } else {
            None
        };
        let bar = self.progress_bar(total_steps as u64, state.global_step as u64);
        let mut stopped_early = false;
        'epochs: for epoch in state.epoch..args.num_train_epochs {
            let mut order: Vec<usize> = (0..train.len()).collect();
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix_seed(
                args.seed,
                1 + epoch as u64,
                0,
            )));
            if let Some(lengths) = &lengths {
                order = super::sampler::length_grouped(
                    &order,
                    lengths,
                    args.per_device_train_batch_size,
                );
            }
            let batches: Vec<&[usize]> = order
                .chunks(batch_size)
                .filter(|b| !drop_last || b.len() == batch_size)
                .collect();
            let start_batch = if epoch == state.epoch {
                state.batch_in_epoch
            } else {
                0
            };
            state.epoch = epoch;
            let groups: Vec<(usize, &[&[usize]])> = batches
                .chunks(accum)
                .enumerate()
                .map(|(i, g)| (i * accum, g))
                .filter(|(first, _)| *first >= start_batch)
                .collect();
            for (first_batch, group) in groups {
                let lr = args.learning_rate * schedule.factor(state.global_step);
                let mut grads: Vec<Option<Tensor>> = Vec::new();
                let mut group_loss = 0.0;
                for (k, batch) in group.iter().enumerate() {
                    let examples: Vec<&M::Example> = batch.iter().map(|&i| &train[i]).collect();
                    let mut ctx = ForwardCtx::training(ChaCha8Rng::seed_from_u64(mix_seed(
                        args.seed,
                        2 + state.global_step as u64,
                        k as u64,
                    )));
                    let out = model.forward_batch(&examples, &mut ctx)?;
                    let loss_value = out.loss.to_scalar::<f32>()? as f64;
                    if !loss_value.is_finite() {
                        return Err(self.non_finite(loss_value, &state, steps_per_epoch));
                    }
                    group_loss += loss_value / group.len() as f64;
                    let scaled = (out.loss / group.len() as f64)?;
                    let step_grads = optimizer.collect_grads(&scaled.backward()?);
                    if grads.is_empty() {
                        grads = step_grads;
                    } else {
                        for (acc, g) in grads.iter_mut().zip(step_grads) {
                            *acc = match (acc.take(), g) {
                                (Some(a), Some(g)) => Some((a + g)?),
                                (a, g) => a.or(g),
                            };
                        }
                    }
                }
                if args.max_grad_norm > 0.0 {
                    let norm = clip_grad_norm(&mut grads, args.max_grad_norm)?;
                    if !norm.is_finite() {
                        return Err(self.non_finite(norm, &state, steps_per_epoch));
                    }
                }
                optimizer.apply(&grads, lr)?;
                state.global_step += 1;
                state.batch_in_epoch = first_batch + group.len();
                state.loss_sum += group_loss;
                state.loss_count += 1;
                state.last_lr = lr;
                bar.set_position(state.global_step as u64);
                bar.set_message(format!(
                    "epoch {} loss {:.4} lr {:.2e}",
                    epoch + 1,
                    group_loss,
                    lr
                ));
                if args.logging_steps > 0 && state.global_step % args.logging_steps == 0 {
                    let epoch = self.epoch_float(&state, steps_per_epoch);
                    let loss = state.loss_sum / state.loss_count.max(1) as f64;
                    self.log_line(state.global_step, epoch, loss, lr)?;
                    if !bar.is_hidden() {
                        bar.println(format!(
                            "step {:>6}  epoch {epoch:>5.2}  loss {loss:.4}  lr {lr:.2e}",
                            state.global_step
                        ));
                    }
                }
                let end_of_epoch = state.batch_in_epoch >= batches.len();
                if end_of_epoch {
                    state.epoch = epoch + 1;
                    state.batch_in_epoch = 0;
                }
                let eval_now = match args.eval_strategy {
                    EvalStrategy::Epoch => end_of_epoch,
                    EvalStrategy::Steps => {
                        state.global_step % args.eval_steps == 0 || state.global_step == total_steps
                    }
                };
                if eval_now {
                    let stop = self.evaluate_and_checkpoint(
                        model,
                        eval,
                        &mut state,
                        (&optimizer, &run),
                        steps_per_epoch,
                        elapsed(),
                        &bar,
                    )?;
                    if stop {
                        stopped_early = true;
                        break 'epochs;
                    }
                }
                if self.interrupt_after_step == Some(state.global_step) {
                    return Err(Error::config(
                        "interrupt_after_step",
                        format!("interrupted after step {}", state.global_step),
                    ));
                }
            }
        }
        bar.finish_and_clear();
        let best_dir = args.output_dir.join(CHECKPOINT_BEST);
        let best_checkpoint = best_dir
            .join("model.safetensors")
            .exists()
            .then_some(best_dir);
        if args.load_best_model_at_end && eval.is_some() {
            if let Some(dir) = &best_checkpoint {
                model.params().load(&dir.join("model.safetensors"))?;
            }
        }
        state.elapsed_s = elapsed();
        Ok(TrainOutcome {
            train_seconds: state.elapsed_s,
            state,
            stopped_early,
            best_checkpoint,
        })
    }

    /// Appends one logging line to `output_dir/train_log.jsonl` (the log survives without a
    /// terminal, and a resumed run appends to it).
    fn log_line(&self, step: usize, epoch: f64, loss: f64, lr: f64) -> Result<()> {
        use std::io::Write;
        let path = self.args.output_dir.join("train_log.jsonl");
        let line =
            serde_json::json!({ "step": step, "epoch": epoch, "loss": loss, "learning_rate": lr });
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        writeln!(file, "{line}").map_err(|e| Error::io(&path, e))
    }

    fn progress_bar(&self, total: u64, position: u64) -> ProgressBar {
        if !self.args.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30.cyan/blue} {pos}/{len} steps [{elapsed_precise} < {eta_precise}] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_position(position);
        bar.reset_eta();
        bar
    }

    fn epoch_float(&self, state: &TrainerState, steps_per_epoch: usize) -> f64 {
        state.global_step as f64 / steps_per_epoch.max(1) as f64
    }

    fn non_finite(&self, value: f64, state: &TrainerState, steps_per_epoch: usize) -> Error {
        let last = self.args.output_dir.join(CHECKPOINT_LAST);
        let checkpoint = if last.join("trainer_state.json").exists() {
            format!("the last good checkpoint is kept in {}", last.display())
        } else {
            "no checkpoint had been written yet".to_string()
        };
        Error::NonFiniteLoss {
            value: value.to_string(),
            step: state.global_step + 1,
            epoch: self.epoch_float(state, steps_per_epoch),
            checkpoint,
        }
    }

    /// The metrics an evaluation of `model` reports (without the `eval_` prefix).
    pub fn metric_names<M: Trainable>(&self, model: &M) -> Vec<&'static str> {
        let mut names = vec!["loss"];
        if model.reports_perplexity() {
            names.push("perplexity");
        }
        if model.reports_predictions() {
            names.push("accuracy");
            if !self.label_names.is_empty() {
                names.extend(["macro_f1", "weighted_f1"]);
            }
        }
        names.extend(model.extra_metric_names());
        names
    }

    /// Loss and metrics of `model` on `examples`, keyed `eval_loss`, `eval_accuracy`, ….
    pub fn evaluate<M: Trainable>(
        &self,
        model: &M,
        examples: &[M::Example],
    ) -> Result<BTreeMap<String, f64>> {
        // Evaluation runs no backward pass: no graph is recorded, so activations free early.
        let _no_grad = candle_core::no_grad();
        let mut loss_sum = 0.0;
        let mut preds = Vec::new();
        let mut targets = Vec::new();
        for chunk in examples.chunks(self.args.per_device_eval_batch_size) {
            let batch: Vec<&M::Example> = chunk.iter().collect();
            let out = model.forward_batch(&batch, &mut ForwardCtx::eval())?;
            loss_sum += out.loss.to_scalar::<f32>()? as f64 * chunk.len() as f64;
            if let (Some(p), Some(t)) = (out.predictions, out.targets) {
                preds.extend(p);
                targets.extend(t);
            }
        }
        let mut metrics = BTreeMap::new();
        let loss = loss_sum / examples.len().max(1) as f64;
        metrics.insert("eval_loss".to_string(), loss);
        if model.reports_perplexity() {
            metrics.insert("eval_perplexity".to_string(), loss.exp());
        }
        if !preds.is_empty() && self.label_names.is_empty() {
            // No class names (e.g. masked-LM tokens): accuracy only.
            let right = preds.iter().zip(&targets).filter(|(p, t)| p == t).count();
            metrics.insert("eval_accuracy".into(), right as f64 / preds.len() as f64);
        } else if !preds.is_empty() {
            let report = ClassificationReport::new(&targets, &preds, &self.label_names);
            metrics.insert("eval_accuracy".into(), report.accuracy);
            metrics.insert("eval_macro_f1".into(), report.macro_avg.f1);
            metrics.insert("eval_weighted_f1".into(), report.weighted_avg.f1);
        }
        for (name, value) in model.extra_metrics(examples)? {
            metrics.insert(format!("eval_{name}"), value);
        }
        Ok(metrics)
    }

    #[allow(clippy::too_many_arguments)]
    fn evaluate_and_checkpoint<M: Trainable>(
        &self,
        model: &M,
        eval: Option<&[M::Example]>,
        state: &mut TrainerState,
        (optimizer, run): (&Optimizer, &RunShape),
        steps_per_epoch: usize,
        wall_time_s: f64,
        bar: &ProgressBar,
    ) -> Result<bool> {
        let args = &self.args;
        let metrics = match eval {
            Some(e) if !e.is_empty() => self.evaluate(model, e)?,
            _ => BTreeMap::new(),
        };
        let entry = HistoryEntry {
            epoch: self.epoch_float(state, steps_per_epoch),
            step: state.global_step,
            train_loss: state.loss_sum / state.loss_count.max(1) as f64,
            metrics,
            learning_rate: state.last_lr,
            wall_time_s,
        };
        state.loss_sum = 0.0;
        state.loss_count = 0;
        if !bar.is_hidden() {
            let shown: Vec<String> = entry
                .metrics
                .iter()
                .map(|(k, v)| format!("{k} {v:.4}"))
                .collect();
            bar.println(format!(
                "epoch {:.2} step {}: train_loss {:.4}  {}",
                entry.epoch,
                entry.step,
                entry.train_loss,
                shown.join("  ")
            ));
        }
        let key = args.best_metric_key();
        let improved = match (entry.metrics.get(&key), state.best_metric) {
            (Some(&v), None) => Some(v),
            (Some(&v), Some(best)) => {
                let better = if args.greater_is_better() {
                    v > best
                } else {
                    v < best
                };
                better.then_some(v)
            }
            (None, _) => None,
        };
        if let Some(v) = improved {
            state.best_metric = Some(v);
            state.best_step = Some(state.global_step);
            state.evals_without_improvement = 0;
        } else if entry.metrics.contains_key(&key) {
            state.evals_without_improvement += 1;
        }
        state.history.entries.push(entry);
        state.elapsed_s = wall_time_s;
        state.history.save(&args.output_dir)?;
        if improved.is_some() && args.save_best {
            write_checkpoint(
                &args.output_dir.join(CHECKPOINT_BEST),
                model.params(),
                optimizer,
                run,
                state,
            )?;
        }
        if args.save_last {
            write_checkpoint(
                &args.output_dir.join(CHECKPOINT_LAST),
                model.params(),
                optimizer,
                run,
                state,
            )?;
        }
        Ok(args
            .early_stopping_patience
            .is_some_and(|p| state.evals_without_improvement >= p))
    }
}

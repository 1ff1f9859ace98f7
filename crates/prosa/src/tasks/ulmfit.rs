//! ULMFiT's stages 2 and 3 (`prosa train --arch ulmfit --pretrained LM_DIR`): the general-domain
//! language model moves to the training texts' vocabulary and is fine-tuned on those texts
//! (discriminative rates, slanted triangular schedule); then the classifier on its encoder
//! trains with gradual unfreezing — the head alone for an epoch, then one more layer group per
//! epoch from the top, then everything. Without `--pretrained` the language model starts from
//! random weights: the paper's "without pretraining" ablation; `ulmfit.gradual_unfreezing` and
//! `ulmfit.discriminative_lr` switch off the other two.

use std::path::Path;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::ending::{metric_curve, CURVES_FILE, MODEL_DIR, RESULTS_FILE};
use super::experiment::Experiment;
use super::ulmfit_pretraining::unigram_perplexity;
use crate::data::{Dataset, LabelMap};
use crate::error::{Error, Result};
use crate::models::ulmfit::awd_lstm::{AwdDropouts, AwdLstmConfig};
use crate::models::ulmfit::classifier::UlmfitClassifier;
use crate::models::ulmfit::{build_vocab, chunks, tokenize, AwdLstmLm, LmChunk};
use crate::train::{
    History, ParamGroup, ScheduleKind, TrainOutcome, Trainable, Trainer, TrainingArgs,
    CHECKPOINT_LAST,
};
use crate::{fsio, report};

/// How much slower each lower layer group learns (Howard & Ruder: η^(l−1) = η^l / 2.6).
const LAYER_RATE_RATIO: f64 = 2.6;
/// Language-model chunks held out: every N-th.
const LM_VALIDATION_EVERY: usize = 20;

/// Rate scales per layer group (bottom to top): `2.6^-(distance from the top)`, or all 1.
fn rate_groups(groups: &[String], discriminative: bool) -> Vec<ParamGroup> {
    let top = groups.len().saturating_sub(1);
    groups
        .iter()
        .enumerate()
        .map(|(i, pattern)| ParamGroup {
            pattern: pattern.clone(),
            lr_scale: discriminative.then(|| LAYER_RATE_RATIO.powi(-((top - i) as i32))),
            ..Default::default()
        })
        .collect()
}

/// fastai's layer groups of the language model, bottom to top: the LSTM layers, then the
/// embedding — which is also the tied decoder, so it is the top group and learns at the full
/// rate, as the decoder's bias does (the classifier's groups put the embedding at the bottom).
fn language_model_groups(num_layers: usize) -> Vec<String> {
    (0..num_layers)
        .map(|l| format!("rnns.{l}.*"))
        .chain(["encoder.*".to_string()])
        .collect()
}

/// The classification data: texts and class ids of the training split and, when there is one,
/// of the validation split.
pub(super) struct ClassifierData<'a> {
    /// Class names.
    pub labels: &'a LabelMap,
    /// Training texts.
    pub train: &'a Dataset,
    /// Their class ids.
    pub train_ids: &'a [u32],
    /// Validation texts and class ids.
    pub validation: Option<(&'a Dataset, &'a [u32])>,
    /// Loss weights per class.
    pub class_weights: Option<Vec<f32>>,
}

/// What stages 2 and 3 produced: the classifier, the last stage's outcome, and the seconds of
/// every stage.
pub(super) struct Trained {
    /// The classifier after the last stage.
    pub model: UlmfitClassifier,
    /// The last stage's outcome (its history and checkpoints).
    pub outcome: TrainOutcome,
    /// Seconds of every stage, language-model fine-tuning included.
    pub seconds: f64,
}

/// Runs stages 2 and 3. With `resume`, finished stages are skipped (their end state is read
/// back from their folders) and the stage in progress continues from its `checkpoint-last/`.
pub(super) fn train(
    e: &Experiment,
    data: ClassifierData,
    device: &Device,
    resume: bool,
) -> Result<Trained> {
    let u = e.model.ulmfit;
    let out = &e.training.output_dir;
    let seed = e.training.seed;
    let train_texts = data.train.texts();
    // The stage's run (history, checkpoints, curves, results.json) in `lm/`, the fine-tuned
    // language model's folder in `lm/model/`.
    let lm_run = out.join("lm");
    let lm_dir = lm_run.join(MODEL_DIR);
    if resume && !lm_run.join(STAGE_DONE).exists() && !has_checkpoint(&lm_run) {
        return Err(Error::folder(
            out,
            "no ULMFiT stage to resume (neither lm/stage_done.json nor \
             lm/checkpoint-last/trainer_state.json): run without --resume to start",
        ));
    }
    let lm_seconds = if resume && lm_run.join(STAGE_DONE).exists() {
        fsio::read_json::<StageDone>(&lm_run.join(STAGE_DONE))?
            .outcome
            .train_seconds
    } else {
        fine_tune_language_model(e, &train_texts, &lm_run, device, resume)?
    };

    // Stage 3: the classifier, unfreezing from the top.
    let model = UlmfitClassifier::from_language_model(
        &lm_dir,
        data.labels.clone(),
        u.drop_mult,
        data.class_weights,
        seed,
        device,
    )?;
    let train_examples = model.prepare(&train_texts, data.train_ids);
    let validation_examples = data
        .validation
        .map(|(d, ids)| model.prepare(&d.texts(), ids));
    let groups = model.layer_groups();
    let stages: Vec<(usize, usize)> = if u.gradual_unfreezing {
        // (groups trained, epochs): 1, 2, … groups for an epoch each, then all of them.
        let n = groups.len();
        let mut s: Vec<(usize, usize)> = (1..n).map(|k| (k, 1)).collect();
        s.push((n, e.training.num_train_epochs.saturating_sub(n - 1).max(1)));
        s
    } else {
        vec![(groups.len(), e.training.num_train_epochs)]
    };
    let mut outcome: Option<TrainOutcome> = None;
    let mut history = History::default();
    let mut seconds = lm_seconds;
    for (stage, &(trained, epochs)) in stages.iter().enumerate() {
        // Each stage its own folder: its checkpoints, and `stage_done.json` with the weights it
        // ended with once it is over.
        let stage_dir = out.join(format!("stage-{}", stage + 1));
        let done_path = stage_dir.join(STAGE_DONE);
        let o = if resume && done_path.exists() {
            let done: StageDone = fsio::read_json(&done_path)?;
            model.params().load(&stage_dir.join(STAGE_WEIGHTS))?;
            done.outcome
        } else {
            let mut args = stage_args(&e.training, &stage_dir, epochs);
            // The head's batch norm needs two or more rows per batch.
            args.dataloader_drop_last = true;
            // Each stage its own shuffles and dropout masks (the same seed would replay the
            // first epoch's batches and masks in every stage).
            args.seed = seed.wrapping_add(stage as u64 * 1_000_003);
            let frozen = groups.len() - trained;
            args.param_groups = rate_groups(&groups, u.discriminative_lr)
                .into_iter()
                .enumerate()
                .map(|(i, g)| ParamGroup {
                    frozen: i < frozen,
                    ..g
                })
                .collect();
            let trainer = Trainer::new(args, data.labels.names().to_vec())?;
            let o = trainer.train(
                &model,
                &train_examples,
                validation_examples.as_deref(),
                resume && has_checkpoint(&stage_dir),
            )?;
            model.params().save(&stage_dir.join(STAGE_WEIGHTS))?;
            fsio::write_json(&done_path, &StageDone { outcome: o.clone() })?;
            o
        };
        seconds += o.train_seconds;
        history.append_stage(&o.state.history);
        outcome = Some(o);
    }
    // The last stage's outcome, with every stage's history (one set of learning curves).
    let mut outcome = outcome.expect("at least one stage");
    history.save(out)?;
    outcome.state.history = history;
    Ok(Trained {
        model,
        outcome,
        seconds,
    })
}

/// Marks a finished stage: its outcome (a classifier stage's weights beside it, in
/// [`STAGE_WEIGHTS`]; the language model's in `lm/model/`).
const STAGE_DONE: &str = "stage_done.json";
/// The weights a classifier stage ended with.
const STAGE_WEIGHTS: &str = "stage_end.safetensors";

/// What a finished stage left for a resumed run.
#[derive(Serialize, Deserialize)]
struct StageDone {
    outcome: TrainOutcome,
}

/// True when `run_dir` holds a checkpoint to resume from.
fn has_checkpoint(run_dir: &Path) -> bool {
    run_dir
        .join(CHECKPOINT_LAST)
        .join("trainer_state.json")
        .exists()
}

/// Stage 2: the language model on the training texts' vocabulary, fine-tuned on them (from its
/// checkpoint in `lm_run` when resuming), saved to `lm_run/model/`; returns its seconds.
fn fine_tune_language_model(
    e: &Experiment,
    train_texts: &[&str],
    lm_run: &Path,
    device: &Device,
    resume: bool,
) -> Result<f64> {
    let u = e.model.ulmfit;
    let seed = e.training.seed;
    let words: Vec<String> = train_texts.iter().flat_map(|t| tokenize(t)).collect();
    let vocab = build_vocab(words.iter().map(String::as_str), e.model.vocab_size, 2);
    let dropouts = AwdDropouts::LANGUAGE_MODEL.scaled(u.drop_mult);
    let lm = match &e.model.pretrained {
        Some(dir) => AwdLstmLm::from_pretrained(dir, device)?.with_vocab(vocab, dropouts, seed)?,
        None => {
            let config = AwdLstmConfig {
                vocab_size: vocab.len(),
                emb_size: 128,
                hidden_size: 256,
                num_layers: 3,
                dropouts,
            };
            AwdLstmLm::new(config, vocab, seed, device)?
        }
    };
    let mut outcome = None;
    if u.lm_epochs > 0 {
        let stream = lm.stream(train_texts);
        let (mut train, mut validation) = (Vec::new(), Vec::new());
        for (i, c) in chunks(&stream, u.bptt).into_iter().enumerate() {
            if i % LM_VALIDATION_EVERY == LM_VALIDATION_EVERY - 1 {
                validation.push(c);
            } else {
                train.push(c);
            }
        }
        // Few texts: still one chunk held out, so the stage reports a perplexity.
        if validation.is_empty() && train.len() > 1 {
            validation.extend(train.pop());
        }
        let groups = language_model_groups(lm.config().num_layers);
        let mut args = stage_args(&e.training, lm_run, u.lm_epochs);
        args.metric_for_best_model = "eval_loss".into();
        args.param_groups = rate_groups(&groups, u.discriminative_lr);
        let o = Trainer::new(args, Vec::new())?.train(
            &lm,
            &train,
            Some(&validation),
            resume && has_checkpoint(lm_run),
        )?;
        record_lm_stage(lm_run, &o, &train, &validation, lm.vocab().len())?;
        outcome = Some(o);
    }
    lm.save_pretrained(&lm_run.join(MODEL_DIR))?;
    let seconds = outcome.as_ref().map_or(0.0, |o| o.train_seconds);
    if let Some(outcome) = outcome {
        fsio::create_dir(lm_run)?;
        fsio::write_json(&lm_run.join(STAGE_DONE), &StageDone { outcome })?;
    }
    Ok(seconds)
}

/// What the target LM's fine-tuning reached, written as `lm/results.json` beside its history
/// and learning curves.
#[derive(Debug, Clone, Serialize)]
pub struct LmStageResult {
    /// (step, validation perplexity) at each evaluation.
    pub curve: Vec<(usize, f64)>,
    /// Validation perplexity at the end.
    pub validation_perplexity: f64,
    /// Validation perplexity of the add-one unigram model of the training chunks.
    pub unigram_perplexity: f64,
    /// Seconds of fine-tuning.
    pub train_seconds: f64,
}

/// Writes the target LM stage's history, curves and [`LmStageResult`] into `dir`.
fn record_lm_stage(
    dir: &Path,
    outcome: &TrainOutcome,
    train: &[LmChunk],
    validation: &[LmChunk],
    vocab: usize,
) -> Result<()> {
    outcome.state.history.save(dir)?;
    report::learning_curves_png(
        &outcome.state.history,
        "target LM fine-tuning",
        &dir.join(CURVES_FILE),
    )?;
    let curve = metric_curve(outcome, "eval_perplexity");
    let result = LmStageResult {
        validation_perplexity: curve.last().map_or(f64::NAN, |c| c.1),
        curve,
        unigram_perplexity: unigram_perplexity(train, validation, vocab),
        train_seconds: outcome.train_seconds,
    };
    fsio::write_json(&dir.join(RESULTS_FILE), &result)
}

/// The run's training settings for one stage: `epochs` epochs, the slanted triangular rate,
/// no early stopping (a stage is one epoch), checkpoints in `dir`.
fn stage_args(base: &TrainingArgs, dir: &Path, epochs: usize) -> TrainingArgs {
    TrainingArgs {
        output_dir: dir.to_path_buf(),
        num_train_epochs: epochs.max(1),
        lr_scheduler_type: ScheduleKind::SlantedTriangular,
        early_stopping_patience: None,
        ..base.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_groups_learn_2_6_times_slower() {
        let groups: Vec<String> = ["encoder.*", "rnns.0.*", "head.*"]
            .map(String::from)
            .to_vec();
        let scales: Vec<f64> = rate_groups(&groups, true)
            .iter()
            .map(|g| g.lr_scale.unwrap())
            .collect();
        for (got, want) in scales.iter().zip([1.0 / 6.76, 1.0 / 2.6, 1.0]) {
            assert!((got - want).abs() < 1e-12, "{scales:?}");
        }
        assert_eq!(
            language_model_groups(2),
            ["rnns.0.*", "rnns.1.*", "encoder.*"],
            "the tied embedding is the language model's top group"
        );
        assert!(rate_groups(&groups, false)
            .iter()
            .all(|g| g.lr_scale.is_none()));
    }
}

//! The token-classification (NER) task, `prosa train --task token-classification`: CoNLL files
//! (`data.path`, `data.test_path`) → tags → the pretrained encoder of `model.pretrained` with a
//! token head (or, with `--arch elmo`, a tagger over a frozen ELMo biLM's features) → the
//! Trainer → model folder → entity-level scores (seqeval's) on the test file.

use std::path::{Path, PathBuf};

use candle_core::Device;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

use super::ending::{save_run, write_results};
use super::experiment::Experiment;
use crate::data::conll::{read_conll, TaggedSentence};
use crate::data::LabelMap;
use crate::error::{Error, Result};
use crate::metrics::entities::{entity_report, EntityReport};
use crate::models::elmo::tagger::{ElmoTagger, TAGGER_TYPE};
use crate::models::encoder::EncoderTokenClassifier;
use crate::train::Trainer;

/// What the run produced.
#[derive(Debug, Clone, Serialize)]
pub struct TokenClassificationResult {
    /// The saved model folder.
    pub model_dir: PathBuf,
    /// The test file scored.
    pub test_file: PathBuf,
    /// Entity-level scores on the test file.
    pub report: EntityReport,
    /// Sentences in train, validation and test.
    pub split_sizes: (usize, usize, usize),
    /// Seconds of training.
    pub train_seconds: f64,
}

/// Runs the experiment; with `resume`, training continues from the last checkpoint.
pub fn run(e: &Experiment, resume: bool) -> Result<TokenClassificationResult> {
    let need = |path: &Option<PathBuf>, field: &str, what: &str| {
        path.clone()
            .ok_or_else(|| Error::config(field, format!("token classification needs {what}")))
    };
    let pretrained = need(
        &e.model.pretrained,
        "model.pretrained",
        "a pretrained encoder folder",
    )?;
    let train_file = need(&e.data.path, "data.path", "a training file (CoNLL)")?;
    let test_file = need(&e.data.test_path, "data.test_path", "a test file (CoNLL)")?;
    if !matches!(
        e.model.arch.as_str(),
        "bert" | "distilbert" | "roberta" | "encoder" | "elmo"
    ) {
        return Err(Error::config(
            "model.arch",
            format!(
                "token classification fine-tunes an encoder (bert) or tags with ELMo features \
                 (elmo), not '{}'",
                e.model.arch
            ),
        ));
    }
    let device = e.training.device.open()?;
    crate::fsio::create_dir(&e.training.output_dir)?;
    let mut train = read_conll(&train_file)?;
    let test = read_conll(&test_file)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(e.training.seed);
    train.shuffle(&mut rng);
    let held = ((train.len() as f64) * e.data.validation_split).round() as usize;
    if held >= train.len() {
        return Err(Error::config(
            "validation_split",
            "leaves no training sentences",
        ));
    }
    let validation = train.split_off(train.len() - held);
    let tags = LabelMap::fit(train.iter().flat_map(|s| s.tags.iter().map(String::as_str)));
    if e.model.arch == "elmo" {
        let splits = Splits {
            train: &train,
            validation: &validation,
            test: &test,
        };
        return run_elmo(e, &pretrained, tags, splits, test_file, &device, resume);
    }
    let model = EncoderTokenClassifier::from_pretrained(
        &pretrained,
        Some(tags.clone()),
        e.model.max_tokens,
        &device,
    )?;
    let train_examples = model.prepare(&train, &train_file)?;
    let validation_examples = model.prepare(&validation, &train_file)?;
    let mut args = e.training.clone();
    let frozen = match (e.model.freeze_encoder, e.model.freeze_layers) {
        (true, _) => model.model().freeze_groups(None),
        (false, Some(n)) => model.model().freeze_groups(Some(n)),
        (false, None) => Vec::new(),
    };
    for (i, group) in frozen.into_iter().enumerate() {
        args.param_groups.insert(i, group);
    }
    let trainer = Trainer::new(args, tags.names().to_vec())?;
    let validation_examples = (!validation_examples.is_empty()).then_some(validation_examples);
    let outcome = trainer.train(
        &model,
        &train_examples,
        validation_examples.as_deref(),
        resume,
    )?;
    let saved = save_run(&e.training, &outcome, "Learning curves", |dir| {
        model.save(dir)
    })?;
    let report = score(&model, &test)?;
    write_results(
        &e.training,
        TokenClassificationResult {
            model_dir: saved.model_dir,
            test_file,
            report,
            split_sizes: (train.len(), validation.len(), test.len()),
            train_seconds: outcome.train_seconds,
        },
    )
}

/// Entity-level scores of `model` on tagged sentences.
pub fn score(model: &EncoderTokenClassifier, sentences: &[TaggedSentence]) -> Result<EntityReport> {
    let words: Vec<Vec<String>> = sentences.iter().map(|s| s.tokens.clone()).collect();
    score_predictions(sentences, &model.predict_words(&words)?)
}

fn score_predictions(
    sentences: &[TaggedSentence],
    predicted: &[Vec<String>],
) -> Result<EntityReport> {
    let truth: Vec<Vec<String>> = sentences.iter().map(|s| s.tags.clone()).collect();
    Ok(entity_report(&truth, predicted))
}

/// Scores a saved tagger folder (an encoder's, or ELMo's) on a CoNLL file.
pub fn evaluate(model_dir: &Path, file: &Path, device: &Device) -> Result<EntityReport> {
    let sentences = read_conll(file)?;
    if crate::models::folder::model_type(model_dir)? == TAGGER_TYPE {
        let model = ElmoTagger::load(model_dir, device)?;
        let words: Vec<Vec<String>> = sentences.iter().map(|s| s.tokens.clone()).collect();
        return score_predictions(&sentences, &model.predict_words(&words)?);
    }
    let model = EncoderTokenClassifier::load(model_dir, device)?;
    score(&model, &sentences)
}

/// The three parts of the tagged data.
struct Splits<'a> {
    train: &'a [TaggedSentence],
    validation: &'a [TaggedSentence],
    test: &'a [TaggedSentence],
}

/// `--arch elmo`: a tagger over the frozen biLM's features (only the mix and the dense layers
/// learn).
fn run_elmo(
    e: &Experiment,
    pretrained: &Path,
    tags: LabelMap,
    splits: Splits,
    test_file: PathBuf,
    device: &Device,
    resume: bool,
) -> Result<TokenClassificationResult> {
    let hidden = if e.model.hidden_size == 0 {
        128
    } else {
        e.model.hidden_size
    };
    let model = ElmoTagger::from_pretrained(
        pretrained,
        tags.clone(),
        hidden,
        e.model.dropout,
        e.training.seed,
        device,
    )?;
    let pairs = |s: &[TaggedSentence]| -> Vec<(Vec<String>, Vec<String>)> {
        s.iter()
            .map(|t| (t.tokens.clone(), t.tags.clone()))
            .collect()
    };
    let train_examples = model.prepare(&pairs(splits.train))?;
    let validation_examples = model.prepare(&pairs(splits.validation))?;
    let mut args = e.training.clone();
    args.param_groups.insert(
        0,
        crate::train::ParamGroup {
            pattern: "elmo.*".into(),
            frozen: true,
            ..Default::default()
        },
    );
    let trainer = Trainer::new(args, tags.names().to_vec())?;
    let validation_examples = (!validation_examples.is_empty()).then_some(validation_examples);
    let outcome = trainer.train(
        &model,
        &train_examples,
        validation_examples.as_deref(),
        resume,
    )?;
    let saved = save_run(&e.training, &outcome, "Learning curves", |dir| {
        model.save(dir)
    })?;
    let words: Vec<Vec<String>> = splits.test.iter().map(|s| s.tokens.clone()).collect();
    let report = score_predictions(splits.test, &model.predict_words(&words)?)?;
    write_results(
        &e.training,
        TokenClassificationResult {
            model_dir: saved.model_dir,
            test_file,
            report,
            split_sizes: (
                splits.train.len(),
                splits.validation.len(),
                splits.test.len(),
            ),
            train_seconds: outcome.train_seconds,
        },
    )
}

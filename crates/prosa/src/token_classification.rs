//! The token-classification (NER) experiment `prosa train --task token-classification` runs:
//! CoNLL files → tags → a pretrained encoder with a token head → the Trainer → model folder →
//! entity-level scores (seqeval's) on the test file.

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

use crate::data::conll::{read_conll, TaggedSentence};
use crate::data::LabelMap;
use crate::error::{Error, Result};
use crate::fsio;
use crate::metrics::entities::{entity_report, EntityReport};
use crate::models::encoder::EncoderTokenClassifier;
use crate::report;
use crate::train::{Trainer, TrainingArgs};

/// What to train on.
#[derive(Debug, Clone)]
pub struct TokenClassificationSpec {
    /// The pretrained encoder folder.
    pub pretrained: PathBuf,
    /// Training sentences (CoNLL).
    pub train_file: PathBuf,
    /// Test sentences (CoNLL).
    pub test_file: PathBuf,
    /// Fraction of the training sentences held out for validation.
    pub validation_split: f64,
    /// Sentences are cut to this many sub-word tokens.
    pub max_tokens: usize,
    /// Trainer settings (output_dir, epochs, learning rate, …).
    pub training: TrainingArgs,
}

/// What the run produced.
#[derive(Debug, Clone, Serialize)]
pub struct TokenClassificationResult {
    /// The saved model folder.
    pub model_dir: PathBuf,
    /// Entity-level scores on the test file.
    pub report: EntityReport,
    /// Sentences in train, validation and test.
    pub split_sizes: (usize, usize, usize),
    /// Seconds of training.
    pub train_seconds: f64,
}

/// Runs the experiment; with `resume`, training continues from the last checkpoint.
pub fn run(spec: &TokenClassificationSpec, resume: bool) -> Result<TokenClassificationResult> {
    let out = &spec.training.output_dir;
    fsio::create_dir(out)?;
    let mut train = read_conll(&spec.train_file)?;
    let test = read_conll(&spec.test_file)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(spec.training.seed);
    train.shuffle(&mut rng);
    let held = ((train.len() as f64) * spec.validation_split).round() as usize;
    if held >= train.len() {
        return Err(Error::config(
            "validation_split",
            "leaves no training sentences",
        ));
    }
    let validation = train.split_off(train.len() - held);
    let tags = LabelMap::fit(train.iter().flat_map(|s| s.tags.iter().map(String::as_str)));
    let model = EncoderTokenClassifier::from_pretrained(
        &spec.pretrained,
        Some(tags.clone()),
        spec.max_tokens,
    )?;
    let train_examples = model.prepare(&train, &spec.train_file)?;
    let validation_examples = model.prepare(&validation, &spec.train_file)?;
    let trainer = Trainer::new(spec.training.clone(), tags.names().to_vec())?;
    let validation_examples = (!validation_examples.is_empty()).then_some(validation_examples);
    let outcome = trainer.train(
        &model,
        &train_examples,
        validation_examples.as_deref(),
        resume,
    )?;
    let model_dir = out.join("model");
    model.save(&model_dir)?;
    outcome.state.history.save(&model_dir)?;
    report::learning_curves_png(
        &outcome.state.history,
        "Learning curves",
        &out.join("learning_curves.png"),
    )?;
    let report = score(&model, &test)?;
    fsio::write_json(&out.join("entity_report.json"), &report)?;
    Ok(TokenClassificationResult {
        model_dir,
        report,
        split_sizes: (train.len(), validation.len(), test.len()),
        train_seconds: outcome.train_seconds,
    })
}

/// Entity-level scores of `model` on tagged sentences.
pub fn score(model: &EncoderTokenClassifier, sentences: &[TaggedSentence]) -> Result<EntityReport> {
    let words: Vec<Vec<String>> = sentences.iter().map(|s| s.tokens.clone()).collect();
    let predicted = model.predict_words(&words)?;
    let truth: Vec<Vec<String>> = sentences.iter().map(|s| s.tags.clone()).collect();
    Ok(entity_report(&truth, &predicted))
}

/// Scores a saved tagger folder on a CoNLL file.
pub fn evaluate(model_dir: &Path, file: &Path) -> Result<EntityReport> {
    let model = EncoderTokenClassifier::load(model_dir)?;
    score(&model, &read_conll(file)?)
}

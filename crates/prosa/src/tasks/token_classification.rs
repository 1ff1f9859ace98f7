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
use crate::train::{ParamGroup, Trainable, Trainer};

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

/// A tag of `sentences` (read from `path`) that training never saw is an error naming its line.
fn check_tags(sentences: &[TaggedSentence], tags: &LabelMap, path: &Path) -> Result<()> {
    for sentence in sentences {
        for (i, tag) in sentence.tags.iter().enumerate() {
            if tags.id(tag).is_none() {
                return Err(Error::UnknownLabel {
                    path: path.to_path_buf(),
                    line: sentence.line + i,
                    label: tag.clone(),
                    known: tags.names().join(", "),
                });
            }
        }
    }
    Ok(())
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
    // The tags of the whole training file (a rare tag may fall in the validation part only).
    let tags = LabelMap::fit(train.iter().flat_map(|s| s.tags.iter().map(String::as_str)));
    check_tags(&test, &tags, &test_file)?;
    let validation = train.split_off(train.len() - held);
    let data = TaggedData {
        train: &train,
        validation: &validation,
        test: &test,
        train_file: &train_file,
    };
    let result = if e.model.arch == "elmo" {
        let hidden = if e.model.hidden_size == 0 {
            128
        } else {
            e.model.hidden_size
        };
        let model = ElmoTagger::from_pretrained(
            &pretrained,
            tags.clone(),
            hidden,
            e.model.dropout,
            e.training.seed,
            &device,
        )?;
        // The biLM stays as pretrained: only the mix and the dense layers learn.
        let frozen = vec![ParamGroup {
            pattern: "elmo.*".into(),
            frozen: true,
            ..Default::default()
        }];
        fit(e, &model, frozen, &tags, data, resume)?
    } else {
        let model = EncoderTokenClassifier::from_pretrained(
            &pretrained,
            Some(tags.clone()),
            e.model.max_tokens,
            &device,
        )?;
        let frozen = match (e.model.freeze_encoder, e.model.freeze_layers) {
            (true, _) => model.model().freeze_groups(None),
            (false, Some(n)) => model.model().freeze_groups(Some(n)),
            (false, None) => Vec::new(),
        };
        fit(e, &model, frozen, &tags, data, resume)?
    };
    write_results(
        &e.training,
        TokenClassificationResult {
            test_file,
            ..result
        },
    )
}

/// The tagged data of a run.
struct TaggedData<'a> {
    train: &'a [TaggedSentence],
    validation: &'a [TaggedSentence],
    test: &'a [TaggedSentence],
    /// Where `train` and `validation` come from (named in errors).
    train_file: &'a Path,
}

/// What a tagger offers the task: examples of tagged sentences, tags of words, its folder.
trait Tagger: Trainable {
    /// Training examples of sentences read from `path` (named in errors).
    fn examples(&self, sentences: &[TaggedSentence], path: &Path) -> Result<Vec<Self::Example>>;
    /// The tag of every word of each sentence.
    fn tag(&self, sentences: &[Vec<String>]) -> Result<Vec<Vec<String>>>;
    /// Writes the model folder.
    fn save_folder(&self, dir: &Path) -> Result<()>;
}

impl Tagger for EncoderTokenClassifier {
    fn examples(&self, sentences: &[TaggedSentence], path: &Path) -> Result<Vec<Self::Example>> {
        self.prepare(sentences, path)
    }
    fn tag(&self, sentences: &[Vec<String>]) -> Result<Vec<Vec<String>>> {
        self.predict_words(sentences)
    }
    fn save_folder(&self, dir: &Path) -> Result<()> {
        self.save(dir)
    }
}

impl Tagger for ElmoTagger {
    fn examples(&self, sentences: &[TaggedSentence], path: &Path) -> Result<Vec<Self::Example>> {
        self.prepare(sentences, path)
    }
    fn tag(&self, sentences: &[Vec<String>]) -> Result<Vec<Vec<String>>> {
        self.predict_words(sentences)
    }
    fn save_folder(&self, dir: &Path) -> Result<()> {
        self.save(dir)
    }
}

/// Trains `model` (with `frozen` groups first), saves its folder and scores the test
/// sentences; the result's `test_file` is left for the caller.
fn fit<M: Tagger>(
    e: &Experiment,
    model: &M,
    frozen: Vec<ParamGroup>,
    tags: &LabelMap,
    data: TaggedData,
    resume: bool,
) -> Result<TokenClassificationResult> {
    let train_examples = model.examples(data.train, data.train_file)?;
    let validation_examples = model.examples(data.validation, data.train_file)?;
    let mut args = e.training.clone();
    for (i, group) in frozen.into_iter().enumerate() {
        args.param_groups.insert(i, group);
    }
    let trainer = Trainer::new(args, tags.names().to_vec())?;
    let validation_examples = (!validation_examples.is_empty()).then_some(validation_examples);
    let outcome = trainer.train(
        model,
        &train_examples,
        validation_examples.as_deref(),
        resume,
    )?;
    let saved = save_run(&e.training, &outcome, "Learning curves", |dir| {
        model.save_folder(dir)
    })?;
    let report = score_tagger(model, data.test)?;
    Ok(TokenClassificationResult {
        model_dir: saved.model_dir,
        test_file: PathBuf::new(),
        report,
        split_sizes: (data.train.len(), data.validation.len(), data.test.len()),
        train_seconds: outcome.train_seconds,
    })
}

/// Entity-level scores of any tagger on tagged sentences.
fn score_tagger<M: Tagger>(model: &M, sentences: &[TaggedSentence]) -> Result<EntityReport> {
    let words: Vec<Vec<String>> = sentences.iter().map(|s| s.tokens.clone()).collect();
    let truth: Vec<Vec<String>> = sentences.iter().map(|s| s.tags.clone()).collect();
    Ok(entity_report(&truth, &model.tag(&words)?))
}

/// Entity-level scores of `model` on tagged sentences.
pub fn score(model: &EncoderTokenClassifier, sentences: &[TaggedSentence]) -> Result<EntityReport> {
    score_tagger(model, sentences)
}

/// Scores a saved tagger folder (an encoder's, or ELMo's) on a CoNLL file.
pub fn evaluate(model_dir: &Path, file: &Path, device: &Device) -> Result<EntityReport> {
    let sentences = read_conll(file)?;
    if crate::models::folder::model_type(model_dir)? == TAGGER_TYPE {
        return score_tagger(&ElmoTagger::load(model_dir, device)?, &sentences);
    }
    score(
        &EncoderTokenClassifier::load(model_dir, device)?,
        &sentences,
    )
}

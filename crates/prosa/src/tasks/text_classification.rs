//! The text-classification task, as `prosa train` runs it: read, split (stratified, seeded),
//! fit the features, train with the [`Trainer`], save the model folder, score the held-out
//! split, and draw the plots.
//!
//! Everything the CLI can do is here, so a Rust program can run the same experiment in a few
//! lines.

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::Serialize;

use super::ending::{save_run, write_results};
use super::experiment::{ClassWeight, DataSpec, Experiment};
use crate::data::{self, Dataset, LabelMap};
use crate::error::{Error, Result};
use crate::fsio;
use crate::metrics::{argmax_rows, ClassificationReport};
use crate::models::bow::BowClassifier;
use crate::models::elmo::classifier::ElmoClassifier;
use crate::models::encoder::EncoderClassifier;
use crate::models::rnn::{RnnClassifier, RnnConfig};
use crate::models::transformer_classifier::{TransformerClassifier, TransformerClassifierConfig};
use crate::models::{load_classifier, TextClassifier};
use crate::report;
use crate::text::{Vectorizer, WordTokenizer, WordTokenizerConfig};
use crate::train::{History, ParamGroup, Trainable, Trainer};
use crate::vectors::{VectorsFormat, WordVectors};

/// What an experiment produced.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentResult {
    /// The run's folder.
    pub output_dir: PathBuf,
    /// The saved model folder.
    pub model_dir: PathBuf,
    /// The held-out test split, saved as CSV (columns `text`, `label`).
    pub test_file: PathBuf,
    /// Scores on the held-out test split.
    pub test_report: ClassificationReport,
    /// Rows in each split: train, validation, test.
    pub split_sizes: (usize, usize, usize),
    /// Empty text rows skipped while reading.
    pub skipped_empty: usize,
    /// Trainable parameters.
    pub num_parameters: usize,
    /// Seconds of training.
    pub train_seconds: f64,
    /// True when early stopping ended training.
    pub stopped_early: bool,
    /// The plots written.
    pub plots: Vec<PathBuf>,
    /// Pretrained-vector coverage of the vocabulary (recurrent models with `vectors`).
    pub embedding_report: Option<EmbeddingReport>,
}

/// Splits `data` as `spec` says: returns (train, validation, test). The test split is
/// `spec.test_path` when given, otherwise a seeded (stratified) fraction of `data`.
pub fn split(
    data: &Dataset,
    spec: &DataSpec,
    seed: u64,
) -> Result<(Dataset, Option<Dataset>, Dataset)> {
    let data = match spec.max_rows {
        Some(n) if n < data.len() => data.shuffle(seed).select(0..n),
        _ => data.clone(),
    };
    let (train, test) = match &spec.test_path {
        Some(path) => (data, data::read_file(path, &spec.read)?),
        None => data.train_test_split(spec.test_size, seed, spec.stratify)?,
    };
    let (train, validation) = if spec.validation_split > 0.0 {
        let (t, v) = train.validation_split(spec.validation_split)?;
        (t, Some(v))
    } else {
        (train, None)
    };
    let train = match spec.balance {
        Some(how) => train.balance(how, seed)?,
        None => train,
    };
    Ok((train, validation, test))
}

fn class_weights(ids: &[u32], k: usize, how: ClassWeight) -> Option<Vec<f32>> {
    match how {
        ClassWeight::None => None,
        ClassWeight::Balanced => {
            let mut counts = vec![0usize; k];
            ids.iter().for_each(|&i| counts[i as usize] += 1);
            Some(
                counts
                    .iter()
                    .map(|&c| ids.len() as f32 / (k as f32 * c.max(1) as f32))
                    .collect(),
            )
        }
    }
}

/// Writes `data` as a UTF-8 CSV with columns `text` and `label`.
pub fn write_csv(data: &Dataset, path: &Path) -> Result<()> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| Error::io(path, std::io::Error::other(e.to_string()));
    writer.write_record(["text", "label"]).map_err(err)?;
    for e in &data.examples {
        writer
            .write_record([e.text.as_str(), e.label.as_deref().unwrap_or("")])
            .map_err(err)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))?;
    fsio::write_atomic(path, &bytes)
}

/// The splits of one experiment, labelled.
struct Splits {
    labels: LabelMap,
    train: Dataset,
    train_ids: Vec<u32>,
    validation: Option<(Dataset, Vec<u32>)>,
}

/// Runs a text-classification experiment; with `resume`, training continues from the last
/// checkpoint.
pub fn run(experiment: &Experiment, resume: bool) -> Result<ExperimentResult> {
    Run {
        e: experiment,
        device: experiment.training.device.open()?,
    }
    .run(resume)
}

/// One run: the experiment and the device it trains on.
struct Run<'a> {
    e: &'a Experiment,
    device: Device,
}

impl Run<'_> {
    fn run(&self, resume: bool) -> Result<ExperimentResult> {
        let out = self.e.training.output_dir.clone();
        fsio::create_dir(&out)?;
        let data = self.e.data.load()?;
        let labels = data.label_map()?;
        let seed = self.e.training.seed;
        let (train, validation, test) = split(&data, &self.e.data, seed)?;
        fsio::write_json(&out.join("experiment.json"), self.e)?;
        let test_file = out.join("test.csv");
        write_csv(&test, &test_file)?;
        let validation = match validation {
            Some(v) => {
                let ids = v.label_ids(&labels)?;
                Some((v, ids))
            }
            None => None,
        };
        let splits = Splits {
            train_ids: train.label_ids(&labels)?,
            labels,
            train,
            validation,
        };
        let mut finished = match self.e.model.arch.as_str() {
            "bow" => {
                let train_texts = splits.train.texts();
                let vectorizer = Vectorizer::fit(self.e.model.vectorizer.clone(), &train_texts)?;
                let weights = class_weights(
                    &splits.train_ids,
                    splits.labels.len(),
                    self.e.model.class_weight,
                );
                let model = BowClassifier::new(
                    vectorizer,
                    splits.labels.clone(),
                    self.e.model.hidden_size,
                    self.e.model.dropout,
                    weights,
                    seed,
                    &self.device,
                )?;
                let prepare = |d: &Dataset, ids: &[u32]| Ok(model.prepare(&d.texts(), ids));
                self.train_and_score(&model, &splits, prepare, &[], &test, resume)?
            }
            "rnn" | "lstm" | "gru" => {
                let (model, embedding_report) = self.recurrent_model(&splits)?;
                let prepare = |d: &Dataset, ids: &[u32]| Ok(model.prepare(&d.texts(), ids));
                let mut result =
                    self.train_and_score(&model, &splits, prepare, &[], &test, resume)?;
                result.embedding_report = embedding_report;
                result
            }
            "transformer" => {
                let model = self.transformer_model(&splits)?;
                let prepare = |d: &Dataset, ids: &[u32]| Ok(model.prepare(&d.texts(), ids));
                self.train_and_score(&model, &splits, prepare, &[], &test, resume)?
            }
            "bert" | "distilbert" | "roberta" | "encoder" => {
                let dir = self.e.model.pretrained.as_ref().ok_or_else(|| {
                    Error::config("pretrained", "arch bert needs a pretrained model folder")
                })?;
                let weights = class_weights(
                    &splits.train_ids,
                    splits.labels.len(),
                    self.e.model.class_weight,
                );
                let model = EncoderClassifier::from_pretrained(
                    dir,
                    Some(splits.labels.clone()),
                    self.e.model.max_tokens,
                    weights.as_deref(),
                    &self.device,
                )?;
                let groups = match (self.e.model.freeze_encoder, self.e.model.freeze_layers) {
                    (true, _) => model.freeze_groups(None),
                    (false, Some(n)) => model.freeze_groups(Some(n)),
                    (false, None) => Vec::new(),
                };
                let prepare = |d: &Dataset, ids: &[u32]| model.prepare(&d.texts(), ids);
                self.train_and_score(&model, &splits, prepare, &groups, &test, resume)?
            }
            "ulmfit" => self.ulmfit(&splits, &test, resume)?,
            "elmo" => {
                let dir = self.e.model.pretrained.as_ref().ok_or_else(|| {
                    Error::config(
                        "pretrained",
                        "arch elmo needs a biLM folder (prosa pretrain --arch elmo)",
                    )
                })?;
                let m = &self.e.model;
                let weights = class_weights(&splits.train_ids, splits.labels.len(), m.class_weight);
                let model = ElmoClassifier::from_pretrained(
                    dir,
                    splits.labels.clone(),
                    if m.hidden_size == 0 {
                        64
                    } else {
                        m.hidden_size
                    },
                    m.dropout,
                    weights,
                    seed,
                    &self.device,
                )?;
                // The biLM stays as pretrained: only the mix and the classifier learn.
                let frozen = [ParamGroup {
                    pattern: "elmo.*".into(),
                    frozen: true,
                    ..Default::default()
                }];
                let prepare = |d: &Dataset, ids: &[u32]| model.prepare(&d.texts(), ids);
                self.train_and_score(&model, &splits, prepare, &frozen, &test, resume)?
            }
            other => {
                return Err(Error::config(
                    "arch",
                    format!(
                        "unknown architecture '{other}' (available: bow, rnn, lstm, gru, transformer, bert, elmo, ulmfit)"
                    ),
                ));
            }
        };
        let dist = out.join("class_distribution.png");
        report::class_distribution_png(&data.stats().classes, "Class distribution", &dist)?;
        finished.plots.push(dist);
        finished.test_file = test_file;
        finished.skipped_empty = data.skipped_empty;
        write_results(&self.e.training, finished)
    }

    /// Builds the recurrent classifier: Keras-style tokenizer fitted on the training texts,
    /// embeddings from pretrained vectors when given.
    fn recurrent_model(&self, splits: &Splits) -> Result<(RnnClassifier, Option<EmbeddingReport>)> {
        let m = &self.e.model;
        let mut tokenizer = WordTokenizer::new(WordTokenizerConfig {
            num_words: m.num_words,
            ..Default::default()
        });
        tokenizer.fit_on_texts(&splits.train.texts());
        let (embeddings, report, dim) = match &m.vectors {
            Some(path) => {
                let vectors =
                    WordVectors::load(path, VectorsFormat::Auto, m.vectors_index.as_deref())?;
                let matrix = vectors.embedding_matrix(&tokenizer, self.e.training.seed);
                let report = EmbeddingReport {
                    vectors: path.clone(),
                    found: matrix.found,
                    missing: matrix.missing.len(),
                    missing_examples: matrix.missing.iter().take(20).cloned().collect(),
                };
                (Some(matrix.values), Some(report), vectors.dim())
            }
            None => (None, None, m.embedding_dim),
        };
        let cell = m
            .arch
            .parse()
            .map_err(|e: String| Error::config("arch", e))?;
        let hidden = if m.hidden_size == 0 {
            64
        } else {
            m.hidden_size
        };
        let config = RnnConfig {
            num_layers: m.num_layers,
            bidirectional: m.bidirectional,
            dropout: m.dropout,
            pooling: m.pooling,
            max_len: m.max_len,
            freeze_embeddings: m.freeze_embeddings,
            class_weights: class_weights(&splits.train_ids, splits.labels.len(), m.class_weight),
            ..RnnConfig::new(cell, tokenizer.num_ids(), dim, hidden, &splits.labels)
        };
        let model = RnnClassifier::new(
            config,
            tokenizer,
            splits.labels.clone(),
            embeddings.as_deref(),
            self.e.training.seed,
            &self.device,
        )?;
        Ok((model, report))
    }

    /// Builds the attention lesson's Transformer classifier over a Keras-style tokenizer fitted
    /// on the training texts: `embedding_dim` wide, `num_heads` heads, a feed-forward of
    /// `hidden_size` (0: as wide as the embeddings), `num_layers` blocks.
    fn transformer_model(&self, splits: &Splits) -> Result<TransformerClassifier> {
        let m = &self.e.model;
        let mut tokenizer = WordTokenizer::new(WordTokenizerConfig {
            num_words: m.num_words,
            ..Default::default()
        });
        tokenizer.fit_on_texts(&splits.train.texts());
        let config = TransformerClassifierConfig {
            embedding_dim: m.embedding_dim,
            num_heads: m.num_heads,
            ff_dim: if m.hidden_size == 0 {
                m.embedding_dim
            } else {
                m.hidden_size
            },
            num_layers: m.num_layers,
            dropout: m.dropout,
            max_len: m.max_len,
            class_weights: class_weights(&splits.train_ids, splits.labels.len(), m.class_weight),
            ..TransformerClassifierConfig::new(tokenizer.num_ids(), &splits.labels)
        };
        TransformerClassifier::new(
            config,
            tokenizer,
            splits.labels.clone(),
            self.e.training.seed,
            &self.device,
        )
    }

    /// ULMFiT's stages 2 and 3 ([`super::ulmfit`]), then the same ending as every classifier.
    fn ulmfit(&self, splits: &Splits, test: &Dataset, resume: bool) -> Result<ExperimentResult> {
        let data = super::ulmfit::ClassifierData {
            labels: &splits.labels,
            train: &splits.train,
            train_ids: &splits.train_ids,
            validation: splits
                .validation
                .as_ref()
                .map(|(d, ids)| (d, ids.as_slice())),
            class_weights: class_weights(
                &splits.train_ids,
                splits.labels.len(),
                self.e.model.class_weight,
            ),
        };
        let trained = super::ulmfit::train(self.e, data, &self.device, resume)?;
        let mut result = self.finish(&trained.model, splits, &trained.outcome, test)?;
        result.train_seconds = trained.seconds;
        Ok(result)
    }

    /// Trains `model` with the Trainer, saves its folder, scores the test split and draws the
    /// learning curves and confusion matrix.
    fn train_and_score<M, P>(
        &self,
        model: &M,
        splits: &Splits,
        prepare: P,
        frozen: &[ParamGroup],
        test: &Dataset,
        resume: bool,
    ) -> Result<ExperimentResult>
    where
        M: Trainable + TextClassifier,
        P: Fn(&Dataset, &[u32]) -> Result<Vec<M::Example>>,
    {
        let train_examples = prepare(&splits.train, &splits.train_ids)?;
        let validation_examples = splits
            .validation
            .as_ref()
            .map(|(d, ids)| prepare(d, ids))
            .transpose()?;
        let mut args = self.e.training.clone();
        // Freezing comes first: the first matching group wins.
        for (i, group) in frozen.iter().enumerate() {
            args.param_groups.insert(i, group.clone());
        }
        if self.e.model.freeze_embeddings {
            args.param_groups.insert(
                0,
                ParamGroup {
                    pattern: "embedding.*".into(),
                    frozen: true,
                    ..Default::default()
                },
            );
        }
        let trainer = Trainer::new(args, splits.labels.names().to_vec())?;
        let outcome = trainer.train(
            model,
            &train_examples,
            validation_examples.as_deref(),
            resume,
        )?;

        self.finish(model, splits, &outcome, test)
    }

    /// Saves the trained `model`'s folder, scores the test split, draws the plots.
    fn finish<M: TextClassifier>(
        &self,
        model: &M,
        splits: &Splits,
        outcome: &crate::train::TrainOutcome,
        test: &Dataset,
    ) -> Result<ExperimentResult> {
        let out = &self.e.training.output_dir;
        let saved = save_run(&self.e.training, outcome, "Learning curves", |dir| {
            model.save(dir)
        })?;
        let evaluation = evaluate(model, test, out)?;
        let mut plots = evaluation.plots;
        plots.push(saved.curves);
        Ok(ExperimentResult {
            output_dir: out.clone(),
            model_dir: saved.model_dir,
            test_file: PathBuf::new(),
            test_report: evaluation.report,
            split_sizes: (
                splits.train.len(),
                splits.validation.as_ref().map_or(0, |v| v.0.len()),
                test.len(),
            ),
            skipped_empty: 0,
            num_parameters: model.num_parameters(),
            train_seconds: outcome.train_seconds,
            stopped_early: outcome.stopped_early,
            plots,
            embedding_report: None,
        })
    }
}

/// How many of the vocabulary's words had a pretrained vector.
#[derive(Debug, Clone, Serialize)]
pub struct EmbeddingReport {
    /// The vectors file.
    pub vectors: PathBuf,
    /// Words found.
    pub found: usize,
    /// Words not found (given random vectors).
    pub missing: usize,
    /// The first missing words, in frequency order (as the notebook prints them).
    pub missing_examples: Vec<String>,
}

/// The outcome of scoring a model on labelled data.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// The scores.
    pub report: ClassificationReport,
    /// Predicted class name per row.
    pub predictions: Vec<String>,
    /// Plots written (the confusion matrix).
    pub plots: Vec<PathBuf>,
}

/// Scores `model` on `data`, writes `report.txt`, `metrics.json` and `confusion_matrix.png` into
/// `out`. A label the model does not know is an error naming the file and line.
pub fn evaluate(model: &dyn TextClassifier, data: &Dataset, out: &Path) -> Result<Evaluation> {
    let labels: &LabelMap = model.labels();
    let truth = data.label_ids(labels)?;
    let probs = model.predict_proba(&data.texts())?;
    let predicted = argmax_rows(&probs);
    let report = ClassificationReport::new(&truth, &predicted, labels.names());
    fsio::create_dir(out)?;
    fsio::write_atomic(&out.join("report.txt"), report.to_table().as_bytes())?;
    fsio::write_json(&out.join("metrics.json"), &report)?;
    let cm = out.join("confusion_matrix.png");
    report::confusion_matrix_png(&report.confusion, labels.names(), "Confusion matrix", &cm)?;
    Ok(Evaluation {
        predictions: predicted
            .iter()
            .map(|&i| labels.name(i).to_string())
            .collect(),
        report,
        plots: vec![cm],
    })
}

/// Loads the model folder `model_dir`, scores it on `data`, and writes the report, the confusion
/// matrix and (from the folder's `history.json`, if any) the learning curves into `out`.
pub fn evaluate_folder(
    model_dir: &Path,
    data: &Dataset,
    out: &Path,
    device: &Device,
) -> Result<Evaluation> {
    let model = load_classifier(model_dir, device)?;
    let mut evaluation = evaluate(model.as_ref(), data, out)?;
    if model_dir.join("history.json").exists() {
        let history = History::load(model_dir)?;
        let curves = out.join("learning_curves.png");
        report::learning_curves_png(&history, "Learning curves", &curves)?;
        evaluation.plots.push(curves);
    }
    Ok(evaluation)
}

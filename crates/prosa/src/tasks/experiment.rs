//! The experiment file (TOML) every training task reads: `task`, `[data]`, `[model]`,
//! `[samples]` and `[training]`, with each task's defaults here in the library (the CLI only
//! maps flags onto it) and a check that refuses any setting the chosen task would ignore.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::{self, Balance, Dataset, ReadOptions};
use crate::error::{Error, Result};
use crate::models::rnn::Pooling;
use crate::text::VectorizerConfig;
use crate::train::{ScheduleKind, TrainingArgs};

/// The training tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// One label per text (CSV/TSV/JSONL): bag-of-words, recurrent or encoder classifiers.
    #[default]
    SequenceClassification,
    /// One tag per word (CoNLL files): an encoder tagger.
    TokenClassification,
    /// Next-token prediction on a corpus of text files: a GPT-2 from scratch, or fine-tuning.
    CausalLm,
    /// English → Portuguese pairs: a Transformer encoder–decoder from scratch.
    Translation,
}

impl TaskKind {
    /// The name in files and flags.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::SequenceClassification => "sequence-classification",
            TaskKind::TokenClassification => "token-classification",
            TaskKind::CausalLm => "causal-lm",
            TaskKind::Translation => "translation",
        }
    }

    /// The metrics its evaluations report (without the `eval_` prefix), which
    /// `metric_for_best_model` may name.
    pub fn metrics(self) -> &'static [&'static str] {
        match self {
            TaskKind::SequenceClassification | TaskKind::TokenClassification => {
                &["loss", "accuracy", "macro_f1", "weighted_f1"]
            }
            TaskKind::CausalLm => &["loss", "perplexity"],
            TaskKind::Translation => &["loss", "perplexity", "bleu"],
        }
    }
}

impl std::str::FromStr for TaskKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        [
            TaskKind::SequenceClassification,
            TaskKind::TokenClassification,
            TaskKind::CausalLm,
            TaskKind::Translation,
        ]
        .into_iter()
        .find(|t| t.name() == s)
        .ok_or_else(|| {
            Error::config(
                "task",
                format!(
                    "unknown task '{s}' (sequence-classification, token-classification, causal-lm, translation)"
                ),
            )
        })
    }
}

/// How the training loss weighs the classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeight {
    /// Every example counts the same.
    #[default]
    None,
    /// scikit-learn's `class_weight="balanced"`: `n / (k · count_c)`.
    Balanced,
}

impl std::str::FromStr for ClassWeight {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "balanced" => Ok(Self::Balanced),
            other => Err(format!("expected 'none' or 'balanced', got '{other}'")),
        }
    }
}

/// Which data to use and how to split it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DataSpec {
    /// The data file; `None` uses the embedded tweet-sentiment corpus.
    pub path: Option<PathBuf>,
    /// A separate test file (read like `path`); when set, `path` is not split for testing.
    pub test_path: Option<PathBuf>,
    /// How to read it.
    pub read: ReadOptions,
    /// Use at most this many rows (a seeded random subset; translation: this many training
    /// pairs and a quarter as many validation and test pairs).
    pub max_rows: Option<usize>,
    /// Fraction held out for the final test.
    pub test_size: f64,
    /// Keep class proportions in both splits.
    pub stratify: bool,
    /// Fraction of the training split used for validation during training (Keras'
    /// `validation_split`: the last rows); 0 disables validation.
    pub validation_split: f64,
    /// Even out the classes of the training split.
    pub balance: Option<Balance>,
}

impl Default for DataSpec {
    fn default() -> Self {
        Self {
            path: None,
            test_path: None,
            read: ReadOptions::default(),
            max_rows: None,
            test_size: 0.2,
            stratify: true,
            validation_split: 0.1,
            balance: None,
        }
    }
}

impl DataSpec {
    /// Reads the dataset (the file, or the embedded tweets).
    pub fn load(&self) -> Result<Dataset> {
        let data = match &self.path {
            Some(p) => data::read_file(p, &self.read)?,
            None => data::embedded_tweets()?,
        };
        Ok(data)
    }
}

/// Which model to build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelSpec {
    /// Architecture: `bow` (bag-of-words), `rnn` (Elman), `lstm`, `gru`, or `bert` (a
    /// pretrained BERT/DistilBERT/RoBERTa folder given as `pretrained`, fine-tuned).
    pub arch: String,
    /// Encoder models: the Hugging Face folder to fine-tune.
    pub pretrained: Option<PathBuf>,
    /// Encoder models: freeze the embeddings and the lower N layers.
    pub freeze_layers: Option<usize>,
    /// With `pretrained`: keep the folder's config and tokenizer but draw new weights (the same
    /// model trained from scratch, for comparison).
    pub reinitialize: bool,
    /// Encoder models: freeze the whole encoder (only the head trains).
    pub freeze_encoder: bool,
    /// Encoder models: texts are cut to this many subword tokens.
    pub max_tokens: usize,
    /// Bag-of-words features.
    pub vectorizer: VectorizerConfig,
    /// Hidden units: the bag-of-words MLP's (0: logistic regression), the recurrent state's
    /// (0: 64), or a causal LM's residual width.
    pub hidden_size: usize,
    /// Dropout: on the hidden layer, between recurrent layers, or a causal LM's residual,
    /// embedding and attention dropout.
    pub dropout: f32,
    /// Loss weights per class.
    pub class_weight: ClassWeight,
    /// Recurrent models: pretrained word vectors (word2vec, GloVe or .npy) for the embeddings.
    pub vectors: Option<PathBuf>,
    /// Recurrent models: the word index of a `.npy` vectors file.
    pub vectors_index: Option<PathBuf>,
    /// Recurrent models: keep the embeddings fixed during training.
    pub freeze_embeddings: bool,
    /// Recurrent models: embedding width when no vectors are given.
    pub embedding_dim: usize,
    /// Recurrent models: texts are padded or cut to this many words (pre, as Keras).
    pub max_len: usize,
    /// Recurrent models: stacked layers; causal LM from scratch: Transformer blocks.
    pub num_layers: usize,
    /// Recurrent models: read both directions.
    pub bidirectional: bool,
    /// Recurrent models: last state, mean or max over the states.
    pub pooling: Pooling,
    /// Recurrent models: keep only the `num_words - 1` most frequent words (Keras' `num_words`).
    pub num_words: Option<usize>,
    /// Causal LM from scratch: attention heads.
    pub num_heads: usize,
    /// Causal LM from scratch: size of the byte-level BPE vocabulary trained on the corpus.
    pub vocab_size: usize,
    /// Causal LM: tokens per training block (the context of a model trained from scratch).
    pub block_size: usize,
    /// Translation: label smoothing ε of the loss.
    pub label_smoothing: f32,
    /// Translation: pre-LN Transformer layers instead of the paper's post-LN.
    pub norm_first: bool,
    /// Translation with `rnn-attention`: the score, `additive` (Bahdanau), `dot` or `general`
    /// (Luong).
    pub attention: crate::nn::additive_attention::Score,
    /// Classification with `ulmfit`: the target LM fine-tuning and the classifier's schedule.
    pub ulmfit: UlmfitSpec,
}

/// ULMFiT's stages after general-domain pretraining, and the paper's ablations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UlmfitSpec {
    /// Epochs of target-task LM fine-tuning on the training texts (0: skip it).
    pub lm_epochs: usize,
    /// Unfreeze one layer group per epoch from the top (else all layers train from the start).
    pub gradual_unfreezing: bool,
    /// Each lower layer group learns 2.6 times slower (else one rate for all).
    pub discriminative_lr: bool,
    /// Multiplies fastai's dropouts (language model and classifier).
    pub drop_mult: f32,
    /// Tokens per language-model chunk (fastai's `bptt`).
    pub bptt: usize,
}

impl Default for UlmfitSpec {
    fn default() -> Self {
        Self {
            lm_epochs: 1,
            gradual_unfreezing: true,
            discriminative_lr: true,
            drop_mult: 0.5,
            bptt: 70,
        }
    }
}

impl Default for ModelSpec {
    fn default() -> Self {
        Self {
            arch: "bow".into(),
            pretrained: None,
            reinitialize: false,
            freeze_layers: None,
            freeze_encoder: false,
            max_tokens: 128,
            vectorizer: VectorizerConfig {
                min_df: 2,
                max_features: Some(50_000),
                sublinear_tf: true,
                ..Default::default()
            },
            hidden_size: 0,
            dropout: 0.0,
            class_weight: ClassWeight::None,
            vectors: None,
            vectors_index: None,
            freeze_embeddings: false,
            embedding_dim: 100,
            max_len: 30,
            num_layers: 1,
            bidirectional: false,
            pooling: Pooling::Last,
            num_words: None,
            num_heads: 4,
            vocab_size: 8000,
            block_size: 128,
            label_smoothing: 0.0,
            norm_first: false,
            attention: crate::nn::additive_attention::Score::Additive,
            ulmfit: UlmfitSpec::default(),
        }
    }
}

/// The samples a causal LM writes at the end of training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SampleSpec {
    /// The prompt.
    pub prompt: String,
    /// One sample per temperature (top-k 50, top-p 0.95, seeded).
    pub temperatures: Vec<f32>,
    /// New tokens per sample.
    pub max_new_tokens: usize,
}

impl Default for SampleSpec {
    fn default() -> Self {
        Self {
            prompt: "ROMEO:".into(),
            temperatures: vec![0.5, 0.8, 1.0, 1.3],
            max_new_tokens: 60,
        }
    }
}

/// A whole experiment: the task, data, model and training settings (the TOML experiment
/// file). [`Experiment::defaults`] gives each task's defaults; [`Experiment::check`] refuses a
/// setting the task would not use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Experiment {
    /// What to learn.
    pub task: TaskKind,
    /// Data and splits.
    pub data: DataSpec,
    /// Model.
    pub model: ModelSpec,
    /// Causal LM: the samples written at the end.
    pub samples: SampleSpec,
    /// Trainer settings (output_dir, epochs, learning rate, …).
    pub training: TrainingArgs,
}

impl Default for Experiment {
    fn default() -> Self {
        Self::defaults(TaskKind::SequenceClassification, false)
    }
}

impl Experiment {
    /// The defaults of `task`; `fine_tuning` says whether a pretrained model is given (a causal
    /// LM then learns at 5e-5 instead of 1e-3).
    pub fn defaults(task: TaskKind, fine_tuning: bool) -> Self {
        let mut e = Experiment {
            task,
            data: DataSpec::default(),
            model: ModelSpec::default(),
            samples: SampleSpec::default(),
            training: TrainingArgs::default(),
        };
        let t = &mut e.training;
        match task {
            TaskKind::SequenceClassification => {
                // The bag-of-words baseline on the tweets.
                t.output_dir = PathBuf::from("runs/bow");
                t.num_train_epochs = 6;
                t.learning_rate = 5e-3;
                t.per_device_train_batch_size = 64;
                t.optimizer.weight_decay = 0.0;
                t.metric_for_best_model = "eval_macro_f1".into();
                t.early_stopping_patience = Some(2);
                // Macro-F1 is the score that matters and "positive" is only 18% of the tweets.
                e.model.class_weight = ClassWeight::Balanced;
            }
            TaskKind::TokenClassification => {
                e.model.arch = "bert".into();
                t.output_dir = PathBuf::from("runs/ner");
                t.learning_rate = 5e-5;
                t.per_device_train_batch_size = 16;
                t.metric_for_best_model = "eval_macro_f1".into();
            }
            TaskKind::CausalLm => {
                e.model.arch = "gpt2".into();
                e.model.hidden_size = 256;
                e.model.num_layers = 4;
                e.model.dropout = 0.1;
                t.output_dir = PathBuf::from("runs/gpt");
                t.num_train_epochs = 1;
                t.per_device_train_batch_size = 16;
                t.per_device_eval_batch_size = 16;
                t.learning_rate = if fine_tuning { 5e-5 } else { 1e-3 };
                t.warmup_ratio = 0.05;
                t.lr_scheduler_type = ScheduleKind::Cosine;
            }
            TaskKind::Translation => {
                // A small version of the paper's base model, for a CPU.
                e.model.arch = "transformer".into();
                e.model.hidden_size = 256;
                e.model.num_layers = 3;
                e.model.vocab_size = 8000;
                e.model.max_tokens = 48;
                e.model.dropout = 0.1;
                e.model.label_smoothing = 0.1;
                e.data.test_size = 0.1;
                t.output_dir = PathBuf::from("runs/translation");
                t.num_train_epochs = 8;
                t.per_device_train_batch_size = 32;
                t.per_device_eval_batch_size = 64;
                t.learning_rate = 1e-3;
                t.lr_scheduler_type = ScheduleKind::InverseSqrt;
                t.warmup_ratio = 0.1;
                t.optimizer.beta2 = 0.98;
                t.optimizer.epsilon = 1e-9;
                t.metric_for_best_model = "eval_bleu".into();
            }
        }
        e
    }

    /// Checks that every setting that differs from the task's defaults is one the task uses
    /// (an error names the setting instead of ignoring it), and that the best-model metric is
    /// one the task reports.
    pub fn check(&self) -> Result<()> {
        let m = &self.model;
        for (field, value, upper) in [
            ("model.dropout", m.dropout, 1.0),
            ("model.label_smoothing", m.label_smoothing, 1.0),
            // fastai's largest base dropout is 0.4: a multiplier from 2.5 drops everything.
            ("model.ulmfit.drop_mult", m.ulmfit.drop_mult, 2.5),
        ] {
            if !(0.0..upper).contains(&value) {
                return Err(Error::config(
                    field,
                    format!("must be in [0, {upper}), got {value}"),
                ));
            }
        }
        if m.num_words == Some(0) {
            return Err(Error::config(
                "model.num_words",
                "must be at least 1 (Keras keeps the num_words - 1 most frequent words)",
            ));
        }
        if let Some(t) = self
            .samples
            .temperatures
            .iter()
            .find(|t| t.is_nan() || **t <= 0.0)
        {
            return Err(Error::config(
                "samples.temperatures",
                format!("{t} is not a positive temperature"),
            ));
        }
        if self.data.max_rows == Some(0) {
            return Err(Error::config(
                "data.max_rows",
                "must be at least 1 (leave it out to read every row)",
            ));
        }
        let defaults = Self::defaults(self.task, self.model.pretrained.is_some());
        let sections: [(&str, Value, Value, &[&str]); 3] = [
            (
                "model",
                to_value(&self.model)?,
                to_value(&defaults.model)?,
                self.model_settings_used(),
            ),
            (
                "data",
                to_value(&self.data)?,
                to_value(&defaults.data)?,
                self.data_settings_used(),
            ),
            (
                "samples",
                to_value(&self.samples)?,
                to_value(&defaults.samples)?,
                if self.task == TaskKind::CausalLm {
                    &["prompt", "temperatures", "max_new_tokens"]
                } else {
                    &[]
                },
            ),
        ];
        for (section, given, default, used) in sections {
            let (Value::Object(given), Value::Object(default)) = (given, default) else {
                continue;
            };
            for (key, value) in &given {
                if default.get(key) != Some(value) && !used.contains(&key.as_str()) {
                    return Err(Error::config(
                        format!("{section}.{key}"),
                        format!(
                            "does not apply to task {}{} (it would be ignored); remove it",
                            self.task.name(),
                            match self.task {
                                TaskKind::SequenceClassification =>
                                    format!(" with arch {}", self.model.arch),
                                TaskKind::CausalLm if self.model.pretrained.is_some() =>
                                    " when fine-tuning a pretrained model".to_string(),
                                _ => String::new(),
                            }
                        ),
                    ));
                }
            }
        }
        self.training.check_metric(self.task.metrics())
    }
}

fn to_value<T: Serialize>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| Error::config("experiment", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_out_of_range_name_their_setting() {
        let mut e = Experiment::defaults(TaskKind::SequenceClassification, false);
        e.model.dropout = 1.5;
        let err = e.check().unwrap_err().to_string();
        assert_eq!(err, "setting 'model.dropout': must be in [0, 1), got 1.5");
        e.model.dropout = 0.1;
        e.model.ulmfit.drop_mult = -0.5;
        assert!(e
            .check()
            .unwrap_err()
            .to_string()
            .contains("model.ulmfit.drop_mult"));
    }

    #[test]
    fn every_tasks_defaults_pass_their_own_check() {
        for task in [
            TaskKind::SequenceClassification,
            TaskKind::TokenClassification,
            TaskKind::CausalLm,
            TaskKind::Translation,
        ] {
            // Translation trains from scratch only.
            for fine_tuning in [false, task != TaskKind::Translation] {
                let mut e = Experiment::defaults(task, fine_tuning);
                if fine_tuning {
                    e.model.pretrained = Some("model".into());
                    if task == TaskKind::SequenceClassification {
                        e.model.arch = "bert".into();
                    }
                }
                assert!(e.check().is_ok(), "{task:?}: {:?}", e.check());
            }
        }
    }

    #[test]
    fn a_setting_the_task_would_ignore_is_an_error_naming_it() {
        let mut e = Experiment::defaults(TaskKind::CausalLm, true);
        e.model.pretrained = Some("gpt".into());
        e.model.hidden_size = 64;
        let err = e.check().unwrap_err().to_string();
        assert!(
            err.contains("model.hidden_size") && err.contains("fine-tuning"),
            "{err}"
        );
        let mut e = Experiment::defaults(TaskKind::TokenClassification, false);
        e.data.max_rows = Some(10);
        let err = e.check().unwrap_err().to_string();
        assert!(err.contains("data.max_rows"), "{err}");
        let mut e = Experiment::defaults(TaskKind::SequenceClassification, false);
        e.samples.prompt = "Era uma vez".into();
        let err = e.check().unwrap_err().to_string();
        assert!(err.contains("samples.prompt"), "{err}");
        // The same setting is fine where it is read.
        e.task = TaskKind::CausalLm;
        e.model = Experiment::defaults(TaskKind::CausalLm, false).model;
        e.training.metric_for_best_model = "perplexity".into();
        assert!(e.check().is_ok(), "{:?}", e.check());
    }

    #[test]
    fn task_names_parse_back() {
        for task in [
            TaskKind::SequenceClassification,
            TaskKind::TokenClassification,
            TaskKind::CausalLm,
            TaskKind::Translation,
        ] {
            assert_eq!(task.name().parse::<TaskKind>().unwrap(), task);
        }
        assert!("summarization".parse::<TaskKind>().is_err());
    }
}

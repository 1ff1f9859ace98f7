//! `config.json` of BERT, DistilBERT and RoBERTa checkpoints, read into one shape. Each family
//! names its hyperparameters differently (`hidden_size` / `dim`, `num_hidden_layers` /
//! `n_layers`, …); the defaults are transformers'. The original JSON is kept so a saved folder
//! carries every field it was loaded with.

use std::path::Path;

use serde_json::{json, Value};

use crate::data::LabelMap;
use crate::error::{Error, Result};

/// The encoder families prosa implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// BERT (token, segment and position embeddings; pooler).
    Bert,
    /// DistilBERT (no segments, no pooler, its own parameter names).
    DistilBert,
    /// RoBERTa (BERT's layers; positions counted from the padding id).
    Roberta,
}

impl Family {
    /// `model_type` in config.json.
    pub fn model_type(self) -> &'static str {
        match self {
            Family::Bert => "bert",
            Family::DistilBert => "distilbert",
            Family::Roberta => "roberta",
        }
    }

    /// The class-name stem: `Bert`, `DistilBert`, `Roberta`.
    pub fn class_stem(self) -> &'static str {
        match self {
            Family::Bert => "Bert",
            Family::DistilBert => "DistilBert",
            Family::Roberta => "Roberta",
        }
    }

    /// The name prefix of the encoder's tensors inside a model with a head.
    pub fn base_prefix(self) -> &'static str {
        self.model_type()
    }
}

/// What the model computes on top of the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// The encoder alone (`BertModel`): hidden states and, for BERT/RoBERTa, the pooler output.
    Base,
    /// Masked-language-model head (`…ForMaskedLM`).
    MaskedLm,
    /// MLM and next-sentence heads (`BertForPreTraining`).
    PreTraining,
    /// One label (or one regression value) per sequence (`…ForSequenceClassification`).
    SequenceClassification,
    /// One label per token (`…ForTokenClassification`).
    TokenClassification,
    /// Span start and end logits (`…ForQuestionAnswering`).
    QuestionAnswering,
}

impl Task {
    const ALL: [Task; 6] = [
        Task::Base,
        Task::MaskedLm,
        Task::PreTraining,
        Task::SequenceClassification,
        Task::TokenClassification,
        Task::QuestionAnswering,
    ];

    /// The class-name suffix: `Model`, `ForMaskedLM`, ….
    pub fn suffix(self) -> &'static str {
        match self {
            Task::Base => "Model",
            Task::MaskedLm => "ForMaskedLM",
            Task::PreTraining => "ForPreTraining",
            Task::SequenceClassification => "ForSequenceClassification",
            Task::TokenClassification => "ForTokenClassification",
            Task::QuestionAnswering => "ForQuestionAnswering",
        }
    }

    /// The transformers class of this task in `family`, if it exists.
    pub fn class_name(self, family: Family) -> Option<String> {
        (self != Task::PreTraining || family == Family::Bert)
            .then(|| format!("{}{}", family.class_stem(), self.suffix()))
    }
}

pub use crate::nn::activation::Activation;

/// The activation named `name`, or an error naming the config file.
fn parse_activation(name: &str, path: &Path) -> Result<Activation> {
    Activation::from_name(name).ok_or_else(|| {
        Error::folder(
            path,
            format!("hidden activation \"{name}\" is not supported (gelu, gelu_new, relu)"),
        )
    })
}

/// The hyperparameters of an encoder and its head.
#[derive(Debug, Clone)]
pub struct EncoderConfig {
    /// Family.
    pub family: Family,
    /// Head.
    pub task: Task,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Transformer layers.
    pub num_layers: usize,
    /// Attention heads per layer.
    pub num_heads: usize,
    /// Width of the feed-forward block.
    pub intermediate_size: usize,
    /// Feed-forward activation.
    pub activation: Activation,
    /// Dropout on embeddings and sublayer outputs.
    pub hidden_dropout: f32,
    /// Dropout on attention probabilities.
    pub attention_dropout: f32,
    /// Dropout before a classification head.
    pub classifier_dropout: f32,
    /// Positions the model knows.
    pub max_position_embeddings: usize,
    /// Segment types (0 for DistilBERT).
    pub type_vocab_size: usize,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f64,
    /// The padding id (RoBERTa counts positions from it).
    pub pad_token_id: u32,
    /// Standard deviation of freshly initialised weights.
    pub initializer_range: f64,
    /// Classes of a classification head (1: regression).
    pub num_labels: usize,
    /// Class names, when config.json names them.
    pub labels: Option<LabelMap>,
    /// The whole config.json as read.
    pub raw: Value,
}

fn get_usize(v: &Value, keys: &[&str], default: Option<usize>, path: &Path) -> Result<usize> {
    for k in keys {
        if let Some(x) = v.get(*k) {
            return x.as_u64().map(|x| x as usize).ok_or_else(|| {
                Error::folder(path, format!("\"{k}\" must be a non-negative integer"))
            });
        }
    }
    default.ok_or_else(|| Error::folder(path, format!("missing field \"{}\"", keys[0])))
}

fn get_f64(v: &Value, keys: &[&str], default: f64) -> f64 {
    keys.iter()
        .find_map(|k| v.get(*k).and_then(Value::as_f64))
        .unwrap_or(default)
}

impl EncoderConfig {
    /// Reads a config.json value (`path` names the file in errors). `task` overrides the
    /// architecture the file names (loading a base checkpoint for fine-tuning).
    pub fn from_json(raw: Value, path: &Path, task: Option<Task>) -> Result<Self> {
        let model_type = raw.get("model_type").and_then(Value::as_str).unwrap_or("");
        let family = match model_type {
            "bert" => Family::Bert,
            "distilbert" => Family::DistilBert,
            "roberta" | "xlm-roberta" => Family::Roberta,
            other => {
                return Err(Error::folder(
                    path,
                    format!(
                        "unknown architecture model_type = \"{other}\" (encoders: bert, distilbert, roberta)"
                    ),
                ))
            }
        };
        let file_task = match raw
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(Value::as_str)
        {
            None => Task::Base,
            Some(arch) => Task::ALL
                .into_iter()
                .find(|t| t.class_name(family).as_deref() == Some(arch))
                .ok_or_else(|| {
                    Error::folder(
                        path,
                        format!(
                            "unknown architecture \"{arch}\" (prosa knows {})",
                            Task::ALL
                                .iter()
                                .filter_map(|t| t.class_name(family))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?,
        };
        let task = task.unwrap_or(file_task);
        if task.class_name(family).is_none() {
            return Err(Error::config(
                "task",
                format!("{} has no {:?} head", family.class_stem(), task),
            ));
        }
        let distil = family == Family::DistilBert;
        let act_key = if distil { "activation" } else { "hidden_act" };
        let activation = parse_activation(
            raw.get(act_key).and_then(Value::as_str).unwrap_or("gelu"),
            path,
        )?;
        let labels = raw
            .get("id2label")
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .and_then(|m| LabelMap::from_id2label(&m));
        let num_labels = match (&labels, raw.get("num_labels").and_then(Value::as_u64)) {
            (Some(l), _) => l.len(),
            (None, Some(n)) => n as usize,
            (None, None) => 2,
        };
        let hidden_dropout = get_f64(&raw, &["hidden_dropout_prob", "dropout"], 0.1) as f32;
        let classifier_dropout = if distil {
            get_f64(&raw, &["seq_classif_dropout"], 0.2) as f32
        } else {
            raw.get("classifier_dropout")
                .and_then(Value::as_f64)
                .map_or(hidden_dropout, |v| v as f32)
        };
        let config = Self {
            family,
            task,
            vocab_size: get_usize(&raw, &["vocab_size"], None, path)?,
            hidden_size: get_usize(&raw, &["hidden_size", "dim"], None, path)?,
            num_layers: get_usize(&raw, &["num_hidden_layers", "n_layers"], None, path)?,
            num_heads: get_usize(&raw, &["num_attention_heads", "n_heads"], None, path)?,
            intermediate_size: get_usize(&raw, &["intermediate_size", "hidden_dim"], None, path)?,
            activation,
            hidden_dropout,
            attention_dropout: get_f64(
                &raw,
                &["attention_probs_dropout_prob", "attention_dropout"],
                0.1,
            ) as f32,
            classifier_dropout,
            max_position_embeddings: get_usize(
                &raw,
                &["max_position_embeddings"],
                Some(512),
                path,
            )?,
            type_vocab_size: if distil {
                0
            } else {
                get_usize(&raw, &["type_vocab_size"], Some(2), path)?
            },
            layer_norm_eps: if distil {
                1e-12
            } else {
                get_f64(&raw, &["layer_norm_eps"], 1e-12)
            },
            pad_token_id: get_usize(
                &raw,
                &["pad_token_id"],
                Some(if family == Family::Roberta { 1 } else { 0 }),
                path,
            )? as u32,
            initializer_range: get_f64(&raw, &["initializer_range"], 0.02),
            num_labels,
            labels,
            raw,
        };
        crate::models::limits::check_sizes(&[
            ("vocab_size", config.vocab_size),
            ("hidden_size", config.hidden_size),
            ("num_hidden_layers", config.num_layers),
            ("num_attention_heads", config.num_heads),
            ("intermediate_size", config.intermediate_size),
            ("max_position_embeddings", config.max_position_embeddings),
        ])
        .and_then(|()| {
            let (h, f) = (config.hidden_size as f64, config.intermediate_size as f64);
            crate::models::limits::check_parameter_count(
                (config.vocab_size + config.max_position_embeddings) as f64 * h
                    + config.num_layers as f64 * (4.0 * h * h + 2.0 * h * f),
            )
        })
        .map_err(|message| Error::folder(path, message))?;
        if !config.hidden_size.is_multiple_of(config.num_heads) {
            return Err(Error::folder(
                path,
                format!(
                    "hidden size {} is not a multiple of {} attention heads",
                    config.hidden_size, config.num_heads
                ),
            ));
        }
        if distil
            && config
                .raw
                .get("sinusoidal_pos_embds")
                .and_then(Value::as_bool)
                == Some(true)
        {
            return Err(Error::folder(
                path,
                "sinusoidal_pos_embds = true is not supported",
            ));
        }
        Ok(config)
    }

    /// Reads `config.json` of a model folder.
    pub fn from_folder(dir: &Path, task: Option<Task>) -> Result<Self> {
        let raw: Value = crate::models::folder::read_config(dir)?;
        Self::from_json(raw, &dir.join("config.json"), task)
    }

    /// Sets the label map of a classification head.
    pub fn with_labels(mut self, labels: LabelMap) -> Self {
        self.num_labels = labels.len();
        self.labels = Some(labels);
        self
    }

    /// The config.json to save: the original fields, with architecture and labels updated.
    pub fn to_json(&self) -> Value {
        let mut v = self.raw.clone();
        let class = self.task.class_name(self.family).unwrap_or_default();
        v["architectures"] = json!([class]);
        v["model_type"] = json!(self.family.model_type());
        if matches!(
            self.task,
            Task::SequenceClassification | Task::TokenClassification
        ) {
            let labels = self.labels.clone().unwrap_or_else(|| {
                let names: Vec<String> =
                    (0..self.num_labels).map(|i| format!("LABEL_{i}")).collect();
                LabelMap::fit(names.iter().map(String::as_str))
            });
            v["id2label"] = json!(labels.id2label());
            v["label2id"] = json!(labels.label2id());
            if self.num_labels == 1 {
                v["problem_type"] = json!("regression");
            }
        }
        v
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }
}

//! The e-book's Unit I classifier: word ids → (pretrained) word vectors → a recurrent stack
//! (Elman RNN, LSTM or GRU) → the last state or a pooling of all states → a dense layer →
//! sigmoid (two classes) or softmax (more).
//!
//! Texts go through the Keras-style [`WordTokenizer`] and are pre-padded to `max_len`, as the
//! notebook's `pad_sequences` does; the mask makes padded steps leave the state unchanged.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};

use super::folder::{self, ModelFolder};
use super::TextClassifier;
use crate::data::LabelMap;
use crate::error::{Error, Result};
use crate::nn::dropout;
use crate::nn::loss::{binary_cross_entropy, class_weight_tensor, cross_entropy};
use crate::nn::recurrent::{CellKind, Recurrent, RecurrentConfig};
use crate::nn::{ForwardCtx, Init, ParamStore};
use crate::text::{pad_sequences, PadOptions, Side, WordTokenizer};
use crate::train::{StepOutput, Trainable};

/// The `model_type` written in `config.json`.
pub const MODEL_TYPE: &str = "prosa-rnn";

/// How the states of all steps become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The final state (Keras' default `return_sequences=False`).
    #[default]
    Last,
    /// Mean of the states of real tokens.
    Mean,
    /// Element-wise maximum over the states of real tokens.
    Max,
}

impl std::str::FromStr for Pooling {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "last" => Ok(Self::Last),
            "mean" => Ok(Self::Mean),
            "max" => Ok(Self::Max),
            other => Err(format!("unknown pooling '{other}' (use last, mean or max)")),
        }
    }
}

/// `config.json` of a recurrent classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RnnConfig {
    /// Always [`MODEL_TYPE`].
    pub model_type: String,
    /// Hugging Face's list of architecture names.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// The recurrent cell.
    pub cell: CellKind,
    /// Rows of the embedding matrix (word ids, padding 0 included).
    pub vocab_size: usize,
    /// Width of the word vectors.
    pub embedding_dim: usize,
    /// Width of the recurrent state.
    pub hidden_size: usize,
    /// Stacked recurrent layers.
    pub num_layers: usize,
    /// Read the text in both directions.
    pub bidirectional: bool,
    /// Dropout between recurrent layers and before the dense layer.
    pub dropout: f32,
    /// How the states become one vector.
    pub pooling: Pooling,
    /// Texts are padded or cut to this many words.
    pub max_len: usize,
    /// Where padding goes (Keras' default: pre).
    pub padding: Side,
    /// Where long texts are cut (Keras' default: pre).
    pub truncating: Side,
    /// Whether the embeddings were frozen in training (informational).
    #[serde(default)]
    pub freeze_embeddings: bool,
    /// Number of classes.
    pub num_labels: usize,
    /// Class names by id.
    pub id2label: BTreeMap<String, String>,
    /// Ids by class name.
    #[serde(default)]
    pub label2id: BTreeMap<String, u32>,
    /// Per-class weights of the training loss.
    #[serde(default)]
    pub class_weights: Option<Vec<f32>>,
}

impl RnnConfig {
    /// A one-layer, unidirectional classifier reading the last state, with Keras' pre-padding
    /// and pre-truncation to 30 words, no dropout and unweighted classes; set the other fields
    /// after.
    pub fn new(
        cell: CellKind,
        vocab_size: usize,
        embedding_dim: usize,
        hidden_size: usize,
        labels: &LabelMap,
    ) -> Self {
        Self {
            model_type: MODEL_TYPE.into(),
            architectures: vec!["RnnClassifier".into()],
            cell,
            vocab_size,
            embedding_dim,
            hidden_size,
            num_layers: 1,
            bidirectional: false,
            dropout: 0.0,
            pooling: Pooling::Last,
            max_len: 30,
            padding: Side::Pre,
            truncating: Side::Pre,
            freeze_embeddings: false,
            num_labels: labels.len(),
            id2label: labels.id2label(),
            label2id: labels.label2id(),
            class_weights: None,
        }
    }

    /// Outputs of the dense layer: one logit for two classes (sigmoid), else one per class.
    pub fn num_outputs(&self) -> usize {
        if self.num_labels == 2 {
            1
        } else {
            self.num_labels
        }
    }
}

/// One prepared example: padded word ids and the class id.
#[derive(Debug, Clone, PartialEq)]
pub struct RnnExample {
    /// Word ids, `max_len` long, 0 for padding.
    pub ids: Vec<u32>,
    /// Class id.
    pub label: u32,
}

/// The hidden state of a model read word by word (the notebook's `plot_internal_states`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HiddenStates {
    /// The words the model read (words it does not know are left out, as Keras does).
    pub tokens: Vec<String>,
    /// State after each word: `states[t][j]` is dimension j after word t (last layer;
    /// forward then backward halves when bidirectional).
    pub states: Vec<Vec<f32>>,
    /// Class probabilities after reading words `0..=t`.
    pub outputs: Vec<Vec<f32>>,
    /// Class names.
    pub labels: Vec<String>,
}

/// Recurrent text classifier.
pub struct RnnClassifier {
    config: RnnConfig,
    labels: LabelMap,
    tokenizer: WordTokenizer,
    params: ParamStore,
    embedding: Tensor,
    recurrent: Recurrent,
    classifier: (Tensor, Tensor),
    class_weights: Option<Tensor>,
}

impl RnnClassifier {
    /// A new model over a fitted tokenizer; `embeddings` (vocab × dim, row-major) initialises
    /// the embedding matrix when given (pretrained vectors), otherwise it is random.
    pub fn new(
        config: RnnConfig,
        tokenizer: WordTokenizer,
        labels: LabelMap,
        embeddings: Option<&[f32]>,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let model = Self::build(config, tokenizer, labels, seed, device)?;
        if let Some(values) = embeddings {
            let (v, e) = (model.config.vocab_size, model.config.embedding_dim);
            if values.len() != v * e {
                return Err(Error::config(
                    "embeddings",
                    format!("{} values for a {v} × {e} embedding matrix", values.len()),
                ));
            }
            let name = "embedding.weight";
            let var = model
                .params
                .get(name)
                .ok_or_else(|| Error::config(name, "missing"))?;
            var.set(&Tensor::from_slice(values, (v, e), device)?)?;
        }
        Ok(model)
    }

    fn build(
        config: RnnConfig,
        tokenizer: WordTokenizer,
        labels: LabelMap,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        if labels.len() < 2 {
            return Err(Error::config(
                "labels",
                format!(
                    "a classifier needs at least 2 classes, found {}",
                    labels.len()
                ),
            ));
        }
        if config.max_len == 0 {
            return Err(Error::config("max_len", "must be at least 1"));
        }
        let params = ParamStore::new(device.clone());
        let vb = params.builder(seed);
        let embedding = vb.pp("embedding").param(
            "weight",
            &[config.vocab_size, config.embedding_dim],
            Init::Uniform {
                lo: -0.05,
                hi: 0.05,
            },
        )?;
        let recurrent = Recurrent::new(
            RecurrentConfig {
                cell: config.cell,
                input_size: config.embedding_dim,
                hidden_size: config.hidden_size,
                num_layers: config.num_layers,
                bidirectional: config.bidirectional,
                dropout: config.dropout,
            },
            &vb.pp("rnn"),
        )?;
        let c = vb.pp("classifier");
        let classifier = (
            c.param(
                "weight",
                &[config.num_outputs(), recurrent.output_size()],
                Init::XavierUniform,
            )?,
            c.param("bias", &[config.num_outputs()], Init::Zeros)?,
        );
        let class_weights =
            class_weight_tensor(config.class_weights.as_deref(), config.num_labels, device)?;
        Ok(Self {
            config,
            labels,
            tokenizer,
            params,
            embedding,
            recurrent,
            classifier,
            class_weights,
        })
    }

    /// The config written to `config.json`.
    pub fn config(&self) -> &RnnConfig {
        &self.config
    }

    /// The word tokenizer.
    pub fn tokenizer(&self) -> &WordTokenizer {
        &self.tokenizer
    }

    fn pad_options(&self) -> PadOptions {
        PadOptions {
            maxlen: Some(self.config.max_len),
            padding: self.config.padding,
            truncating: self.config.truncating,
            value: 0,
        }
    }

    /// Word ids of `texts`, padded to `max_len`.
    pub fn encode<S: AsRef<str>>(&self, texts: &[S]) -> Vec<Vec<u32>> {
        pad_sequences(
            &self.tokenizer.texts_to_sequences(texts),
            self.pad_options(),
        )
    }

    /// Tokenises and pads `texts` with class ids `labels` into training examples.
    pub fn prepare<S: AsRef<str>>(&self, texts: &[S], labels: &[u32]) -> Vec<RnnExample> {
        self.encode(texts)
            .into_iter()
            .zip(labels)
            .map(|(ids, &label)| RnnExample { ids, label })
            .collect()
    }

    /// Dense-layer outputs for padded id rows: (batch, num_outputs).
    pub fn logits(&self, rows: &[&[u32]], ctx: &mut ForwardCtx) -> Result<Tensor> {
        let (pooled, _) = self.encode_rows(rows, ctx)?;
        let pooled = dropout(&pooled, self.config.dropout, ctx)?;
        Ok(pooled
            .matmul(&self.classifier.0.t()?)?
            .broadcast_add(&self.classifier.1)?)
    }

    /// Pooled vector (batch, features) and all states (batch, seq, features) of id rows.
    fn encode_rows(&self, rows: &[&[u32]], ctx: &mut ForwardCtx) -> Result<(Tensor, Tensor)> {
        let batch = rows.len();
        let seq = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0u32; batch * seq];
        for (b, row) in rows.iter().enumerate() {
            // Rows shorter than the batch are pre-padded.
            let offset = seq - row.len();
            ids[b * seq + offset..(b + 1) * seq].copy_from_slice(row);
        }
        let vocab = self.config.vocab_size as u32;
        if let Some(&bad) = ids.iter().find(|&&i| i >= vocab) {
            return Err(Error::config(
                "input_ids",
                format!("id {bad} is outside the embedding matrix ({vocab} rows)"),
            ));
        }
        let device = self.embedding.device();
        let id_tensor = Tensor::from_vec(ids.clone(), batch * seq, device)?;
        let x = self.embedding.index_select(&id_tensor, 0)?.reshape((
            batch,
            seq,
            self.config.embedding_dim,
        ))?;
        let mask: Vec<f32> = ids
            .iter()
            .map(|&i| if i == 0 { 0.0 } else { 1.0 })
            .collect();
        let mask = Tensor::from_vec(mask, (batch, seq), device)?;
        let out = self.recurrent.forward(&x, Some(&mask), ctx)?;
        let pooled = match self.config.pooling {
            Pooling::Last => out.last,
            Pooling::Mean => {
                let m = mask.unsqueeze(2)?;
                let count = m.sum(1)?.clamp(1.0, f64::MAX)?;
                out.outputs
                    .broadcast_mul(&m)?
                    .sum(1)?
                    .broadcast_div(&count)?
            }
            Pooling::Max => {
                let penalty = ((mask.unsqueeze(2)? - 1.0)? * 1e9)?;
                out.outputs.broadcast_add(&penalty)?.max(1)?
            }
        };
        Ok((pooled, out.outputs))
    }

    fn probabilities(&self, logits: &Tensor) -> Result<Tensor> {
        if self.config.num_outputs() == 1 {
            let p = candle_nn::ops::sigmoid(logits)?;
            Ok(Tensor::cat(&[(p.ones_like()? - &p)?, p], 1)?)
        } else {
            Ok(candle_nn::ops::softmax(logits, D::Minus1)?)
        }
    }

    /// Reads `text` word by word: the state after each word and the prediction after each
    /// prefix, for the hidden-state figure.
    pub fn hidden_states(&self, text: &str) -> Result<HiddenStates> {
        let ids = self.tokenizer.texts_to_sequences(&[text]).remove(0);
        if ids.is_empty() {
            return Err(Error::config(
                "text",
                format!("none of the words of \"{text}\" is in the model's vocabulary"),
            ));
        }
        let ids: Vec<u32> = ids[ids.len().saturating_sub(self.config.max_len)..].to_vec();
        let tokens = ids
            .iter()
            .map(|&i| self.tokenizer.index_word(i).unwrap_or("?").to_string())
            .collect();
        let mut ctx = ForwardCtx::eval();
        let (_, states) = self.encode_rows(&[&ids], &mut ctx)?;
        let states = states.squeeze(0)?.to_vec2::<f32>()?;
        let prefixes: Vec<&[u32]> = (1..=ids.len()).map(|n| &ids[..n]).collect();
        let outputs = self
            .probabilities(&self.logits(&prefixes, &mut ctx)?)?
            .to_vec2::<f32>()?;
        Ok(HiddenStates {
            tokens,
            states,
            outputs,
            labels: self.labels.names().to_vec(),
        })
    }

    fn folder(&self) -> Result<ModelFolder> {
        folder::with_word_tokenizer(&self.config, &self.tokenizer)
    }

    /// Loads a classifier saved by [`TextClassifier::save`].
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config: RnnConfig = folder::read_config(dir)?;
        let labels = folder::labels_from_config(dir, &config.id2label, config.num_labels)?;
        let tokenizer = folder::read_word_tokenizer(dir, config.vocab_size)?;
        let model = Self::build(config, tokenizer, labels, 0, device)?;
        model.params.load(&dir.join("model.safetensors"))?;
        Ok(model)
    }
}

impl Trainable for RnnClassifier {
    type Example = RnnExample;

    fn params(&self) -> &ParamStore {
        &self.params
    }

    fn forward_batch(&self, batch: &[&RnnExample], ctx: &mut ForwardCtx) -> Result<StepOutput> {
        let rows: Vec<&[u32]> = batch.iter().map(|e| e.ids.as_slice()).collect();
        let targets: Vec<u32> = batch.iter().map(|e| e.label).collect();
        let logits = self.logits(&rows, ctx)?;
        let (loss, predictions) = if self.config.num_outputs() == 1 {
            let loss = binary_cross_entropy(&logits, &targets, self.class_weights.as_ref())?;
            let z = logits.squeeze(1)?.to_vec1::<f32>()?;
            (loss, z.iter().map(|&v| u32::from(v > 0.0)).collect())
        } else {
            let loss = cross_entropy(&logits, &targets, self.class_weights.as_ref())?;
            (
                loss,
                logits
                    .argmax(D::Minus1)?
                    .to_dtype(DType::U32)?
                    .to_vec1::<u32>()?,
            )
        };
        Ok(StepOutput {
            loss,
            predictions: Some(predictions),
            targets: Some(targets),
        })
    }
}

impl TextClassifier for RnnClassifier {
    fn labels(&self) -> &LabelMap {
        &self.labels
    }

    fn predict_proba(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(256) {
            let ids = self.encode(chunk);
            let rows: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
            let logits = self.logits(&rows, &mut ForwardCtx::eval())?;
            out.extend(self.probabilities(&logits)?.to_vec2::<f32>()?);
        }
        Ok(out)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        folder::save(dir, &self.folder()?, &self.params)
    }

    fn num_parameters(&self) -> usize {
        self.params.num_parameters()
    }

    fn model_type(&self) -> &str {
        MODEL_TYPE
    }
}

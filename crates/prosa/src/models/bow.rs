//! The course's "classic NLP" reference point: bag-of-words (counts or TF-IDF over word
//! n-grams) into logistic regression, or into a small MLP, trained by the [`Trainer`].
//!
//! The first layer reads the sparse features directly, like PyTorch's `EmbeddingBag`:
//! `h = Σ_j x_j · W[j]`, computed as one gather of the rows of `W` that occur in the batch and
//! one matrix product, so a 50,000-term vocabulary costs no more than the words present.
//!
//! [`Trainer`]: crate::train::Trainer

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor, D};
use serde::{Deserialize, Serialize};

use super::folder::{self, ModelFolder};
use super::TextClassifier;
use crate::data::LabelMap;
use crate::error::{Error, Result};
use crate::nn::dropout;
use crate::nn::loss::class_weight_tensor;
use crate::nn::{ForwardCtx, Init, ParamStore};
use crate::text::{SparseRow, Vectorizer, VectorizerConfig};
use crate::train::{StepOutput, Trainable};

/// The `model_type` written in `config.json`.
pub const MODEL_TYPE: &str = "prosa-bow";

/// `config.json` of a bag-of-words classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BowConfig {
    /// Always [`MODEL_TYPE`].
    pub model_type: String,
    /// Hugging Face's list of architecture names.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// Vectorizer settings (the fitted vocabulary is in `vectorizer.json`).
    pub vectorizer: VectorizerConfig,
    /// Number of features (vocabulary size).
    pub num_features: usize,
    /// Hidden units of the MLP; 0 means logistic regression.
    #[serde(default)]
    pub hidden_size: usize,
    /// Dropout on the hidden layer.
    #[serde(default)]
    pub dropout: f32,
    /// Number of classes.
    pub num_labels: usize,
    /// Class names by id (Hugging Face's `id2label`).
    pub id2label: BTreeMap<String, String>,
    /// Ids by class name (Hugging Face's `label2id`).
    #[serde(default)]
    pub label2id: BTreeMap<String, u32>,
    /// Per-class weights of the training loss (`None`: all 1).
    #[serde(default)]
    pub class_weights: Option<Vec<f32>>,
}

/// One prepared example: sparse features and class id.
#[derive(Debug, Clone, PartialEq)]
pub struct BowExample {
    /// Feature row.
    pub features: SparseRow,
    /// Class id.
    pub label: u32,
}

/// Bag-of-words classifier.
pub struct BowClassifier {
    config: BowConfig,
    labels: LabelMap,
    vectorizer: Vectorizer,
    params: ParamStore,
    /// (num_features, hidden or num_labels)
    input_weight: Tensor,
    /// (hidden or num_labels)
    input_bias: Tensor,
    /// (num_labels, hidden) and (num_labels) for the MLP.
    classifier: Option<(Tensor, Tensor)>,
    class_weights: Option<Tensor>,
}

impl BowClassifier {
    /// A new, randomly initialised classifier over a fitted vectorizer.
    pub fn new(
        vectorizer: Vectorizer,
        labels: LabelMap,
        hidden_size: usize,
        dropout: f32,
        class_weights: Option<Vec<f32>>,
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
        let config = BowConfig {
            model_type: MODEL_TYPE.into(),
            architectures: vec!["BowClassifier".into()],
            vectorizer: vectorizer.config.clone(),
            num_features: vectorizer.len(),
            hidden_size,
            dropout,
            num_labels: labels.len(),
            id2label: labels.id2label(),
            label2id: labels.label2id(),
            class_weights,
        };
        Self::build(config, labels, vectorizer, seed, device)
    }

    fn build(
        config: BowConfig,
        labels: LabelMap,
        vectorizer: Vectorizer,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let params = ParamStore::new(device.clone());
        let vb = params.builder(seed);
        let width = if config.hidden_size > 0 {
            config.hidden_size
        } else {
            config.num_labels
        };
        let bow = vb.pp("bow");
        let input_weight = bow.param(
            "weight",
            &[config.num_features, width],
            Init::Normal { std: 0.01 },
        )?;
        let input_bias = bow.param("bias", &[width], Init::Zeros)?;
        let classifier = if config.hidden_size > 0 {
            let c = vb.pp("classifier");
            Some((
                c.param(
                    "weight",
                    &[config.num_labels, config.hidden_size],
                    Init::LinearDefault,
                )?,
                c.param("bias", &[config.num_labels], Init::Zeros)?,
            ))
        } else {
            None
        };
        let class_weights =
            class_weight_tensor(config.class_weights.as_deref(), config.num_labels, device)?;
        Ok(Self {
            config,
            labels,
            vectorizer,
            params,
            input_weight,
            input_bias,
            classifier,
            class_weights,
        })
    }

    /// The config written to `config.json`.
    pub fn config(&self) -> &BowConfig {
        &self.config
    }

    /// The fitted vectorizer.
    pub fn vectorizer(&self) -> &Vectorizer {
        &self.vectorizer
    }

    /// Vectorises `texts` with class ids `labels` into training examples.
    pub fn prepare<S: AsRef<str>>(&self, texts: &[S], labels: &[u32]) -> Vec<BowExample> {
        self.vectorizer
            .transform(texts)
            .into_iter()
            .zip(labels)
            .map(|(features, &label)| BowExample { features, label })
            .collect()
    }

    /// Class scores (before softmax) of a batch of feature rows: (batch, num_labels).
    pub fn logits(&self, rows: &[&SparseRow], ctx: &mut ForwardCtx) -> Result<Tensor> {
        let batch = rows.len();
        let nnz: usize = rows.iter().map(|r| r.len()).sum::<usize>().max(1);
        let mut index = Vec::with_capacity(nnz);
        let mut scatter = vec![0f32; batch * nnz];
        for (b, row) in rows.iter().enumerate() {
            for &(feature, value) in row.iter() {
                scatter[b * nnz + index.len()] = value;
                index.push(feature);
            }
        }
        if index.is_empty() {
            index.push(0); // every text is out of vocabulary: the scatter row of zeros keeps h = bias
        }
        let device = self.input_weight.device();
        let gathered = self
            .input_weight
            .index_select(&Tensor::new(index.as_slice(), device)?, 0)?;
        let scatter = Tensor::from_vec(scatter, (batch, nnz), device)?;
        let h = scatter.matmul(&gathered)?.broadcast_add(&self.input_bias)?;
        match &self.classifier {
            None => Ok(h),
            Some((w, b)) => {
                let h = dropout(&h.relu()?, self.config.dropout, ctx)?;
                Ok(h.matmul(&w.t()?)?.broadcast_add(b)?)
            }
        }
    }

    /// Model folder files, for saving.
    fn folder(&self) -> Result<ModelFolder> {
        Ok(ModelFolder {
            config: serde_json::to_value(&self.config)
                .map_err(|e| Error::config("config", e.to_string()))?,
            extra_files: vec![(
                "vectorizer.json",
                serde_json::to_vec(&self.vectorizer)
                    .map_err(|e| Error::config("vectorizer", e.to_string()))?,
            )],
        })
    }

    /// Loads a classifier saved by [`TextClassifier::save`].
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config: BowConfig = folder::read_config(dir)?;
        let labels = folder::labels_from_config(dir, &config.id2label, config.num_labels)?;
        let vectorizer: Vectorizer = folder::read_json_file(&dir.join("vectorizer.json"))?;
        let vectorizer = vectorizer.after_load();
        if vectorizer.len() != config.num_features {
            return Err(Error::folder(
                dir.join("vectorizer.json"),
                format!(
                    "{} terms, but config.json says num_features = {}",
                    vectorizer.len(),
                    config.num_features
                ),
            ));
        }
        let model = Self::build(config, labels, vectorizer, 0, device)?;
        model.params.load(&dir.join("model.safetensors"))?;
        Ok(model)
    }
}

impl Trainable for BowClassifier {
    type Example = BowExample;

    fn params(&self) -> &ParamStore {
        &self.params
    }

    fn forward_batch(&self, batch: &[&BowExample], ctx: &mut ForwardCtx) -> Result<StepOutput> {
        let rows: Vec<&SparseRow> = batch.iter().map(|e| &e.features).collect();
        let targets: Vec<u32> = batch.iter().map(|e| e.label).collect();
        let logits = self.logits(&rows, ctx)?;
        super::classification_step(&logits, targets, self.class_weights.as_ref())
    }
}

impl TextClassifier for BowClassifier {
    fn labels(&self) -> &LabelMap {
        &self.labels
    }

    fn predict_proba(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(256) {
            let rows = self.vectorizer.transform(chunk);
            let refs: Vec<&SparseRow> = rows.iter().collect();
            let logits = self.logits(&refs, &mut ForwardCtx::eval())?;
            out.extend(candle_nn::ops::softmax(&logits, D::Minus1)?.to_vec2::<f32>()?);
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

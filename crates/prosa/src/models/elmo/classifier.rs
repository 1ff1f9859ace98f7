//! ELMo features feeding a classifier, the paper's recipe for a downstream task with the biLM
//! frozen: each text's layers (`[x; x]` and every LSTM layer's `[forward; backward]`) are
//! averaged over its words once, then a learned scalar mix (softmax-normalised weights × γ)
//! combines them, and a small network (dense + ReLU + dense) classifies. Averaging commutes
//! with the mix, so the frozen biLM runs once per text, not once per epoch.
//!
//! The folder holds the biLM too (its weights under `elmo.`, its vocabulary in `vocab.txt`),
//! so it loads on its own.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor, D};
use serde::{Deserialize, Serialize};

use super::head::{load_bilm, MixHead};
use super::{words, ElmoBiLm, ElmoConfig};
use crate::data::LabelMap;
use crate::error::{Error, Result};
use crate::models::folder::{self, ModelFolder};
use crate::models::{classification_step, TextClassifier};
use crate::nn::loss::class_weight_tensor;
use crate::nn::{ForwardCtx, ParamStore};
use crate::train::{StepOutput, Trainable};

/// The `model_type` written in `config.json`.
pub const CLASSIFIER_TYPE: &str = "prosa-elmo-classifier";
/// Texts the frozen biLM reads at once.
const FEATURE_BATCH: usize = 64;

/// `config.json` of an ELMo classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElmoClassifierConfig {
    /// Always [`CLASSIFIER_TYPE`].
    pub model_type: String,
    /// Hugging Face's list of architecture names.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// The frozen biLM.
    pub elmo: ElmoConfig,
    /// Width of the hidden dense layer.
    pub hidden_size: usize,
    /// Dropout on the mixed features and the hidden layer (training only).
    pub dropout: f32,
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

/// One prepared text: its mean ELMo layers (layers × 2·hidden, row-major) and class.
#[derive(Debug, Clone, PartialEq)]
pub struct ElmoExample {
    /// Mean of each layer over the text's words.
    pub features: Vec<f32>,
    /// Class id.
    pub label: u32,
}

/// A classifier over frozen ELMo features.
pub struct ElmoClassifier {
    config: ElmoClassifierConfig,
    labels: LabelMap,
    params: ParamStore,
    elmo: ElmoBiLm,
    head: MixHead,
    class_weights: Option<Tensor>,
}

impl ElmoClassifier {
    /// A new classifier over the biLM folder `elmo_dir` (`prosa pretrain --arch elmo`).
    pub fn from_pretrained(
        elmo_dir: &Path,
        labels: LabelMap,
        hidden_size: usize,
        dropout: f32,
        class_weights: Option<Vec<f32>>,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let elmo: ElmoConfig = folder::read_config(elmo_dir)?;
        let config = ElmoClassifierConfig {
            model_type: CLASSIFIER_TYPE.into(),
            architectures: vec!["ElmoClassifier".into()],
            elmo,
            hidden_size,
            dropout,
            num_labels: labels.len(),
            id2label: labels.id2label(),
            label2id: labels.label2id(),
            class_weights,
        };
        let model = Self::build(config, labels, elmo_dir, seed, device)?;
        load_bilm(&model.params, elmo_dir, device)?;
        Ok(model)
    }

    /// Loads a folder written by [`TextClassifier::save`].
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config: ElmoClassifierConfig = folder::read_config(dir)?;
        let labels = folder::labels_from_config(dir, &config.id2label, config.num_labels)?;
        let model = Self::build(config, labels, dir, 0, device)?;
        model.params.load(&dir.join("model.safetensors"))?;
        Ok(model)
    }

    fn build(
        config: ElmoClassifierConfig,
        labels: LabelMap,
        vocab_dir: &Path,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        if labels.len() < 2 || config.hidden_size == 0 || !(0.0..1.0).contains(&config.dropout) {
            return Err(Error::config(
                "labels/hidden_size/dropout",
                "needs 2 or more classes, a hidden layer of 1 or more and dropout in [0, 1)",
            ));
        }
        let params = ParamStore::new(device.clone());
        let vb = params.builder(seed);
        let elmo = ElmoBiLm::build_from_folder(config.elmo.clone(), vocab_dir, &vb.pp("elmo"))?;
        let head = MixHead::new(
            &vb,
            config.elmo.num_layers + 1,
            2 * config.elmo.hidden_size,
            config.hidden_size,
            config.num_labels,
            config.dropout,
        )?;
        let class_weights =
            class_weight_tensor(config.class_weights.as_deref(), config.num_labels, device)?;
        Ok(Self {
            config,
            labels,
            params,
            elmo,
            head,
            class_weights,
        })
    }

    /// Each text's ELMo layers averaged over its words: (layers × 2·hidden) values per text
    /// (zeros for a text without words).
    pub fn features(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(FEATURE_BATCH) {
            let sentences: Vec<Vec<String>> = chunk.iter().map(|t| words(t)).collect();
            let rows: Vec<&[String]> = sentences.iter().map(Vec::as_slice).collect();
            let layers = self.elmo.layers(&rows, &mut ForwardCtx::eval())?;
            let mask = super::mask_3d(&layers.mask)?;
            let counts = mask.sum(1)?.clamp(1.0, f64::INFINITY)?;
            let means: Vec<Tensor> = layers
                .layers
                .iter()
                .map(|l| Ok(l.broadcast_mul(&mask)?.sum(1)?.broadcast_div(&counts)?))
                .collect::<Result<_>>()?;
            // (batch, layers, 2·hidden), one row per text.
            let stacked = Tensor::stack(&means, 1)?.flatten_from(1)?;
            out.extend(stacked.to_vec2::<f32>()?);
        }
        Ok(out)
    }

    /// Training examples of `texts` with class ids `labels`.
    pub fn prepare(&self, texts: &[&str], labels: &[u32]) -> Result<Vec<ElmoExample>> {
        Ok(self
            .features(texts)?
            .into_iter()
            .zip(labels)
            .map(|(features, &label)| ElmoExample { features, label })
            .collect())
    }

    /// Class logits of feature rows.
    fn logits(&self, features: &[&[f32]], ctx: &mut ForwardCtx) -> Result<Tensor> {
        let width = (self.config.elmo.num_layers + 1) * 2 * self.config.elmo.hidden_size;
        if features.iter().any(|f| f.len() != width) {
            return Err(Error::config(
                "features",
                format!("rows of {width} values expected"),
            ));
        }
        let flat: Vec<f32> = features.iter().flat_map(|f| f.iter().copied()).collect();
        self.head.logits(&flat, features.len(), ctx)
    }

    /// The learned layer weights `softmax(w)` and γ.
    pub fn mix_weights(&self) -> Result<(Vec<f32>, f32)> {
        self.head.mix_weights()
    }
}

impl Trainable for ElmoClassifier {
    type Example = ElmoExample;

    fn params(&self) -> &ParamStore {
        &self.params
    }

    fn forward_batch(&self, batch: &[&ElmoExample], ctx: &mut ForwardCtx) -> Result<StepOutput> {
        let rows: Vec<&[f32]> = batch.iter().map(|e| e.features.as_slice()).collect();
        let logits = self.logits(&rows, ctx)?;
        let targets = batch.iter().map(|e| e.label).collect();
        classification_step(&logits, targets, self.class_weights.as_ref())
    }
}

impl TextClassifier for ElmoClassifier {
    fn labels(&self) -> &LabelMap {
        &self.labels
    }

    fn predict_proba(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let features = self.features(texts)?;
        let rows: Vec<&[f32]> = features.iter().map(Vec::as_slice).collect();
        let logits = self.logits(&rows, &mut ForwardCtx::eval())?;
        Ok(candle_nn::ops::softmax(&logits, D::Minus1)?.to_vec2::<f32>()?)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let folder = ModelFolder {
            config: serde_json::to_value(&self.config)
                .map_err(|e| Error::config("config", e.to_string()))?,
            extra_files: vec![("vocab.txt", self.elmo.vocab_file())],
        };
        folder::save(dir, &folder, &self.params)
    }

    fn num_parameters(&self) -> usize {
        self.params.num_parameters()
    }

    fn model_type(&self) -> &str {
        CLASSIFIER_TYPE
    }
}

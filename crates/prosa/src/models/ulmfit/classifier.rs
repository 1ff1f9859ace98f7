//! ULMFiT's classifier: the language model's AWD-LSTM encoder (with fastai's classifier
//! dropouts), concat pooling of its last layer — `[h_T; max_t h_t; mean_t h_t]` over the text's
//! real tokens — and two blocks of batch norm, dropout and a linear layer (ReLU between), as
//! fastai's `PoolingLinearClassifier` with `lin_ftrs=[50]`, `ps=[0.4, 0.1]`.
//!
//! Layer groups for discriminative rates and gradual unfreezing, bottom to top: the embedding,
//! each LSTM layer, the head.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor, D};
use serde::{Deserialize, Serialize};

use super::awd_lstm::{AwdDropouts, AwdLstm, AwdLstmConfig};
use super::{read_vocab, tokenize, AwdLstmLmConfig, BOS, PAD};
use crate::data::LabelMap;
use crate::error::{Error, Result};
use crate::models::folder::{self, ModelFolder};
use crate::models::{classification_step, TextClassifier};
use crate::nn::batch_norm::BatchNorm1d;
use crate::nn::loss::class_weight_tensor;
use crate::nn::max_pool::max_over_positions;
use crate::nn::{dropout, load_safetensors, ForwardCtx, Init, ParamStore};
use crate::train::{StepOutput, Trainable};

/// The `model_type` written in `config.json`.
pub const CLASSIFIER_TYPE: &str = "prosa-ulmfit-classifier";
/// The head's buffers (batch-norm running statistics): saved, never trained.
const BUFFERS: [&str; 4] = [
    "head.bn1.running_mean",
    "head.bn1.running_var",
    "head.bn2.running_mean",
    "head.bn2.running_var",
];

/// `config.json` of a ULMFiT classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UlmfitClassifierConfig {
    /// Always [`CLASSIFIER_TYPE`].
    pub model_type: String,
    /// Hugging Face's list of architecture names.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// The encoder (with the classifier's dropouts).
    pub encoder: AwdLstmConfig,
    /// Width of the head's hidden layer.
    pub head_hidden: usize,
    /// Dropout before the head's two linear layers.
    pub head_dropout: (f32, f32),
    /// Tokens kept per text (`xxbos` included; the rest is cut).
    pub max_len: usize,
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

/// One prepared text: its token ids and class.
#[derive(Debug, Clone, PartialEq)]
pub struct UlmfitExample {
    /// `xxbos` and the text's word ids.
    pub ids: Vec<u32>,
    /// Class id.
    pub label: u32,
}

/// The ULMFiT classifier.
pub struct UlmfitClassifier {
    config: UlmfitClassifierConfig,
    labels: LabelMap,
    params: ParamStore,
    vocab: Vec<String>,
    index: HashMap<String, u32>,
    encoder: AwdLstm,
    bn1: BatchNorm1d,
    linear1: (Tensor, Tensor),
    bn2: BatchNorm1d,
    linear2: (Tensor, Tensor),
    class_weights: Option<Tensor>,
}

impl UlmfitClassifier {
    /// A classifier over the encoder of the language-model folder `lm_dir` (its vocabulary and
    /// weights), with fresh head weights; `drop_mult` scales fastai's classifier dropouts.
    pub fn from_language_model(
        lm_dir: &Path,
        labels: LabelMap,
        drop_mult: f32,
        class_weights: Option<Vec<f32>>,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let lm: AwdLstmLmConfig = folder::read_config(lm_dir)?;
        let config = UlmfitClassifierConfig {
            model_type: CLASSIFIER_TYPE.into(),
            architectures: vec!["UlmfitClassifier".into()],
            encoder: AwdLstmConfig {
                dropouts: AwdDropouts::CLASSIFIER.scaled(drop_mult),
                ..lm.encoder
            },
            head_hidden: 50,
            head_dropout: (0.4 * drop_mult, 0.1 * drop_mult),
            max_len: 72,
            num_labels: labels.len(),
            id2label: labels.id2label(),
            label2id: labels.label2id(),
            class_weights,
        };
        let model = Self::build(config, labels, read_vocab(lm_dir)?, seed, device)?;
        let path = lm_dir.join("model.safetensors");
        let mut tensors = load_safetensors(&path, device)?;
        tensors.remove("decoder.bias");
        model
            .params
            .load_tensors(&tensors, &path, &|name| name.starts_with("head."))?;
        Ok(model)
    }

    /// Loads a folder written by [`TextClassifier::save`].
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config: UlmfitClassifierConfig = folder::read_config(dir)?;
        let labels = folder::labels_from_config(dir, &config.id2label, config.num_labels)?;
        let model = Self::build(config, labels, read_vocab(dir)?, 0, device)?;
        model.params.load(&dir.join("model.safetensors"))?;
        Ok(model)
    }

    fn build(
        config: UlmfitClassifierConfig,
        labels: LabelMap,
        vocab: Vec<String>,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        if labels.len() < 2 || config.max_len < 2 || vocab.len() != config.encoder.vocab_size {
            return Err(Error::config(
                "labels/max_len/vocab",
                "needs 2 or more classes, max_len ≥ 2 and vocab.txt as long as vocab_size",
            ));
        }
        let params = ParamStore::new(device.clone());
        let vb = params.builder(seed);
        let encoder = AwdLstm::new(config.encoder, &vb)?;
        let head = vb.pp("head");
        let pooled = 3 * config.encoder.emb_size;
        let linear = |name: &str, out: usize, inp: usize| -> Result<(Tensor, Tensor)> {
            let l = head.pp(name);
            Ok((
                l.param("weight", &[out, inp], Init::LinearDefault)?,
                l.param("bias", &[out], Init::Zeros)?,
            ))
        };
        let index = vocab
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        let class_weights =
            class_weight_tensor(config.class_weights.as_deref(), config.num_labels, device)?;
        Ok(Self {
            bn1: BatchNorm1d::new(pooled, &head.pp("bn1"))?,
            linear1: linear("linear1", config.head_hidden, pooled)?,
            bn2: BatchNorm1d::new(config.head_hidden, &head.pp("bn2"))?,
            linear2: linear("linear2", config.num_labels, config.head_hidden)?,
            config,
            labels,
            params,
            vocab,
            index,
            encoder,
            class_weights,
        })
    }

    /// The layer groups, bottom to top: `encoder.*`, `rnns.{l}.*`, `head.*`.
    pub fn layer_groups(&self) -> Vec<String> {
        let mut groups = self.encoder.layer_groups("");
        groups.push("head.*".into());
        groups
    }

    /// Token ids of a text: `xxbos` and its words, cut to `max_len`.
    fn encode(&self, text: &str) -> Vec<u32> {
        let bos = self.index[BOS];
        std::iter::once(bos)
            .chain(
                tokenize(text)
                    .iter()
                    .map(|w| self.index.get(w).copied().unwrap_or(0)),
            )
            .take(self.config.max_len)
            .collect()
    }

    /// Training examples of `texts` with class ids `labels`.
    pub fn prepare(&self, texts: &[&str], labels: &[u32]) -> Vec<UlmfitExample> {
        texts
            .iter()
            .zip(labels)
            .map(|(t, &label)| UlmfitExample {
                ids: self.encode(t),
                label,
            })
            .collect()
    }

    /// Class logits of id rows (each at least `xxbos`).
    fn logits(&self, rows: &[&[u32]], ctx: &mut ForwardCtx) -> Result<Tensor> {
        let steps = rows.iter().map(|r| r.len()).max().unwrap_or(1).max(1);
        let pad = self.index[PAD];
        let (mut ids, mut mask, mut last) = (Vec::new(), Vec::new(), Vec::new());
        for (b, r) in rows.iter().enumerate() {
            let n = r.len().max(1);
            for t in 0..steps {
                ids.push(r.get(t).copied().unwrap_or(pad));
                mask.push(if t < n { 1f32 } else { 0.0 });
            }
            last.push((b * steps + n - 1) as u32);
        }
        let device = self.params.device();
        let batch = rows.len();
        let ids = Tensor::from_vec(ids, (batch, steps), device)?;
        let mask = Tensor::from_vec(mask, (batch, steps), device)?;
        let out = self.encoder.forward(&ids, Some(&mask), ctx)?;
        let out =
            crate::nn::dropout::locked_dropout(&out, self.config.encoder.dropouts.output_p, ctx)?;
        let e = self.config.encoder.emb_size;
        let m = mask.unsqueeze(2)?;
        let h_last = out
            .reshape((batch * steps, e))?
            .index_select(&Tensor::new(last.as_slice(), device)?, 0)?;
        // Padding pushed far below any value before the maximum.
        let masked = out.broadcast_add(&((&m - 1.0)? * 1e9)?)?;
        let h_max = max_over_positions(&masked)?;
        let h_mean = out.broadcast_mul(&m)?.sum(1)?.broadcast_div(&m.sum(1)?)?;
        let pooled = Tensor::cat(&[h_last, h_max, h_mean], D::Minus1)?;
        let (p1, p2) = self.config.head_dropout;
        let x = dropout(&self.bn1.forward(&pooled, ctx)?, p1, ctx)?;
        let x = crate::nn::linear::linear(&x, &self.linear1.0, &self.linear1.1)?.relu()?;
        let x = dropout(&self.bn2.forward(&x, ctx)?, p2, ctx)?;
        crate::nn::linear::linear(&x, &self.linear2.0, &self.linear2.1)
    }
}

impl Trainable for UlmfitClassifier {
    type Example = UlmfitExample;

    fn params(&self) -> &ParamStore {
        &self.params
    }

    fn forward_batch(&self, batch: &[&UlmfitExample], ctx: &mut ForwardCtx) -> Result<StepOutput> {
        let rows: Vec<&[u32]> = batch.iter().map(|e| e.ids.as_slice()).collect();
        let logits = self.logits(&rows, ctx)?;
        let targets = batch.iter().map(|e| e.label).collect();
        classification_step(&logits, targets, self.class_weights.as_ref())
    }

    fn example_length(&self, example: &UlmfitExample) -> Option<usize> {
        Some(example.ids.len())
    }

    fn buffers(&self) -> Vec<&'static str> {
        BUFFERS.to_vec()
    }
}

impl TextClassifier for UlmfitClassifier {
    fn labels(&self) -> &LabelMap {
        &self.labels
    }

    fn predict_proba(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(128) {
            let ids: Vec<Vec<u32>> = chunk.iter().map(|t| self.encode(t)).collect();
            let rows: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
            let logits = self.logits(&rows, &mut ForwardCtx::eval())?;
            out.extend(candle_nn::ops::softmax(&logits, D::Minus1)?.to_vec2::<f32>()?);
        }
        Ok(out)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let folder = ModelFolder {
            config: serde_json::to_value(&self.config)
                .map_err(|e| Error::config("config", e.to_string()))?,
            extra_files: vec![("vocab.txt", (self.vocab.join("\n") + "\n").into_bytes())],
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

#[cfg(test)]
mod tests {
    use super::super::{build_vocab, AwdLstmLm};
    use super::*;

    #[test]
    fn the_classifier_takes_the_language_models_encoder_and_pools_three_ways() {
        let vocab = build_vocab(["o", "gato", "come", "peixe", "o"], 100, 1);
        let config = AwdLstmConfig {
            vocab_size: vocab.len(),
            emb_size: 4,
            hidden_size: 6,
            num_layers: 3,
            dropouts: AwdDropouts::LANGUAGE_MODEL,
        };
        let lm = AwdLstmLm::new(config, vocab, 3, &Device::Cpu).unwrap();
        let dir = tempfile::tempdir().unwrap();
        lm.save_pretrained(dir.path()).unwrap();
        let labels = LabelMap::from_names(vec!["a".into(), "b".into()]);
        let clf =
            UlmfitClassifier::from_language_model(dir.path(), labels, 1.0, None, 0, &Device::Cpu)
                .unwrap();
        let same = |name: &str| {
            let a = lm
                .params()
                .get(name)
                .unwrap()
                .as_tensor()
                .flatten_all()
                .unwrap();
            let b = clf
                .params()
                .get(name)
                .unwrap()
                .as_tensor()
                .flatten_all()
                .unwrap();
            a.to_vec1::<f32>().unwrap() == b.to_vec1::<f32>().unwrap()
        };
        assert!(same("encoder.weight") && same("rnns.2.weight_hh_l0"));
        assert_eq!(
            clf.layer_groups(),
            ["encoder.*", "rnns.0.*", "rnns.1.*", "rnns.2.*", "head.*"]
        );
        assert_eq!(
            clf.params().get("head.linear1.weight").unwrap().dims(),
            [50, 12]
        );
        let p = clf.predict_proba(&["o gato come", "peixe"]).unwrap();
        assert!(p.iter().all(|r| (r.iter().sum::<f32>() - 1.0).abs() < 1e-5));
        // Training: a batch of two updates the batch-norm statistics and has a loss.
        let examples = clf.prepare(&["o gato come", "peixe"], &[0, 1]);
        let batch: Vec<&UlmfitExample> = examples.iter().collect();
        let mut ctx = ForwardCtx::training(rand::SeedableRng::seed_from_u64(1));
        let out = clf.forward_batch(&batch, &mut ctx).unwrap();
        assert!(out.loss.to_scalar::<f32>().unwrap().is_finite());
        let mean = clf.params().get("head.bn1.running_mean").unwrap();
        assert!(
            mean.as_tensor()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                > 0.0
        );
        assert_eq!(clf.buffers().len(), 4);
    }
}

//! A sequence classifier on a pretrained encoder (`…ForSequenceClassification`), trainable by
//! the [`Trainer`](crate::train::Trainer) and usable wherever a prosa classifier is.

use std::path::Path;

use candle_core::Device;

use super::config::Task;
use super::model::{map_length_batches, EncoderInput, EncoderModel};
use crate::data::LabelMap;
use crate::error::{Error, Result};
use crate::models::TextClassifier;
use crate::nn::loss::class_weight_tensor;
use crate::nn::{ForwardCtx, ParamStore};
use crate::text::{EncodeOptions, Padding, SubwordTokenizer};
use crate::train::{ParamGroup, StepOutput, Trainable};

/// One tokenized training example.
#[derive(Debug, Clone)]
pub struct EncoderExample {
    /// Token ids with the special tokens, truncated.
    pub ids: Vec<u32>,
    /// Class id.
    pub label: u32,
}

/// An encoder with a sequence-classification head and its tokenizer.
pub struct EncoderClassifier {
    model: EncoderModel,
    tokenizer: SubwordTokenizer,
    labels: LabelMap,
    max_length: usize,
    class_weights: Option<candle_core::Tensor>,
}

impl EncoderClassifier {
    /// Loads `dir` (any BERT/DistilBERT/RoBERTa folder with a tokenizer) with a classification
    /// head for `labels` (`None`: the folder's own labels); a new head starts fresh.
    pub fn from_pretrained(
        dir: &Path,
        labels: Option<LabelMap>,
        max_length: usize,
        class_weights: Option<&[f32]>,
        device: &Device,
    ) -> Result<Self> {
        let model =
            EncoderModel::from_pretrained(dir, Some(Task::SequenceClassification), labels, device)?;
        let tokenizer = model.tokenizer.clone().ok_or_else(|| {
            Error::folder(
                dir,
                "no tokenizer.json or vocab.txt: the classifier needs a tokenizer",
            )
        })?;
        let labels = model.config.labels.clone().ok_or_else(|| {
            Error::folder(dir.join("config.json"), "no id2label: give the classes")
        })?;
        let class_weights = class_weight_tensor(class_weights, labels.len(), device)?;
        Ok(Self {
            model,
            tokenizer,
            labels,
            max_length,
            class_weights,
        })
    }

    /// Loads a fine-tuned classifier folder (its own labels); a folder without a trained
    /// classification head is an error.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let classifier = Self::from_pretrained(dir, None, 512, None, device)?;
        classifier.model.ensure_trained(dir)?;
        Ok(classifier)
    }

    /// The wrapped model.
    pub fn model(&self) -> &EncoderModel {
        &self.model
    }

    /// Tokenizes texts with their class ids for training.
    pub fn prepare(&self, texts: &[&str], labels: &[u32]) -> Result<Vec<EncoderExample>> {
        let ids = self.encode(texts)?;
        Ok(ids
            .into_iter()
            .zip(labels)
            .map(|(ids, &label)| EncoderExample { ids, label })
            .collect())
    }

    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let options = EncodeOptions {
            padding: Padding::None,
            truncation: true,
            max_length: Some(self.max_length),
            ..Default::default()
        };
        Ok(self
            .tokenizer
            .encode_batch(texts, None, &options)?
            .input_ids)
    }

    /// Pads rows to the longest with the model's padding id.
    fn collate(&self, rows: &[&[u32]]) -> EncoderInput {
        EncoderInput::from_rows(rows, self.model.config.pad_token_id)
    }

    /// Parameter groups that freeze the embeddings and the lower `layers` layers (`None`:
    /// the whole encoder, so only the head trains) — the slides' freezing strategies.
    pub fn freeze_groups(&self, layers: Option<usize>) -> Vec<ParamGroup> {
        self.model.freeze_groups(layers)
    }
}

impl Trainable for EncoderClassifier {
    type Example = EncoderExample;

    fn params(&self) -> &ParamStore {
        self.model.params()
    }

    fn forward_batch(&self, batch: &[&EncoderExample], ctx: &mut ForwardCtx) -> Result<StepOutput> {
        let rows: Vec<&[u32]> = batch.iter().map(|e| e.ids.as_slice()).collect();
        let targets: Vec<u32> = batch.iter().map(|e| e.label).collect();
        let logits = self.model.sequence_logits(&self.collate(&rows), ctx)?;
        crate::models::classification_step(&logits, targets, self.class_weights.as_ref())
    }
}

impl TextClassifier for EncoderClassifier {
    fn labels(&self) -> &LabelMap {
        &self.labels
    }

    fn predict_proba(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let ids = self.encode(texts)?;
        let lengths: Vec<usize> = ids.iter().map(Vec::len).collect();
        map_length_batches(&lengths, 32, |chunk| {
            let rows: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
            let logits = self
                .model
                .sequence_logits(&self.collate(&rows), &mut ForwardCtx::inference())?;
            Ok(crate::nn::softmax::softmax_last_dim(&logits)?.to_vec2::<f32>()?)
        })
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.model.save_pretrained(dir)
    }

    fn num_parameters(&self) -> usize {
        self.model.params().num_parameters()
    }

    fn model_type(&self) -> &str {
        self.model.config.family.model_type()
    }
}

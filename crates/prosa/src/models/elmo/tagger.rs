//! ELMo features feeding a tagger (one tag per word, as for NER): each word's layers from the
//! frozen biLM, a learned scalar mix, then dense + ReLU + dense to the tags. The biLM runs once
//! per sentence when examples are prepared.

use std::path::Path;

use candle_core::{Device, Tensor, D};
use serde::{Deserialize, Serialize};

use super::head::{load_bilm, MixHead};
use super::{ElmoBiLm, ElmoConfig};
use crate::data::conll::TaggedSentence;
use crate::data::LabelMap;
use crate::error::{Error, Result};
use crate::models::classification_step;
use crate::models::folder::{self, ModelFolder};
use crate::nn::{ForwardCtx, ParamStore};
use crate::train::{StepOutput, Trainable};

/// The `model_type` written in `config.json`.
pub const TAGGER_TYPE: &str = "prosa-elmo-tagger";
/// Sentences the frozen biLM reads at once.
const FEATURE_BATCH: usize = 64;

/// `config.json` of an ELMo tagger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElmoTaggerConfig {
    /// Always [`TAGGER_TYPE`].
    pub model_type: String,
    /// The frozen biLM.
    pub elmo: ElmoConfig,
    /// Width of the hidden dense layer.
    pub hidden_size: usize,
    /// Dropout on the mixed features and the hidden layer (training only).
    pub dropout: f32,
    /// Tag names by id.
    pub tags: Vec<String>,
}

/// One prepared sentence: each word's layers (words × layers × 2·hidden) and tag ids.
#[derive(Debug, Clone, PartialEq)]
pub struct TaggedFeatures {
    /// Row-major features of every word.
    pub features: Vec<f32>,
    /// One tag id per word.
    pub tags: Vec<u32>,
}

/// A tagger over frozen ELMo features.
pub struct ElmoTagger {
    config: ElmoTaggerConfig,
    tags: LabelMap,
    params: ParamStore,
    elmo: ElmoBiLm,
    head: MixHead,
}

impl ElmoTagger {
    /// A new tagger over the biLM folder `elmo_dir`.
    pub fn from_pretrained(
        elmo_dir: &Path,
        tags: LabelMap,
        hidden_size: usize,
        dropout: f32,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let config = ElmoTaggerConfig {
            model_type: TAGGER_TYPE.into(),
            elmo: folder::read_config(elmo_dir)?,
            hidden_size,
            dropout,
            tags: tags.names().to_vec(),
        };
        let model = Self::build(config, elmo_dir, seed, device)?;
        load_bilm(&model.params, elmo_dir, device)?;
        Ok(model)
    }

    /// Loads a folder written by [`save`](Self::save).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let model = Self::build(folder::read_config(dir)?, dir, 0, device)?;
        model.params.load(&dir.join("model.safetensors"))?;
        Ok(model)
    }

    fn build(
        config: ElmoTaggerConfig,
        vocab_dir: &Path,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        if config.tags.is_empty() || config.hidden_size == 0 {
            return Err(Error::config(
                "tags/hidden_size",
                "need tags and a hidden layer",
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
            config.tags.len(),
            config.dropout,
        )?;
        Ok(Self {
            tags: LabelMap::from_names(config.tags.clone()),
            config,
            params,
            elmo,
            head,
        })
    }

    /// The tags.
    pub fn tags(&self) -> &LabelMap {
        &self.tags
    }

    /// Each word's layers, per sentence (words × layers × 2·hidden values).
    fn features(&self, sentences: &[Vec<String>]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(sentences.len());
        for chunk in sentences.chunks(FEATURE_BATCH) {
            let rows: Vec<&[String]> = chunk.iter().map(Vec::as_slice).collect();
            let layers = self.elmo.layers(&rows, &mut ForwardCtx::eval())?;
            // (batch, words, layers, 2·hidden)
            let stacked = Tensor::stack(&layers.layers, 2)?;
            for (b, &n) in layers.lengths.iter().enumerate() {
                let words = stacked.get(b)?.narrow(0, 0, n)?;
                out.push(words.flatten_all()?.to_vec1::<f32>()?);
            }
        }
        Ok(out)
    }

    /// Training examples of tagged sentences read from `path`; a tag the tagger does not know
    /// is an error naming the file and the sentence's line.
    pub fn prepare(
        &self,
        sentences: &[TaggedSentence],
        path: &Path,
    ) -> Result<Vec<TaggedFeatures>> {
        let words: Vec<Vec<String>> = sentences.iter().map(|s| s.tokens.clone()).collect();
        let features = self.features(&words)?;
        sentences
            .iter()
            .zip(features)
            .map(|(sentence, features)| {
                let tags = sentence
                    .tags
                    .iter()
                    .map(|t| {
                        self.tags.id(t).ok_or_else(|| Error::UnknownLabel {
                            path: path.to_path_buf(),
                            line: sentence.line,
                            label: t.clone(),
                            known: self.tags.names().join(", "),
                        })
                    })
                    .collect::<Result<_>>()?;
                Ok(TaggedFeatures { features, tags })
            })
            .collect()
    }

    /// Tag logits (words, tags) of feature rows, one per word.
    fn logits(&self, features: &[f32], words: usize, ctx: &mut ForwardCtx) -> Result<Tensor> {
        self.head.logits(features, words, ctx)
    }

    /// The tags of each sentence's words.
    pub fn predict_words(&self, sentences: &[Vec<String>]) -> Result<Vec<Vec<String>>> {
        let features = self.features(sentences)?;
        sentences
            .iter()
            .zip(features)
            .map(|(words, f)| {
                if words.is_empty() {
                    return Ok(Vec::new());
                }
                let logits = self.logits(&f, words.len(), &mut ForwardCtx::eval())?;
                let ids = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
                Ok(ids.iter().map(|&i| self.tags.name(i).to_string()).collect())
            })
            .collect()
    }

    /// Writes `config.json`, `model.safetensors` (the biLM under `elmo.`) and `vocab.txt`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let folder = ModelFolder {
            config: serde_json::to_value(&self.config)
                .map_err(|e| Error::config("config", e.to_string()))?,
            extra_files: vec![("vocab.txt", self.elmo.vocab_file())],
        };
        folder::save(dir, &folder, &self.params)
    }
}

impl Trainable for ElmoTagger {
    type Example = TaggedFeatures;

    fn params(&self) -> &ParamStore {
        &self.params
    }

    fn forward_batch(&self, batch: &[&TaggedFeatures], ctx: &mut ForwardCtx) -> Result<StepOutput> {
        let features: Vec<f32> = batch
            .iter()
            .flat_map(|e| e.features.iter().copied())
            .collect();
        let targets: Vec<u32> = batch.iter().flat_map(|e| e.tags.iter().copied()).collect();
        if targets.is_empty() {
            return Err(Error::config("batch", "no tagged word in the batch"));
        }
        let logits = self.logits(&features, targets.len(), ctx)?;
        classification_step(&logits, targets, None)
    }

    fn example_length(&self, example: &TaggedFeatures) -> Option<usize> {
        Some(example.tags.len())
    }
}

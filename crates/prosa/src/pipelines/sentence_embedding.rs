//! Encoder features. `sentence-embedding`: one vector per text, pooled over its tokens, as
//! sentence-transformers computes it (its `1_Pooling` and `2_Normalize` modules are read when
//! the folder has them). `feature-extraction`: the last hidden state of every token, as
//! transformers' `pipeline("feature-extraction")` returns it.

use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::Value;

use super::registry::{input_texts, to_values, Params, Pipeline};

use crate::error::{Error, Result};
use crate::models::encoder::layers::{l2_normalize, mean_pool_packed};
use crate::models::encoder::model::map_length_batches;
use crate::models::encoder::{EncoderModel, PackedStates, Task};
use crate::models::folder::read_json_file;
use crate::nn::ForwardCtx;
use crate::text::SubwordTokenizer;

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolingMode {
    /// Mean over the real (unmasked) tokens.
    Mean,
    /// The first token's vector (`[CLS]`).
    Cls,
}

/// Sentence embeddings from an encoder folder.
pub struct SentenceEmbedder {
    model: EncoderModel,
    tokenizer: SubwordTokenizer,
    /// Pooling over tokens.
    pub pooling: PoolingMode,
    /// Divide every vector by its L2 norm.
    pub normalize: bool,
    /// Texts are cut to this many tokens.
    pub max_length: usize,
    /// Texts per forward pass.
    pub batch_size: usize,
}

impl SentenceEmbedder {
    /// Loads an encoder folder; pooling, normalisation and length come from its
    /// sentence-transformers files when present (mean pooling, no normalisation otherwise).
    pub fn from_pretrained(dir: &Path, device: &Device) -> Result<Self> {
        let model = EncoderModel::from_pretrained(dir, Some(Task::Base), None, device)?;
        let tokenizer = model
            .tokenizer
            .clone()
            .ok_or_else(|| Error::folder(dir, "no tokenizer.json or vocab.txt"))?;
        let pooling_file = dir.join("1_Pooling/config.json");
        let pooling = if pooling_file.exists() {
            let v: Value = read_json_file(&pooling_file)?;
            if v.get("pooling_mode_cls_token").and_then(Value::as_bool) == Some(true) {
                PoolingMode::Cls
            } else {
                PoolingMode::Mean
            }
        } else {
            PoolingMode::Mean
        };
        let modules = dir.join("modules.json");
        let normalize = modules.exists()
            && read_json_file::<Value>(&modules)?
                .as_array()
                .is_some_and(|m| {
                    m.iter()
                        .any(|x| x["type"].as_str().is_some_and(|t| t.ends_with("Normalize")))
                });
        let max_length = read_json_file::<Value>(&dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|v| v.get("max_seq_length").and_then(Value::as_u64))
            .map_or(model.config.max_position_embeddings, |n| n as usize);
        Ok(Self {
            model,
            tokenizer,
            pooling,
            normalize,
            max_length,
            batch_size: 32,
        })
    }

    /// The wrapped encoder.
    pub fn model(&self) -> &EncoderModel {
        &self.model
    }

    /// One vector per text, in the order given. Texts are tokenized first and batched by
    /// token count, so a batch pads little.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let batches = (self.max_length, self.batch_size);
        let encoder = (&self.model, &self.tokenizer);
        map_batches(encoder, texts, batches, |states| {
            let mut pooled = match self.pooling {
                PoolingMode::Mean => mean_pool_packed(&states.hidden, &states.lengths)?,
                PoolingMode::Cls => first_tokens(states)?,
            };
            if self.normalize {
                pooled = l2_normalize(&pooled)?;
            }
            Ok(pooled.to_vec2::<f32>()?)
        })
    }
}

/// Parameters of the `sentence-embedding` pipeline.
pub const PARAMETERS: &[&str] = &[];

impl Pipeline for SentenceEmbedder {
    fn task(&self) -> &'static str {
        "sentence-embedding"
    }

    fn run_batch(&self, inputs: &[Value], _params: &Params) -> Result<Vec<Value>> {
        to_values(self.embed(&input_texts(inputs)?)?)
    }
}

/// Parameters of the `feature-extraction` pipeline.
pub const FEATURE_PARAMETERS: &[&str] = &[];

/// The per-token hidden states of an encoder folder (transformers' `feature-extraction`).
pub struct FeatureExtraction {
    model: EncoderModel,
    tokenizer: SubwordTokenizer,
    /// Texts per forward pass.
    pub batch_size: usize,
}

impl FeatureExtraction {
    /// Loads an encoder folder with its tokenizer (the base model: any head is left out).
    pub fn from_pretrained(dir: &Path, device: &Device) -> Result<Self> {
        let model = EncoderModel::from_pretrained(dir, Some(Task::Base), None, device)?;
        let tokenizer = model
            .tokenizer
            .clone()
            .ok_or_else(|| Error::folder(dir, "no tokenizer.json or vocab.txt"))?;
        Ok(Self {
            model,
            tokenizer,
            batch_size: 32,
        })
    }

    /// For each text, the last hidden state of each of its tokens (special tokens included),
    /// (tokens, hidden). Texts longer than the model are cut to its positions.
    pub fn extract(&self, texts: &[&str]) -> Result<Vec<Vec<Vec<f32>>>> {
        let batches = (self.model.config.max_position_embeddings, self.batch_size);
        let encoder = (&self.model, &self.tokenizer);
        map_batches(encoder, texts, batches, |states| {
            (0..states.lengths.len())
                .map(|b| Ok(states.sequence(b)?.to_vec2::<f32>()?))
                .collect()
        })
    }
}

/// Each sequence's first token (`[CLS]`): (sequences, hidden).
fn first_tokens(states: &PackedStates) -> Result<Tensor> {
    if states.lengths.contains(&0) {
        return Err(Error::config(
            "texts",
            "a text with no tokens has no first token to pool",
        ));
    }
    let starts: Vec<u32> = states
        .lengths
        .iter()
        .scan(0, |start, &n| {
            let first = *start;
            *start += n;
            Some(first as u32)
        })
        .collect();
    let starts = Tensor::from_vec(starts, states.lengths.len(), states.hidden.device())?;
    Ok(states.hidden.index_select(&starts, 0)?)
}

/// Tokenizes `texts` (cut to `max_length` tokens), cuts them into batches of `batch_size` texts
/// of similar lengths, runs the encoder on each (its sequences packed without padding,
/// [`EncoderModel::forward_packed`]), and answers, in the order of `texts`, what `each` makes
/// of a batch's last hidden states: one item per text of the batch. Several batches run side
/// by side ([`map_length_batches`]).
fn map_batches<T: Send>(
    (model, tokenizer): (&EncoderModel, &SubwordTokenizer),
    texts: &[&str],
    (max_length, batch_size): (usize, usize),
    each: impl Fn(&PackedStates) -> Result<Vec<T>> + Sync,
) -> Result<Vec<T>> {
    let ids = tokenizer.encode_ids(texts, Some(max_length))?;
    let lengths: Vec<usize> = ids.iter().map(Vec::len).collect();
    map_length_batches(&lengths, batch_size, |batch| {
        let rows: Vec<&[u32]> = batch.iter().map(|&i| ids[i].as_slice()).collect();
        each(&model.forward_packed(&rows, &mut ForwardCtx::inference())?)
    })
}

impl Pipeline for FeatureExtraction {
    fn task(&self) -> &'static str {
        "feature-extraction"
    }

    /// Each text's states as transformers shapes them: (1, tokens, hidden).
    fn run_batch(&self, inputs: &[Value], _params: &Params) -> Result<Vec<Value>> {
        let states = self.extract(&input_texts(inputs)?)?;
        to_values(states.into_iter().map(|s| vec![s]).collect())
    }
}

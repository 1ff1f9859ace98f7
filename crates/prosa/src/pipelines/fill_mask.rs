//! `fill-mask`: the most probable tokens for the mask token of each text.

use std::path::Path;

use candle_core::Device;
use serde::Serialize;
use serde_json::Value;

use super::encode_padded;
use super::registry::{input_texts, to_values, Params, Pipeline};
use crate::error::{Error, Result};
use crate::models::encoder::{EncoderModel, Task};
use crate::nn::softmax::softmax_last_dim;
use crate::nn::ForwardCtx;
use crate::text::SubwordTokenizer;

/// One candidate for a masked position, shaped as transformers' fill-mask output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FillMaskResult {
    /// Probability of the token at the mask.
    pub score: f32,
    /// Token id.
    pub token: u32,
    /// The token as text.
    pub token_str: String,
    /// The text with the mask replaced.
    pub sequence: String,
}

/// A masked-language model as a pipeline.
pub struct FillMask {
    model: EncoderModel,
    tokenizer: SubwordTokenizer,
    mask_token: String,
    mask_id: u32,
}

impl FillMask {
    /// Loads a `…ForMaskedLM` (or `BertForPreTraining`) folder with its tokenizer.
    pub fn from_pretrained(dir: &Path, device: &Device) -> Result<Self> {
        let probe = crate::models::encoder::EncoderConfig::from_folder(dir, None)?;
        let task = if probe.task == Task::PreTraining {
            Task::PreTraining
        } else {
            Task::MaskedLm
        };
        let model = EncoderModel::from_pretrained(dir, Some(task), None, device)?;
        model.ensure_trained(dir)?;
        let tokenizer = model
            .tokenizer
            .clone()
            .ok_or_else(|| Error::folder(dir, "no tokenizer.json or vocab.txt"))?;
        let (mask_token, mask_id) = ["[MASK]", "<mask>"]
            .iter()
            .find_map(|t| tokenizer.token_to_id(t).map(|id| (t.to_string(), id)))
            .ok_or_else(|| Error::folder(dir, "the tokenizer has no [MASK] or <mask> token"))?;
        Ok(Self {
            model,
            tokenizer,
            mask_token,
            mask_id,
        })
    }

    /// The mask token to write in texts.
    pub fn mask_token(&self) -> &str {
        &self.mask_token
    }

    /// The `top_k` fillings of the (first) mask of each text.
    pub fn run(&self, texts: &[&str], top_k: usize) -> Result<Vec<Vec<FillMaskResult>>> {
        let c = &self.model.config;
        let input = encode_padded(
            &self.tokenizer,
            texts,
            c.max_position_embeddings,
            c.pad_token_id,
        )?;
        let logits = self
            .model
            .forward(&input, &mut ForwardCtx::inference())?
            .logits
            .ok_or_else(|| Error::config("head", "no masked-LM logits"))?;
        let mut all = Vec::with_capacity(texts.len());
        for (row, ids) in input.input_ids.iter().enumerate() {
            let position = ids.iter().position(|&i| i == self.mask_id).ok_or_else(|| {
                Error::config(
                    "text",
                    format!("text {} has no {} token", row + 1, self.mask_token),
                )
            })?;
            let probs = softmax_last_dim(&logits.get(row)?.get(position)?)?.to_vec1::<f32>()?;
            let mut order: Vec<usize> = (0..probs.len()).collect();
            order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
            let real: Vec<u32> = ids
                .iter()
                .zip(&input.attention_mask[row])
                .filter(|(_, &m)| m == 1)
                .map(|(&i, _)| i)
                .collect();
            let mut results = Vec::with_capacity(top_k);
            for &token in order.iter().take(top_k.max(1)) {
                let filled: Vec<u32> = real
                    .iter()
                    .map(|&i| if i == self.mask_id { token as u32 } else { i })
                    .collect();
                results.push(FillMaskResult {
                    score: probs[token],
                    token: token as u32,
                    token_str: self.tokenizer.decode(&[token as u32], false)?,
                    sequence: self.tokenizer.decode(&filled, true)?,
                });
            }
            all.push(results);
        }
        Ok(all)
    }
}

/// Parameters of the `fill-mask` pipeline.
pub const PARAMETERS: &[&str] = &["top_k"];

impl Pipeline for FillMask {
    fn task(&self) -> &'static str {
        "fill-mask"
    }

    fn run_batch(&self, inputs: &[Value], params: &Params) -> Result<Vec<Value>> {
        to_values(self.run(&input_texts(inputs)?, params.usize("top_k", 5)?)?)
    }
}

//! `text2text-generation` and `summarization`: a T5, BART or Marian folder as transformers 4's
//! pipelines — `{"generated_text": …}` / `{"summary_text": …}` per input; the input gets the
//! task's prefix from `task_specific_params` (T5's "summarize: "), decoding follows the folder's
//! `generation_config.json` unless `num_beams` / `max_new_tokens` say otherwise.

use std::path::Path;

use candle_core::Device;
use serde_json::Value;

use super::registry::{input_texts, Params, Pipeline};
use crate::error::Result;
use crate::generation::GenerationConfig;
use crate::models::seq2seq::hf::HfEncoderDecoder;

/// Parameters of both pipelines.
pub const PARAMETERS: &[&str] = &["num_beams", "max_new_tokens"];

/// An encoder–decoder as a text-to-text pipeline.
pub struct Text2Text {
    model: HfEncoderDecoder,
    task: &'static str,
    key: &'static str,
}

impl Text2Text {
    /// `text2text-generation` (`generated_text`).
    pub fn generation(dir: &Path, device: &Device) -> Result<Self> {
        Ok(Self {
            model: HfEncoderDecoder::from_pretrained(dir, device)?,
            task: "text2text-generation",
            key: "generated_text",
        })
    }

    /// `summarization` (`summary_text`).
    pub fn summarization(dir: &Path, device: &Device) -> Result<Self> {
        Ok(Self {
            model: HfEncoderDecoder::from_pretrained(dir, device)?,
            task: "summarization",
            key: "summary_text",
        })
    }

    /// The texts generated for `texts`.
    pub fn run(
        &self,
        texts: &[&str],
        num_beams: usize,
        max_new_tokens: Option<usize>,
    ) -> Result<Vec<String>> {
        let defaults = self.model.generation();
        let g = GenerationConfig {
            num_beams: num_beams.max(defaults.num_beams),
            max_new_tokens: max_new_tokens.or(defaults.max_new_tokens),
            ..defaults.clone()
        };
        let prefix = self.model.task_prefix(self.task).unwrap_or_default();
        Ok(self
            .model
            .generate_texts(texts, &prefix, &g)?
            .into_iter()
            .map(|t| t.text)
            .collect())
    }
}

impl Pipeline for Text2Text {
    fn task(&self) -> &'static str {
        self.task
    }

    fn run_batch(&self, inputs: &[Value], params: &Params) -> Result<Vec<Value>> {
        let beams = params.usize("num_beams", 1)?;
        let max = params.usize("max_new_tokens", 0)?;
        let texts = self.run(&input_texts(inputs)?, beams, (max > 0).then_some(max))?;
        Ok(texts
            .into_iter()
            .map(|t| serde_json::json!({ self.key: t }))
            .collect())
    }
}

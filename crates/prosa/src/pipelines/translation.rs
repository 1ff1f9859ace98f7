//! `translation`: a translator folder (`prosa train --task translation`) as transformers'
//! translation pipeline — `{"translation_text": …}` per input, greedy unless `num_beams`.

use std::path::Path;

use candle_core::Device;
use serde::Serialize;
use serde_json::Value;

use super::registry::{input_texts, to_values, Params, Pipeline};
use crate::error::Result;
use crate::generation::GenerationConfig;
use crate::models::seq2seq::AnyTranslator;

/// One translation, shaped as transformers' output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TranslationText {
    /// The translated text.
    pub translation_text: String,
}

/// A translator as a pipeline.
pub struct Translation {
    model: AnyTranslator,
}

impl Translation {
    /// Loads a translator folder.
    pub fn from_pretrained(dir: &Path, device: &Device) -> Result<Self> {
        Ok(Self {
            model: AnyTranslator::from_pretrained(dir, device)?,
        })
    }

    /// The model.
    pub fn model(&self) -> &AnyTranslator {
        &self.model
    }

    /// Translates `texts` with `num_beams` beams (1: greedy) scored with `length_penalty`
    /// (the exponent of the length normalisation; `None`: the folder's, 1.0 by default);
    /// `max_new_tokens` bounds each translation (default: twice the source, plus 10).
    pub fn run(
        &self,
        texts: &[&str],
        num_beams: usize,
        length_penalty: Option<f32>,
        max_new_tokens: Option<usize>,
    ) -> Result<Vec<TranslationText>> {
        let defaults = self.model.generation();
        let g = GenerationConfig {
            num_beams,
            max_new_tokens,
            length_penalty: length_penalty.unwrap_or(defaults.length_penalty),
            ..defaults.clone()
        };
        Ok(self
            .model
            .translate(texts, &g)?
            .into_iter()
            .map(|translation_text| TranslationText { translation_text })
            .collect())
    }
}

/// Parameters of the `translation` pipeline.
pub const PARAMETERS: &[&str] = &["num_beams", "length_penalty", "max_new_tokens"];

impl Pipeline for Translation {
    fn task(&self) -> &'static str {
        "translation"
    }

    fn run_batch(&self, inputs: &[Value], params: &Params) -> Result<Vec<Value>> {
        let beams = params.usize("num_beams", 1)?.max(1);
        let max = params.usize("max_new_tokens", 0)?;
        let penalty = match params.as_object().get("length_penalty") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_f64().ok_or_else(|| {
                crate::error::Error::config("parameters.length_penalty", "must be a number")
            })? as f32),
        };
        to_values(self.run(
            &input_texts(inputs)?,
            beams,
            penalty,
            (max > 0).then_some(max),
        )?)
    }
}

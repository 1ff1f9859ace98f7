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

    /// Translates `texts` with `num_beams` beams (1: greedy); `max_new_tokens` bounds each
    /// translation (default: twice the source, plus 10).
    pub fn run(
        &self,
        texts: &[&str],
        num_beams: usize,
        max_new_tokens: Option<usize>,
    ) -> Result<Vec<TranslationText>> {
        let g = GenerationConfig {
            num_beams,
            max_new_tokens,
            ..self.model.generation().clone()
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
pub const PARAMETERS: &[&str] = &["num_beams", "max_new_tokens"];

impl Pipeline for Translation {
    fn task(&self) -> &'static str {
        "translation"
    }

    fn run_batch(&self, inputs: &[Value], params: &Params) -> Result<Vec<Value>> {
        let beams = params.usize("num_beams", 1)?.max(1);
        let max = params.usize("max_new_tokens", 0)?;
        to_values(self.run(&input_texts(inputs)?, beams, (max > 0).then_some(max))?)
    }
}

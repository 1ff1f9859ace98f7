//! The `text-generation` pipeline: prompts in, `generated_text` out (the prompt followed by its
//! continuation, as transformers' default `return_full_text=True`), prompts of a batch
//! generated together with left padding.

use std::path::Path;

use candle_core::Device;
use serde::Serialize;

use crate::error::Result;
use crate::models::decoder::{generate, DecoderModel, GenerationConfig};

/// One generated sequence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeneratedText {
    /// The prompt and its continuation.
    pub generated_text: String,
}

/// Generates continuations of texts with a decoder.
pub struct TextGeneration {
    model: DecoderModel,
}

impl TextGeneration {
    /// Loads a decoder folder or GGUF file (it must have a tokenizer).
    pub fn from_pretrained(path: &Path) -> Result<Self> {
        let model = DecoderModel::from_pretrained(path, &Device::Cpu)?;
        model.tokenizer()?;
        Ok(Self { model })
    }

    /// The model.
    pub fn model(&self) -> &DecoderModel {
        &self.model
    }

    /// `num_return_sequences` generations per prompt. With `chat`, each prompt is one user turn
    /// of the model's chat template and `generated_text` is the answer alone.
    pub fn run(
        &self,
        prompts: &[&str],
        g: &GenerationConfig,
        chat: bool,
    ) -> Result<Vec<Vec<GeneratedText>>> {
        let ids = prompts
            .iter()
            .map(|p| self.model.encode_prompt(p, chat))
            .collect::<Result<Vec<_>>>()?;
        let out = generate(&self.model, &ids, g, None)?;
        let tokenizer = self.model.tokenizer()?;
        let per_prompt = g.num_return_sequences;
        let mut results = Vec::with_capacity(prompts.len());
        for (i, prompt) in prompts.iter().enumerate() {
            let mut texts = Vec::with_capacity(per_prompt);
            for new in &out.new_tokens[i * per_prompt..(i + 1) * per_prompt] {
                let continuation = tokenizer.decode(new, true)?;
                texts.push(GeneratedText {
                    generated_text: if chat {
                        continuation
                    } else {
                        format!("{prompt}{continuation}")
                    },
                });
            }
            results.push(texts);
        }
        Ok(results)
    }
}

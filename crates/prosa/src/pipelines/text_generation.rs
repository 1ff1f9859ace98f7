//! The `text-generation` pipeline: prompts in, `generated_text` out (the prompt followed by its
//! continuation, as transformers' default `return_full_text=True`), prompts of a batch
//! generated together with left padding.

use std::path::Path;

use candle_core::Device;
use serde::Serialize;
use serde_json::Value;

use super::registry::{input_texts, to_values, Params, Pipeline};

use crate::error::{Error, Result};
use crate::generation::{generate, GenerationConfig};
use crate::models::decoder::DecoderModel;

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
    pub fn from_pretrained(path: &Path, device: &Device) -> Result<Self> {
        let model = DecoderModel::from_pretrained(path, device)?;
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

/// Parameters of the `text-generation` pipeline: `generate()`'s settings
/// (`generation_config.json`'s names), `seed`, and `chat`.
pub const PARAMETERS: &[&str] = &[
    "max_new_tokens",
    "max_length",
    "min_new_tokens",
    "do_sample",
    "temperature",
    "top_k",
    "top_p",
    "num_beams",
    "length_penalty",
    "early_stopping",
    "num_return_sequences",
    "no_repeat_ngram_size",
    "repetition_penalty",
    "stop_strings",
    "seed",
    "chat",
];

impl TextGeneration {
    /// The model's generation defaults with `params` on top (50 new tokens unless said).
    pub fn config(&self, params: &Params) -> Result<GenerationConfig> {
        let mut g = self.model.generation.clone();
        if g.max_new_tokens.is_none() {
            g.max_new_tokens = Some(50);
        }
        let object = Value::Object(params.as_object().clone());
        g.apply_json(&object, Path::new("parameters"))?;
        if let Some(seed) = params.as_object().get("seed") {
            g.seed = seed
                .as_u64()
                .ok_or_else(|| Error::config("parameters.seed", "must be a whole number ≥ 0"))?;
        }
        Ok(g)
    }
}

impl Pipeline for TextGeneration {
    fn task(&self) -> &'static str {
        "text-generation"
    }

    fn run_batch(&self, inputs: &[Value], params: &Params) -> Result<Vec<Value>> {
        let g = self.config(params)?;
        to_values(self.run(&input_texts(inputs)?, &g, params.bool("chat", false)?)?)
    }
}

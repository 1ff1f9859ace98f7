//! Any Hugging Face encoder–decoder folder prosa loads (T5, BART, Marian) behind one type:
//! tokenize, prefix by task (T5's `task_specific_params`), generate, decode.

use std::path::Path;

use candle_core::Device;

use super::bart::BartForConditionalGeneration;
use super::t5::T5ForConditionalGeneration;
use crate::error::{Error, Result};
use crate::generation::{generate, GenerationConfig, GenerationOutput};
use crate::text::SubwordTokenizer;

/// The `model_type`s of the encoder–decoders below.
pub const MODEL_TYPES: [&str; 3] = ["t5", "bart", "marian"];

/// A T5, BART or Marian model.
pub enum HfEncoderDecoder {
    /// T5 v1.0 / v1.1 / FLAN-T5.
    T5(T5ForConditionalGeneration),
    /// BART or Marian.
    Bart(BartForConditionalGeneration),
}

/// One generated text with the ids transformers' `generate()` returns (decoder start first).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Text2Text {
    /// The decoded text, special tokens skipped.
    pub text: String,
    /// The decoder start token and the generated tokens.
    pub token_ids: Vec<u32>,
}

impl HfEncoderDecoder {
    /// Loads a folder by its `model_type`.
    pub fn from_pretrained(dir: &Path, device: &Device) -> Result<Self> {
        match crate::models::folder::model_type(dir)?.as_str() {
            "t5" => Ok(Self::T5(T5ForConditionalGeneration::from_pretrained(dir, device)?)),
            "bart" | "marian" => Ok(Self::Bart(BartForConditionalGeneration::from_pretrained(
                dir, device,
            )?)),
            other => Err(Error::folder(
                dir.join("config.json"),
                format!("model_type \"{other}\" is not an encoder-decoder prosa knows (t5, bart, marian)"),
            )),
        }
    }

    /// Decoding defaults of the folder.
    pub fn generation(&self) -> &GenerationConfig {
        match self {
            Self::T5(m) => &m.generation,
            Self::Bart(m) => &m.generation,
        }
    }

    /// The folder's tokenizer.
    pub fn tokenizer(&self) -> Result<&SubwordTokenizer> {
        let t = match self {
            Self::T5(m) => m.tokenizer.as_ref(),
            Self::Bart(m) => m.tokenizer.as_ref(),
        };
        t.ok_or_else(|| Error::config("tokenizer", "the folder has no tokenizer.json"))
    }

    /// Rows of the output layer.
    pub fn vocab_size(&self) -> usize {
        match self {
            Self::T5(m) => m.config.vocab_size,
            Self::Bart(m) => m.config.vocab_size,
        }
    }

    /// The decoder's first token.
    pub fn decoder_start(&self) -> u32 {
        match self {
            Self::T5(m) => m.config.decoder_start(),
            Self::Bart(m) => m
                .config
                .decoder_start_token_id
                .unwrap_or(m.config.pad_token_id),
        }
    }

    /// The input prefix `config.json` gives a task (`task_specific_params.<task>.prefix`); for
    /// "translation", the only `translation_*` entry's.
    pub fn task_prefix(&self, task: &str) -> Option<String> {
        let raw = match self {
            Self::T5(m) => m.raw_config(),
            Self::Bart(m) => m.raw_config(),
        };
        let params = raw.get("task_specific_params")?.as_object()?;
        let entry = params.get(task).or_else(|| {
            let mut translations = params
                .iter()
                .filter(|(k, _)| k.starts_with(&format!("{task}_")));
            match (translations.next(), translations.next()) {
                (Some((_, v)), None) => Some(v),
                _ => None,
            }
        })?;
        entry.get("prefix")?.as_str().map(str::to_string)
    }

    /// Generates from token id rows.
    pub fn generate_ids(
        &self,
        inputs: &[Vec<u32>],
        g: &GenerationConfig,
    ) -> Result<GenerationOutput> {
        match self {
            Self::T5(m) => generate(m, inputs, g, None),
            Self::Bart(m) => generate(m, inputs, g, None),
        }
    }

    /// `prefix + text` for each text, tokenized with the special tokens, generated with `g`.
    pub fn generate_texts(
        &self,
        texts: &[&str],
        prefix: &str,
        g: &GenerationConfig,
    ) -> Result<Vec<Text2Text>> {
        let tokenizer = self.tokenizer()?;
        let inputs = texts
            .iter()
            .map(|t| tokenizer.encode(&format!("{prefix}{t}"), true))
            .collect::<Result<Vec<_>>>()?;
        let out = self.generate_ids(&inputs, g)?;
        out.new_tokens
            .iter()
            .map(|ids| {
                let mut token_ids = vec![self.decoder_start()];
                token_ids.extend(ids);
                Ok(Text2Text {
                    text: tokenizer.decode(ids, true)?,
                    token_ids,
                })
            })
            .collect()
    }
}

/// Teacher forcing for text-to-text training, as transformers prepares it: the decoder reads
/// `decoder_start y_1 … y_T` and learns `y_1 … y_T </s>` (labels of padding ignored, as -100
/// is); sources padded on the right.
pub(crate) struct TeacherForcing {
    /// Source ids, padded.
    pub sources: Vec<Vec<u32>>,
    /// 1 for source tokens.
    pub source_mask: Vec<Vec<u32>>,
    /// `decoder_start y_1 … y_T`, padded.
    pub decoder: Vec<Vec<u32>>,
    /// 1 for decoder tokens.
    pub decoder_mask: Vec<Vec<u32>>,
    /// Row-major (pair, step) labels; `None` is ignored.
    pub labels: Vec<Option<u32>>,
}

impl TeacherForcing {
    /// The batch of `examples` for a model with these special ids.
    pub(crate) fn new(
        examples: &[&super::TranslationExample],
        start: u32,
        pad: u32,
        eos: u32,
    ) -> Self {
        let sources: Vec<Vec<u32>> = examples.iter().map(|e| e.source.clone()).collect();
        let (sources, source_mask) = super::pad_right(&sources, pad);
        let decoder_rows: Vec<Vec<u32>> = examples
            .iter()
            .map(|e| {
                std::iter::once(start)
                    .chain(e.target.iter().copied())
                    .collect()
            })
            .collect();
        let (decoder, decoder_mask) = super::pad_right(&decoder_rows, pad);
        let steps = decoder.first().map_or(0, Vec::len);
        let labels = super::decoder_labels(examples, steps, usize::MAX, eos);
        Self {
            sources,
            source_mask,
            decoder,
            decoder_mask,
            labels,
        }
    }
}

/// Pairs of an evaluation translated for its BLEU.
const BLEU_EXAMPLES: usize = 200;

/// `Trainable` and [`super::Translator`] for an encoder–decoder with `forward(sources, mask,
/// decoder, decoder mask, ctx) → logits`, the three special ids given by `$ids`, the longest
/// source by `$positions` and the untrained parameters `$buffers`; evaluations report greedy
/// BLEU when the model has a tokenizer.
macro_rules! text_to_text_training {
    ($model:ty, $ids:expr, $positions:expr, $buffers:expr) => {
        impl crate::train::Trainable for $model {
            type Example = super::TranslationExample;

            fn params(&self) -> &crate::nn::ParamStore {
                <$model>::params(self)
            }

            fn forward_batch(
                &self,
                batch: &[&super::TranslationExample],
                ctx: &mut crate::nn::ForwardCtx,
            ) -> Result<crate::train::StepOutput> {
                let (start, pad, eos): (u32, u32, u32) = $ids(self);
                let b = TeacherForcing::new(batch, start, pad, eos);
                let logits =
                    self.forward(&b.sources, &b.source_mask, &b.decoder, &b.decoder_mask, ctx)?;
                let (rows, steps, vocab) = logits.dims3()?;
                let logits = logits.reshape((rows * steps, vocab))?;
                Ok(crate::train::StepOutput {
                    loss: crate::nn::loss::smoothed_cross_entropy(&logits, &b.labels, 0.0)?,
                    predictions: None,
                    targets: None,
                })
            }

            fn reports_perplexity(&self) -> bool {
                true
            }

            fn reports_predictions(&self) -> bool {
                false
            }

            fn example_length(&self, e: &super::TranslationExample) -> Option<usize> {
                Some(e.length())
            }

            fn buffers(&self) -> Vec<&'static str> {
                $buffers.to_vec()
            }

            fn extra_metric_names(&self) -> Vec<&'static str> {
                if self.tokenizer.is_some() {
                    vec!["bleu"]
                } else {
                    Vec::new()
                }
            }

            /// Greedy BLEU of the first evaluation pairs.
            fn extra_metrics(
                &self,
                examples: &[super::TranslationExample],
            ) -> Result<std::collections::BTreeMap<String, f64>> {
                if self.tokenizer.is_none() {
                    return Ok(Default::default());
                }
                super::validation_bleu(self, examples, BLEU_EXAMPLES)
            }
        }

        impl super::Translator for $model {
            fn generation(&self) -> &GenerationConfig {
                &self.generation
            }

            fn max_positions(&self) -> usize {
                $positions(self)
            }

            fn eos_token_id(&self) -> u32 {
                $ids(self).2
            }

            fn save_pretrained(&self, dir: &Path) -> Result<()> {
                <$model>::save_pretrained(self, dir)
            }
        }
    };
}

text_to_text_training!(
    T5ForConditionalGeneration,
    |m: &T5ForConditionalGeneration| (
        m.config.decoder_start(),
        m.config.pad_token_id.unwrap_or(0),
        m.config.eos_token_id.unwrap_or(1)
    ),
    |m: &T5ForConditionalGeneration| m
        .raw_config()
        .get("n_positions")
        .and_then(|v| v.as_u64())
        .map_or(512, |n| n as usize),
    [""; 0]
);
text_to_text_training!(
    BartForConditionalGeneration,
    |m: &BartForConditionalGeneration| (
        m.config
            .decoder_start_token_id
            .unwrap_or(m.config.pad_token_id),
        m.config.pad_token_id,
        m.config.eos_token_id.unwrap_or(2)
    ),
    |m: &BartForConditionalGeneration| m.config.max_position_embeddings,
    ["final_logits_bias"]
);

//! Hugging Face-style pipelines over prosa models: text in, the same output shapes as
//! transformers' `pipeline(...)` out (serialisable to the same JSON).
//!
//! Each pipeline is a typed struct (`TextClassification::run`, …) and implements the
//! [`Pipeline`] trait (JSON in, JSON out); [`pipeline`] builds one from a task name.

mod fill_mask;
mod question_answering;
mod registry;
mod sentence_embedding;
mod text2text;
mod text_classification;
mod text_generation;
mod token_classification;
mod translation;

pub use fill_mask::{FillMask, FillMaskResult};
pub use question_answering::{Answer, QuestionAnswering};
pub use registry::{pipeline, tasks, Params, Pipeline, TaskEntry};
pub use sentence_embedding::{FeatureExtraction, PoolingMode, SentenceEmbedder};
pub use text2text::Text2Text;
pub use text_classification::{ClassScore, TextClassification};
pub use text_generation::{GeneratedText, TextGeneration};
pub use token_classification::{Aggregation, Entity, TokenClassification};
pub use translation::{Translation, TranslationText};

use crate::error::Result;
use crate::models::encoder::EncoderInput;
use crate::text::{EncodeOptions, Padding, SubwordTokenizer};

/// Tokenizes `texts` (truncated to `max_length`) and pads them into one batch for `pad_id`.
pub(crate) fn encode_padded(
    tokenizer: &SubwordTokenizer,
    texts: &[&str],
    max_length: usize,
    pad_id: u32,
) -> Result<EncoderInput> {
    let options = EncodeOptions {
        padding: Padding::None,
        truncation: true,
        max_length: Some(max_length),
        ..Default::default()
    };
    let enc = tokenizer.encode_batch(texts, None, &options)?;
    let rows: Vec<&[u32]> = enc.input_ids.iter().map(Vec::as_slice).collect();
    Ok(EncoderInput::from_rows(&rows, pad_id))
}

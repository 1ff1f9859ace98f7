//! `question-answering` (extractive): the span of a context that answers a question, scored as
//! transformers does — softmax of the start and end logits over the context tokens, the best
//! `start ≤ end` pair no longer than `max_answer_len` — with overlapping windows over contexts
//! longer than the model.

use std::path::Path;

use candle_core::Device;
use serde::Serialize;
use serde_json::Value;

use super::registry::{to_values, Params, Pipeline};
use crate::error::{Error, Result};
use crate::models::encoder::{EncoderInput, EncoderModel, Task};
use crate::nn::ForwardCtx;
use crate::text::{EncodeOptions, Padding, SubwordTokenizer};

/// An answer, shaped as transformers' output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    /// start probability × end probability.
    pub score: f32,
    /// Character offset of the answer in the context.
    pub start: usize,
    /// Character offset of its end (exclusive).
    pub end: usize,
    /// The answer text.
    pub answer: String,
}

/// A `…ForQuestionAnswering` folder as a pipeline.
pub struct QuestionAnswering {
    model: EncoderModel,
    tokenizer: SubwordTokenizer,
    /// Tokens per window (question and special tokens included).
    pub max_length: usize,
    /// Context tokens shared by consecutive windows.
    pub stride: usize,
    /// Longest answer, in tokens.
    pub max_answer_len: usize,
}

fn softmax(values: &[f32]) -> Vec<f32> {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = values.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

impl QuestionAnswering {
    /// Loads a question-answering folder (384-token windows, stride 128, answers up to 15
    /// tokens: transformers' defaults).
    pub fn from_pretrained(dir: &Path, device: &Device) -> Result<Self> {
        let model =
            EncoderModel::from_pretrained(dir, Some(Task::QuestionAnswering), None, device)?;
        model.ensure_trained(dir)?;
        let tokenizer = model
            .tokenizer
            .clone()
            .ok_or_else(|| Error::folder(dir, "no tokenizer.json or vocab.txt"))?;
        let max_length = model.config.max_position_embeddings.min(384);
        Ok(Self {
            model,
            tokenizer,
            max_length,
            stride: 128,
            max_answer_len: 15,
        })
    }

    /// The best answer to `question` in `context`.
    pub fn answer(&self, question: &str, context: &str) -> Result<Answer> {
        self.answer_with_stride(question, context, self.stride)
    }

    /// [`answer`](Self::answer) with windows sharing `stride` context tokens.
    pub fn answer_with_stride(
        &self,
        question: &str,
        context: &str,
        stride: usize,
    ) -> Result<Answer> {
        let options = EncodeOptions {
            add_special_tokens: false,
            padding: Padding::None,
            ..Default::default()
        };
        let enc = self
            .tokenizer
            .encode_batch(&[question, context], None, &options)?;
        let (q_ids, c_ids, c_offsets) = (&enc.input_ids[0], &enc.input_ids[1], &enc.offsets[1]);
        if c_ids.is_empty() {
            return Err(Error::config("context", "the context is empty"));
        }
        let cls = self.special(&["[CLS]", "<s>"])?;
        let sep = self.special(&["[SEP]", "</s>"])?;
        let width = self.max_length.saturating_sub(q_ids.len() + 3);
        if width == 0 || (c_ids.len() > width && stride >= width) {
            return Err(Error::config(
                "question",
                format!(
                    "a {}-token question leaves no room for the context in {} tokens (stride {})",
                    q_ids.len(),
                    self.max_length,
                    stride
                ),
            ));
        }
        let mut best: Option<(f32, usize, usize)> = None;
        let mut start = 0;
        loop {
            let end = (start + width).min(c_ids.len());
            let mut ids = vec![cls];
            ids.extend_from_slice(q_ids);
            ids.push(sep);
            let first = ids.len();
            ids.extend_from_slice(&c_ids[start..end]);
            ids.push(sep);
            let types: Vec<u32> = (0..ids.len()).map(|i| u32::from(i >= first)).collect();
            let input = EncoderInput {
                attention_mask: vec![vec![1; ids.len()]],
                token_type_ids: (self.model.config.type_vocab_size > 1).then(|| vec![types]),
                input_ids: vec![ids],
            };
            let out = self.model.forward(&input, &mut ForwardCtx::inference())?;
            let logits = |t: Option<candle_core::Tensor>| -> Result<Vec<f32>> {
                let t = t.ok_or_else(|| Error::config("head", "no span logits"))?;
                Ok(t.get(0)?.to_vec1::<f32>()?[first..first + end - start].to_vec())
            };
            let (p_start, p_end) = (
                softmax(&logits(out.start_logits)?),
                softmax(&logits(out.end_logits)?),
            );
            for (i, ps) in p_start.iter().enumerate() {
                for (j, pe) in p_end.iter().enumerate().skip(i).take(self.max_answer_len) {
                    let score = ps * pe;
                    if best.is_none_or(|(s, _, _)| score > s) {
                        best = Some((score, start + i, start + j));
                    }
                }
            }
            if end == c_ids.len() {
                break;
            }
            start = end - stride;
        }
        let (score, first, last) = best.ok_or_else(|| Error::config("context", "no answer"))?;
        let (s, e) = (c_offsets[first].0, c_offsets[last].1);
        let answer: String = context.chars().skip(s).take(e - s).collect();
        Ok(Answer {
            score,
            start: s,
            end: e,
            answer,
        })
    }

    fn special(&self, candidates: &[&str]) -> Result<u32> {
        candidates
            .iter()
            .find_map(|t| self.tokenizer.token_to_id(t))
            .ok_or_else(|| Error::Tokenizer(format!("none of {candidates:?} in the vocabulary")))
    }
}

/// Parameters of the `question-answering` pipeline (each input is
/// `{"question": …, "context": …}`).
pub const PARAMETERS: &[&str] = &["stride"];

impl Pipeline for QuestionAnswering {
    fn task(&self) -> &'static str {
        "question-answering"
    }

    fn run_batch(&self, inputs: &[Value], params: &Params) -> Result<Vec<Value>> {
        let stride = params.usize("stride", self.stride)?;
        let answers = inputs
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let field = |name: &str| {
                    input.get(name).and_then(Value::as_str).ok_or_else(|| {
                        Error::config(
                            format!("inputs[{i}].{name}"),
                            "must be a string (inputs are {\"question\": …, \"context\": …})",
                        )
                    })
                };
                self.answer_with_stride(field("question")?, field("context")?, stride)
            })
            .collect::<Result<Vec<_>>>()?;
        to_values(answers)
    }
}

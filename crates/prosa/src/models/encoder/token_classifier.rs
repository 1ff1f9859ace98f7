//! A token classifier on a pretrained encoder (`…ForTokenClassification`): one tag per word,
//! trained on the first sub-token of every word (the others are ignored by the loss, as
//! transformers' `tokenize_and_align_labels` does).

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};

use super::config::Task;
use super::model::{EncoderInput, EncoderModel};
use crate::data::conll::TaggedSentence;
use crate::data::LabelMap;
use crate::error::{Error, Result};
use crate::nn::loss::cross_entropy;
use crate::nn::{ForwardCtx, ParamStore};
use crate::text::SubwordTokenizer;
use crate::train::{StepOutput, Trainable};

/// One tokenized sentence: token ids and, per token, the tag id to learn or `None`.
#[derive(Debug, Clone)]
pub struct TokenExample {
    /// Token ids with the special tokens.
    pub ids: Vec<u32>,
    /// The tag of each token's word on its first sub-token; `None` elsewhere.
    pub labels: Vec<Option<u32>>,
}

/// An encoder with a token-classification head and its tokenizer.
pub struct EncoderTokenClassifier {
    model: EncoderModel,
    tokenizer: SubwordTokenizer,
    tags: LabelMap,
    max_length: usize,
}

impl EncoderTokenClassifier {
    /// Loads `dir` with a token-classification head for `tags` (`None`: the folder's own).
    pub fn from_pretrained(
        dir: &Path,
        tags: Option<LabelMap>,
        max_length: usize,
        device: &Device,
    ) -> Result<Self> {
        let model =
            EncoderModel::from_pretrained(dir, Some(Task::TokenClassification), tags, device)?;
        let tokenizer = model.tokenizer.clone().ok_or_else(|| {
            Error::folder(
                dir,
                "no tokenizer.json or vocab.txt: the tagger needs a tokenizer",
            )
        })?;
        let tags =
            model.config.labels.clone().ok_or_else(|| {
                Error::folder(dir.join("config.json"), "no id2label: give the tags")
            })?;
        Ok(Self {
            model,
            tokenizer,
            tags,
            max_length,
        })
    }

    /// Loads a fine-tuned tagger folder (its own tags); a folder without a trained
    /// token-classification head is an error.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let tagger = Self::from_pretrained(dir, None, 512, device)?;
        tagger.model.ensure_trained(dir)?;
        Ok(tagger)
    }

    /// The tag set.
    pub fn tags(&self) -> &LabelMap {
        &self.tags
    }

    /// The wrapped model.
    pub fn model(&self) -> &EncoderModel {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &SubwordTokenizer {
        &self.tokenizer
    }

    /// Writes the Hugging Face folder.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.model.save_pretrained(dir)
    }

    /// Tokenizes tagged sentences; a tag outside the tag set is an error naming `path` and the
    /// sentence's line.
    pub fn prepare(&self, sentences: &[TaggedSentence], path: &Path) -> Result<Vec<TokenExample>> {
        let words: Vec<Vec<String>> = sentences.iter().map(|s| s.tokens.clone()).collect();
        let enc = self.tokenizer.encode_words(&words, Some(self.max_length))?;
        let mut out = Vec::with_capacity(sentences.len());
        for ((sentence, ids), word_ids) in sentences.iter().zip(enc.input_ids).zip(enc.word_ids) {
            let tag_ids = sentence
                .tags
                .iter()
                .map(|t| {
                    self.tags.id(t).ok_or_else(|| Error::UnknownLabel {
                        path: path.to_path_buf(),
                        line: sentence.line,
                        label: t.clone(),
                        known: self.tags.names().join(", "),
                    })
                })
                .collect::<Result<Vec<u32>>>()?;
            out.push(TokenExample {
                ids,
                labels: first_subtokens(&word_ids)
                    .into_iter()
                    .map(|w| w.map(|w| tag_ids[w]))
                    .collect(),
            });
        }
        Ok(out)
    }

    fn collate(&self, rows: &[&[u32]]) -> EncoderInput {
        EncoderInput::from_rows(rows, self.model.config.pad_token_id)
    }

    /// Per-token tag probabilities (batch, seq, tags) of a padded batch.
    pub fn token_probabilities(&self, input: &EncoderInput) -> Result<Tensor> {
        let logits = self
            .model
            .forward(input, &mut ForwardCtx::inference())?
            .logits
            .ok_or_else(|| Error::config("head", "the model made no logits"))?;
        crate::nn::softmax::softmax_last_dim(&logits)
    }

    /// The tag of every word of each sentence (from its first sub-token; words cut off by
    /// truncation get `O`).
    pub fn predict_words(&self, sentences: &[Vec<String>]) -> Result<Vec<Vec<String>>> {
        let mut out = Vec::with_capacity(sentences.len());
        for chunk in sentences.chunks(32) {
            let enc = self.tokenizer.encode_words(chunk, Some(self.max_length))?;
            let rows: Vec<&[u32]> = enc.input_ids.iter().map(Vec::as_slice).collect();
            let best = self
                .token_probabilities(&self.collate(&rows))?
                .argmax(D::Minus1)?
                .to_dtype(DType::U32)?
                .to_vec2::<u32>()?;
            for ((words, word_ids), best) in chunk.iter().zip(&enc.word_ids).zip(best) {
                let mut tags = vec!["O".to_string(); words.len()];
                for (t, w) in first_subtokens(word_ids).into_iter().enumerate() {
                    if let Some(w) = w {
                        tags[w] = self.tags.name(best[t]).to_string();
                    }
                }
                out.push(tags);
            }
        }
        Ok(out)
    }
}

/// For each token, the index of its word when it is the word's first sub-token.
fn first_subtokens(word_ids: &[Option<u32>]) -> Vec<Option<usize>> {
    let mut previous = None;
    word_ids
        .iter()
        .map(|&w| {
            let first = w.is_some() && w != previous;
            previous = w;
            if first {
                w.map(|w| w as usize)
            } else {
                None
            }
        })
        .collect()
}

impl Trainable for EncoderTokenClassifier {
    type Example = TokenExample;

    fn params(&self) -> &ParamStore {
        self.model.params()
    }

    fn forward_batch(&self, batch: &[&TokenExample], ctx: &mut ForwardCtx) -> Result<StepOutput> {
        let rows: Vec<&[u32]> = batch.iter().map(|e| e.ids.as_slice()).collect();
        let input = self.collate(&rows);
        let seq = input.input_ids[0].len();
        let logits = self
            .model
            .forward(&input, ctx)?
            .logits
            .ok_or_else(|| Error::config("head", "the model made no logits"))?;
        // Only the labelled positions (first sub-tokens) enter the loss.
        let (mut positions, mut targets) = (Vec::new(), Vec::new());
        for (b, e) in batch.iter().enumerate() {
            for (t, label) in e.labels.iter().enumerate() {
                if let Some(label) = label {
                    positions.push((b * seq + t) as u32);
                    targets.push(*label);
                }
            }
        }
        if positions.is_empty() {
            return Err(Error::config(
                "labels",
                "a batch without any labelled token",
            ));
        }
        let flat = logits.reshape((batch.len() * seq, ()))?;
        let index = Tensor::from_vec(positions, targets.len(), flat.device())?;
        let selected = flat.index_select(&index, 0)?;
        let loss = cross_entropy(&selected, &targets, None)?;
        let predictions = selected
            .argmax(D::Minus1)?
            .to_dtype(DType::U32)?
            .to_vec1::<u32>()?;
        Ok(StepOutput {
            loss,
            predictions: Some(predictions),
            targets: Some(targets),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::first_subtokens;

    #[test]
    fn only_the_first_piece_of_each_word_is_labelled() {
        let word_ids = [None, Some(0), Some(1), Some(1), Some(2), None, None];
        assert_eq!(
            first_subtokens(&word_ids),
            [None, Some(0), Some(1), None, Some(2), None, None]
        );
    }
}

//! ULMFiT (Howard & Ruder 2018), the course's Unit III transfer recipe: an AWD-LSTM language
//! model pretrained on general text, fine-tuned on the target texts, then a classifier on its
//! encoder. This module holds the language model; [`classifier`] the classifier.
//!
//! Texts become lower-cased words (ELMo's splitting: punctuation apart), each text opened by
//! `xxbos`, as fastai's tokenisation does without its case markers; `xxunk` stands for words
//! outside the vocabulary and `xxpad` pads.

pub mod awd_lstm;
pub mod classifier;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use self::awd_lstm::{AwdDropouts, AwdLstm, AwdLstmConfig};
use super::folder::{self, ModelFolder};
use crate::error::{Error, Result};
use crate::nn::dropout::locked_dropout;
use crate::nn::{ForwardCtx, Init, ParamStore};
use crate::train::{StepOutput, Trainable};

/// The `model_type` of a language-model folder.
pub const LM_TYPE: &str = "prosa-awd-lstm-lm";
/// Words outside the vocabulary.
pub const UNK: &str = "xxunk";
/// Padding.
pub const PAD: &str = "xxpad";
/// The start of a text.
pub const BOS: &str = "xxbos";

/// `config.json` of an AWD-LSTM language model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AwdLstmLmConfig {
    /// Always [`LM_TYPE`].
    pub model_type: String,
    /// Hugging Face's list of architecture names.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// The encoder.
    pub encoder: AwdLstmConfig,
}

/// A stretch of the token stream: the model reads `ids[..n-1]` and predicts `ids[1..]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LmChunk {
    /// Token ids.
    pub ids: Vec<u32>,
}

/// The words of a text for ULMFiT: lower-cased, punctuation apart.
pub fn tokenize(text: &str) -> Vec<String> {
    super::elmo::words(&text.to_lowercase())
}

/// A vocabulary: `xxunk`, `xxpad`, `xxbos`, then words seen `min_count` times or more, most
/// frequent first (ties alphabetical), `max_words` in all at most.
pub fn build_vocab<'a>(
    words: impl IntoIterator<Item = &'a str>,
    max_words: usize,
    min_count: usize,
) -> Vec<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for w in words {
        *counts.entry(w).or_insert(0) += 1;
    }
    let mut sorted: Vec<(&str, usize)> = counts
        .into_iter()
        .filter(|(w, c)| *c >= min_count && ![UNK, PAD, BOS].contains(w))
        .collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    [UNK, PAD, BOS]
        .iter()
        .map(|s| s.to_string())
        .chain(
            sorted
                .into_iter()
                .take(max_words.saturating_sub(3))
                .map(|(w, _)| w.to_string()),
        )
        .collect()
}

/// An AWD-LSTM language model whose decoder shares the embedding matrix (plus a bias).
pub struct AwdLstmLm {
    config: AwdLstmLmConfig,
    params: ParamStore,
    vocab: Vec<String>,
    index: HashMap<String, u32>,
    encoder: AwdLstm,
    decoder_bias: Tensor,
}

impl AwdLstmLm {
    /// A new model (random weights) over `vocab` (which starts with `xxunk`, `xxpad`, `xxbos`).
    pub fn new(
        config: AwdLstmConfig,
        vocab: Vec<String>,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        if vocab.len() != config.vocab_size || vocab.len() < 4 || vocab[..3] != [UNK, PAD, BOS] {
            return Err(Error::config(
                "vocab",
                format!(
                    "{} words for vocab_size {}; the first three must be {UNK}, {PAD}, {BOS}",
                    vocab.len(),
                    config.vocab_size
                ),
            ));
        }
        let params = ParamStore::new(device.clone());
        let vb = params.builder(seed);
        let encoder = AwdLstm::new(config, &vb)?;
        let decoder_bias = vb
            .pp("decoder")
            .param("bias", &[config.vocab_size], Init::Zeros)?;
        let index = vocab
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        Ok(Self {
            config: AwdLstmLmConfig {
                model_type: LM_TYPE.into(),
                architectures: vec!["AwdLstmLm".into()],
                encoder: config,
            },
            params,
            vocab,
            index,
            encoder,
            decoder_bias,
        })
    }

    /// Loads a folder written by [`save_pretrained`](Self::save_pretrained).
    pub fn from_pretrained(dir: &Path, device: &Device) -> Result<Self> {
        let config: AwdLstmLmConfig = folder::read_config(dir)?;
        let vocab = read_vocab(dir)?;
        let model = Self::new(config.encoder, vocab, 0, device)
            .map_err(|e| Error::folder(dir.join("vocab.txt"), e.to_string()))?;
        model.params.load(&dir.join("model.safetensors"))?;
        Ok(model)
    }

    /// Writes `config.json`, `model.safetensors` and `vocab.txt`.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        let folder = ModelFolder {
            config: serde_json::to_value(&self.config)
                .map_err(|e| Error::config("config", e.to_string()))?,
            extra_files: vec![("vocab.txt", (self.vocab.join("\n") + "\n").into_bytes())],
        };
        folder::save(dir, &folder, &self.params)
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &[String] {
        &self.vocab
    }

    /// The sizes.
    pub fn config(&self) -> &AwdLstmConfig {
        &self.config.encoder
    }

    /// The same model over another vocabulary (target-task fine-tuning, fastai's
    /// `match_embeds`) with `dropouts`: rows of words both know are copied, new words get the
    /// mean of the old embedding rows (and of the decoder bias); the LSTM weights are copied.
    pub fn with_vocab(&self, vocab: Vec<String>, dropouts: AwdDropouts, seed: u64) -> Result<Self> {
        let config = AwdLstmConfig {
            vocab_size: vocab.len(),
            dropouts,
            ..self.config.encoder
        };
        let model = Self::new(config, vocab, seed, self.params.device())?;
        let old_rows = self.encoder.embedding().to_vec2::<f32>()?;
        let old_bias = self.decoder_bias.to_vec1::<f32>()?;
        let e = config.emb_size;
        let mean_row: Vec<f32> = (0..e)
            .map(|j| old_rows.iter().map(|r| r[j]).sum::<f32>() / old_rows.len() as f32)
            .collect();
        let mean_bias = old_bias.iter().sum::<f32>() / old_bias.len() as f32;
        let (mut rows, mut bias) = (Vec::with_capacity(model.vocab.len() * e), Vec::new());
        for w in &model.vocab {
            match self.index.get(w) {
                Some(&i) => {
                    rows.extend_from_slice(&old_rows[i as usize]);
                    bias.push(old_bias[i as usize]);
                }
                None => {
                    rows.extend_from_slice(&mean_row);
                    bias.push(mean_bias);
                }
            }
        }
        let device = self.params.device();
        let mut tensors = self.params.tensors();
        tensors.insert(
            "encoder.weight".into(),
            Tensor::from_vec(rows, (model.vocab.len(), e), device)?,
        );
        tensors.insert(
            "decoder.bias".into(),
            Tensor::from_vec(bias, model.vocab.len(), device)?,
        );
        model
            .params
            .assign(&tensors, Path::new("<language model>"))?;
        Ok(model)
    }

    /// The id of a word (`xxunk` for unknown words).
    pub fn id(&self, word: &str) -> u32 {
        self.index.get(word).copied().unwrap_or(0)
    }

    /// One token stream of `texts`: `xxbos` and the words of each.
    pub fn stream<S: AsRef<str>>(&self, texts: &[S]) -> Vec<u32> {
        let bos = self.id(BOS);
        texts
            .iter()
            .flat_map(|t| {
                std::iter::once(bos).chain(tokenize(t.as_ref()).into_iter().map(|w| self.id(&w)))
            })
            .collect()
    }

    /// Logits (batch, steps, vocab) of chunks' inputs.
    fn logits(&self, batch: &[&LmChunk], ctx: &mut ForwardCtx) -> Result<(Tensor, Vec<u32>)> {
        let steps = batch
            .iter()
            .map(|c| c.ids.len().saturating_sub(1))
            .max()
            .unwrap_or(0);
        if steps == 0 {
            return Err(Error::config("chunk", "chunks need at least 2 tokens"));
        }
        let pad = self.id(PAD);
        let (mut input, mut mask, mut targets) = (Vec::new(), Vec::new(), Vec::new());
        for c in batch {
            let n = c.ids.len() - 1;
            for t in 0..steps {
                input.push(if t < n { c.ids[t] } else { pad });
                mask.push(if t < n { 1f32 } else { 0.0 });
                if t < n {
                    targets.push(c.ids[t + 1]);
                }
            }
        }
        let device = self.params.device();
        let ids = Tensor::from_vec(input, (batch.len(), steps), device)?;
        let mask_t = Tensor::from_vec(mask.clone(), (batch.len(), steps), device)?;
        let out = self.encoder.forward(&ids, Some(&mask_t), ctx)?;
        let out = locked_dropout(&out, self.config.encoder.dropouts.output_p, ctx)?;
        // Only real positions are scored.
        let rows: Vec<u32> = mask
            .iter()
            .enumerate()
            .filter(|(_, m)| **m > 0.0)
            .map(|(i, _)| i as u32)
            .collect();
        let e = self.config.encoder.emb_size;
        let picked = out
            .reshape((batch.len() * steps, e))?
            .index_select(&Tensor::new(rows.as_slice(), device)?, 0)?;
        let logits =
            crate::nn::linear::linear(&picked, self.encoder.embedding(), &self.decoder_bias)?;
        Ok((logits, targets))
    }
}

/// `vocab.txt` of a folder, one word per line.
pub(crate) fn read_vocab(dir: &Path) -> Result<Vec<String>> {
    Ok(crate::fsio::read_text(&dir.join("vocab.txt"))?
        .lines()
        .map(str::to_string)
        .collect())
}

/// The stream cut into chunks of `length + 1` tokens that overlap by one (each chunk's last
/// token is the next one's first), the last shorter one kept when it has 2 tokens or more.
pub fn chunks(stream: &[u32], length: usize) -> Vec<LmChunk> {
    let length = length.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    while start + 1 < stream.len() {
        let end = (start + length + 1).min(stream.len());
        out.push(LmChunk {
            ids: stream[start..end].to_vec(),
        });
        start += length;
    }
    out
}

impl Trainable for AwdLstmLm {
    type Example = LmChunk;

    fn params(&self) -> &ParamStore {
        &self.params
    }

    fn forward_batch(&self, batch: &[&LmChunk], ctx: &mut ForwardCtx) -> Result<StepOutput> {
        let (logits, targets) = self.logits(batch, ctx)?;
        Ok(StepOutput {
            loss: crate::nn::loss::cross_entropy(&logits, &targets, None)?,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_overlap_by_one_token_and_cover_the_stream() {
        let stream: Vec<u32> = (0..10).collect();
        let c = chunks(&stream, 4);
        assert_eq!(c[0].ids, [0, 1, 2, 3, 4]);
        assert_eq!(c[1].ids, [4, 5, 6, 7, 8]);
        assert_eq!(c[2].ids, [8, 9]);
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn a_new_vocabulary_keeps_known_rows_and_averages_for_new_words() {
        let vocab = build_vocab(["o", "gato", "o", "come"], 10, 1);
        assert_eq!(vocab, [UNK, PAD, BOS, "o", "come", "gato"]);
        let config = AwdLstmConfig {
            vocab_size: vocab.len(),
            emb_size: 4,
            hidden_size: 6,
            num_layers: 2,
            dropouts: awd_lstm::AwdDropouts::LANGUAGE_MODEL,
        };
        let lm = AwdLstmLm::new(config, vocab, 1, &Device::Cpu).unwrap();
        let new_vocab: Vec<String> = [UNK, PAD, BOS, "gato", "peixe"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let moved = lm
            .with_vocab(new_vocab, awd_lstm::AwdDropouts::LANGUAGE_MODEL, 2)
            .unwrap();
        let old = lm.encoder.embedding().to_vec2::<f32>().unwrap();
        let new = moved.encoder.embedding().to_vec2::<f32>().unwrap();
        assert_eq!(new[3], old[5], "gato keeps its row");
        let mean: Vec<f32> = (0..4)
            .map(|j| old.iter().map(|r| r[j]).sum::<f32>() / 6.0)
            .collect();
        assert!(
            new[4].iter().zip(&mean).all(|(a, b)| (a - b).abs() < 1e-6),
            "peixe gets the mean"
        );
        assert_eq!(moved.stream(&["O gato, peixe!"]), [2, 0, 3, 0, 4, 0]);
    }
}

//! ELMo (Peters et al. 2018), the course's Unit III: a character-CNN token encoder under a
//! bidirectional language model — a forward LSTM stack predicting the next word and a separate
//! backward stack predicting the previous one, with a residual connection from layer 2 on and
//! one softmax shared by both directions. Once pretrained, a token's ELMo vectors are its
//! token vector `[x; x]` and every layer's `[forward; backward]` state, which a task mixes with
//! learned weights ([`crate::nn::scalar_mix::ScalarMix`]).
//!
//! Sentences are read between `<S>` and `</S>` (added here); the representations returned for
//! a sentence leave those two out, as AllenNLP's `Elmo` does.

pub mod char_cnn;
pub mod classifier;
mod context;
mod head;
pub mod tagger;

pub use context::{Neighbour, Occurrence, WordInContexts};

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};

use self::char_cnn::{char_ids, CharCnn, CharCnnConfig, BOS, EOS};
use super::folder::{self, ModelFolder};
use crate::error::{Error, Result};
use crate::nn::recurrent::{CellKind, Recurrent, RecurrentConfig};
use crate::nn::{dropout, ForwardCtx, Init, ParamBuilder, ParamStore};
use crate::train::{StepOutput, Trainable};

/// The `model_type` written in `config.json`.
pub const MODEL_TYPE: &str = "prosa-elmo";
/// The softmax vocabulary's word for words outside it.
pub const UNK: &str = "<unk>";

/// `config.json` of an ELMo biLM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElmoConfig {
    /// Always [`MODEL_TYPE`].
    pub model_type: String,
    /// Hugging Face's list of architecture names.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// The token encoder; its `output_dim` equals `hidden_size`.
    pub char_cnn: CharCnnConfig,
    /// Width of each direction's LSTM states.
    pub hidden_size: usize,
    /// LSTM layers per direction.
    pub num_layers: usize,
    /// Dropout on the token vectors and between layers (training only).
    pub dropout: f32,
    /// Words of the softmax (`vocab.txt`, one per line: `<unk>`, `<S>`, `</S>`, then by count).
    pub vocab_size: usize,
}

impl ElmoConfig {
    /// A biLM of `layers` LSTM layers of `hidden` per direction over a character CNN with
    /// filters of widths 1–5 (widths × 8, 16, 32, 64, 128 filters scaled by `hidden / 128`).
    pub fn small(hidden: usize, layers: usize, vocab_size: usize) -> Self {
        let scale = (hidden / 128).max(1);
        Self {
            model_type: MODEL_TYPE.into(),
            architectures: vec!["ElmoBiLm".into()],
            char_cnn: CharCnnConfig {
                max_chars: 24,
                char_dim: 16,
                filters: vec![
                    (1, 16 * scale),
                    (2, 16 * scale),
                    (3, 32 * scale),
                    (4, 64 * scale),
                    (5, 128 * scale),
                ],
                highway_layers: 2,
                output_dim: hidden,
            },
            hidden_size: hidden,
            num_layers: layers,
            dropout: 0.1,
            vocab_size,
        }
    }

    fn check(&self) -> Result<()> {
        if self.char_cnn.output_dim != self.hidden_size {
            return Err(Error::config(
                "char_cnn.output_dim",
                format!(
                    "{} must equal hidden_size {} (the token layer joins the LSTM layers in the mix)",
                    self.char_cnn.output_dim, self.hidden_size
                ),
            ));
        }
        if self.num_layers == 0 || self.hidden_size == 0 || self.vocab_size < 4 {
            return Err(Error::config(
                "num_layers/hidden_size/vocab_size",
                "need at least one layer, one unit and a vocabulary beyond <unk>, <S>, </S>",
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::config("dropout", "must be in [0, 1)"));
        }
        Ok(())
    }
}

/// The layers of a batch of sentences, boundaries removed.
pub struct ElmoLayers {
    /// `num_layers + 1` tensors (batch, tokens, 2·hidden): `[x; x]`, then each layer's
    /// `[forward; backward]` states.
    pub layers: Vec<Tensor>,
    /// (batch, tokens): 1 for words, 0 for padding.
    pub mask: Tensor,
    /// Words per sentence.
    pub lengths: Vec<usize>,
}

/// The states of both directions over `<S> words </S>`.
struct Directional {
    tokens: Tensor,
    forward: Vec<Tensor>,
    backward: Vec<Tensor>,
    mask: Tensor,
    lengths: Vec<usize>,
}

/// A bidirectional language model over character-CNN token vectors.
pub struct ElmoBiLm {
    config: ElmoConfig,
    params: ParamStore,
    vocab: Vec<String>,
    word_ids: HashMap<String, u32>,
    chars: CharCnn,
    forward: Vec<Recurrent>,
    backward: Vec<Recurrent>,
    softmax: (Tensor, Tensor),
}

impl ElmoBiLm {
    /// A new model (random weights) whose softmax predicts `vocab`, which must start with
    /// `<unk>`, `<S>`, `</S>`.
    pub fn new(config: ElmoConfig, vocab: Vec<String>, seed: u64, device: &Device) -> Result<Self> {
        let params = ParamStore::new(device.clone());
        Self::build(config, vocab, &params.builder(seed))
    }

    /// Creates the parameters under `vb` (a classifier keeps its biLM under `elmo.`).
    pub fn build(config: ElmoConfig, vocab: Vec<String>, vb: &ParamBuilder) -> Result<Self> {
        config.check()?;
        if vocab.len() != config.vocab_size || vocab[..3] != [UNK, BOS, EOS] {
            return Err(Error::config(
                "vocab",
                format!(
                    "{} words for vocab_size {}; the first three must be {UNK}, {BOS}, {EOS}",
                    vocab.len(),
                    config.vocab_size
                ),
            ));
        }
        let params = vb.store().clone();
        let chars = CharCnn::new(config.char_cnn.clone(), &vb.pp("char_cnn"))?;
        let stack = |name: String, l: usize, reversed: bool| -> Result<Recurrent> {
            let mut r = Recurrent::new(
                RecurrentConfig {
                    cell: CellKind::Lstm,
                    input_size: if l == 0 {
                        config.char_cnn.output_dim
                    } else {
                        config.hidden_size
                    },
                    hidden_size: config.hidden_size,
                    num_layers: 1,
                    bidirectional: false,
                    dropout: 0.0,
                },
                &vb.pp(&name),
            )?;
            r.set_reversed(reversed);
            Ok(r)
        };
        let mut forward = Vec::new();
        let mut backward = Vec::new();
        for l in 0..config.num_layers {
            forward.push(stack(format!("forward_layers.{l}"), l, false)?);
            backward.push(stack(format!("backward_layers.{l}"), l, true)?);
        }
        let s = vb.pp("softmax");
        let softmax = (
            s.param(
                "weight",
                &[config.vocab_size, config.hidden_size],
                Init::LinearDefault,
            )?,
            s.param("bias", &[config.vocab_size], Init::Zeros)?,
        );
        let word_ids = vocab
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        Ok(Self {
            config,
            params,
            vocab,
            word_ids,
            chars,
            forward,
            backward,
            softmax,
        })
    }

    /// Loads a folder written by [`save_pretrained`](Self::save_pretrained).
    pub fn from_pretrained(dir: &Path, device: &Device) -> Result<Self> {
        let config: ElmoConfig = folder::read_config(dir)?;
        let params = ParamStore::for_checkpoint(device.clone());
        let model = Self::build_from_folder(config, dir, &params.builder(0))?;
        model.params.load(&dir.join("model.safetensors"))?;
        Ok(model)
    }

    /// The biLM of `config` with the vocabulary of `dir/vocab.txt`, parameters under `vb`
    /// (not loaded).
    pub fn build_from_folder(config: ElmoConfig, dir: &Path, vb: &ParamBuilder) -> Result<Self> {
        let path = dir.join("vocab.txt");
        let vocab: Vec<String> = crate::fsio::read_text(&path)?
            .lines()
            .map(str::to_string)
            .collect();
        Self::build(config, vocab, vb).map_err(|e| match e {
            Error::Config { message, .. } => Error::folder(&path, message),
            other => other,
        })
    }

    /// `vocab.txt`'s bytes.
    pub fn vocab_file(&self) -> Vec<u8> {
        (self.vocab.join("\n") + "\n").into_bytes()
    }

    /// Writes `config.json`, `model.safetensors` and `vocab.txt`.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        let folder = ModelFolder {
            config: serde_json::to_value(&self.config)
                .map_err(|e| Error::config("config", e.to_string()))?,
            extra_files: vec![("vocab.txt", self.vocab_file())],
        };
        folder::save(dir, &folder, &self.params)
    }

    /// The configuration.
    pub fn config(&self) -> &ElmoConfig {
        &self.config
    }

    /// The softmax vocabulary.
    pub fn vocab(&self) -> &[String] {
        &self.vocab
    }

    /// Character ids (batch, tokens, max_chars) of `<S> words </S>` per sentence, right-padded
    /// with zero rows; the mask (batch, tokens) and each sentence's length with boundaries.
    fn char_batch(&self, sentences: &[&[String]]) -> Result<(Tensor, Tensor, Vec<usize>)> {
        let max_chars = self.config.char_cnn.max_chars;
        let lengths: Vec<usize> = sentences.iter().map(|s| s.len() + 2).collect();
        let tokens = lengths.iter().copied().max().unwrap_or(2);
        let batch = sentences.len();
        let mut ids = vec![0u32; batch * tokens * max_chars];
        let mut mask = vec![0f32; batch * tokens];
        for (b, sentence) in sentences.iter().enumerate() {
            let words = std::iter::once(BOS)
                .chain(sentence.iter().map(String::as_str))
                .chain(std::iter::once(EOS));
            for (t, word) in words.enumerate() {
                let at = (b * tokens + t) * max_chars;
                ids[at..at + max_chars].copy_from_slice(&char_ids(word, max_chars));
                mask[b * tokens + t] = 1.0;
            }
        }
        let device = self.params.device();
        Ok((
            Tensor::from_vec(ids, (batch, tokens, max_chars), device)?,
            Tensor::from_vec(mask, (batch, tokens), device)?,
            lengths,
        ))
    }

    /// Both directions' states over the sentences with their boundaries.
    fn run(&self, sentences: &[&[String]], ctx: &mut ForwardCtx) -> Result<Directional> {
        if sentences.is_empty() {
            return Err(Error::config("sentences", "no sentence to read"));
        }
        let (chars, mask, lengths) = self.char_batch(sentences)?;
        let tokens = self.chars.forward(&chars)?;
        let mut input = [
            dropout(&tokens, self.config.dropout, ctx)?,
            dropout(&tokens, self.config.dropout, ctx)?,
        ];
        let (mut forward, mut backward) = (Vec::new(), Vec::new());
        for (l, (f, b)) in self.forward.iter().zip(&self.backward).enumerate() {
            let mut outs = Vec::with_capacity(2);
            for (stack, x) in [f, b].into_iter().zip(&input) {
                let mut h = stack.forward(x, Some(&mask), ctx)?.outputs;
                if l > 0 {
                    h = (h + x)?;
                }
                outs.push(h);
            }
            let (hf, hb) = (outs.remove(0), outs.remove(0));
            input = [
                dropout(&hf, self.config.dropout, ctx)?,
                dropout(&hb, self.config.dropout, ctx)?,
            ];
            forward.push(hf);
            backward.push(hb);
        }
        Ok(Directional {
            tokens,
            forward,
            backward,
            mask,
            lengths,
        })
    }

    /// The ELMo layers of `sentences` (lists of words), without the boundary tokens.
    pub fn layers(&self, sentences: &[&[String]], ctx: &mut ForwardCtx) -> Result<ElmoLayers> {
        let d = self.run(sentences, ctx)?;
        let words = d.lengths.iter().map(|l| l - 2).max().unwrap_or(0).max(1);
        // Positions 1..=n hold the words (0 is <S>); padding past a sentence's </S> is masked.
        let inner = |t: &Tensor| t.narrow(1, 1, words);
        let mut layers = vec![Tensor::cat(
            &[inner(&d.tokens)?, inner(&d.tokens)?],
            D::Minus1,
        )?];
        for (f, b) in d.forward.iter().zip(&d.backward) {
            layers.push(Tensor::cat(&[inner(f)?, inner(b)?], D::Minus1)?);
        }
        let lengths: Vec<usize> = d.lengths.iter().map(|l| l - 2).collect();
        let mask: Vec<f32> = lengths
            .iter()
            .flat_map(|&n| (0..words).map(move |t| if t < n { 1.0 } else { 0.0 }))
            .collect();
        Ok(ElmoLayers {
            layers,
            mask: Tensor::from_vec(mask, (lengths.len(), words), self.params.device())?,
            lengths,
        })
    }

    /// The language-model loss: the mean of the forward LM's cross-entropy (each position
    /// predicting the next word, `</S>` included) and the backward LM's (each predicting the
    /// previous one, `<S>` included). Words outside the vocabulary are `<unk>`.
    pub fn lm_loss(&self, sentences: &[&[String]], ctx: &mut ForwardCtx) -> Result<Tensor> {
        let d = self.run(sentences, ctx)?;
        let tokens = d.mask.dim(1)?;
        let id = |w: &str| self.word_ids.get(w).copied().unwrap_or(0);
        let (mut fwd_rows, mut fwd_targets, mut bwd_rows, mut bwd_targets) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (b, sentence) in sentences.iter().enumerate() {
            let words: Vec<u32> = std::iter::once(id(BOS))
                .chain(sentence.iter().map(|w| id(w)))
                .chain(std::iter::once(id(EOS)))
                .collect();
            for t in 0..words.len() - 1 {
                fwd_rows.push((b * tokens + t) as u32);
                fwd_targets.push(words[t + 1]);
                bwd_rows.push((b * tokens + t + 1) as u32);
                bwd_targets.push(words[t]);
            }
        }
        let h = self.config.hidden_size;
        let device = self.params.device();
        let mut losses = Vec::with_capacity(2);
        for (states, rows, targets) in [
            (&d.forward, fwd_rows, fwd_targets),
            (&d.backward, bwd_rows, bwd_targets),
        ] {
            let top = states.last().expect("at least one layer");
            let top = dropout(top, self.config.dropout, ctx)?;
            let picked = top
                .reshape((sentences.len() * tokens, h))?
                .index_select(&Tensor::new(rows.as_slice(), device)?, 0)?;
            let logits = crate::nn::linear::linear(&picked, &self.softmax.0, &self.softmax.1)?;
            losses.push(crate::nn::loss::cross_entropy(&logits, &targets, None)?);
        }
        Ok(((&losses[0] + &losses[1])? * 0.5)?)
    }
}

impl Trainable for ElmoBiLm {
    /// A sentence's words.
    type Example = Vec<String>;

    fn params(&self) -> &ParamStore {
        &self.params
    }

    fn forward_batch(&self, batch: &[&Vec<String>], ctx: &mut ForwardCtx) -> Result<StepOutput> {
        let sentences: Vec<&[String]> = batch.iter().map(|s| s.as_slice()).collect();
        Ok(StepOutput {
            loss: self.lm_loss(&sentences, ctx)?,
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

    fn example_length(&self, example: &Vec<String>) -> Option<usize> {
        Some(example.len())
    }
}

/// The softmax vocabulary of a corpus: `<unk>`, `<S>`, `</S>`, then its words seen at least
/// `min_count` times, most frequent first (ties alphabetical), at most `max_words` in all.
pub fn build_vocab(sentences: &[Vec<String>], max_words: usize, min_count: usize) -> Vec<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for w in sentences.iter().flatten() {
        *counts.entry(w.as_str()).or_insert(0) += 1;
    }
    let mut words: Vec<(&str, usize)> = counts
        .into_iter()
        .filter(|(w, c)| *c >= min_count && ![UNK, BOS, EOS].contains(w))
        .collect();
    words.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut vocab: Vec<String> = [UNK, BOS, EOS].iter().map(|s| s.to_string()).collect();
    vocab.extend(
        words
            .into_iter()
            .take(max_words.saturating_sub(3))
            .map(|(w, _)| w.to_string()),
    );
    vocab
}

/// The words of a text for ELMo: runs of letters, digits and apostrophes (accents included),
/// every other visible character a word of its own.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || c == '\'' {
            current.push(c);
            continue;
        }
        if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        if !c.is_whitespace() {
            out.push(c.to_string());
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Mask as f32 (batch, tokens, 1), for pooling ELMo vectors over real words.
pub fn mask_3d(mask: &Tensor) -> Result<Tensor> {
    Ok(mask.to_dtype(DType::F32)?.unsqueeze(2)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_case_and_split_punctuation() {
        assert_eq!(
            words("Ó, Romeu! Por que és tu Romeu? don't"),
            ["Ó", ",", "Romeu", "!", "Por", "que", "és", "tu", "Romeu", "?", "don't"]
        );
    }
}

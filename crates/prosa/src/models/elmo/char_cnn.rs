//! ELMo's context-free token encoder (Peters et al. 2018; Kim et al. 2016): a word's characters
//! (UTF-8 bytes between begin/end-of-word marks) → character embeddings → 1-D convolutions of
//! several widths, each max-pooled over the word and passed through ReLU → highway layers →
//! a linear projection. Any word gets a vector, seen in training or not.
//!
//! Parameter names and layouts are AllenNLP's / PyTorch's: `char_embedding.weight` (chars ×
//! dim), `char_conv_{i}.weight` (filters, dim, width) as `nn.Conv1d`, `highways.{k}.weight`
//! (2·features, features) whose first half is the transform and second half the gate
//! (`x ← g ⊙ x + (1 − g) ⊙ relu(transform)`), `projection.weight` (out, features).

use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::{Init, ParamBuilder};

/// Character ids: byte `b` is `b + 1`; then the marks below. Id 0 fills padded tokens.
pub const BEGIN_OF_WORD: u32 = 257;
/// End of a word.
pub const END_OF_WORD: u32 = 258;
/// Fills a word up to `max_chars`.
pub const PAD_CHAR: u32 = 259;
/// The one character of the sentence-start token `<S>`.
pub const SENTENCE_START: u32 = 260;
/// The one character of the sentence-end token `</S>`.
pub const SENTENCE_END: u32 = 261;
/// Rows of the character embedding.
pub const CHAR_VOCAB: usize = 262;

/// The sentence-start token.
pub const BOS: &str = "<S>";
/// The sentence-end token.
pub const EOS: &str = "</S>";

/// Shape of the character encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CharCnnConfig {
    /// Character ids per word, marks included (longer words are cut).
    pub max_chars: usize,
    /// Width of the character embeddings.
    pub char_dim: usize,
    /// `(width, filters)` of each convolution.
    pub filters: Vec<(usize, usize)>,
    /// Highway layers after the convolutions.
    pub highway_layers: usize,
    /// Width of the token vectors (the projection's output).
    pub output_dim: usize,
}

impl CharCnnConfig {
    /// Total filters: the width of the convolution features.
    pub fn features(&self) -> usize {
        self.filters.iter().map(|f| f.1).sum()
    }

    fn check(&self) -> Result<()> {
        let widest = self.filters.iter().map(|f| f.0).max().unwrap_or(0);
        if self.filters.is_empty() || self.filters.iter().any(|f| f.0 == 0 || f.1 == 0) {
            return Err(Error::config(
                "filters",
                "give at least one (width, count) with both above 0",
            ));
        }
        if self.max_chars < widest.max(3) || self.char_dim == 0 || self.output_dim == 0 {
            return Err(Error::config(
                "max_chars/char_dim/output_dim",
                format!("max_chars must be ≥ the widest filter ({widest}) and ≥ 3; widths ≥ 1"),
            ));
        }
        Ok(())
    }
}

/// The character ids of `word`: begin mark, its bytes (cut to fit), end mark, padding.
/// `<S>` and `</S>` get their own one-character spellings.
pub fn char_ids(word: &str, max_chars: usize) -> Vec<u32> {
    let mut ids = Vec::with_capacity(max_chars);
    ids.push(BEGIN_OF_WORD);
    match word {
        BOS => ids.push(SENTENCE_START),
        EOS => ids.push(SENTENCE_END),
        _ => ids.extend(
            word.bytes()
                .take(max_chars.saturating_sub(2))
                .map(|b| b as u32 + 1),
        ),
    }
    ids.push(END_OF_WORD);
    ids.resize(max_chars, PAD_CHAR);
    ids
}

/// One convolution: weight (filters, char_dim, width), bias (filters).
struct Conv {
    width: usize,
    weight: Tensor,
    bias: Tensor,
}

/// The character encoder.
pub struct CharCnn {
    config: CharCnnConfig,
    embedding: Tensor,
    convs: Vec<Conv>,
    highways: Vec<(Tensor, Tensor)>,
    projection: (Tensor, Tensor),
}

impl CharCnn {
    /// Creates the parameters under `vb`.
    pub fn new(config: CharCnnConfig, vb: &ParamBuilder) -> Result<Self> {
        config.check()?;
        let embedding = vb.pp("char_embedding").param(
            "weight",
            &[CHAR_VOCAB, config.char_dim],
            Init::Uniform {
                lo: -0.25,
                hi: 0.25,
            },
        )?;
        let mut convs = Vec::new();
        for (i, &(width, count)) in config.filters.iter().enumerate() {
            let c = vb.pp(&format!("char_conv_{i}"));
            let bound = 1.0 / ((config.char_dim * width) as f64).sqrt();
            let init = Init::Uniform {
                lo: -bound,
                hi: bound,
            };
            convs.push(Conv {
                width,
                weight: c.param("weight", &[count, config.char_dim, width], init)?,
                bias: c.param("bias", &[count], init)?,
            });
        }
        let f = config.features();
        let mut highways = Vec::new();
        for k in 0..config.highway_layers {
            let h = vb.pp(&format!("highways.{k}"));
            // The gate's bias starts at 1 (AllenNLP): layers begin close to the identity.
            let bias: Vec<f32> = (0..2 * f).map(|j| if j < f { 0.0 } else { 1.0 }).collect();
            let b = h.param("bias", &[2 * f], Init::Zeros)?;
            h.store()
                .get(&h.full_name("bias"))
                .ok_or_else(|| Error::config("highway", "bias missing"))?
                .set(&Tensor::from_vec(bias, 2 * f, b.device())?)?;
            highways.push((h.param("weight", &[2 * f, f], Init::LinearDefault)?, b));
        }
        let p = vb.pp("projection");
        let projection = (
            p.param("weight", &[config.output_dim, f], Init::LinearDefault)?,
            p.param("bias", &[config.output_dim], Init::LinearDefault)?,
        );
        Ok(Self {
            config,
            embedding,
            convs,
            highways,
            projection,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CharCnnConfig {
        &self.config
    }

    /// Token vectors (batch, tokens, output_dim) of character ids (batch, tokens, max_chars).
    pub fn forward(&self, chars: &Tensor) -> Result<Tensor> {
        let (batch, tokens, max_chars) = chars.dims3()?;
        let (n, e) = (batch * tokens, self.config.char_dim);
        let x = self
            .embedding
            .embedding(&chars.flatten_all()?)?
            .reshape((n, max_chars, e))?;
        let mut pooled = Vec::with_capacity(self.convs.len());
        for conv in &self.convs {
            // Windows of `width` characters side by side: (n, positions, width · dim), matched
            // by the Conv1d weight laid out as (filters, width, dim).
            let positions = max_chars + 1 - conv.width;
            let windows: Vec<Tensor> = (0..conv.width)
                .map(|i| x.narrow(1, i, positions))
                .collect::<candle_core::Result<_>>()?;
            let windows = Tensor::cat(&windows, D::Minus1)?;
            let count = conv.weight.dim(0)?;
            let w = conv
                .weight
                .transpose(1, 2)?
                .reshape((count, conv.width * e))?;
            let y = crate::nn::linear::linear(&windows, &w, &conv.bias)?;
            pooled.push(crate::nn::max_pool::max_over_positions(&y)?.relu()?);
        }
        let mut h = Tensor::cat(&pooled, D::Minus1)?;
        let f = self.config.features();
        for (w, b) in &self.highways {
            let projected = crate::nn::linear::linear(&h, w, b)?;
            let transform = projected.narrow(D::Minus1, 0, f)?.relu()?;
            let gate = candle_nn::ops::sigmoid(&projected.narrow(D::Minus1, f, f)?)?;
            // g ⊙ x + (1 − g) ⊙ t = t + g ⊙ (x − t)
            h = (&transform + gate.mul(&(h - &transform)?)?)?;
        }
        let out = crate::nn::linear::linear(&h, &self.projection.0, &self.projection.1)?;
        Ok(out.reshape((batch, tokens, self.config.output_dim))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_spelled_between_marks_and_cut_to_fit() {
        assert_eq!(
            char_ids("pé", 7),
            [
                BEGIN_OF_WORD,
                b'p' as u32 + 1,
                0xC3 + 1,
                0xA9 + 1,
                END_OF_WORD,
                PAD_CHAR,
                PAD_CHAR
            ]
        );
        assert_eq!(char_ids("abcdef", 5)[1..], [98, 99, 100, END_OF_WORD]);
        assert_eq!(
            char_ids(BOS, 4),
            [BEGIN_OF_WORD, SENTENCE_START, END_OF_WORD, PAD_CHAR]
        );
    }
}

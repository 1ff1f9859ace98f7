//! Causal language modelling: the notebook's `group_texts` (concatenate tokenized texts and cut
//! them into `block_size` blocks), a [`Trainable`] wrapper whose loss is next-token
//! cross-entropy, perplexity with a sliding window (the transformers perplexity guide), and a
//! unigram baseline to compare against.

use std::collections::HashMap;

use indicatif::ProgressBar;

use super::model::DecoderModel;
use crate::error::{Error, Result};
use crate::nn::{ForwardCtx, ParamStore};
use crate::train::{StepOutput, Trainable};

/// Concatenates `texts` (token ids; `separator` appended after each, when given) and cuts the
/// stream into blocks of `block_size` tokens, dropping the remainder (as the notebook does).
pub fn group_texts(texts: &[Vec<u32>], block_size: usize, separator: Option<u32>) -> Vec<Vec<u32>> {
    let mut stream = Vec::new();
    for t in texts {
        stream.extend_from_slice(t);
        stream.extend(separator);
    }
    stream
        .chunks_exact(block_size.max(1))
        .map(<[u32]>::to_vec)
        .collect()
}

/// A decoder trained on next-token prediction over equal-length blocks.
pub struct CausalLm {
    /// The model being trained.
    pub model: DecoderModel,
}

impl Trainable for CausalLm {
    type Example = Vec<u32>;

    fn params(&self) -> &ParamStore {
        self.model.params()
    }

    fn forward_batch(&self, batch: &[&Vec<u32>], ctx: &mut ForwardCtx) -> Result<StepOutput> {
        let ids: Vec<Vec<u32>> = batch.iter().map(|b| (*b).clone()).collect();
        let mask: Vec<Vec<u32>> = ids.iter().map(|r| vec![1; r.len()]).collect();
        let (loss, _) = self.model.causal_lm_loss(&ids, &mask, ctx)?;
        Ok(StepOutput {
            loss,
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

/// The result of [`perplexity`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Perplexity {
    /// `exp(mean negative log-likelihood)`.
    pub perplexity: f64,
    /// Mean negative log-likelihood per predicted token (nats).
    pub mean_nll: f64,
    /// Tokens predicted (all but the first).
    pub tokens: usize,
    /// Windows evaluated.
    pub windows: usize,
}

/// Perplexity of `model` on `ids` with windows of `max_length` tokens moved by `stride`: each
/// token is predicted once, from the window that ends with it, seeing up to `max_length − 1`
/// tokens before it (the transformers perplexity guide; `stride = max_length` gives disjoint
/// windows).
pub fn perplexity(
    model: &DecoderModel,
    ids: &[u32],
    max_length: usize,
    stride: usize,
    progress: Option<&ProgressBar>,
) -> Result<Perplexity> {
    if ids.len() < 2 {
        return Err(Error::config("text", "perplexity needs at least 2 tokens"));
    }
    if max_length < 2 || max_length > model.config.max_positions {
        return Err(Error::config(
            "max_length",
            format!(
                "{max_length} must be between 2 and the model's context of {} tokens",
                model.config.max_positions
            ),
        ));
    }
    if stride == 0 || stride > max_length {
        return Err(Error::config(
            "stride",
            format!("{stride} must be between 1 and max_length ({max_length})"),
        ));
    }
    // Scoring only: no graph is recorded, so each window's activations free as it goes.
    let _no_grad = candle_core::no_grad();
    let mut nll = 0f64;
    let mut count = 0usize;
    let mut windows = 0usize;
    let mut scored_until = 1; // token 0 is never predicted
    let mut begin = 0;
    if let Some(bar) = progress {
        bar.set_length(ids.len() as u64);
    }
    loop {
        let end = (begin + max_length).min(ids.len());
        let window = &ids[begin..end];
        let mask = vec![vec![1u32; window.len()]];
        let positions = vec![(0..window.len() as u32).collect::<Vec<_>>()];
        let logits = model.forward(
            &[window.to_vec()],
            &positions,
            &mask,
            None,
            &mut ForwardCtx::inference(),
            false,
        )?;
        let vocab = logits.dim(2)?;
        let first = scored_until.max(begin + 1);
        // Rows predicting tokens first..end are window positions first-1-begin .. end-1-begin.
        let rows = logits
            .squeeze(0)?
            .narrow(0, first - 1 - begin, end - first)?;
        let log_probs = candle_nn::ops::log_softmax(&rows, candle_core::D::Minus1)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        for (r, &t) in ids[first..end].iter().enumerate() {
            nll -= log_probs[r * vocab + t as usize] as f64;
        }
        count += end - first;
        windows += 1;
        scored_until = end;
        if let Some(bar) = progress {
            bar.set_position(end as u64);
        }
        if end == ids.len() {
            break;
        }
        begin += stride;
    }
    let mean_nll = nll / count as f64;
    Ok(Perplexity {
        perplexity: mean_nll.exp(),
        mean_nll,
        tokens: count,
        windows,
    })
}

/// A unigram model (token frequencies of a training stream, add-one smoothed over the
/// vocabulary): the baseline a language model must beat.
pub struct Unigram {
    log_probs: HashMap<u32, f64>,
    unseen: f64,
}

impl Unigram {
    /// Counts the tokens of `blocks`.
    pub fn fit(blocks: &[Vec<u32>], vocab_size: usize) -> Self {
        let mut counts: HashMap<u32, usize> = HashMap::new();
        let mut total = 0usize;
        for t in blocks.iter().flatten() {
            *counts.entry(*t).or_default() += 1;
            total += 1;
        }
        let denominator = (total + vocab_size) as f64;
        Self {
            log_probs: counts
                .into_iter()
                .map(|(t, c)| (t, ((c + 1) as f64 / denominator).ln()))
                .collect(),
            unseen: (1.0 / denominator).ln(),
        }
    }

    /// Perplexity on the tokens a causal LM predicts in `blocks` (all but each block's first).
    pub fn perplexity(&self, blocks: &[Vec<u32>]) -> f64 {
        let mut nll = 0.0;
        let mut n = 0usize;
        for t in blocks.iter().flat_map(|b| b.iter().skip(1)) {
            nll -= self.log_probs.get(t).copied().unwrap_or(self.unseen);
            n += 1;
        }
        (nll / n.max(1) as f64).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_texts_concatenates_and_drops_the_remainder() {
        let blocks = group_texts(&[vec![1, 2, 3], vec![4, 5]], 3, Some(0));
        assert_eq!(blocks, vec![vec![1, 2, 3], vec![0, 4, 5]]);
    }

    #[test]
    fn a_unigram_model_of_a_uniform_stream_has_perplexity_near_the_vocabulary() {
        let blocks: Vec<Vec<u32>> = (0..100).map(|_| (0..10).collect()).collect();
        let ppl = Unigram::fit(&blocks, 10).perplexity(&blocks);
        assert!((ppl - 10.0).abs() < 0.01, "{ppl}");
    }
}

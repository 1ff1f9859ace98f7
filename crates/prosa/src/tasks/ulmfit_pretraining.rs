//! ULMFiT's first stage, the run `prosa pretrain --arch awd-lstm` makes: a general-domain
//! AWD-LSTM language model. The corpus' segments become one token stream (`xxbos` before each,
//! lower-cased words), cut into chunks of `max_length` tokens, every N-th held out; the
//! vocabulary is the corpus' most frequent words (seen twice or more); training uses the
//! slanted triangular rate; validation perplexity per evaluation beside a unigram model's.

use std::path::PathBuf;

use serde::Serialize;

use super::ending::{metric_curve, save_run, write_results};
use crate::data::corpus::read_documents;
use crate::error::{Error, Result};
use crate::fsio;
use crate::models::ulmfit::awd_lstm::{AwdDropouts, AwdLstmConfig};
use crate::models::ulmfit::{build_vocab, chunks, tokenize, AwdLstmLm, LmChunk};
use crate::train::{Trainable, Trainer, TrainingArgs};

/// What to pretrain on and how.
#[derive(Debug, Clone)]
pub struct AwdLstmPretrainSpec {
    /// A text/Markdown file or a folder of them.
    pub corpus: PathBuf,
    /// Words of the vocabulary (`xxunk`, `xxpad`, `xxbos` included).
    pub vocab_size: usize,
    /// Embedding width (also the last LSTM layer's).
    pub emb_size: usize,
    /// Width of the inner LSTM layers.
    pub hidden_size: usize,
    /// LSTM layers.
    pub num_layers: usize,
    /// Tokens per chunk (fastai's `bptt`).
    pub max_length: usize,
    /// Every N-th chunk is held out for validation.
    pub validation_every: usize,
    /// Multiplies fastai's language-model dropouts.
    pub drop_mult: f32,
    /// Trainer settings.
    pub training: TrainingArgs,
}

/// What the run produced.
#[derive(Debug, Clone, Serialize)]
pub struct AwdLstmPretrainResult {
    /// The saved language-model folder.
    pub model_dir: PathBuf,
    /// Chunks for training and validation.
    pub chunks: (usize, usize),
    /// Tokens of the stream.
    pub corpus_tokens: usize,
    /// Words of the vocabulary.
    pub vocabulary: usize,
    /// Parameters.
    pub num_parameters: usize,
    /// (step, validation perplexity) at each evaluation.
    pub curve: Vec<(usize, f64)>,
    /// Validation perplexity of the add-one unigram model of the training chunks: the baseline.
    pub unigram_perplexity: f64,
    /// Seconds of training.
    pub train_seconds: f64,
}

/// Runs the pretraining.
pub fn run(spec: &AwdLstmPretrainSpec, resume: bool) -> Result<AwdLstmPretrainResult> {
    spec.training.check_metric(&["loss", "perplexity"])?;
    if spec.max_length < 2 || spec.validation_every < 2 || spec.vocab_size < 4 {
        return Err(Error::config(
            "max_length/validation_every/vocab_size",
            "chunks need 2 or more tokens, validation_every 2 or more, a vocabulary of 4 or more",
        ));
    }
    let device = spec.training.device.open()?;
    fsio::create_dir(&spec.training.output_dir)?;
    let documents = read_documents(&spec.corpus)?;
    let segments: Vec<&String> = documents.iter().flat_map(|d| d.segments.iter()).collect();
    let tokens: Vec<Vec<String>> = segments.iter().map(|s| tokenize(s)).collect();
    let vocab = build_vocab(
        tokens.iter().flatten().map(String::as_str),
        spec.vocab_size,
        2,
    );
    let config = AwdLstmConfig {
        vocab_size: vocab.len(),
        emb_size: spec.emb_size,
        hidden_size: spec.hidden_size,
        num_layers: spec.num_layers,
        dropouts: AwdDropouts::LANGUAGE_MODEL.scaled(spec.drop_mult),
    };
    let model = AwdLstmLm::new(config, vocab, spec.training.seed, &device)?;
    let stream = model.stream(&segments);
    let (mut train, mut validation) = (Vec::new(), Vec::new());
    for (i, c) in chunks(&stream, spec.max_length).into_iter().enumerate() {
        if i % spec.validation_every == spec.validation_every - 1 {
            validation.push(c);
        } else {
            train.push(c);
        }
    }
    if train.is_empty() || validation.is_empty() {
        return Err(Error::config(
            "corpus",
            format!(
                "{} holds {} tokens: too few for {}-token chunks with every {}th held out",
                spec.corpus.display(),
                stream.len(),
                spec.max_length,
                spec.validation_every
            ),
        ));
    }
    let unigram_perplexity = unigram_perplexity(&train, &validation, model.vocab().len());
    let trainer = Trainer::new(spec.training.clone(), Vec::new())?;
    let outcome = trainer.train(&model, &train, Some(&validation), resume)?;
    let saved = save_run(&spec.training, &outcome, "AWD-LSTM language model", |dir| {
        model.save_pretrained(dir)
    })?;
    let curve = metric_curve(&outcome, "eval_perplexity");
    let result = AwdLstmPretrainResult {
        model_dir: saved.model_dir,
        chunks: (train.len(), validation.len()),
        corpus_tokens: stream.len(),
        vocabulary: model.vocab().len(),
        num_parameters: model.params().num_parameters(),
        curve,
        unigram_perplexity,
        train_seconds: outcome.train_seconds,
    };
    write_results(&spec.training, result)
}

/// Perplexity on the validation chunks' targets of the add-one-smoothed unigram distribution
/// of the training chunks' targets.
pub fn unigram_perplexity(train: &[LmChunk], validation: &[LmChunk], vocab: usize) -> f64 {
    let mut counts = vec![1.0f64; vocab];
    for c in train {
        for &t in &c.ids[1..] {
            counts[t as usize] += 1.0;
        }
    }
    let total: f64 = counts.iter().sum();
    let (mut nll, mut n) = (0.0, 0usize);
    for c in validation {
        for &t in &c.ids[1..] {
            nll -= (counts[t as usize] / total).ln();
            n += 1;
        }
    }
    (nll / n.max(1) as f64).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unigram_baseline_counts_targets_with_add_one() {
        let c = |ids: &[u32]| LmChunk { ids: ids.to_vec() };
        // Training targets: 1, 1, 2 → counts (1, 3, 2) of 6 over a 3-word vocabulary.
        let p = unigram_perplexity(&[c(&[0, 1, 1, 2])], &[c(&[0, 1, 2])], 3);
        let expected = (-((3f64 / 6.0).ln() + (2f64 / 6.0).ln()) / 2.0).exp();
        assert!((p - expected).abs() < 1e-12);
    }
}

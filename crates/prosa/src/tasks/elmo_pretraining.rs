//! ELMo pretraining, the run `prosa pretrain --arch elmo` makes: the corpus' segments split into
//! words (case kept, punctuation apart) and cut into sentences, every N-th held out; the softmax
//! vocabulary of the most frequent training words; the biLM trained with the Trainer on both
//! directions' LM loss; validation perplexity per evaluation beside a unigram model's (the
//! baseline an LM must beat).

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

use super::ending::{metric_curve, save_run, write_results};
use crate::data::corpus::read_documents;
use crate::error::{Error, Result};
use crate::fsio;
use crate::models::elmo::char_cnn::{BOS, EOS};
use crate::models::elmo::{build_vocab, words, ElmoBiLm, ElmoConfig, UNK};
use crate::train::{Trainer, TrainingArgs};

/// What to pretrain on and how.
#[derive(Debug, Clone)]
pub struct ElmoPretrainSpec {
    /// A text/Markdown file or a folder of them.
    pub corpus: PathBuf,
    /// Words of the softmax (`<unk>`, `<S>`, `</S>` included).
    pub vocab_size: usize,
    /// LSTM width per direction (also the token vectors' width).
    pub hidden: usize,
    /// LSTM layers per direction.
    pub layers: usize,
    /// Words per sentence: longer segments are cut.
    pub max_words: usize,
    /// Every N-th sentence is held out for validation.
    pub validation_every: usize,
    /// Dropout on token vectors, between layers and before the softmax.
    pub dropout: f32,
    /// Trainer settings.
    pub training: TrainingArgs,
}

/// What the run produced.
#[derive(Debug, Clone, Serialize)]
pub struct ElmoPretrainResult {
    /// The saved biLM folder.
    pub model_dir: PathBuf,
    /// Sentences for training and validation.
    pub sentences: (usize, usize),
    /// Words of the corpus.
    pub corpus_words: usize,
    /// Words of the softmax.
    pub vocabulary: usize,
    /// Parameters.
    pub num_parameters: usize,
    /// (step, validation perplexity) at each evaluation.
    pub curve: Vec<(usize, f64)>,
    /// The validation perplexity of a unigram model of the training words (same vocabulary,
    /// both directions' targets): the baseline.
    pub unigram_perplexity: f64,
    /// Seconds of training.
    pub train_seconds: f64,
}

/// Runs the pretraining.
pub fn run(spec: &ElmoPretrainSpec, resume: bool) -> Result<ElmoPretrainResult> {
    spec.training.check_metric(&["loss", "perplexity"])?;
    if spec.max_words < 2 || spec.validation_every < 2 {
        return Err(Error::config(
            "max_words/validation_every",
            "sentences need at least 2 words and validation_every at least 2",
        ));
    }
    let device = spec.training.device.open()?;
    fsio::create_dir(&spec.training.output_dir)?;
    let documents = read_documents(&spec.corpus)?;
    let (mut train, mut validation, mut corpus_words) = (Vec::new(), Vec::new(), 0);
    let mut n = 0;
    for segment in documents.iter().flat_map(|d| d.segments.iter()) {
        let w = words(segment);
        corpus_words += w.len();
        for sentence in w.chunks(spec.max_words) {
            n += 1;
            if n % spec.validation_every == 0 {
                validation.push(sentence.to_vec());
            } else {
                train.push(sentence.to_vec());
            }
        }
    }
    if train.is_empty() || validation.is_empty() {
        return Err(Error::config(
            "corpus",
            format!(
                "{} holds {corpus_words} words: too few sentences to hold every {}th out",
                spec.corpus.display(),
                spec.validation_every
            ),
        ));
    }
    let vocab = build_vocab(&train, spec.vocab_size, 1);
    let mut config = ElmoConfig::small(spec.hidden, spec.layers, vocab.len());
    config.dropout = spec.dropout;
    let unigram_perplexity = unigram_perplexity(&train, &validation, &vocab);
    let model = ElmoBiLm::new(config, vocab, spec.training.seed, &device)?;
    let trainer = Trainer::new(spec.training.clone(), Vec::new())?;
    let outcome = trainer.train(&model, &train, Some(&validation), resume)?;
    let saved = save_run(&spec.training, &outcome, "ELMo biLM pretraining", |dir| {
        model.save_pretrained(dir)
    })?;
    let curve = metric_curve(&outcome, "eval_perplexity");
    let result = ElmoPretrainResult {
        model_dir: saved.model_dir,
        sentences: (train.len(), validation.len()),
        corpus_words,
        vocabulary: model.vocab().len(),
        num_parameters: crate::train::Trainable::params(&model).num_parameters(),
        curve,
        unigram_perplexity,
        train_seconds: outcome.train_seconds,
    };
    write_results(&spec.training, result)
}

/// Perplexity on `validation` of the add-one-smoothed unigram distribution of the training
/// targets, over the biLM's targets: each sentence's words plus `</S>` (forward) and `<S>`
/// plus its words (backward), words outside `vocab` counted as `<unk>`.
fn unigram_perplexity(train: &[Vec<String>], validation: &[Vec<String>], vocab: &[String]) -> f64 {
    let index: HashMap<&str, usize> = vocab
        .iter()
        .enumerate()
        .map(|(i, w)| (w.as_str(), i))
        .collect();
    let id = |w: &str| index.get(w).copied().unwrap_or(index[UNK]);
    let mut counts = vec![1.0f64; vocab.len()];
    for s in train {
        for w in s {
            counts[id(w)] += 2.0;
        }
        counts[id(BOS)] += 1.0;
        counts[id(EOS)] += 1.0;
    }
    let total: f64 = counts.iter().sum();
    let (mut nll, mut n) = (0.0, 0usize);
    for s in validation {
        let targets = s
            .iter()
            .chain(s.iter())
            .map(String::as_str)
            .chain([BOS, EOS]);
        for w in targets {
            nll -= (counts[id(w)] / total).ln();
            n += 1;
        }
    }
    (nll / n.max(1) as f64).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uniform_corpus_has_the_unigram_perplexity_of_its_vocabulary() {
        let s = |w: &[&str]| w.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let train = vec![s(&["a", "b"]), s(&["b", "a"])];
        let vocab = build_vocab(&train, 10, 1);
        let p = unigram_perplexity(&train, &train, &vocab);
        // Counts with add-one: a 5, b 5, <S> 3, </S> 3, <unk> 1 of 17.
        let expected = (-(2.0 * (5f64 / 17.0).ln() * 2.0 + (3f64 / 17.0).ln() * 2.0) / 6.0).exp();
        assert!((p - expected).abs() < 1e-9, "{p} vs {expected}");
    }
}

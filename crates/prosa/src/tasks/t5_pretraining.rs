//! T5 pretraining from scratch, the run `prosa pretrain --arch t5` makes: a T5 tokenizer
//! (Unigram with sentinels) trained on the corpus, each document's tokens cut into chunks,
//! span corruption (15% noise, mean span 3) with the Trainer, the validation loss curve, and the
//! model filling the spans of held-out chunks.

use std::path::PathBuf;

use rand::SeedableRng;
use serde::Serialize;

use super::ending::{metric_curve, save_run, write_results};
use crate::data::corpus::read_documents;
use crate::error::{Error, Result};
use crate::fsio;
use crate::generation::{generate, GenerationConfig};
use crate::models::seq2seq::t5::scratch::{self, T5Size};
use crate::models::seq2seq::t5::span_corruption::SpanCorruption;
use crate::models::seq2seq::t5::T5ForConditionalGeneration;
use crate::models::seq2seq::TranslationExample;
use crate::text::SubwordTokenizer;
use crate::train::{Trainer, TrainingArgs};

/// What to pretrain on and how.
#[derive(Debug, Clone)]
pub struct T5PretrainSpec {
    /// A text/Markdown file or a folder of them.
    pub corpus: PathBuf,
    /// Unigram pieces (the 100 sentinels come on top).
    pub vocab_size: usize,
    /// Model sizes.
    pub size: T5Size,
    /// Tokens per chunk before corruption.
    pub chunk_length: usize,
    /// Noise density and mean span length.
    pub corruption: SpanCorruption,
    /// Every N-th chunk is held out for validation and the samples.
    pub validation_every: usize,
    /// Differently corrupted copies of each training chunk (BERT's `dupe_factor`): with one,
    /// every epoch sees the same spans hidden, and a small corpus is soon memorised.
    pub corruptions: usize,
    /// Trainer settings.
    pub training: TrainingArgs,
}

/// One held-out chunk: the corrupted input, the spans it hides and the model's guess.
#[derive(Debug, Clone, Serialize)]
pub struct SpanSample {
    /// The input with sentinels.
    pub input: String,
    /// The hidden spans behind their sentinels.
    pub expected: String,
    /// The model's greedy output.
    pub predicted: String,
}

/// What the run produced.
#[derive(Debug, Clone, Serialize)]
pub struct T5PretrainResult {
    /// The saved `T5ForConditionalGeneration` folder.
    pub model_dir: PathBuf,
    /// Chunks for training and validation.
    pub chunks: (usize, usize),
    /// Tokens of the corpus.
    pub corpus_tokens: usize,
    /// Parameters.
    pub num_parameters: usize,
    /// (step, validation loss) at each evaluation.
    pub curve: Vec<(usize, f64)>,
    /// Span filling on held-out chunks.
    pub samples: Vec<SpanSample>,
    /// Seconds of training.
    pub train_seconds: f64,
}

/// Runs the pretraining.
pub fn run(spec: &T5PretrainSpec, resume: bool) -> Result<T5PretrainResult> {
    spec.training.check_metric(&["loss"])?;
    if spec.corruptions == 0 {
        return Err(Error::config(
            "corruptions",
            "each chunk needs at least one corrupted copy",
        ));
    }
    if !(spec.corruption.noise_density > 0.0 && spec.corruption.noise_density < 1.0) {
        return Err(Error::config(
            "noise_density",
            format!(
                "must be in (0, 1) (T5 corrupts 0.15 of the tokens), got {}",
                spec.corruption.noise_density
            ),
        ));
    }
    if !(spec.corruption.mean_span_length >= 1.0 && spec.corruption.mean_span_length.is_finite()) {
        return Err(Error::config(
            "mean_span_length",
            format!(
                "must be at least 1 token (T5 uses 3), got {}",
                spec.corruption.mean_span_length
            ),
        ));
    }
    if spec.chunk_length < 8 || spec.validation_every < 2 {
        return Err(Error::config(
            "chunk_length/validation_every",
            "chunks need at least 8 tokens and validation_every at least 2",
        ));
    }
    let device = spec.training.device.open()?;
    fsio::create_dir(&spec.training.output_dir)?;
    let documents = read_documents(&spec.corpus)?;
    let segments = || documents.iter().flat_map(|d| d.segments.iter());
    let tokenizer = scratch::train_tokenizer(segments(), spec.vocab_size)?;
    let (chunks, corpus_tokens) = chunks(&documents, &tokenizer, spec.chunk_length)?;
    let (mut train_chunks, mut held_out) = (Vec::new(), Vec::new());
    for (i, c) in chunks.into_iter().enumerate() {
        if i % spec.validation_every == spec.validation_every - 1 {
            held_out.push(c);
        } else {
            train_chunks.push(c);
        }
    }
    if train_chunks.is_empty() || held_out.is_empty() {
        return Err(Error::config(
            "corpus",
            format!(
                "{} holds {corpus_tokens} tokens: too few for {}-token chunks with every {}th held out",
                spec.corpus.display(),
                spec.chunk_length,
                spec.validation_every
            ),
        ));
    }
    let sentinels = scratch::sentinel_ids(&tokenizer);
    let eos = tokenizer
        .token_to_id("</s>")
        .ok_or_else(|| Error::Tokenizer("no </s> after training".into()))?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(spec.training.seed);
    let mut corrupt = |chunks: &[Vec<u32>]| -> Vec<TranslationExample> {
        chunks
            .iter()
            .map(|c| spec.corruption.example(c, &sentinels, eos, &mut rng))
            .collect()
    };
    let mut train = Vec::with_capacity(train_chunks.len() * spec.corruptions);
    for _ in 0..spec.corruptions {
        train.extend(corrupt(&train_chunks));
    }
    let validation = corrupt(&held_out);
    let mut model = spec.size.model(tokenizer, &device, spec.training.seed)?;
    // Without its tokenizer the model reports no BLEU: span filling is no translation.
    let tokenizer = model.tokenizer.take();
    let trainer = Trainer::new(spec.training.clone(), Vec::new())?;
    let outcome = trainer.train(&model, &train, Some(&validation), resume)?;
    model.tokenizer = tokenizer;
    let saved = save_run(
        &spec.training,
        &outcome,
        "T5 pretraining (span corruption)",
        |dir| model.save_pretrained(dir),
    )?;
    let curve = metric_curve(&outcome, "eval_loss");
    let result = T5PretrainResult {
        model_dir: saved.model_dir,
        chunks: (train.len(), validation.len()),
        corpus_tokens,
        num_parameters: model.params().num_parameters(),
        curve,
        samples: samples(&model, &validation[..validation.len().min(6)])?,
        train_seconds: outcome.train_seconds,
    };
    write_results(&spec.training, result)
}

/// Each document's tokens (segments joined) cut into chunks of `length`; a last chunk shorter
/// than a quarter of it is dropped. Also returns the corpus' token count.
fn chunks(
    documents: &[crate::data::corpus::Document],
    tokenizer: &SubwordTokenizer,
    length: usize,
) -> Result<(Vec<Vec<u32>>, usize)> {
    let (mut out, mut total) = (Vec::new(), 0);
    for d in documents {
        let mut tokens = Vec::new();
        for s in &d.segments {
            tokens.extend(tokenizer.encode(s, false)?);
        }
        total += tokens.len();
        out.extend(
            tokens
                .chunks(length)
                .filter(|c| c.len() * 4 >= length)
                .map(<[u32]>::to_vec),
        );
    }
    Ok((out, total))
}

/// The model's greedy span filling of `examples`, decoded with the sentinels shown.
fn samples(
    model: &T5ForConditionalGeneration,
    examples: &[TranslationExample],
) -> Result<Vec<SpanSample>> {
    let tokenizer = crate::generation::Generator::tokenizer(model)?;
    let sources: Vec<Vec<u32>> = examples.iter().map(|e| e.source.clone()).collect();
    let g = GenerationConfig {
        max_new_tokens: Some(64),
        ..model.generation.clone()
    };
    let out = generate(model, &sources, &g, None)?;
    examples
        .iter()
        .zip(&out.new_tokens)
        .map(|(e, predicted)| {
            Ok(SpanSample {
                input: tokenizer.decode(&e.source, false)?,
                expected: tokenizer.decode(&e.target, false)?,
                predicted: tokenizer.decode(predicted, false)?,
            })
        })
        .collect()
}

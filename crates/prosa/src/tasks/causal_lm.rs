//! The causal-LM task, `prosa train --task causal-lm`: a corpus (`data.path`) read as
//! documents, a byte-level BPE vocabulary trained on the training part (or the tokenizer of the
//! decoder in `model.pretrained`, fine-tuned), `group_texts` blocks, the Trainer with validation
//! perplexity, the unigram baseline on the same validation tokens, curves, and samples at
//! several temperatures.

use std::path::{Path, PathBuf};

use rand::seq::index::sample;
use rand::SeedableRng;
use serde::Serialize;

use super::ending::{save_run, write_results, MODEL_DIR};
use super::experiment::Experiment;
use crate::data::corpus::read_documents;
use crate::error::{Error, Result};
use crate::fsio;
use crate::generation::{generate, GenerationConfig};
use crate::models::decoder::lm::{group_texts, CausalLm, Unigram};
use crate::models::decoder::{DecoderConfig, DecoderFamily, DecoderModel};
use crate::text::{SubwordKind, SubwordTokenizer, SubwordTrainConfig};
use crate::train::Trainer;

/// The end-of-text token of tokenizers trained here (GPT-2's).
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// One sample of the trained model.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Sampling temperature (top-k 50, top-p 0.95).
    pub temperature: f32,
    /// The prompt and its continuation.
    pub text: String,
}

/// What the run produced.
#[derive(Debug, Clone, Serialize)]
pub struct CausalLmResult {
    /// The saved model folder (config.json, model.safetensors, tokenizer.json…).
    pub model_dir: PathBuf,
    /// Training and validation blocks.
    pub blocks: (usize, usize),
    /// Tokens per block.
    pub block_size: usize,
    /// Parameters.
    pub num_parameters: usize,
    /// (step, validation loss, validation perplexity) at each evaluation.
    pub curve: Vec<(usize, f64, f64)>,
    /// Validation perplexity of the model kept at the end.
    pub validation_perplexity: f64,
    /// Validation perplexity of a unigram model of the training tokens (same tokens).
    pub unigram_perplexity: f64,
    /// Samples at several temperatures.
    pub samples: Vec<Sample>,
    /// Seconds of training.
    pub train_seconds: f64,
    /// Training tokens processed per second.
    pub tokens_per_second: f64,
}

/// The corpus as training and validation texts (one text per document, or per paragraph when
/// the corpus is a single document); `data.max_rows` keeps a seeded random subset of the texts,
/// in their order.
fn split_corpus(e: &Experiment, corpus: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let documents = read_documents(corpus)?;
    let mut texts: Vec<String> = if documents.len() > 1 {
        documents.iter().map(|d| d.segments.join("\n\n")).collect()
    } else {
        documents[0].segments.clone()
    };
    if let Some(n) = e.data.max_rows.filter(|&n| n < texts.len()) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(e.training.seed);
        let mut keep = sample(&mut rng, texts.len(), n).into_vec();
        keep.sort_unstable();
        texts = keep
            .into_iter()
            .map(|i| std::mem::take(&mut texts[i]))
            .collect();
    }
    let held_out = ((texts.len() as f64 * e.data.validation_split).ceil() as usize).max(1);
    if texts.len() <= held_out {
        return Err(Error::config(
            "data.validation_split",
            format!(
                "{}: {} texts are too few to hold out {held_out} for validation",
                corpus.display(),
                texts.len()
            ),
        ));
    }
    let mut train = texts;
    let validation = train.split_off(train.len() - held_out);
    Ok((train, validation))
}

/// Runs the training.
pub fn run(e: &Experiment, resume: bool) -> Result<CausalLmResult> {
    let corpus = e.data.path.clone().ok_or_else(|| {
        Error::config(
            "data.path",
            "causal-lm training needs a corpus: a text/Markdown file or a folder of them",
        )
    })?;
    let (m, out) = (&e.model, &e.training.output_dir);
    let family = match m.arch.as_str() {
        "gpt2" | "gpt" => DecoderFamily::Gpt2,
        "llama" => DecoderFamily::Llama,
        other => {
            return Err(Error::config(
                "model.arch",
                format!("causal-lm trains gpt2 (or fine-tunes model.pretrained), not '{other}'"),
            ))
        }
    };
    let device = e.training.device.open()?;
    fsio::create_dir(out)?;
    let (train_texts, validation_texts) = split_corpus(e, &corpus)?;
    let mut model = match &m.pretrained {
        Some(dir) => {
            let mut model = DecoderModel::from_pretrained(dir, &device)?;
            model.tokenizer()?;
            model.set_dropout(m.dropout);
            model
        }
        None => {
            let tokenizer = SubwordTokenizer::train_from_texts(
                &SubwordTrainConfig::new(SubwordKind::Bpe, m.vocab_size),
                train_texts.iter().map(String::as_str),
            )?;
            let eos = tokenizer
                .token_to_id(END_OF_TEXT)
                .ok_or_else(|| Error::Tokenizer(format!("{END_OF_TEXT} missing after training")))?;
            let mut config = match family {
                DecoderFamily::Gpt2 => DecoderConfig::gpt2(
                    tokenizer.vocab_size(),
                    m.hidden_size,
                    m.num_layers,
                    m.num_heads,
                    m.block_size,
                ),
                DecoderFamily::Llama => {
                    return Err(Error::config(
                        "arch",
                        "training from scratch builds a GPT-2 (--arch gpt2); fine-tune a Llama with --pretrained",
                    ))
                }
            };
            config.bos_token_id = Some(eos);
            config.eos_token_ids = vec![eos];
            config.dropout = m.dropout;
            config.raw = config.to_json();
            let mut model = DecoderModel::new(config, &device, e.training.seed)?;
            model.tokenizer = Some(tokenizer);
            model
        }
    };
    if m.block_size > model.config.max_positions {
        return Err(Error::config(
            "block_size",
            format!(
                "{} is longer than the model's context of {} tokens",
                m.block_size, model.config.max_positions
            ),
        ));
    }
    let tokenizer = model.tokenizer()?.clone();
    let separator = model.generation.eos_token_ids.first().copied();
    let encode = |texts: &[String]| -> Result<Vec<Vec<u32>>> {
        texts.iter().map(|t| tokenizer.encode(t, false)).collect()
    };
    let train = group_texts(&encode(&train_texts)?, m.block_size, separator);
    let validation = group_texts(&encode(&validation_texts)?, m.block_size, separator);
    if train.is_empty() || validation.is_empty() {
        return Err(Error::config(
            "block_size",
            format!(
                "the corpus gives {} training and {} validation blocks of {} tokens; use a smaller --block-size",
                train.len(),
                validation.len(),
                m.block_size
            ),
        ));
    }
    let unigram_perplexity = Unigram::fit(&train, model.config.vocab_size).perplexity(&validation);
    model.source = out.join(MODEL_DIR);
    let lm = CausalLm { model };
    let trainer = Trainer::new(e.training.clone(), Vec::new())?;
    let outcome = trainer.train(&lm, &train, Some(&validation), resume)?;
    let validation_perplexity = trainer.evaluate(&lm, &validation)?["eval_perplexity"];
    let saved = save_run(&e.training, &outcome, "Causal language model", |dir| {
        lm.model.save_pretrained(dir)
    })?;
    let curve = outcome
        .state
        .history
        .metric_pairs("eval_loss", "eval_perplexity");
    let samples = samples(&lm.model, e)?;
    let tokens = (train.len() * m.block_size * e.training.num_train_epochs) as f64;
    let result = CausalLmResult {
        model_dir: saved.model_dir,
        blocks: (train.len(), validation.len()),
        block_size: m.block_size,
        num_parameters: lm.model.params().num_parameters(),
        curve,
        validation_perplexity,
        unigram_perplexity,
        samples,
        train_seconds: outcome.train_seconds,
        tokens_per_second: tokens / outcome.train_seconds.max(1e-9),
    };
    write_results(&e.training, result)
}

/// Samples of the trained model at each temperature (top-k 50, top-p 0.95, seeded).
fn samples(model: &DecoderModel, e: &Experiment) -> Result<Vec<Sample>> {
    let tokenizer = model.tokenizer()?;
    let spec = &e.samples;
    let prompt = tokenizer.encode(&spec.prompt, false)?;
    spec.temperatures
        .iter()
        .map(|&temperature| {
            let g = GenerationConfig {
                do_sample: true,
                temperature,
                top_p: 0.95,
                max_new_tokens: Some(spec.max_new_tokens),
                seed: e.training.seed,
                ..model.generation.clone()
            };
            let out = generate(model, std::slice::from_ref(&prompt), &g, None)?;
            let continuation = tokenizer.decode(&out.new_tokens[0], true)?;
            Ok(Sample {
                temperature,
                text: format!("{}{}", spec.prompt, continuation),
            })
        })
        .collect()
}

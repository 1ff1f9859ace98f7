//! Causal-LM training, the run `prosa train --task causal-lm` makes: a corpus read as documents,
//! a byte-level BPE vocabulary trained on the training part (or the tokenizer of a model being
//! fine-tuned), `group_texts` blocks, the Trainer with validation perplexity, the unigram
//! baseline on the same validation tokens, curves, and samples at several temperatures.

use std::path::PathBuf;

use candle_core::Device;
use serde::Serialize;

use crate::data::corpus::read_documents;
use crate::error::{Error, Result};
use crate::fsio;
use crate::models::decoder::lm::{group_texts, CausalLm, Unigram};
use crate::models::decoder::{generate, DecoderConfig, DecoderFamily, DecoderModel};
use crate::report;
use crate::text::{SubwordKind, SubwordTokenizer, SubwordTrainConfig};
use crate::train::{Trainer, TrainingArgs};

/// The end-of-text token of tokenizers trained here (GPT-2's).
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// The size of a model trained from scratch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GptSize {
    /// Blocks.
    pub layers: usize,
    /// Residual width.
    pub hidden: usize,
    /// Attention heads.
    pub heads: usize,
}

/// What to train on and how.
#[derive(Debug, Clone)]
pub struct CausalLmSpec {
    /// A text/Markdown file or a folder of them.
    pub corpus: PathBuf,
    /// Fine-tune this decoder folder instead of training from scratch.
    pub pretrained: Option<PathBuf>,
    /// Architecture of a model trained from scratch.
    pub family: DecoderFamily,
    /// Its size.
    pub size: GptSize,
    /// BPE vocabulary size of a tokenizer trained from scratch.
    pub vocab_size: usize,
    /// Tokens per training block (and the context of a model trained from scratch).
    pub block_size: usize,
    /// Fraction of the documents (the last ones by path; or of the paragraphs, for a single
    /// document) held out for validation.
    pub validation_fraction: f64,
    /// Sampling temperatures of the samples written at the end.
    pub temperatures: Vec<f32>,
    /// The prompt of the samples.
    pub sample_prompt: String,
    /// New tokens per sample.
    pub sample_tokens: usize,
    /// Trainer settings.
    pub training: TrainingArgs,
}

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
/// the corpus is a single document).
fn split_corpus(spec: &CausalLmSpec) -> Result<(Vec<String>, Vec<String>)> {
    let documents = read_documents(&spec.corpus)?;
    let texts: Vec<String> = if documents.len() > 1 {
        documents.iter().map(|d| d.segments.join("\n\n")).collect()
    } else {
        documents[0].segments.clone()
    };
    let held_out = ((texts.len() as f64 * spec.validation_fraction).ceil() as usize).max(1);
    if texts.len() <= held_out {
        return Err(Error::config(
            "validation_fraction",
            format!(
                "{}: {} texts are too few to hold out {held_out} for validation",
                spec.corpus.display(),
                texts.len()
            ),
        ));
    }
    let mut train = texts;
    let validation = train.split_off(train.len() - held_out);
    Ok((train, validation))
}

/// Runs the training.
pub fn run(spec: &CausalLmSpec, resume: bool) -> Result<CausalLmResult> {
    let out = &spec.training.output_dir;
    fsio::create_dir(out)?;
    let (train_texts, validation_texts) = split_corpus(spec)?;
    let device = Device::Cpu;
    let mut model = match &spec.pretrained {
        Some(dir) => {
            let model = DecoderModel::from_pretrained(dir, &device)?;
            model.tokenizer()?;
            model
        }
        None => {
            let tokenizer = SubwordTokenizer::train_from_texts(
                &SubwordTrainConfig::new(SubwordKind::Bpe, spec.vocab_size),
                train_texts.iter().map(String::as_str),
            )?;
            let eos = tokenizer
                .token_to_id(END_OF_TEXT)
                .ok_or_else(|| Error::Tokenizer(format!("{END_OF_TEXT} missing after training")))?;
            let mut config = match spec.family {
                DecoderFamily::Gpt2 => DecoderConfig::gpt2(
                    tokenizer.vocab_size(),
                    spec.size.hidden,
                    spec.size.layers,
                    spec.size.heads,
                    spec.block_size,
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
            config.raw = config.to_json();
            let mut model = DecoderModel::new(config, &device, spec.training.seed)?;
            model.generation =
                crate::models::decoder::GenerationConfig::from_model_config(&model.config);
            model.tokenizer = Some(tokenizer);
            model
        }
    };
    if spec.block_size > model.config.max_positions {
        return Err(Error::config(
            "block_size",
            format!(
                "{} is longer than the model's context of {} tokens",
                spec.block_size, model.config.max_positions
            ),
        ));
    }
    let tokenizer = model.tokenizer()?.clone();
    let separator = model.generation.eos_token_ids.first().copied();
    let encode = |texts: &[String]| -> Result<Vec<Vec<u32>>> {
        texts.iter().map(|t| tokenizer.encode(t, false)).collect()
    };
    let train = group_texts(&encode(&train_texts)?, spec.block_size, separator);
    let validation = group_texts(&encode(&validation_texts)?, spec.block_size, separator);
    if train.is_empty() || validation.is_empty() {
        return Err(Error::config(
            "block_size",
            format!(
                "the corpus gives {} training and {} validation blocks of {} tokens; use a smaller --block-size",
                train.len(),
                validation.len(),
                spec.block_size
            ),
        ));
    }
    let unigram_perplexity = Unigram::fit(&train, model.config.vocab_size).perplexity(&validation);
    model.source = out.join("model");
    let lm = CausalLm { model };
    let trainer = Trainer::new(spec.training.clone(), Vec::new())?;
    let outcome = trainer.train(&lm, &train, Some(&validation), resume)?;
    let validation_perplexity = trainer.evaluate(&lm, &validation)?["eval_perplexity"];
    let model_dir = out.join("model");
    lm.model.save_pretrained(&model_dir)?;
    outcome.state.history.save(&model_dir)?;
    report::learning_curves_png(
        &outcome.state.history,
        "Causal language model",
        &out.join("learning_curves.png"),
    )?;
    let curve = outcome
        .state
        .history
        .metric_pairs("eval_loss", "eval_perplexity");
    let samples = samples(&lm.model, spec)?;
    let tokens = (train.len() * spec.block_size * spec.training.num_train_epochs) as f64;
    let result = CausalLmResult {
        model_dir,
        blocks: (train.len(), validation.len()),
        block_size: spec.block_size,
        num_parameters: lm.model.params().num_parameters(),
        curve,
        validation_perplexity,
        unigram_perplexity,
        samples,
        train_seconds: outcome.train_seconds,
        tokens_per_second: tokens / outcome.train_seconds.max(1e-9),
    };
    fsio::write_json(&out.join("causal_lm.json"), &result)?;
    Ok(result)
}

/// Samples of the trained model at each temperature (top-k 50, top-p 0.95, seeded).
fn samples(model: &DecoderModel, spec: &CausalLmSpec) -> Result<Vec<Sample>> {
    let tokenizer = model.tokenizer()?;
    let prompt = tokenizer.encode(&spec.sample_prompt, false)?;
    spec.temperatures
        .iter()
        .map(|&temperature| {
            let g = crate::models::decoder::GenerationConfig {
                do_sample: true,
                temperature,
                top_p: 0.95,
                max_new_tokens: Some(spec.sample_tokens),
                seed: spec.training.seed,
                ..model.generation.clone()
            };
            let out = generate(model, std::slice::from_ref(&prompt), &g, None)?;
            let continuation = tokenizer.decode(&out.new_tokens[0], true)?;
            Ok(Sample {
                temperature,
                text: format!("{}{}", spec.sample_prompt, continuation),
            })
        })
        .collect()
}

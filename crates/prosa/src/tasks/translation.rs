//! The translation task, `prosa train --task translation --arch rnn|rnn-attention|transformer`:
//! English → Portuguese pairs (a TSV/JSONL file of `data.path`, or the gettext catalogues
//! fetched by the setup script) split by catalogue, a byte-level BPE vocabulary shared by both
//! languages, the chosen encoder–decoder trained with label smoothing, BLEU at each evaluation, and at the end BLEU and chrF on the held-out catalogues — greedy and with
//! beam search — beside the copy baseline (the source as its own translation).

use std::path::PathBuf;

use rand::seq::index::sample;
use rand::SeedableRng;
use serde::Serialize;

use super::ending::{save_run, write_results};
use super::experiment::Experiment;
use crate::data::parallel::{self, Pair};
use crate::error::{Error, Result};
use crate::generation::{GenerationConfig, Generator};
use crate::metrics::{bleu, chrf};
use crate::models::seq2seq::rnn::{RnnTranslator, RnnTranslatorConfig};
use crate::models::seq2seq::t5::scratch::{self, T5Size};
use crate::models::seq2seq::t5::T5ForConditionalGeneration;
use crate::models::seq2seq::translator::{
    TransformerTranslator, TranslatorConfig, MODEL_TYPE, SPECIAL_TOKENS,
};
use crate::models::seq2seq::{TranslationExample, Translator};
use crate::text::{SubwordKind, SubwordTokenizer, SubwordTrainConfig};
use crate::train::Trainer;

/// Scores of one decoding on the test pairs.
#[derive(Debug, Clone, Serialize)]
pub struct TestScores {
    /// Corpus BLEU (sacrebleu's defaults).
    pub bleu: f64,
    /// Corpus chrF.
    pub chrf: f64,
}

/// One test pair and its translation.
#[derive(Debug, Clone, Serialize)]
pub struct TranslationSample {
    /// The English source.
    pub source: String,
    /// The catalogue's translation.
    pub reference: String,
    /// The model's (beam search).
    pub translation: String,
}

/// What the run produced.
#[derive(Debug, Clone, Serialize)]
pub struct TranslationResult {
    /// What was trained ("Transformer translation", "RNN encoder-decoder", …).
    pub model: String,
    /// The saved model folder.
    pub model_dir: PathBuf,
    /// Pairs in train, validation and test.
    pub split_sizes: (usize, usize, usize),
    /// Catalogues of the test split.
    pub test_groups: Vec<String>,
    /// Parameters.
    pub num_parameters: usize,
    /// Seconds of training.
    pub train_seconds: f64,
    /// The copy baseline: each source as its own translation.
    pub copy_baseline: TestScores,
    /// Greedy decoding.
    pub greedy: TestScores,
    /// Beam search with `num_beams` beams.
    pub beam: TestScores,
    /// Beams of `beam`.
    pub num_beams: usize,
    /// (step, validation BLEU) at each evaluation.
    pub bleu_curve: Vec<(usize, f64)>,
    /// A few test translations.
    pub samples: Vec<TranslationSample>,
}

/// Beams of the final test decoding.
const TEST_BEAMS: usize = 4;

/// The train, validation and test pairs of the experiment.
fn splits(e: &Experiment) -> Result<parallel::Splits> {
    let pairs = match &e.data.path {
        Some(path) => parallel::read_pairs(path)?,
        None => parallel::from_catalogues(&parallel::default_catalogue_root("pt_BR"), "pt_BR")?.0,
    };
    let mut s = match &e.data.test_path {
        Some(path) => {
            let mut s =
                parallel::split_by_group(pairs, e.data.validation_split, 0.0, e.training.seed);
            s.test = parallel::read_pairs(path)?;
            s
        }
        None => parallel::split_by_group(
            pairs,
            e.data.validation_split,
            e.data.test_size,
            e.training.seed,
        ),
    };
    if let Some(n) = e.data.max_rows {
        // A quick run: at most n training pairs and n/4 validation and test pairs, seeded.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(e.training.seed);
        let mut subset = |pairs: &mut Vec<Pair>, n: usize| {
            if n < pairs.len() {
                let mut keep = sample(&mut rng, pairs.len(), n).into_vec();
                keep.sort_unstable();
                *pairs = keep.into_iter().map(|i| pairs[i].clone()).collect();
            }
        };
        subset(&mut s.train, n);
        subset(&mut s.validation, (n / 4).max(1));
        subset(&mut s.test, (n / 4).max(1));
    }
    if s.train.is_empty() || s.validation.is_empty() || s.test.is_empty() {
        return Err(Error::config(
            "data",
            format!(
                "the splits hold {} training, {} validation and {} test pairs; each needs some",
                s.train.len(),
                s.validation.len(),
                s.test.len()
            ),
        ));
    }
    Ok(s)
}

/// Token ids of pairs, keeping those whose sides fit in `max_tokens` (`</s>` included).
fn examples(
    tokenizer: &SubwordTokenizer,
    pairs: &[Pair],
    max_tokens: usize,
    eos: u32,
) -> Result<Vec<TranslationExample>> {
    let mut out = Vec::with_capacity(pairs.len());
    for p in pairs {
        let mut source = tokenizer.encode(&p.source, false)?;
        let target = tokenizer.encode(&p.target, false)?;
        if source.len() < max_tokens && target.len() < max_tokens {
            source.push(eos);
            out.push(TranslationExample { source, target });
        }
    }
    Ok(out)
}

/// BLEU and chrF of hypotheses against the pairs' targets.
fn scores(hypotheses: &[String], pairs: &[&Pair]) -> Result<TestScores> {
    let hyps: Vec<&str> = hypotheses.iter().map(String::as_str).collect();
    let refs = vec![pairs.iter().map(|p| p.target.as_str()).collect::<Vec<_>>()];
    Ok(TestScores {
        bleu: bleu::corpus_bleu(&hyps, &refs)?.score,
        chrf: chrf::corpus_chrf(&hyps, &refs)?.score,
    })
}

/// Runs the task; with `resume`, training continues from the last checkpoint.
pub fn run(e: &Experiment, resume: bool) -> Result<TranslationResult> {
    let m = &e.model;
    let device = e.training.device.open()?;
    crate::fsio::create_dir(&e.training.output_dir)?;
    let splits = splits(e)?;
    if m.arch == "t5" {
        let model = t5_model(e, &splits, &device)?;
        // T5's initialisation assumes Adafactor-like steps, relative to each weight's size.
        let mut e = e.clone();
        e.training.optimizer.scale_by_parameter_rms = true;
        let e = &e;
        let title = match (&m.pretrained, m.reinitialize) {
            (Some(_), false) => "T5 fine-tuned for translation",
            _ => "T5 trained for translation",
        };
        return train_and_score(e, model, splits, resume, title);
    }
    let mut config = SubwordTrainConfig::new(SubwordKind::Bpe, m.vocab_size);
    config.special_tokens = SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect();
    let texts = splits
        .train
        .iter()
        .flat_map(|p| [p.source.as_str(), p.target.as_str()]);
    let tokenizer = SubwordTokenizer::train_from_texts(&config, texts)?;
    let id = |t: &str| {
        tokenizer
            .token_to_id(t)
            .ok_or_else(|| Error::Tokenizer(format!("{t} missing after training")))
    };
    let (pad, bos, eos) = (
        id(SPECIAL_TOKENS[0])?,
        id(SPECIAL_TOKENS[1])?,
        id(SPECIAL_TOKENS[2])?,
    );
    let seed = e.training.seed;
    match m.arch.as_str() {
        "transformer" => {
            let config = TranslatorConfig {
                model_type: MODEL_TYPE.into(),
                vocab_size: tokenizer.vocab_size(),
                d_model: m.hidden_size,
                num_heads: m.num_heads,
                num_encoder_layers: m.num_layers,
                num_decoder_layers: m.num_layers,
                dim_feedforward: 4 * m.hidden_size,
                dropout: m.dropout,
                norm_first: m.norm_first,
                max_positions: m.max_tokens + 1,
                label_smoothing: m.label_smoothing,
                pad_token_id: pad,
                bos_token_id: bos,
                eos_token_id: eos,
            };
            let model = TransformerTranslator::new(config, tokenizer, &device, seed)?;
            train_and_score(e, model, splits, resume, "Transformer translation")
        }
        "rnn" | "rnn-attention" => {
            let config = RnnTranslatorConfig {
                model_type: crate::models::seq2seq::rnn::MODEL_TYPE.into(),
                vocab_size: tokenizer.vocab_size(),
                embedding_dim: m.embedding_dim,
                hidden_size: m.hidden_size,
                attention: (m.arch == "rnn-attention").then_some(m.attention),
                dropout: m.dropout,
                max_positions: m.max_tokens + 1,
                label_smoothing: m.label_smoothing,
                pad_token_id: pad,
                bos_token_id: bos,
                eos_token_id: eos,
            };
            let title = if config.attention.is_some() {
                "RNN encoder-decoder with attention"
            } else {
                "RNN encoder-decoder"
            };
            let model = RnnTranslator::new(config, tokenizer, &device, seed)?;
            train_and_score(e, model, splits, resume, title)
        }
        other => Err(Error::config(
            "model.arch",
            format!("translation trains rnn, rnn-attention, transformer or t5, not '{other}'"),
        )),
    }
}

/// The T5 of the experiment: the `pretrained` folder (with `reinitialize`, its config and
/// tokenizer with new weights), or a T5 v1.1-style model of the experiment's sizes over a T5
/// tokenizer trained on the training pairs.
fn t5_model(
    e: &Experiment,
    splits: &parallel::Splits,
    device: &candle_core::Device,
) -> Result<T5ForConditionalGeneration> {
    let m = &e.model;
    let seed = e.training.seed;
    if m.reinitialize && m.pretrained.is_none() {
        return Err(Error::config(
            "model.reinitialize",
            "draws new weights for the config of a pretrained folder: give model.pretrained too",
        ));
    }
    if let Some(dir) = &m.pretrained {
        let pretrained = T5ForConditionalGeneration::from_pretrained(dir, device)?;
        Generator::tokenizer(&pretrained)?;
        if !m.reinitialize {
            return Ok(pretrained);
        }
        let mut fresh =
            T5ForConditionalGeneration::new(pretrained.raw_config().clone(), device, seed)?;
        fresh.tokenizer = pretrained.tokenizer;
        fresh.generation = pretrained.generation;
        return Ok(fresh);
    }
    let texts = splits
        .train
        .iter()
        .flat_map(|p| [p.source.as_str(), p.target.as_str()]);
    let tokenizer = scratch::train_tokenizer(texts, m.vocab_size)?;
    let size = T5Size {
        d_model: m.hidden_size,
        num_layers: m.num_layers,
        num_heads: m.num_heads,
        d_ff: 4 * m.hidden_size,
        dropout: m.dropout,
    };
    size.model(tokenizer, device, seed)
}

/// Trains `model`, saves it, and scores the test pairs greedily and with beams.
fn train_and_score<M: Translator>(
    e: &Experiment,
    model: M,
    splits: parallel::Splits,
    resume: bool,
    title: &str,
) -> Result<TranslationResult> {
    let (max_tokens, eos) = (e.model.max_tokens, model.eos_token_id());
    let train = examples(
        Generator::tokenizer(&model)?,
        &splits.train,
        max_tokens,
        eos,
    )?;
    let validation = examples(
        Generator::tokenizer(&model)?,
        &splits.validation,
        max_tokens,
        eos,
    )?;
    let trainer = Trainer::new(e.training.clone(), Vec::new())?;
    let outcome = trainer.train(&model, &train, Some(&validation), resume)?;
    let saved = save_run(&e.training, &outcome, title, |dir| {
        model.save_pretrained(dir)
    })?;
    let test: Vec<&Pair> = splits.test.iter().collect();
    let sources: Vec<&str> = test.iter().map(|p| p.source.as_str()).collect();
    let copy: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    let greedy = model.translate(&sources, model.generation())?;
    let beam_config = GenerationConfig {
        num_beams: TEST_BEAMS,
        ..model.generation().clone()
    };
    let beam = model.translate(&sources, &beam_config)?;
    let samples = test
        .iter()
        .zip(&beam)
        .take(8)
        .map(|(p, t)| TranslationSample {
            source: p.source.clone(),
            reference: p.target.clone(),
            translation: t.clone(),
        })
        .collect();
    let mut test_groups: Vec<String> = test.iter().map(|p| p.group.clone()).collect();
    test_groups.sort();
    test_groups.dedup();
    let bleu_curve = outcome
        .state
        .history
        .entries
        .iter()
        .filter_map(|h| h.metrics.get("eval_bleu").map(|&b| (h.step, b)))
        .collect();
    write_results(
        &e.training,
        TranslationResult {
            model: title.to_string(),
            model_dir: saved.model_dir,
            split_sizes: (train.len(), validation.len(), test.len()),
            test_groups,
            num_parameters: model.params().num_parameters(),
            train_seconds: outcome.train_seconds,
            copy_baseline: scores(&copy, &test)?,
            greedy: scores(&greedy, &test)?,
            beam: scores(&beam, &test)?,
            num_beams: TEST_BEAMS,
            bleu_curve,
            samples,
        },
    )
}

//! `prosa bench translate`: sentences per second of a Hugging Face encoder–decoder folder (T5,
//! BART, Marian) translating token ids in batches — greedy or beam search, every output exactly
//! `--new-tokens` long (the end token is held back, as CTranslate2's `min_decoding_length` and
//! transformers' `min_new_tokens` do), so that systems compare on equal work.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use prosa::generation::GenerationConfig;
use prosa::models::seq2seq::hf::HfEncoderDecoder;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// Flags of `prosa bench translate`.
#[derive(Args)]
pub struct TranslateBenchArgs {
    /// The encoder–decoder folder.
    #[arg(long)]
    pub model: PathBuf,
    /// A JSON file of source id rows (each ending with the end token); without it, random ids.
    #[arg(long)]
    pub ids: Option<PathBuf>,
    /// Random sources: how many.
    #[arg(long, default_value_t = 256)]
    pub sources: usize,
    /// Random sources: tokens each (the end token included).
    #[arg(long, default_value_t = 24)]
    pub source_length: usize,
    /// Sources per batch.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Tokens generated per source.
    #[arg(long, default_value_t = 24)]
    pub new_tokens: usize,
    /// Beams (1: greedy).
    #[arg(long, default_value_t = 1)]
    pub num_beams: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `prosa bench translate` measures.
#[derive(Serialize)]
pub struct TranslateMeasurement {
    /// Sources translated.
    pub sentences: usize,
    /// Beams.
    pub num_beams: usize,
    /// Seconds for all batches (the model loaded, one warm-up batch excluded).
    pub seconds: f64,
    /// Sentences per second.
    pub sentences_per_second: f64,
    /// Generated tokens per second.
    pub tokens_per_second: f64,
}

/// Times the translation of the sources in batches.
pub fn bench_translate(
    a: &TranslateBenchArgs,
    device: &candle_core::Device,
) -> anyhow::Result<TranslateMeasurement> {
    anyhow::ensure!(
        a.batch > 0 && a.num_beams > 0,
        "--batch and --num-beams must be positive"
    );
    let model = HfEncoderDecoder::from_pretrained(&a.model, device)?;
    let g = GenerationConfig {
        max_new_tokens: Some(a.new_tokens),
        min_new_tokens: a.new_tokens,
        num_beams: a.num_beams,
        num_return_sequences: 1,
        do_sample: false,
        ..model.generation().clone()
    };
    let sources: Vec<Vec<u32>> = match &a.ids {
        Some(path) => serde_json::from_str(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{}: not a JSON list of id rows", path.display()))?,
        None => random_sources(a, &model),
    };
    model.generate_ids(&sources[..a.batch.min(sources.len())], &g)?;
    let start = Instant::now();
    for chunk in sources.chunks(a.batch) {
        model.generate_ids(chunk, &g)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(TranslateMeasurement {
        sentences: sources.len(),
        num_beams: a.num_beams,
        seconds,
        sentences_per_second: sources.len() as f64 / seconds,
        tokens_per_second: (sources.len() * a.new_tokens) as f64 / seconds,
    })
}

/// Seeded random sources of ordinary ids, each closed by the end token.
fn random_sources(a: &TranslateBenchArgs, model: &HfEncoderDecoder) -> Vec<Vec<u32>> {
    let eos = model
        .generation()
        .eos_token_ids
        .first()
        .copied()
        .unwrap_or(0);
    let vocab = model.vocab_size() as u32;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    (0..a.sources)
        .map(|_| {
            let mut row: Vec<u32> = (1..a.source_length)
                .map(|_| rng.random_range(3..vocab.saturating_sub(1).max(4)))
                .collect();
            row.push(eos);
            row
        })
        .collect()
}

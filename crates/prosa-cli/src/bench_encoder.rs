//! `prosa bench encoder` and `prosa bench encoder-train`: the prosa side of
//! `scripts/bench_encoder_vs_onnxruntime.py` and `scripts/bench_minilm_vs_sentence_transformers.py`.
//! Not tests: they only measure.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use clap::Args;
use prosa::data::LabelMap;
use prosa::models::encoder::{EncoderClassifier, EncoderExample, EncoderInput, EncoderModel, Task};
use prosa::train::{ForwardCtx, Optimizer, OptimizerConfig, Trainable};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::bench_report::report;

/// Flags of `prosa bench encoder`.
#[derive(Args)]
pub struct EncoderArgs {
    /// The encoder folder (e.g. all-MiniLM-L6-v2).
    #[arg(long)]
    model: PathBuf,
    /// Sentences to embed.
    #[arg(long, default_value_t = 2048, value_parser = positive)]
    sentences: usize,
    /// Sentences per forward pass.
    #[arg(long, default_value_t = 32, value_parser = positive)]
    batch: usize,
    /// Tokens per sentence at most.
    #[arg(long, default_value_t = 128, value_parser = positive)]
    max_tokens: usize,
    /// Single-sentence calls timed for the latency.
    #[arg(long, default_value_t = 50, value_parser = positive)]
    latency_runs: usize,
    /// Instead of embedding tweets, time forward passes of the base model on random ids of
    /// this shape, BATCHxLENGTH (e.g. 8x128): the model's own speed, without tokenizing.
    #[arg(long, value_parser = parse_shape)]
    random_ids: Option<(usize, usize)>,
    /// Forward passes timed with `--random-ids` (after one warm-up pass).
    #[arg(long, default_value_t = 10, value_parser = positive)]
    passes: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Flags of `prosa bench encoder-train`.
#[derive(Args)]
pub struct EncoderTrainArgs {
    /// The encoder folder (e.g. all-MiniLM-L6-v2); a two-class head starts fresh on it.
    #[arg(long)]
    model: PathBuf,
    /// Sequences per step.
    #[arg(long, default_value_t = 32, value_parser = positive)]
    batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 64, value_parser = positive)]
    length: usize,
    /// Timed steps (after 2 warm-up steps).
    #[arg(long, default_value_t = 10, value_parser = positive)]
    steps: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// A count flag: a whole number above 0 (a run of 0 steps or passes would report a rate of
/// nothing measured).
fn positive(v: &str) -> Result<usize, String> {
    v.trim()
        .parse::<usize>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("'{v}' is not a positive whole number"))
}

fn parse_shape(s: &str) -> Result<(usize, usize), String> {
    let (b, t) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("'{s}' is not BATCHxLENGTH (e.g. 8x128)"))?;
    let dim = |v: &str| positive(v).map_err(|e| format!("'{s}': {e}"));
    Ok((dim(b)?, dim(t)?))
}

#[derive(Serialize)]
struct EmbeddingMeasurement {
    /// Seconds `from_pretrained` took (model and tokenizer).
    load_seconds: f64,
    sentences: usize,
    sentences_per_second: f64,
    batch_1_latency_ms: f64,
    /// The median single-sentence call (steadier than the mean on a busy machine).
    batch_1_median_ms: f64,
}

#[derive(Serialize)]
struct ForwardMeasurement {
    /// Seconds `from_pretrained` took.
    load_seconds: f64,
    batch: usize,
    length: usize,
    passes: usize,
    ms_per_forward: f64,
    tokens_per_second: f64,
}

#[derive(Serialize)]
struct TrainMeasurement {
    parameters: usize,
    batch: usize,
    length: usize,
    steps: usize,
    ms_per_step: f64,
    sequences_per_second: f64,
}

/// Runs `prosa bench encoder` and prints its measurement.
pub fn run_encoder(a: &EncoderArgs, device: &Device) -> anyhow::Result<()> {
    if let Some((batch, length)) = a.random_ids {
        let m = bench_forward(a, batch, length, device)?;
        let line = format!(
            "{}x{} random ids: {:.1} ms per forward pass, {:.0} tokens/s (loaded in {:.2} s)",
            m.batch, m.length, m.ms_per_forward, m.tokens_per_second, m.load_seconds
        );
        return report(&m, a.json, line);
    }
    let m = bench_embeddings(a, device)?;
    let line = format!(
        "{} sentences: {:.1} sentences/s; batch-1 latency {:.2} ms (loaded in {:.2} s)",
        m.sentences, m.sentences_per_second, m.batch_1_latency_ms, m.load_seconds
    );
    report(&m, a.json, line)
}

/// Runs `prosa bench encoder-train` and prints its measurement.
pub fn run_encoder_train(a: &EncoderTrainArgs, device: &Device) -> anyhow::Result<()> {
    let m = bench_train(a, device)?;
    let line = format!(
        "encoder of {} parameters: {:.1} ms per training step of {}x{}, {:.1} sequences/s",
        m.parameters, m.ms_per_step, m.batch, m.length, m.sequences_per_second
    );
    report(&m, a.json, line)
}

fn bench_embeddings(a: &EncoderArgs, device: &Device) -> anyhow::Result<EmbeddingMeasurement> {
    let data = prosa::data::embedded_tweets()?;
    let texts: Vec<&str> = data.texts().into_iter().take(a.sentences).collect();
    let t = Instant::now();
    let mut embedder = prosa::pipelines::SentenceEmbedder::from_pretrained(&a.model, device)?;
    let load_seconds = t.elapsed().as_secs_f64();
    embedder.batch_size = a.batch;
    embedder.max_length = a.max_tokens;
    embedder.embed(&texts[..a.batch.min(texts.len())])?; // warm-up
    let t = Instant::now();
    embedder.embed(&texts)?;
    let seconds = t.elapsed().as_secs_f64();
    let mut calls_ms = Vec::with_capacity(a.latency_runs);
    for text in texts.iter().cycle().take(a.latency_runs) {
        let t = Instant::now();
        embedder.embed(&[text])?;
        calls_ms.push(1000.0 * t.elapsed().as_secs_f64());
    }
    let mean = calls_ms.iter().sum::<f64>() / calls_ms.len().max(1) as f64;
    calls_ms.sort_by(f64::total_cmp);
    Ok(EmbeddingMeasurement {
        load_seconds,
        sentences: texts.len(),
        sentences_per_second: texts.len() as f64 / seconds,
        batch_1_latency_ms: mean,
        batch_1_median_ms: calls_ms.get(calls_ms.len() / 2).copied().unwrap_or(0.0),
    })
}

/// Random ids in `1..vocab` (0 is BERT's padding), `batch` rows of `length`.
fn random_rows(rng: &mut ChaCha8Rng, vocab: usize, batch: usize, length: usize) -> Vec<Vec<u32>> {
    (0..batch)
        .map(|_| {
            (0..length)
                .map(|_| rng.random_range(1..vocab.max(2) as u32))
                .collect()
        })
        .collect()
}

fn bench_forward(
    a: &EncoderArgs,
    batch: usize,
    length: usize,
    device: &Device,
) -> anyhow::Result<ForwardMeasurement> {
    let t = Instant::now();
    let model = EncoderModel::from_pretrained(&a.model, Some(Task::Base), None, device)?;
    let load_seconds = t.elapsed().as_secs_f64();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let rows = random_rows(&mut rng, model.config.vocab_size, batch, length);
    let rows: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
    let input = EncoderInput::from_rows(&rows, model.config.pad_token_id);
    let forward = || model.forward(&input, &mut ForwardCtx::inference());
    forward()?; // warm-up
    let t = Instant::now();
    for _ in 0..a.passes {
        forward()?;
    }
    let seconds = t.elapsed().as_secs_f64() / a.passes.max(1) as f64;
    Ok(ForwardMeasurement {
        load_seconds,
        batch,
        length,
        passes: a.passes,
        ms_per_forward: 1000.0 * seconds,
        tokens_per_second: (batch * length) as f64 / seconds,
    })
}

fn bench_train(a: &EncoderTrainArgs, device: &Device) -> anyhow::Result<TrainMeasurement> {
    let labels = LabelMap::fit(["0", "1"]);
    let classifier =
        EncoderClassifier::from_pretrained(&a.model, Some(labels), a.length, None, device)?;
    let vocab = classifier.model().config.vocab_size;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let examples: Vec<EncoderExample> = random_rows(&mut rng, vocab, a.batch * 4, a.length)
        .into_iter()
        .map(|ids| EncoderExample {
            ids,
            label: rng.random_range(0..2),
        })
        .collect();
    let params = classifier.params();
    let mut optimizer = Optimizer::new(params, OptimizerConfig::default(), &[])?;
    let mut ctx = ForwardCtx::training(ChaCha8Rng::seed_from_u64(1));
    let mut step = |k: usize, ctx: &mut ForwardCtx| -> anyhow::Result<()> {
        let start = (k % 4) * a.batch;
        let batch: Vec<&EncoderExample> = examples[start..start + a.batch].iter().collect();
        let out = classifier.forward_batch(&batch, ctx)?;
        let grads = optimizer.collect_grads(&out.loss.backward()?);
        optimizer.apply(&grads, 2e-5)?;
        Ok(())
    };
    for k in 0..2 {
        step(k, &mut ctx)?;
    }
    let t = Instant::now();
    for k in 0..a.steps {
        step(k, &mut ctx)?;
    }
    let seconds = t.elapsed().as_secs_f64() / a.steps.max(1) as f64;
    Ok(TrainMeasurement {
        parameters: params.num_parameters(),
        batch: a.batch,
        length: a.length,
        steps: a.steps,
        ms_per_step: 1000.0 * seconds,
        sequences_per_second: a.batch as f64 / seconds,
    })
}

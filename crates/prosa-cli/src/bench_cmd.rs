//! `prosa bench recurrent`: training-step throughput of a recurrent classifier, the prosa side of
//! `scripts/bench_recurrent_vs_torch.py`. Not a test: it only measures.

use std::time::Instant;

use candle_core::Device;
use clap::{Args, Subcommand};
use prosa::data::LabelMap;
use prosa::device::DeviceSpec;
use prosa::models::rnn::{RnnClassifier, RnnConfig, RnnExample};
use prosa::nn::recurrent::CellKind;
use prosa::text::{WordTokenizer, WordTokenizerConfig};
use prosa::train::{ForwardCtx, Optimizer, OptimizerConfig, Trainable};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::bench_report::report;

/// `prosa bench …`
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Sequences per second of one training step (forward, backward, AdamW) of an
    /// embedding → recurrent → dense binary classifier on random ids.
    Recurrent(RecurrentArgs),
    /// Prompt-processing and generation tokens per second of a decoder (folder or GGUF).
    Generate(crate::bench_decoder::GenerateBenchArgs),
    /// Training tokens per second of a GPT-2 (4 layers × 256 by default) on random ids.
    GptTrain(crate::bench_decoder::GptTrainBenchArgs),
    /// Sentences per second of sentence embeddings with an encoder folder (tokenize, forward,
    /// pool, normalise) on the vendored tweets, and the latency of one sentence.
    Encoder(crate::bench_encoder::EncoderArgs),
    /// Sequences per second of an encoder's fine-tuning step (forward, backward, AdamW) with a
    /// classification head, on random ids of a fixed length.
    EncoderTrain(crate::bench_encoder::EncoderTrainArgs),
    /// Training tokens per second and greedy translations per second of a Transformer
    /// encoder–decoder (3 + 3 layers × 256 by default) on random ids.
    Seq2seq(crate::bench_seq2seq::Seq2seqBenchArgs),
    /// Sentences per second of a Hugging Face encoder–decoder folder (T5, BART, Marian)
    /// translating ids in batches, greedy or beam search, with a fixed output length.
    Translate(crate::bench_translate::TranslateBenchArgs),
}

/// Flags of `prosa bench recurrent`.
#[derive(Args)]
pub struct RecurrentArgs {
    /// The cell: rnn, lstm or gru.
    #[arg(long, default_value = "lstm")]
    cell: CellKind,
    /// Vocabulary size.
    #[arg(long, default_value_t = 10_000)]
    vocab: usize,
    /// Embedding width.
    #[arg(long, default_value_t = 100)]
    embedding: usize,
    /// Hidden state width.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Sequence length.
    #[arg(long, default_value_t = 30)]
    seq: usize,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Timed steps (after 3 warm-up steps).
    #[arg(long, default_value_t = 30)]
    steps: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Measurement {
    cell: String,
    sequences_per_second: f64,
    ms_per_step: f64,
    steps: usize,
    batch: usize,
}

fn bench_recurrent(a: &RecurrentArgs, device: &Device) -> anyhow::Result<Measurement> {
    // A tokenizer whose vocabulary is exactly `vocab - 1` words, so ids cover the embedding.
    let mut tokenizer = WordTokenizer::new(WordTokenizerConfig::default());
    let words: Vec<String> = (1..a.vocab).map(|i| format!("w{i}")).collect();
    tokenizer.fit_on_texts(&[words.join(" ")]);
    let labels = LabelMap::fit(["0", "1"]);
    let config = RnnConfig {
        max_len: a.seq,
        ..RnnConfig::new(a.cell, tokenizer.num_ids(), a.embedding, a.hidden, &labels)
    };
    let model = RnnClassifier::new(config, tokenizer, labels, None, 0, device)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let examples: Vec<RnnExample> = (0..a.batch * 8)
        .map(|_| RnnExample {
            ids: (0..a.seq)
                .map(|_| rng.random_range(1..a.vocab as u32))
                .collect(),
            label: rng.random_range(0..2),
        })
        .collect();
    let mut optimizer = Optimizer::new(model.params(), OptimizerConfig::default(), &[])?;
    let mut step = |k: usize| -> anyhow::Result<()> {
        let start = (k % 8) * a.batch;
        let batch: Vec<&RnnExample> = examples[start..start + a.batch].iter().collect();
        let out = model.forward_batch(&batch, &mut ForwardCtx::eval())?;
        let grads = optimizer.collect_grads(&out.loss.backward()?);
        optimizer.apply(&grads, 1e-3)?;
        Ok(())
    };
    for k in 0..3 {
        step(k)?;
    }
    let t = Instant::now();
    for k in 0..a.steps {
        step(k)?;
    }
    let seconds = t.elapsed().as_secs_f64();
    Ok(Measurement {
        cell: format!("{:?}", a.cell).to_lowercase(),
        sequences_per_second: (a.steps * a.batch) as f64 / seconds,
        ms_per_step: 1000.0 * seconds / a.steps as f64,
        steps: a.steps,
        batch: a.batch,
    })
}

/// Runs a `prosa bench` command.
pub fn run(cmd: BenchCommand, device: DeviceSpec) -> anyhow::Result<()> {
    let device = device.open()?;
    match cmd {
        BenchCommand::Recurrent(a) => {
            let m = bench_recurrent(&a, &device)?;
            let line = format!(
                "{}: {:.0} sequences/s ({:.2} ms per step of {})",
                m.cell, m.sequences_per_second, m.ms_per_step, m.batch
            );
            report(&m, a.json, line)
        }
        BenchCommand::Generate(a) => {
            let m = crate::bench_decoder::bench_generate(&a, &device)?;
            let line = format!(
                "prompt ({} tokens): {:.1} tokens/s; generation ({} tokens): {:.1} tokens/s \
                 (loaded in {:.2} s)",
                a.prompt_tokens,
                m.prompt_tokens_per_second,
                a.new_tokens,
                m.generated_tokens_per_second,
                m.load_seconds
            );
            report(&m, a.json, line)
        }
        BenchCommand::GptTrain(a) => {
            let m = crate::bench_decoder::bench_gpt_train(&a, &device)?;
            let line = format!(
                "GPT-2 of {} parameters: {:.0} training tokens/s ({:.1} ms per step of {}×{})",
                m.parameters, m.tokens_per_second, m.ms_per_step, a.batch, a.block
            );
            report(&m, a.json, line)
        }
        BenchCommand::Seq2seq(a) => {
            let m = crate::bench_seq2seq::bench_seq2seq(&a, &device)?;
            let line = format!(
                "Transformer of {} parameters: {:.0} training tokens/s ({:.1} ms per step of {} pairs), {:.1} greedy translations/s",
                m.parameters, m.training_tokens_per_second, m.ms_per_step, a.batch, m.sentences_per_second
            );
            report(&m, a.json, line)
        }
        BenchCommand::Translate(a) => {
            let m = crate::bench_translate::bench_translate(&a, &device)?;
            let line = format!(
                "{} sentences, {} beam(s): {:.2} sentences/s, {:.1} tokens/s ({:.1} s)",
                m.sentences, m.num_beams, m.sentences_per_second, m.tokens_per_second, m.seconds
            );
            report(&m, a.json, line)
        }
        BenchCommand::Encoder(a) => crate::bench_encoder::run_encoder(&a, &device),
        BenchCommand::EncoderTrain(a) => crate::bench_encoder::run_encoder_train(&a, &device),
    }
}

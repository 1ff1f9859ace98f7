//! `prosa bench generate` and `prosa bench gpt-train`: the prosa side of
//! `scripts/bench_smollm2_vs_llamacpp_transformers.py` and `scripts/bench_gpt_train_vs_torch.py`.
//! Not tests: they only measure.

use std::time::Instant;

use clap::Args;
use prosa::generation::Generator;
use prosa::models::decoder::lm::CausalLm;
use prosa::models::decoder::{DecoderConfig, DecoderModel};
use prosa::nn::attention::position_ids;
use prosa::train::{ForwardCtx, Optimizer, OptimizerConfig, Trainable};
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// Flags of `prosa bench generate`.
#[derive(Args)]
pub struct GenerateBenchArgs {
    /// A decoder folder or GGUF file (e.g. SmolLM2-135M-Instruct.Q4_1.gguf).
    #[arg(long)]
    pub model: std::path::PathBuf,
    /// Prompt tokens processed in one forward pass.
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Tokens generated one by one (greedy, with the key/value cache).
    #[arg(long, default_value_t = 64)]
    pub new_tokens: usize,
    /// Timed repetitions (the best is kept).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Sequences decoded together, each with its own cache (continuous batching, as `prosa
    /// serve` decodes concurrent requests); generated tokens/s counts all of them.
    #[arg(long, default_value_t = 1)]
    pub rows: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Prompt processing and generation speed.
#[derive(Serialize)]
pub struct GenerateMeasurement {
    /// Seconds `from_pretrained` took (folder or GGUF file).
    pub load_seconds: f64,
    /// Prompt tokens per second.
    pub prompt_tokens_per_second: f64,
    /// Generated tokens per second.
    pub generated_tokens_per_second: f64,
}

/// Times a prompt of `prompt_tokens` ids and `new_tokens` greedy steps.
pub fn bench_generate(
    a: &GenerateBenchArgs,
    device: &candle_core::Device,
) -> anyhow::Result<GenerateMeasurement> {
    let t = Instant::now();
    let model = DecoderModel::from_pretrained(&a.model, device)?;
    let load_seconds = t.elapsed().as_secs_f64();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let vocab = model.config.vocab_size as u32;
    let prompt: Vec<u32> = (0..a.prompt_tokens)
        .map(|_| rng.random_range(100..vocab))
        .collect();
    // As in `generate` (`next_token_logits`): an inference context, no backward graph.
    let mut ctx = ForwardCtx::inference();
    if a.rows > 1 {
        return bench_rows(a, &model, &prompt, load_seconds);
    }
    let (mut best_prompt, mut best_gen) = (f64::MAX, f64::MAX);
    for _ in 0..a.runs.max(1) + 1 {
        let mut cache = model.new_cache();
        let mask = vec![vec![1u32; prompt.len()]];
        let t = Instant::now();
        let logits = model.forward(
            std::slice::from_ref(&prompt),
            &position_ids(&mask),
            &mask,
            Some(&mut cache),
            &mut ctx,
            true,
        )?;
        let mut token = argmax(&logits)?;
        let prompt_s = t.elapsed().as_secs_f64();
        let mut mask = mask;
        let t = Instant::now();
        for i in 0..a.new_tokens {
            mask[0].push(1);
            let pos = (prompt.len() + i) as u32;
            // The step `generate` takes (for one quantized sequence: the fused decode step).
            let logits =
                model.next_token_logits(&[vec![token]], &[vec![pos]], &mask, &mut cache)?;
            token = argmax(&logits)?;
        }
        let gen_s = t.elapsed().as_secs_f64();
        best_prompt = best_prompt.min(prompt_s);
        best_gen = best_gen.min(gen_s);
    }
    Ok(GenerateMeasurement {
        load_seconds,
        prompt_tokens_per_second: a.prompt_tokens as f64 / best_prompt,
        generated_tokens_per_second: a.new_tokens as f64 / best_gen,
    })
}

/// `rows` sequences with caches of their own, prefilled one by one, then decoded together
/// (`load_seconds`: the model's loading, reported as measured).
fn bench_rows(
    a: &GenerateBenchArgs,
    model: &DecoderModel,
    prompt: &[u32],
    load_seconds: f64,
) -> anyhow::Result<GenerateMeasurement> {
    let (mut best_prompt, mut best_gen) = (f64::MAX, f64::MAX);
    for _ in 0..a.runs.max(1) + 1 {
        let mut caches = Vec::with_capacity(a.rows);
        let mut tokens = Vec::with_capacity(a.rows);
        let t = Instant::now();
        for _ in 0..a.rows {
            let mut cache = model.new_cache();
            let mask = vec![vec![1u32; prompt.len()]];
            let logits = model.forward(
                &[prompt.to_vec()],
                &position_ids(&mask),
                &mask,
                Some(&mut cache),
                &mut ForwardCtx::inference(),
                true,
            )?;
            tokens.push(argmax(&logits)?);
            caches.push(cache);
        }
        let prompt_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in 0..a.new_tokens {
            let positions = vec![(prompt.len() + i) as u32; a.rows];
            let logits = model.decode_rows(&tokens, &positions, &mut caches)?;
            tokens = logits.argmax(1)?.to_vec1::<u32>()?;
        }
        best_prompt = best_prompt.min(prompt_s);
        best_gen = best_gen.min(t.elapsed().as_secs_f64());
    }
    Ok(GenerateMeasurement {
        load_seconds,
        prompt_tokens_per_second: (a.rows * a.prompt_tokens) as f64 / best_prompt,
        generated_tokens_per_second: (a.rows * a.new_tokens) as f64 / best_gen,
    })
}

fn argmax(logits: &candle_core::Tensor) -> anyhow::Result<u32> {
    Ok(logits.flatten_all()?.argmax(0)?.to_scalar::<u32>()?)
}

/// Flags of `prosa bench gpt-train`.
#[derive(Args)]
pub struct GptTrainBenchArgs {
    /// Blocks.
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    /// Residual width.
    #[arg(long, default_value_t = 256)]
    pub hidden: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    /// Vocabulary size.
    #[arg(long, default_value_t = 8000)]
    pub vocab: usize,
    /// Tokens per block.
    #[arg(long, default_value_t = 128)]
    pub block: usize,
    /// Blocks per step.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Timed steps (after 2 warm-up steps).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Dropout (GPT-2's default 0.1).
    #[arg(long, default_value_t = 0.1)]
    pub dropout: f32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Training speed of a GPT-2.
#[derive(Serialize)]
pub struct GptTrainMeasurement {
    /// Parameters.
    pub parameters: usize,
    /// Training tokens per second (forward, backward, AdamW; dropout 0.1).
    pub tokens_per_second: f64,
    /// Milliseconds per step.
    pub ms_per_step: f64,
}

/// Times training steps of a GPT-2 on random ids.
pub fn bench_gpt_train(
    a: &GptTrainBenchArgs,
    device: &candle_core::Device,
) -> anyhow::Result<GptTrainMeasurement> {
    let mut config = DecoderConfig::gpt2(a.vocab, a.hidden, a.layers, a.heads, a.block);
    config.dropout = a.dropout;
    let lm = CausalLm {
        model: DecoderModel::new(config, device, 0)?,
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let blocks: Vec<Vec<u32>> = (0..a.batch)
        .map(|_| {
            (0..a.block)
                .map(|_| rng.random_range(0..a.vocab as u32))
                .collect()
        })
        .collect();
    let batch: Vec<&Vec<u32>> = blocks.iter().collect();
    let mut optimizer = Optimizer::new(lm.params(), OptimizerConfig::default(), &[])?;
    let mut step = |ctx: &mut ForwardCtx| -> anyhow::Result<()> {
        let out = lm.forward_batch(&batch, ctx)?;
        let grads = optimizer.collect_grads(&out.loss.backward()?);
        optimizer.apply(&grads, 1e-4)?;
        Ok(())
    };
    let mut ctx = ForwardCtx::training(rand_chacha::ChaCha8Rng::seed_from_u64(1));
    for _ in 0..2 {
        step(&mut ctx)?;
    }
    let t = Instant::now();
    for _ in 0..a.steps {
        step(&mut ctx)?;
    }
    let seconds = t.elapsed().as_secs_f64();
    Ok(GptTrainMeasurement {
        parameters: lm.params().num_parameters(),
        tokens_per_second: (a.steps * a.batch * a.block) as f64 / seconds,
        ms_per_step: 1000.0 * seconds / a.steps as f64,
    })
}

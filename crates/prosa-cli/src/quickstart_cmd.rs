//! `prosa quickstart`: the course's Unit I on the embedded tweets in one command — the
//! bag-of-words baseline, an Elman RNN, an LSTM and a GRU over the vendored GloVe vectors, and
//! the attention lesson's Transformer classifier —
//! with one comparison table, and each model's learning curves and confusion matrix, plus the
//! LSTM's hidden state read word by word.

use std::path::{Path, PathBuf};

use clap::Args;
use prosa::device::DeviceSpec;
use prosa::models::rnn::RnnClassifier;
use prosa::tasks::Experiment;
use prosa::vectors::EMBEDDED_GLOVE;
use serde::Serialize;

use crate::print_json;

/// Flags of `prosa quickstart`.
#[derive(Args)]
pub struct QuickstartArgs {
    /// Folder for every model's outputs and the comparison.
    #[arg(long, default_value = "runs/quickstart")]
    out: PathBuf,
    /// Word vectors for the recurrent models [default: the GloVe 6B 50d vectors of the 20,000
    /// most frequent words, compiled into prosa].
    #[arg(long, default_value = EMBEDDED_GLOVE, hide_default_value = true)]
    vectors: PathBuf,
    /// Training epochs of the recurrent and Transformer models.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Use a seeded subset of this many tweets (all 38,158 by default).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_rows: Option<u64>,
    /// The sentence whose hidden states are drawn.
    #[arg(
        long,
        default_value = "I love this new self-driving car, it is amazing"
    )]
    sentence: String,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row {
    model: String,
    accuracy: f64,
    macro_f1: f64,
    parameters: usize,
    train_seconds: f64,
    output_dir: PathBuf,
}

fn experiment(arch: &str, out: &Path, args: &QuickstartArgs, device: DeviceSpec) -> Experiment {
    let mut e = crate::train_cmd::default_experiment();
    e.training.device = device;
    e.data.max_rows = args.max_rows.map(|n| n as usize);
    e.model.arch = arch.to_string();
    e.training.output_dir = out.join(arch);
    e.training.progress = !args.json;
    match arch {
        "bow" => {}
        // The attention lesson's sizes: embed_dim 32, 2 heads, ff_dim 32, dropout 0.1.
        "transformer" => {
            e.model.embedding_dim = 32;
            e.model.num_heads = 2;
            e.model.hidden_size = 32;
            e.model.dropout = 0.1;
            e.model.max_len = 64;
            e.training.num_train_epochs = args.epochs;
        }
        _ => {
            e.model.vectors = Some(args.vectors.clone());
            e.model.hidden_size = 32;
            e.training.num_train_epochs = args.epochs;
        }
    }
    e
}

/// Runs `prosa quickstart`.
pub fn run(args: QuickstartArgs, device: DeviceSpec) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for (arch, name) in [
        ("bow", "bag-of-words + logistic regression"),
        ("rnn", "Elman RNN (GloVe)"),
        ("lstm", "LSTM (GloVe)"),
        ("gru", "GRU (GloVe)"),
        ("transformer", "Transformer block (attention lesson)"),
    ] {
        if !args.json {
            eprintln!("training {name} …");
        }
        let experiment = experiment(arch, &args.out, &args, device);
        experiment.check()?;
        let result = prosa::tasks::text_classification::run(&experiment, false)?;
        rows.push(Row {
            model: name.to_string(),
            accuracy: result.test_report.accuracy,
            macro_f1: result.test_report.macro_avg.f1,
            parameters: result.num_parameters,
            train_seconds: result.train_seconds,
            output_dir: result.output_dir,
        });
    }
    let lstm = RnnClassifier::load(&args.out.join("lstm").join("model"), &device.open()?)?;
    let figure = args.out.join("hidden_states_lstm.png");
    prosa::report::hidden_states_png(
        &lstm.hidden_states(&args.sentence)?,
        "LSTM hidden state, word by word",
        &figure,
    )?;

    let mut table = String::from("| model | accuracy | macro-F1 | parameters | training time |\n| --- | --- | --- | --- | --- |\n");
    for r in &rows {
        table.push_str(&format!(
            "| {} | {:.3} | {:.3} | {} | {:.1} s |\n",
            r.model, r.accuracy, r.macro_f1, r.parameters, r.train_seconds
        ));
    }
    std::fs::write(args.out.join("comparison.md"), &table)?;
    std::fs::write(
        args.out.join("comparison.json"),
        serde_json::to_string_pretty(&rows)?,
    )?;
    if args.json {
        return print_json(&rows);
    }
    println!("held-out 20% of the tweets:\n\n{table}");
    println!(
        "per-model reports, learning curves and confusion matrices: {}/<model>/",
        args.out.display()
    );
    println!("hidden state of the LSTM: {}", figure.display());
    Ok(())
}

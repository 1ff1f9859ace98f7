//! `prosa evaluate` and `prosa predict`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use prosa::data::{self, Format, ReadOptions};
use prosa::device::DeviceSpec;
use prosa::models::load_classifier;
use prosa::tasks::text_classification::evaluate_folder;
use serde::Serialize;

use crate::print_json;
use crate::read_args::ReadArgs;

/// Flags of `prosa evaluate`.
#[derive(Args)]
pub struct EvaluateArgs {
    /// The model folder (config.json, model.safetensors, tokenizer).
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    read: ReadArgs,
    /// Folder for report.txt, metrics.json and the PNGs (default: MODEL/../evaluation).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print JSON instead of the report table.
    #[arg(long)]
    json: bool,
}

/// Flags of `prosa predict`.
#[derive(Args)]
pub struct PredictArgs {
    /// The model folder.
    #[arg(long)]
    model: PathBuf,
    /// Texts to classify.
    texts: Vec<String>,
    /// Also classify every non-empty line of this file.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Print JSON: one object per text with label, score and all probabilities.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Prediction {
    text: String,
    label: String,
    score: f32,
    probabilities: std::collections::BTreeMap<String, f32>,
}

/// Runs `prosa evaluate`.
pub fn evaluate(args: EvaluateArgs, device: DeviceSpec) -> anyhow::Result<()> {
    let data = args.read.load()?;
    let out = args.out.clone().unwrap_or_else(|| {
        args.model
            .parent()
            .map(|p| p.join("evaluation"))
            .unwrap_or_else(|| PathBuf::from("evaluation"))
    });
    let evaluation = evaluate_folder(&args.model, &data, &out, &device.open()?)?;
    if args.json {
        #[derive(Serialize)]
        struct Out<'a> {
            report: &'a prosa::metrics::ClassificationReport,
            skipped_empty: usize,
            plots: &'a [PathBuf],
        }
        print_json(&Out {
            report: &evaluation.report,
            skipped_empty: data.skipped_empty,
            plots: &evaluation.plots,
        })?;
    } else {
        print!("{}", evaluation.report.to_table());
        println!(
            "\n{}",
            evaluation
                .report
                .confusion
                .to_table(&evaluation.report.labels)
        );
        if data.skipped_empty > 0 {
            println!("skipped {} rows with empty text", data.skipped_empty);
        }
        for plot in &evaluation.plots {
            println!("wrote {}", plot.display());
        }
    }
    Ok(())
}

/// Runs `prosa predict`.
pub fn predict(args: PredictArgs, device: DeviceSpec) -> anyhow::Result<()> {
    let mut texts = args.texts.clone();
    if let Some(path) = &args.input {
        let options = ReadOptions {
            format: Format::Text,
            label_column: None,
            ..Default::default()
        };
        let file = data::read_file(path, &options)?;
        texts.extend(file.examples.into_iter().map(|e| e.text));
    }
    if texts.is_empty() {
        anyhow::bail!("nothing to classify: give texts as arguments or --input FILE");
    }
    let model = load_classifier(&args.model, &device.open()?)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let probs = model.predict_proba(&refs).context("predicting")?;
    let labels = model.labels();
    let predictions: Vec<Prediction> = texts
        .iter()
        .zip(probs)
        .map(|(text, p)| {
            let best = prosa::metrics::argmax_rows(std::slice::from_ref(&p))[0];
            Prediction {
                text: text.clone(),
                label: labels.name(best).to_string(),
                score: p[best as usize],
                probabilities: labels
                    .names()
                    .iter()
                    .cloned()
                    .zip(p.iter().copied())
                    .collect(),
            }
        })
        .collect();
    if args.json {
        print_json(&predictions)?;
    } else {
        for p in &predictions {
            println!("{:<10} {:.3}  {}", p.label, p.score, p.text);
        }
    }
    Ok(())
}

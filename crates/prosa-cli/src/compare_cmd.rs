//! `prosa compare --run NAME=DIR … --out PNG`: training runs side by side — each run's last
//! validation numbers in a table and, in one figure, every run's validation loss and chosen
//! metric per epoch.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use prosa::train::History;
use serde_json::json;

use crate::print_json;

/// Flags of `prosa compare`.
#[derive(Args)]
pub struct CompareArgs {
    /// A run as NAME=OUTPUT_DIR (the folder holding history.json); repeat for each run.
    #[arg(long = "run", required = true)]
    runs: Vec<String>,
    /// The metric of the right-hand panel.
    #[arg(long, default_value = "eval_bleu")]
    metric: String,
    /// The PNG to draw.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The figure's title.
    #[arg(long, default_value = "Runs compared")]
    title: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `prosa compare`.
pub fn run(a: CompareArgs) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for r in &a.runs {
        let (name, dir) = r
            .split_once('=')
            .with_context(|| format!("--run {r}: expected NAME=OUTPUT_DIR"))?;
        let history = History::load(&PathBuf::from(dir))
            .with_context(|| format!("--run {r}: no training history"))?;
        runs.push((name.to_string(), history));
    }
    let last = |h: &History, m: &str| h.series(m).last().map(|p| p.1);
    if let Some(out) = &a.out {
        prosa::report::compare_runs_png(&runs, &a.metric, &a.title, out)?;
    }
    if a.json {
        let rows: Vec<_> = runs
            .iter()
            .map(|(name, h)| {
                json!({
                    "run": name,
                    "epochs": h.entries.last().map(|e| e.epoch),
                    "eval_loss": last(h, "eval_loss"),
                    a.metric.clone(): last(h, &a.metric),
                })
            })
            .collect();
        return print_json(&rows);
    }
    println!(
        "{:<28}{:>8}{:>12}{:>12}",
        "run", "epochs", "eval_loss", a.metric
    );
    for (name, h) in &runs {
        let show = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.4}"));
        println!(
            "{name:<28}{:>8}{:>12}{:>12}",
            h.entries.last().map_or(0.0, |e| e.epoch),
            show(last(h, "eval_loss")),
            show(last(h, &a.metric))
        );
    }
    if let Some(out) = &a.out {
        println!("curves: {}", out.display());
    }
    Ok(())
}

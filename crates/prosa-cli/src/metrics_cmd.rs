//! `prosa metrics bleu|chrf --hyp FILE --ref FILE [--ref FILE…]`: translation scores of a
//! hypothesis file against one or more reference files (one segment per line), equal to
//! sacrebleu's defaults, with sacrebleu's signature.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use prosa::metrics::{bleu, chrf};
use serde_json::json;

use crate::print_json;

/// The metrics.
#[derive(Subcommand)]
pub enum MetricsCommand {
    /// Corpus BLEU (13a tokenization, exponential smoothing, mixed case), as sacrebleu.
    Bleu(ScoreArgs),
    /// Corpus chrF (character 6-grams, β = 2), as sacrebleu.
    Chrf(ScoreArgs),
}

/// The files to score.
#[derive(Args)]
pub struct ScoreArgs {
    /// The hypotheses, one segment per line.
    #[arg(long)]
    hyp: PathBuf,
    /// A reference file, one segment per line, as many lines as --hyp (repeat for several
    /// references).
    #[arg(long = "ref", required = true)]
    refs: Vec<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The lines of a UTF-8 text file, without their line endings.
fn lines(path: &Path) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect())
}

/// Runs `prosa metrics`.
pub fn run(cmd: MetricsCommand) -> anyhow::Result<()> {
    let (name, args) = match &cmd {
        MetricsCommand::Bleu(a) => ("bleu", a),
        MetricsCommand::Chrf(a) => ("chrf", a),
    };
    let hyps = lines(&args.hyp)?;
    let mut streams = Vec::with_capacity(args.refs.len());
    for path in &args.refs {
        let refs = lines(path)?;
        if refs.len() != hyps.len() {
            anyhow::bail!(
                "{}: {} lines, but {} has {} (one reference line per hypothesis line)",
                path.display(),
                refs.len(),
                args.hyp.display(),
                hyps.len()
            );
        }
        streams.push(refs);
    }
    let hyp_refs: Vec<&str> = hyps.iter().map(String::as_str).collect();
    let ref_refs: Vec<Vec<&str>> = streams
        .iter()
        .map(|s| s.iter().map(String::as_str).collect())
        .collect();
    let (score, signature, details) = match cmd {
        MetricsCommand::Bleu(_) => {
            let b = bleu::corpus_bleu(&hyp_refs, &ref_refs)?;
            let details = format!(
                "{:.1}/{:.1}/{:.1}/{:.1} (BP = {:.3} ratio = {:.3} hyp_len = {} ref_len = {})",
                b.precisions[0],
                b.precisions[1],
                b.precisions[2],
                b.precisions[3],
                b.bp,
                b.sys_len as f64 / b.ref_len.max(1) as f64,
                b.sys_len,
                b.ref_len
            );
            (b.score, bleu::bleu_signature(streams.len()), details)
        }
        MetricsCommand::Chrf(_) => {
            let c = chrf::corpus_chrf(&hyp_refs, &ref_refs)?;
            (c.score, chrf::chrf_signature(streams.len()), String::new())
        }
    };
    if args.json {
        return print_json(&json!({ name: score, "signature": signature }));
    }
    let label = if name == "bleu" { "BLEU" } else { "chrF2" };
    println!("{label} = {score:.2} {details}");
    println!("signature: {signature}");
    Ok(())
}

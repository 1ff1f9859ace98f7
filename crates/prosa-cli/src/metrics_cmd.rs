//! `prosa metrics bleu|chrf|rouge --hyp FILE --ref FILE [--ref FILE…]`: scores of a hypothesis
//! file against one or more reference files (one segment per line) — BLEU and chrF equal to
//! sacrebleu's defaults, with sacrebleu's signature; ROUGE equal to Google's rouge-score.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use prosa::metrics::{bleu, chrf, rouge};
use serde_json::json;

use crate::print_json;

/// The metrics.
#[derive(Subcommand)]
pub enum MetricsCommand {
    /// Corpus BLEU (13a tokenization, exponential smoothing, mixed case), as sacrebleu.
    Bleu(ScoreArgs),
    /// Corpus chrF (character 6-grams, β = 2), as sacrebleu.
    Chrf(ScoreArgs),
    /// ROUGE-1/2/L/Lsum as Google's rouge-score: the mean precision, recall and F-measure of
    /// the pairs (with several references, the best per pair).
    Rouge(RougeArgs),
}

/// Flags of `prosa metrics rouge`.
#[derive(Args)]
pub struct RougeArgs {
    #[command(flatten)]
    files: ScoreArgs,
    /// Porter-stem tokens longer than 3 letters (rouge-score's use_stemmer).
    #[arg(long)]
    use_stemmer: bool,
    /// ROUGE types, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "rouge1,rouge2,rougeL,rougeLsum"
    )]
    rouge_types: Vec<String>,
    /// A string that separates a line's sentences for rougeLsum (e.g. "<n>"); rouge-score
    /// splits on newlines, which a one-segment-per-line file cannot hold.
    #[arg(long)]
    sentence_separator: Option<String>,
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
    match &cmd {
        MetricsCommand::Bleu(a) => run_sacrebleu(true, a),
        MetricsCommand::Chrf(a) => run_sacrebleu(false, a),
        MetricsCommand::Rouge(r) => run_rouge(r),
    }
}

/// `prosa metrics bleu` (`bleu`) or `prosa metrics chrf`.
fn run_sacrebleu(bleu: bool, args: &ScoreArgs) -> anyhow::Result<()> {
    let name = if bleu { "bleu" } else { "chrf" };
    let (hyps, streams) = read_files(args)?;
    let hyp_refs: Vec<&str> = hyps.iter().map(String::as_str).collect();
    let ref_refs: Vec<Vec<&str>> = streams
        .iter()
        .map(|s| s.iter().map(String::as_str).collect())
        .collect();
    let (score, signature, details) = if bleu {
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
    } else {
        let c = chrf::corpus_chrf(&hyp_refs, &ref_refs)?;
        (c.score, chrf::chrf_signature(streams.len()), String::new())
    };
    if args.json {
        return print_json(&json!({ name: score, "signature": signature }));
    }
    let label = if name == "bleu" { "BLEU" } else { "chrF2" };
    println!("{label} = {score:.2} {details}");
    println!("signature: {signature}");
    Ok(())
}

/// The hypothesis lines and each reference file's lines (as many as the hypotheses).
fn read_files(args: &ScoreArgs) -> anyhow::Result<(Vec<String>, Vec<Vec<String>>)> {
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
    Ok((hyps, streams))
}

/// `prosa metrics rouge`.
fn run_rouge(a: &RougeArgs) -> anyhow::Result<()> {
    let (hyps, streams) = read_files(&a.files)?;
    let split = |t: &String| match &a.sentence_separator {
        Some(sep) => t.replace(sep.as_str(), "\n"),
        None => t.clone(),
    };
    let hyps: Vec<String> = hyps.iter().map(split).collect();
    let streams: Vec<Vec<String>> = streams
        .iter()
        .map(|s| s.iter().map(split).collect())
        .collect();
    let hyp_refs: Vec<&str> = hyps.iter().map(String::as_str).collect();
    let ref_refs: Vec<Vec<&str>> = streams
        .iter()
        .map(|s| s.iter().map(String::as_str).collect())
        .collect();
    let types: Vec<&str> = a.rouge_types.iter().map(String::as_str).collect();
    let scores = rouge::corpus_rouge(&hyp_refs, &ref_refs, &types, a.use_stemmer)?;
    if a.files.json {
        return print_json(&json!({
            "rouge": scores,
            "use_stemmer": a.use_stemmer,
            "pairs": hyps.len(),
        }));
    }
    println!(
        "{:<10}{:>11}{:>9}{:>11}",
        "type", "precision", "recall", "F-measure"
    );
    for (t, s) in &scores {
        println!(
            "{t:<10}{:>11.4}{:>9.4}{:>11.4}",
            s.precision, s.recall, s.fmeasure
        );
    }
    println!(
        "{} pairs, {}stemmed (rouge-score's tokenizer)",
        hyps.len(),
        if a.use_stemmer { "" } else { "not " }
    );
    Ok(())
}

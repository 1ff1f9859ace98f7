//! What `prosa train` prints when a task ends: JSON with `--json`, otherwise a summary for
//! people (scores, curves, where the outputs went).

use prosa::tasks::causal_lm::CausalLmResult;
use prosa::tasks::text_classification::ExperimentResult;
use prosa::tasks::token_classification::TokenClassificationResult;
use prosa::tasks::translation::TranslationResult;
use prosa::tasks::{Experiment, TaskResult};
use serde::Serialize;

use crate::print_json;

/// The classification result with its headline scores on top, for `--json`.
#[derive(Serialize)]
struct ClassificationOutput<'a> {
    #[serde(flatten)]
    result: &'a ExperimentResult,
    macro_f1: f64,
    accuracy: f64,
}

/// Prints a finished run.
pub fn print(experiment: &Experiment, result: &TaskResult, json: bool) -> anyhow::Result<()> {
    match result {
        TaskResult::TextClassification(r) if json => print_json(&ClassificationOutput {
            result: r,
            macro_f1: r.test_report.macro_avg.f1,
            accuracy: r.test_report.accuracy,
        }),
        TaskResult::TokenClassification(r) if json => print_json(r),
        TaskResult::CausalLm(r) if json => print_json(r),
        TaskResult::Translation(r) if json => print_json(r),
        TaskResult::Translation(r) => {
            translation(r);
            Ok(())
        }
        TaskResult::TextClassification(r) => {
            classification(experiment, r);
            Ok(())
        }
        TaskResult::TokenClassification(r) => {
            token_classification(r);
            Ok(())
        }
        TaskResult::CausalLm(r) => {
            causal_lm(r);
            Ok(())
        }
    }
}

fn classification(experiment: &Experiment, result: &ExperimentResult) {
    let report = &result.test_report;
    let (train, val, test) = result.split_sizes;
    println!(
        "trained {} ({} parameters) on {train} rows ({val} validation) in {:.1}s{}",
        experiment.model.arch,
        result.num_parameters,
        result.train_seconds,
        if result.stopped_early {
            ", stopped early"
        } else {
            ""
        }
    );
    if result.skipped_empty > 0 {
        println!("skipped {} rows with empty text", result.skipped_empty);
    }
    if let Some(e) = &result.embedding_report {
        println!(
            "word vectors {}: {} words found, {} not found (random vectors), e.g. {}",
            e.vectors.display(),
            e.found,
            e.missing,
            e.missing_examples.join(" ")
        );
    }
    println!(
        "\nheld-out test split ({test} rows):\n{}",
        report.to_table()
    );
    println!("outputs in {}:", result.output_dir.display());
    println!("  model folder     {}", result.model_dir.display());
    println!("  test split       {}", result.test_file.display());
    println!(
        "  history          {}",
        result.output_dir.join("history.csv").display()
    );
    println!(
        "  report           {}",
        result.output_dir.join("report.txt").display()
    );
    for plot in &result.plots {
        println!("  plot             {}", plot.display());
    }
}

fn token_classification(result: &TokenClassificationResult) {
    let (train, val, test) = result.split_sizes;
    println!(
        "trained a token classifier on {train} sentences ({val} validation) in {:.1}s",
        result.train_seconds
    );
    println!(
        "\nentities in {} ({test} sentences):",
        result.test_file.display()
    );
    println!(
        "{:<8}{:>10}{:>10}{:>10}{:>9}",
        "", "precision", "recall", "f1", "support"
    );
    let rows = result.report.per_type.iter().map(|(k, v)| (k.as_str(), v));
    for (name, s) in rows.chain([("micro", &result.report.micro)]) {
        println!(
            "{name:<8}{:>10.4}{:>10.4}{:>10.4}{:>9}",
            s.precision, s.recall, s.f1, s.support
        );
    }
    println!("\nmodel folder {}", result.model_dir.display());
}

fn causal_lm(result: &CausalLmResult) {
    println!(
        "trained a causal LM of {} parameters on {} blocks of {} tokens ({} validation) in {:.0}s ({:.0} tokens/s)",
        result.num_parameters, result.blocks.0, result.block_size, result.blocks.1, result.train_seconds, result.tokens_per_second
    );
    println!("\n{:>8}{:>12}{:>14}", "step", "eval loss", "perplexity");
    for (step, loss, ppl) in &result.curve {
        println!("{step:>8}{loss:>12.4}{ppl:>14.2}");
    }
    println!(
        "\nvalidation perplexity {:.2} (a unigram model of the training tokens: {:.2})",
        result.validation_perplexity, result.unigram_perplexity
    );
    println!("\nsamples (top-p 0.95):");
    for s in &result.samples {
        println!("--- temperature {} ---\n{}\n", s.temperature, s.text);
    }
    println!(
        "model folder {} (try: prosa generate --model {} --prompt \"...\")",
        result.model_dir.display(),
        result.model_dir.display()
    );
}

fn translation(result: &TranslationResult) {
    let (train, val, test) = result.split_sizes;
    println!(
        "trained a {} model of {} parameters on {train} pairs ({val} validation) in {:.0}s",
        result.model, result.num_parameters, result.train_seconds
    );
    println!(
        "\ntest: {test} pairs from catalogues never seen in training ({})",
        result.test_groups.join(", ")
    );
    println!("{:<28}{:>8}{:>8}", "", "BLEU", "chrF");
    for (name, s) in [
        ("copy baseline (source)", &result.copy_baseline),
        ("greedy", &result.greedy),
        (
            &*format!("beam search ({} beams)", result.num_beams),
            &result.beam,
        ),
    ] {
        println!("{name:<28}{:>8.2}{:>8.2}", s.bleu, s.chrf);
    }
    println!("\nsamples:");
    for s in &result.samples {
        println!(
            "  EN  {}\n  REF {}\n  MT  {}\n",
            s.source, s.reference, s.translation
        );
    }
    println!(
        "model folder {} (try: prosa translate --model {} \"Open the file\")",
        result.model_dir.display(),
        result.model_dir.display()
    );
}

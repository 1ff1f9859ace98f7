//! `prosa data stats|split|gettext`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use prosa::report;
use prosa::tasks::text_classification::write_csv;
use serde::Serialize;

use crate::print_json;
use crate::read_args::ReadArgs;

/// `prosa data …`
#[derive(Subcommand)]
pub enum DataCommand {
    /// Rows, class distribution and text-length percentiles (and a class-distribution PNG).
    Stats(StatsArgs),
    /// Split a dataset into train and test CSV files (seeded, optionally stratified).
    Split(SplitArgs),
    /// English → LOCALE translation pairs from gettext catalogues (.mo files), de-duplicated,
    /// as TSV (source, target, group = package/domain); --split writes train/validation/test
    /// files split by catalogue.
    Gettext(GettextArgs),
}

/// Flags of `prosa data gettext`.
#[derive(Args)]
pub struct GettextArgs {
    /// The target language of the catalogues.
    #[arg(long, default_value = "pt_BR")]
    locale: String,
    /// Folder searched for LOCALE/LC_MESSAGES/*.mo [default: assets/gettext-LOCALE, fetched by
    /// scripts/setup-assets.sh; /usr/share/locale works too, but differs between machines].
    #[arg(long)]
    root: Option<PathBuf>,
    /// The TSV file of all pairs (with --split: the folder of train.tsv, validation.tsv, test.tsv).
    #[arg(long)]
    out: PathBuf,
    /// Write train/validation/test files, split by catalogue.
    #[arg(long)]
    split: bool,
    /// With --split: fraction of pairs for validation and for test (whole catalogues).
    #[arg(long, default_value_t = 0.1)]
    held_out: f64,
    /// With --split: seed of the catalogue order.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Flags of `prosa data stats`.
#[derive(Args)]
pub struct StatsArgs {
    #[command(flatten)]
    read: ReadArgs,
    /// Also draw the class distribution as a bar chart into this PNG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Flags of `prosa data split`.
#[derive(Args)]
pub struct SplitArgs {
    #[command(flatten)]
    read: ReadArgs,
    /// Fraction of rows for the test file.
    #[arg(long, default_value_t = 0.2)]
    test_size: f64,
    /// Seed of the random split.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Do not keep class proportions (stratification is on by default).
    #[arg(long)]
    no_stratify: bool,
    /// Folder for train.csv and test.csv (UTF-8, columns text,label).
    #[arg(long)]
    out: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct SplitOutput {
    train_file: PathBuf,
    test_file: PathBuf,
    train_rows: usize,
    test_rows: usize,
    skipped_empty: usize,
}

/// Runs a `prosa data` command.
pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    match cmd {
        DataCommand::Stats(args) => {
            let data = args.read.load()?;
            let stats = data.stats();
            if let Some(plot) = &args.plot {
                report::class_distribution_png(&stats.classes, "Class distribution", plot)?;
            }
            if args.json {
                print_json(&stats)?;
            } else {
                print!("{}", stats.to_table());
                if let Some(plot) = &args.plot {
                    println!("\nclass distribution: {}", plot.display());
                }
            }
        }
        DataCommand::Split(args) => {
            let data = args.read.load()?;
            let (train, test) =
                data.train_test_split(args.test_size, args.seed, !args.no_stratify)?;
            std::fs::create_dir_all(&args.out)
                .with_context(|| format!("creating {}", args.out.display()))?;
            let out = SplitOutput {
                train_file: args.out.join("train.csv"),
                test_file: args.out.join("test.csv"),
                train_rows: train.len(),
                test_rows: test.len(),
                skipped_empty: data.skipped_empty,
            };
            write_csv(&train, &out.train_file)?;
            write_csv(&test, &out.test_file)?;
            if args.json {
                print_json(&out)?;
            } else {
                println!(
                    "train: {} rows -> {}",
                    out.train_rows,
                    out.train_file.display()
                );
                println!(
                    "test:  {} rows -> {}",
                    out.test_rows,
                    out.test_file.display()
                );
                if out.skipped_empty > 0 {
                    println!("skipped {} rows with empty text", out.skipped_empty);
                }
            }
        }
        DataCommand::Gettext(args) => gettext(args)?,
    }
    Ok(())
}

/// `prosa data gettext`.
fn gettext(args: GettextArgs) -> anyhow::Result<()> {
    use prosa::data::parallel;
    let root = args
        .root
        .clone()
        .unwrap_or_else(|| parallel::default_catalogue_root(&args.locale));
    let (pairs, report) = parallel::from_catalogues(&root, &args.locale)?;
    let mut files = serde_json::Map::new();
    if args.split {
        let splits = parallel::split_by_group(pairs, args.held_out, args.held_out, args.seed);
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
        for (name, part) in [
            ("train", &splits.train),
            ("validation", &splits.validation),
            ("test", &splits.test),
        ] {
            let path = args.out.join(format!("{name}.tsv"));
            parallel::write_tsv(part, &path)?;
            files.insert(
                name.into(),
                serde_json::json!({"file": path, "pairs": part.len()}),
            );
        }
    } else {
        parallel::write_tsv(&pairs, &args.out)?;
        files.insert(
            "all".into(),
            serde_json::json!({"file": &args.out, "pairs": pairs.len()}),
        );
    }
    if args.json {
        return print_json(&serde_json::json!({"report": report, "files": files}));
    }
    println!(
        "{} catalogues under {}: {} pairs, {} after de-duplication",
        report.catalogues,
        root.display(),
        report.pairs,
        report.unique
    );
    for (name, f) in &files {
        println!(
            "  {name:<11} {:>6} pairs -> {}",
            f["pairs"],
            f["file"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

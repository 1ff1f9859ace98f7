//! `prosa-fuzz`: a seeded mutation fuzzer for every loader of prosa, on stable Rust.
//!
//! `prosa-fuzz all --minutes 10 --jobs 2` fuzzes each target (CSV, TSV, JSONL, text, CoNLL,
//! word2vec text and binary, GloVe, npy, parquet, safetensors, config.json of every family,
//! tokenizer.json, SentencePiece, GGUF, `.mo`, TOML experiments, chat templates) for ten
//! minutes in worker processes capped at 1 GiB of heap; `prosa-fuzz replay` runs every seed and
//! every saved finding once (the regression test). Seeds live in `fuzz/seeds/<target>/`,
//! findings in `fuzz/findings/<target>/` (see `fuzz/README.md`).

mod alloc;
mod findings;
mod mutate;
mod seeds;
mod supervise;
mod targets;
mod worker;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: alloc::Capped = alloc::Capped::new();

/// Fuzz prosa's loaders.
#[derive(Parser)]
#[command(name = "prosa-fuzz", version)]
struct Cli {
    /// The repository root (seeds, findings and fixtures are found from it).
    #[arg(long, global = true, default_value_os_t = default_root())]
    root: PathBuf,
    /// Where findings are saved [default: ROOT/fuzz/findings].
    #[arg(long, global = true)]
    findings: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The targets.
    List,
    /// Fuzz targets (all of them unless --target is given), `--jobs` at a time.
    Run {
        /// Only these targets.
        #[arg(long)]
        target: Vec<String>,
        /// Minutes per target.
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
        /// Seconds per target (instead of minutes; for smoke tests).
        #[arg(long)]
        seconds: Option<f64>,
        /// Targets fuzzed at the same time.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Seed of the mutations.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Also write the table as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Run every seed and finding once; exit status 1 if any panics.
    Replay,
    /// (Re)write the generated seeds (the tiny GGUF, the npy and parquet files).
    MakeSeeds,
    /// One worker process (started by `run`).
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        target: String,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        seconds: f64,
        #[arg(long)]
        seed: u64,
    },
}

fn default_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn target(name: &str) -> anyhow::Result<&'static targets::Target> {
    targets::find(name).with_context(|| {
        let names: Vec<&str> = targets::TARGETS.iter().map(|t| t.name).collect();
        format!("unknown target '{name}' (targets: {})", names.join(", "))
    })
}

fn workspace(root: &Path, dir: PathBuf) -> targets::Workspace {
    targets::Workspace {
        dir,
        root: root.to_path_buf(),
        device: prosa::device::default_device(),
    }
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let root = cli.root.canonicalize().context("the repository root")?;
    let findings = cli
        .findings
        .clone()
        .unwrap_or_else(|| root.join("fuzz/findings"));
    match cli.command {
        Cmd::List => {
            for t in targets::TARGETS {
                println!("{}", t.name);
            }
        }
        Cmd::Worker {
            target: name,
            dir,
            seconds,
            seed,
        } => {
            let t = target(&name)?;
            let w = workspace(&root, dir);
            worker::work(t, &w, seconds, seed, &findings)?;
        }
        Cmd::Replay => return replay(&root),
        Cmd::MakeSeeds => seeds::make(&root)?,
        Cmd::Run {
            target: names,
            minutes,
            seconds,
            jobs,
            seed,
            json,
        } => {
            let chosen: Vec<&targets::Target> = if names.is_empty() {
                targets::TARGETS.iter().collect()
            } else {
                names
                    .iter()
                    .map(|n| target(n))
                    .collect::<anyhow::Result<_>>()?
            };
            let seconds = seconds.unwrap_or(minutes * 60.0);
            let reports = run_all(&chosen, &root, &findings, seconds, jobs.max(1), seed)?;
            print_table(&reports);
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_vec_pretty(&reports)?)?;
            }
            if reports.iter().any(|r| r.crashes > 0 || r.stats.panics > 0) {
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Fuzzes `chosen` targets, `jobs` at a time, in the listed order.
fn run_all(
    chosen: &[&targets::Target],
    root: &Path,
    findings: &Path,
    seconds: f64,
    jobs: usize,
    seed: u64,
) -> anyhow::Result<Vec<supervise::Report>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let reports = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(t) = chosen.get(i) else { break };
                eprintln!("fuzzing {} for {seconds:.0} s", t.name);
                let report = supervise::supervise(t, root, findings, seconds, seed);
                reports.lock().expect("no panics here").push((i, report));
            });
        }
    });
    let mut reports = reports.into_inner().expect("no panics here");
    reports.sort_by_key(|(i, _)| *i);
    reports.into_iter().map(|(_, r)| r).collect()
}

fn print_table(reports: &[supervise::Report]) {
    println!(
        "{:<16} {:>8} {:>12} {:>10} {:>10} {:>8} {:>8} {:>8}",
        "target", "minutes", "executions", "exec/s", "accepted", "guarded", "panics", "crashes"
    );
    for r in reports {
        println!(
            "{:<16} {:>8.1} {:>12} {:>10.0} {:>10} {:>8} {:>8} {:>8}",
            r.target,
            r.seconds / 60.0,
            r.stats.executions,
            r.stats.executions as f64 / r.seconds.max(1e-9),
            r.stats.accepted,
            r.stats.guarded,
            r.stats.panics,
            r.crashes
        );
    }
    for r in reports {
        for f in &r.findings {
            println!("finding: {}", f.display());
        }
    }
}

/// Runs every seed and finding of every target once, in this process.
fn replay(root: &Path) -> anyhow::Result<std::process::ExitCode> {
    worker::quiet_panics();
    let mut failures = 0;
    for t in targets::TARGETS {
        let scratch = tempfile::tempdir()?;
        let w = workspace(root, scratch.path().to_path_buf());
        targets::prepare(t, &w)?;
        let corpus = worker::seeds(root, t, false);
        let mut accepted = 0;
        for (stem, bytes) in &corpus {
            match worker::run_once(t, &w, stem, bytes) {
                Ok(ok) => accepted += ok as usize,
                Err(message) => {
                    failures += 1;
                    eprintln!("{}: {stem}: panicked: {message}", t.name);
                }
            }
        }
        println!(
            "{:<16} {:>3} inputs, {:>3} accepted",
            t.name,
            corpus.len(),
            accepted
        );
    }
    Ok(if failures == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

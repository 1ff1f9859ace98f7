//! `prosa`: the command-line face of the prosa library. Each command is a thin layer over a
//! library call; `--json` everywhere gives machine-readable output.

mod bench_cmd;
mod bench_decoder;
mod bench_encoder;
mod bench_report;
mod bench_seq2seq;
mod bench_translate;
mod compare_cmd;
mod data_cmd;
mod eval_cmd;
mod explain_attention;
mod explain_cmd;
mod explain_elmo;
mod generate_cmd;
mod metrics_cmd;
mod pipeline_cmd;
mod pretrain_cmd;
mod quickstart_cmd;
mod read_args;
mod serve_cmd;
mod train_cmd;
mod train_print;
mod translate_cmd;
mod vectors_cmd;
mod vectors_train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Deep NLP in Rust: train, evaluate and run text models from the command line.
#[derive(Parser)]
#[command(name = "prosa", version, about, long_about = None)]
struct Cli {
    /// Where models load, train and run: cpu, cuda or cuda:N (cuda needs a build with
    /// `--features cuda`).
    #[arg(long, global = true, default_value = "cpu")]
    device: prosa::device::DeviceSpec,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Unit I in one command: bag-of-words, RNN, LSTM and GRU on the tweets, compared.
    Quickstart(quickstart_cmd::QuickstartArgs),
    /// Hugging Face-style pipelines: text-classification, token-classification, question-answering,
    /// fill-mask, feature-extraction, sentence-embedding, text-generation.
    Pipeline(pipeline_cmd::PipelineArgs),
    /// Pretrain a small BERT (masked LM + next-sentence prediction) or T5 (span corruption)
    /// from scratch.
    Pretrain(pretrain_cmd::PretrainArgs),
    /// Look at and split datasets.
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
    /// Train a model (flags and/or a TOML experiment file); prints where the outputs went.
    Train(Box<train_cmd::TrainArgs>),
    /// Score a saved model on labelled data: report, confusion matrix and learning curves.
    Evaluate(eval_cmd::EvaluateArgs),
    /// Predict the label of texts with a saved model.
    Predict(eval_cmd::PredictArgs),
    /// Look inside a trained model: the hidden state word by word.
    #[command(subcommand)]
    Explain(explain_cmd::ExplainCommand),
    /// Generate text with a decoder (GPT-2 / Llama folder or GGUF file), streamed as it is made.
    Generate(Box<generate_cmd::GenerateArgs>),
    /// Translate texts with a translator folder (`prosa train --task translation`).
    Translate(translate_cmd::TranslateArgs),
    /// Perplexity of a decoder on a text file (sliding window).
    Perplexity(generate_cmd::PerplexityArgs),
    /// Measure throughput (see scripts/bench_*.py for the comparisons with peers).
    #[command(subcommand)]
    Bench(bench_cmd::BenchCommand),
    /// Word vectors: train word2vec, explore neighbours and analogies, convert.
    #[command(subcommand)]
    Vectors(vectors_cmd::VectorsCommand),
    /// Scores of files: BLEU and chrF as sacrebleu computes them, ROUGE as rouge-score does.
    #[command(subcommand)]
    Metrics(metrics_cmd::MetricsCommand),
    /// Training runs side by side: last validation numbers and the curves of every run.
    Compare(compare_cmd::CompareArgs),
    /// Serve models over HTTP: OpenAI-compatible API (chat, completions, embeddings), every
    /// pipeline, Prometheus metrics and a web playground.
    Serve(serve_cmd::ServeArgs),
}

/// Keeps large tensor buffers in the heap instead of a fresh `mmap` per allocation: glibc's
/// default returns every buffer over a few MB to the kernel, and the page faults of getting it
/// back cost more system time than the arithmetic (measured: 22 s of 28 s on an MLP epoch).
/// And no fastbins: with large buffers coming and going in the heap, each large request first
/// consolidated the small freed chunks parked there (`malloc_consolidate` and its unlinking,
/// ~1.5% of an F16 prompt's main thread, with the helper waiting meanwhile): A/B ×1.01–1.02 for
/// F16 prompts, ×1.008 for MiniLM embeddings, the same peak RSS.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; called once before any threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_MXFAST, 0);
    }
}

/// candle's element-wise thread pool spins for a while after every op before it parks; on a
/// small machine the spinning worker takes a core from the rayon pool that matrix products and
/// prosa's fused ops run on (measured: the LSTM training step 15% slower on 2 cores). Parking
/// at once keeps candle's parallelism for large ops without the spinning. An explicit
/// `CANDLE_BARRIER_POOL_SPIN_LIMIT` wins.
fn tune_candle_pool() {
    const SPIN_LIMIT: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(SPIN_LIMIT).is_none() {
        // Called first thing in main, before any thread exists.
        std::env::set_var(SPIN_LIMIT, "1");
    }
}

/// A closed pipe (`prosa generate … | head`) ends the program quietly, as it does other Unix
/// tools, instead of making `println!` panic.
fn quiet_broken_pipe() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: restores the default disposition of one signal, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Makes the main thread one of rayon's workers. Otherwise every parallel loop started by the
/// main thread is handed to the pool while the main thread sleeps, and each of the hundreds of
/// small products per generated token pays two thread wake-ups. `RAYON_NUM_THREADS` still sets
/// the size.
fn join_rayon_pool() {
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // Fails only if a pool exists already, which is then used as it is.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .use_current_thread()
        .build_global();
}

fn main() -> ExitCode {
    quiet_broken_pipe();
    quiet_guarded_panics();
    join_rayon_pool();
    tune_allocator();
    tune_candle_pool();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let device = cli.device;
    let result = match cli.command {
        Command::Data(cmd) => data_cmd::run(cmd),
        Command::Pipeline(args) => pipeline_cmd::run(args, device),
        Command::Pretrain(args) => pretrain_cmd::run(args, device),
        Command::Quickstart(args) => quickstart_cmd::run(args, device),
        Command::Train(args) => train_cmd::run(*args, device),
        Command::Evaluate(args) => eval_cmd::evaluate(args, device),
        Command::Predict(args) => eval_cmd::predict(args, device),
        Command::Vectors(cmd) => vectors_cmd::run(cmd),
        Command::Metrics(cmd) => metrics_cmd::run(cmd),
        Command::Compare(args) => compare_cmd::run(args),
        Command::Explain(cmd) => explain_cmd::run(cmd, device),
        Command::Bench(cmd) => bench_cmd::run(cmd, device),
        Command::Generate(args) => generate_cmd::run(*args, device),
        Command::Perplexity(args) => generate_cmd::perplexity_run(args, device),
        Command::Translate(args) => translate_cmd::run(args, device),
        Command::Serve(args) => serve_cmd::run(args, device),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Panics inside a guarded third-party decoder (`prosa::guard`) become errors naming the file:
/// the default hook's message would only repeat them as noise.
fn quiet_guarded_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !prosa::guard::active() {
            default(info);
        }
    }));
}

/// Prints clap's message; help and version end with status 0, a bad flag or value with 1 like
/// every other error (clap's own convention is 2), so scripts check one status.
fn usage_error(e: clap::Error) -> ExitCode {
    let _ = e.print();
    if e.use_stderr() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

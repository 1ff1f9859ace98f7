//! `prosa vectors train`: word2vec on text files (skip-gram or CBOW, negative sampling or
//! hierarchical softmax), with a progress bar, written as word2vec binary (`.bin`) or text.

use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use prosa::vectors::word2vec::{self, Architecture, Tokenization, Word2VecConfig};

use crate::print_json;

/// Flags of `prosa vectors train`, named as gensim's `Word2Vec` arguments.
#[derive(Args)]
pub struct TrainArgs {
    /// Text files: each line a sentence of whitespace-separated words (tokenize beforehand, or
    /// pass --simple-preprocess).
    #[arg(long, required = true, num_args = 1..)]
    corpus: Vec<PathBuf>,
    /// Split lines as gensim's `simple_preprocess`: lower-cased runs of letters, 2–15 long.
    #[arg(long)]
    simple_preprocess: bool,
    /// The vectors file: word2vec binary when it ends in .bin, word2vec text otherwise.
    #[arg(long)]
    out: PathBuf,
    /// skipgram or cbow.
    #[arg(long, default_value = "cbow")]
    arch: ArchArg,
    /// Vector width.
    #[arg(long, default_value_t = 100)]
    dim: usize,
    /// Largest distance to a neighbour.
    #[arg(long, default_value_t = 5)]
    window: usize,
    /// Negative samples per pair (0: none; then --hs).
    #[arg(long, default_value_t = 5)]
    negative: usize,
    /// Hierarchical softmax.
    #[arg(long)]
    hs: bool,
    /// Drop words seen fewer times.
    #[arg(long, default_value_t = 5)]
    min_count: u64,
    /// Subsampling threshold of frequent words (0: off).
    #[arg(long, default_value_t = 1e-3)]
    sample: f64,
    /// Passes over the corpus.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// First learning rate.
    #[arg(long, default_value_t = 0.025)]
    alpha: f64,
    /// Last learning rate.
    #[arg(long, default_value_t = 0.0001)]
    min_alpha: f64,
    /// Training threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Seed of the initial vectors and the random numbers.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The architectures.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ArchArg {
    /// Each word predicts its neighbours.
    Skipgram,
    /// The neighbours predict the word.
    Cbow,
}

/// Runs `prosa vectors train`.
pub fn run(a: TrainArgs) -> anyhow::Result<()> {
    let config = Word2VecConfig {
        arch: match a.arch {
            ArchArg::Skipgram => Architecture::SkipGram,
            ArchArg::Cbow => Architecture::Cbow,
        },
        dim: a.dim,
        window: a.window,
        negative: a.negative,
        hs: a.hs,
        min_count: a.min_count,
        sample: a.sample,
        epochs: a.epochs,
        alpha: a.alpha,
        min_alpha: a.min_alpha,
        threads: a.threads,
        seed: a.seed,
        ..Word2VecConfig::default()
    };
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {percent:>3}% {msg} [{elapsed_precise} < {eta_precise}]",
        )
        .expect("a valid template"),
    );
    let tokenization = if a.simple_preprocess {
        Tokenization::Simple
    } else {
        Tokenization::Whitespace
    };
    let started = std::time::Instant::now();
    let (vectors, report) =
        word2vec::train_files(&a.corpus, tokenization, &config, &|done, words| {
            bar.set_position((done * 1000.0) as u64);
            let rate = words as f64 / started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("{:.0}k words/s", rate / 1e3));
        })?;
    bar.finish_and_clear();
    if a.out.extension().is_some_and(|e| e == "bin") {
        vectors.save_word2vec_binary(&a.out)?;
    } else {
        vectors.save_word2vec_text(&a.out)?;
    }
    if a.json {
        return print_json(
            &serde_json::json!({ "out": a.out, "report": report, "config": config }),
        );
    }
    println!(
        "{} words × {} trained on {} corpus words in {:.1}s: {:.0} effective words/s → {}",
        report.vocabulary,
        config.dim,
        report.corpus_words,
        report.seconds,
        report.effective_words_per_second,
        a.out.display()
    );
    Ok(())
}

//! `prosa vectors neighbors|analogy|convert`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use prosa::vectors::{Similar, VectorsFormat, WordVectors};
use serde::Serialize;

use crate::print_json;

/// `prosa vectors …`
#[derive(Subcommand)]
pub enum VectorsCommand {
    /// The nearest words by cosine similarity.
    Neighbors(NeighborsArgs),
    /// Solve "A is to B as C is to ?": the words nearest to A - B + C (e.g. king man woman).
    Analogy(AnalogyArgs),
    /// Keep the first N words and write them in word2vec's binary format.
    Convert(ConvertArgs),
    /// Train word2vec (skip-gram or CBOW) on text files.
    Train(crate::vectors_train::TrainArgs),
}

/// Which vectors to load.
#[derive(Args)]
pub struct Source {
    /// Word-vector file: word2vec text or binary, GloVe text, or a .npy matrix.
    #[arg(long)]
    vectors: PathBuf,
    /// Word index of a .npy matrix (parquet with the words in its first column, or one word per line).
    #[arg(long)]
    index: Option<PathBuf>,
    /// File format: auto, word2vec-text, word2vec-binary, glove or npy.
    #[arg(long, default_value = "auto")]
    format: VectorsFormat,
}

impl Source {
    fn load(&self) -> prosa::Result<WordVectors> {
        WordVectors::load(&self.vectors, self.format, self.index.as_deref())
    }
}

/// Flags of `prosa vectors neighbors`.
#[derive(Args)]
pub struct NeighborsArgs {
    #[command(flatten)]
    source: Source,
    /// The word.
    word: String,
    /// How many neighbours.
    #[arg(short, long, default_value_t = 10)]
    k: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Flags of `prosa vectors analogy`.
#[derive(Args)]
pub struct AnalogyArgs {
    #[command(flatten)]
    source: Source,
    /// A (positive), e.g. king.
    a: String,
    /// B (negative), e.g. man.
    b: String,
    /// C (positive), e.g. woman.
    c: String,
    /// How many answers.
    #[arg(short, long, default_value_t = 5)]
    k: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Flags of `prosa vectors convert`.
#[derive(Args)]
pub struct ConvertArgs {
    #[command(flatten)]
    source: Source,
    /// Keep the first N words (the most frequent, in GloVe and word2vec files).
    #[arg(long)]
    top: Option<usize>,
    /// Output file (word2vec binary).
    #[arg(long)]
    out: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn show(results: &[Similar], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&results);
    }
    for s in results {
        println!("{:<20} {:.4}", s.word, s.similarity);
    }
    Ok(())
}

/// Runs a `prosa vectors` command.
pub fn run(cmd: VectorsCommand) -> anyhow::Result<()> {
    match cmd {
        VectorsCommand::Train(a) => crate::vectors_train::run(a),
        VectorsCommand::Neighbors(a) => show(&a.source.load()?.neighbors(&a.word, a.k)?, a.json),
        VectorsCommand::Analogy(a) => {
            let v = a.source.load()?;
            show(&v.most_similar(&[&a.a, &a.c], &[&a.b], a.k)?, a.json)
        }
        VectorsCommand::Convert(a) => {
            let mut v = a.source.load()?;
            if let Some(n) = a.top {
                v.truncate(n);
            }
            v.save_word2vec_binary(&a.out)?;
            #[derive(Serialize)]
            struct Out<'a> {
                out: &'a PathBuf,
                words: usize,
                dim: usize,
            }
            let out = Out {
                out: &a.out,
                words: v.len(),
                dim: v.dim(),
            };
            if a.json {
                print_json(&out)?;
            } else {
                println!(
                    "wrote {} vectors of dimension {} to {}",
                    out.words,
                    out.dim,
                    a.out.display()
                );
            }
            Ok(())
        }
    }
}

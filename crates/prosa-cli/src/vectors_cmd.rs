//! `prosa vectors neighbors|analogy|convert|evaluate` (`train` is in `vectors_train`).

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
    /// Analogy accuracy per section and word-similarity correlations, as gensim computes them.
    Evaluate(EvaluateArgs),
    /// A PNG map of chosen words: their vectors on the first two principal components.
    Plot(PlotArgs),
}

/// Flags of `prosa vectors plot`.
#[derive(Args)]
pub struct PlotArgs {
    #[command(flatten)]
    source: Source,
    /// The words, separated by commas or spaces (e.g. "rei,rainha,homem,mulher").
    #[arg(long, required = true, num_args = 1..)]
    words: Vec<String>,
    /// Output PNG.
    #[arg(long)]
    out: PathBuf,
    /// Title of the figure.
    #[arg(long, default_value = "word vectors: 2-D PCA")]
    title: String,
    /// Print the coordinates as JSON.
    #[arg(long)]
    json: bool,
}

/// Flags of `prosa vectors evaluate`.
#[derive(Args)]
pub struct EvaluateArgs {
    #[command(flatten)]
    source: Source,
    /// Analogy questions (`: section` lines, then `a b c d`), e.g. gensim's questions-words.txt.
    #[arg(long)]
    analogies: Option<PathBuf>,
    /// Word pairs with human scores (`word1<TAB>word2<TAB>score`), e.g. wordsim353.tsv.
    #[arg(long)]
    similarity: Option<PathBuf>,
    /// Only the first N words (the most frequent) are candidates and may appear in questions.
    #[arg(long, default_value_t = 300_000)]
    restrict_vocab: usize,
    /// Compare words as written (by default upper-cased, as gensim does).
    #[arg(long)]
    case_sensitive: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
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
    #[arg(short, long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    k: u64,
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
    #[arg(short, long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    k: u64,
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
        VectorsCommand::Evaluate(a) => evaluate(a),
        VectorsCommand::Plot(a) => plot(a),
        VectorsCommand::Neighbors(a) => {
            show(&a.source.load()?.neighbors(&a.word, a.k as usize)?, a.json)
        }
        VectorsCommand::Analogy(a) => {
            let v = a.source.load()?;
            show(
                &v.most_similar(&[&a.a, &a.c], &[&a.b], a.k as usize)?,
                a.json,
            )
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

/// `prosa vectors plot`.
fn plot(a: PlotArgs) -> anyhow::Result<()> {
    let words: Vec<&str> = a
        .words
        .iter()
        .flat_map(|w| w.split([',', ' ']))
        .filter(|w| !w.is_empty())
        .collect();
    let v = a.source.load()?;
    let map = v.pca_map(&words)?;
    let points: Vec<(String, f32, f32)> = map.iter().map(|p| (p.word.clone(), p.x, p.y)).collect();
    prosa::report::word_map_png(&points, &a.title, &a.out)?;
    if a.json {
        return print_json(&map);
    }
    println!("wrote a map of {} words to {}", map.len(), a.out.display());
    Ok(())
}

/// `prosa vectors evaluate`.
fn evaluate(a: EvaluateArgs) -> anyhow::Result<()> {
    if a.analogies.is_none() && a.similarity.is_none() {
        anyhow::bail!("give --analogies FILE, --similarity FILE or both");
    }
    if a.restrict_vocab == 0 {
        anyhow::bail!("--restrict-vocab must be at least 1");
    }
    let v = a.source.load()?;
    let analogies = a
        .analogies
        .as_deref()
        .map(|f| prosa::vectors::evaluate_analogies(&v, f, a.restrict_vocab, a.case_sensitive))
        .transpose()?;
    let similarity = a
        .similarity
        .as_deref()
        .map(|f| prosa::vectors::evaluate_word_pairs(&v, f, a.restrict_vocab, a.case_sensitive))
        .transpose()?;
    if a.json {
        #[derive(Serialize)]
        struct Out {
            analogies: Option<prosa::vectors::AnalogyReport>,
            similarity: Option<prosa::vectors::PairsReport>,
        }
        return print_json(&Out {
            analogies,
            similarity,
        });
    }
    if let Some(r) = &analogies {
        println!(
            "analogies (3CosAdd over the first {} words):",
            a.restrict_vocab.min(v.len())
        );
        for s in &r.sections {
            println!(
                "  {:<28} {:>6.1}%  ({}/{})",
                s.section,
                100.0 * s.accuracy,
                s.correct,
                s.total
            );
        }
        println!(
            "  questions with unknown words: {} of {} ({:.1}%), skipped",
            r.oov_questions,
            r.questions,
            100.0 * r.oov_questions as f64 / r.questions.max(1) as f64
        );
    }
    if let Some(r) = &similarity {
        println!(
            "word pairs: Spearman ρ {:.4}, Pearson r {:.4} over {} pairs ({} with unknown words skipped)",
            r.spearman, r.pearson, r.pairs, r.oov_pairs
        );
    }
    Ok(())
}

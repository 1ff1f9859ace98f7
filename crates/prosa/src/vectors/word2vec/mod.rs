//! Training word2vec (Mikolov et al. 2013) as the original C tool and gensim do: skip-gram or
//! CBOW, negative sampling from the count^0.75 table and/or hierarchical softmax, frequent words
//! subsampled, the window shrunk at random for each word, the learning rate decaying linearly
//! from `alpha` to `min_alpha` over all epochs, and threads updating shared weights without
//! locks. Sentences are lines of whitespace-separated words (gensim's `LineSentence`), cut
//! into jobs of about 10,000 words that the threads take in turn.

pub mod kernels;
pub mod vocab;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use self::kernels::{SigmoidTable, Step, Weights, Worker};
use self::vocab::Vocab;
use super::WordVectors;
use crate::error::{Error, Result};

/// Skip-gram or CBOW.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// Each word predicts its neighbours (gensim `sg=1`).
    SkipGram,
    /// The neighbours together predict the word (gensim `sg=0`).
    Cbow,
}

/// Settings, named and defaulted as gensim's `Word2Vec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word2VecConfig {
    /// Skip-gram or CBOW.
    pub arch: Architecture,
    /// Vector width (`vector_size`).
    pub dim: usize,
    /// Largest distance between a word and a neighbour.
    pub window: usize,
    /// Negative samples per pair (0: none).
    pub negative: usize,
    /// Hierarchical softmax.
    pub hs: bool,
    /// Words seen fewer times are dropped.
    pub min_count: u64,
    /// Subsampling threshold of frequent words (0: off).
    pub sample: f64,
    /// Passes over the corpus.
    pub epochs: usize,
    /// First learning rate.
    pub alpha: f64,
    /// Last learning rate.
    pub min_alpha: f64,
    /// Exponent of the negative-sampling distribution.
    pub ns_exponent: f64,
    /// CBOW: average the context vectors (else sum them).
    pub cbow_mean: bool,
    /// Training threads.
    pub threads: usize,
    /// Seed of the initial vectors and of each thread's random numbers.
    pub seed: u64,
}

impl Default for Word2VecConfig {
    fn default() -> Self {
        Self {
            arch: Architecture::Cbow,
            dim: 100,
            window: 5,
            negative: 5,
            hs: false,
            min_count: 5,
            sample: 1e-3,
            epochs: 5,
            alpha: 0.025,
            min_alpha: 0.0001,
            ns_exponent: 0.75,
            cbow_mean: true,
            threads: 2,
            seed: 1,
        }
    }
}

/// What a training run did.
#[derive(Debug, Clone, Serialize)]
pub struct Word2VecReport {
    /// Words in the vocabulary.
    pub vocabulary: usize,
    /// Words of the corpus (all, before `min_count`).
    pub corpus_words: u64,
    /// Word occurrences trained on after subsampling, all epochs.
    pub effective_words: u64,
    /// Seconds of training (vocabulary excluded).
    pub seconds: f64,
    /// Effective words per second, as gensim reports them.
    pub effective_words_per_second: f64,
}

/// Words per job, as gensim's `batch_words`.
const JOB_WORDS: usize = 10_000;

/// The corpus as lines of words.
pub struct Corpus {
    sentences: Vec<Vec<String>>,
    source: PathBuf,
}

/// How a corpus line becomes words.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum Tokenization {
    /// Split at whitespace, words kept as written (gensim's `LineSentence`).
    #[default]
    Whitespace,
    /// gensim's `simple_preprocess`: lower-cased runs of letters, 2 to 15 characters.
    Simple,
}

impl Tokenization {
    /// The words of one line.
    pub fn words(self, line: &str) -> Vec<String> {
        match self {
            Tokenization::Whitespace => line.split_whitespace().map(str::to_string).collect(),
            Tokenization::Simple => simple_preprocess(line),
        }
    }
}

/// gensim's `simple_preprocess(doc)`: maximal runs of word characters other than digits
/// (letters, accented ones included, and `_`), lower-cased, kept when 2 to 15 characters long and
/// not starting with `_`.
pub fn simple_preprocess(line: &str) -> Vec<String> {
    line.split(|c: char| !(c.is_alphabetic() || c == '_'))
        .filter(|t| !t.starts_with('_') && (2..=15).contains(&t.chars().count()))
        .map(str::to_lowercase)
        .collect()
}

impl Corpus {
    /// Reads text files: each line a sentence, split into words as `tokenization` says.
    pub fn read(paths: &[PathBuf], tokenization: Tokenization) -> Result<Self> {
        let mut sentences = Vec::new();
        for path in paths {
            let text = crate::fsio::read_text(path)?;
            sentences.extend(
                text.lines()
                    .map(|l| tokenization.words(l))
                    .filter(|s| !s.is_empty()),
            );
        }
        let source = paths.first().cloned().unwrap_or_default();
        Ok(Self { sentences, source })
    }

    /// A corpus of sentences already split into words.
    pub fn from_sentences(sentences: Vec<Vec<String>>) -> Self {
        Self {
            sentences,
            source: PathBuf::from("<sentences>"),
        }
    }

    fn counts(&self) -> (HashMap<String, u64>, u64) {
        let mut counts: HashMap<String, u64> = HashMap::new();
        let mut total = 0;
        for w in self.sentences.iter().flatten() {
            *counts.entry(w.clone()).or_insert(0) += 1;
            total += 1;
        }
        (counts, total)
    }
}

/// Called during training with the fraction done and the effective words trained so far.
pub type Progress<'a> = dyn Fn(f64, u64) + Sync + 'a;

/// Trains vectors on `corpus`; `progress` is called as jobs finish.
pub fn train(
    corpus: &Corpus,
    config: &Word2VecConfig,
    progress: &Progress<'_>,
) -> Result<(WordVectors, Word2VecReport)> {
    check(config)?;
    let (counts, corpus_words) = corpus.counts();
    if corpus_words == 0 {
        return Err(Error::config(
            "corpus",
            format!("{}: the corpus has no words", corpus.source.display()),
        ));
    }
    let vocab = Vocab::new(
        counts,
        config.min_count,
        config.sample,
        config.ns_exponent,
        config.hs,
    );
    if vocab.is_empty() {
        return Err(Error::config(
            "min_count",
            format!(
                "no word of {} occurs {} times or more",
                corpus.source.display(),
                config.min_count
            ),
        ));
    }
    // Sentences as ids (words outside the vocabulary dropped), cut into jobs.
    let ids: Vec<Vec<u32>> = corpus
        .sentences
        .iter()
        .map(|s| {
            s.iter()
                .filter_map(|w| vocab.index.get(w).copied())
                .collect()
        })
        .collect();
    let jobs = jobs(&ids);
    let dim = config.dim;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.seed);
    let mut input: Vec<f32> = (0..vocab.len() * dim)
        .map(|_| (rng.random::<f32>() - 0.5) / dim as f32)
        .collect();
    let mut negative = vec![
        0f32;
        if config.negative > 0 {
            vocab.len() * dim
        } else {
            0
        }
    ];
    let mut tree = vec![0f32; if config.hs { vocab.len() * dim } else { 0 }];
    let weights = Weights {
        input: input.as_mut_ptr(),
        negative: negative.as_mut_ptr(),
        tree: tree.as_mut_ptr(),
        dim,
    };
    let sigmoid = SigmoidTable::new();
    let total_jobs = jobs.len() * config.epochs;
    let next_job = AtomicUsize::new(0);
    let effective = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..config.threads {
            let (weights, vocab, sigmoid, jobs, ids) = (&weights, &vocab, &sigmoid, &jobs, &ids);
            let (next_job, effective) = (&next_job, &effective);
            scope.spawn(move || {
                let mut worker = Worker::new(config.seed.wrapping_add(t as u64), dim);
                loop {
                    let n = next_job.fetch_add(1, Ordering::Relaxed);
                    if n >= total_jobs {
                        break;
                    }
                    let done = n as f64 / total_jobs as f64;
                    let alpha = config.alpha - (config.alpha - config.min_alpha) * done;
                    let step = Step {
                        vocab,
                        sigmoid,
                        negative: config.negative,
                        alpha: alpha.max(config.min_alpha) as f32,
                    };
                    let (first, last) = jobs[n % jobs.len()];
                    let mut trained = 0;
                    for sentence in &ids[first..last] {
                        trained += train_sentence(&step, weights, &mut worker, sentence, config);
                    }
                    let so_far = effective.fetch_add(trained, Ordering::Relaxed) + trained;
                    if t == 0 {
                        progress(done, so_far as u64);
                    }
                }
            });
        }
    });
    progress(1.0, effective.load(Ordering::Relaxed) as u64);
    let seconds = start.elapsed().as_secs_f64();
    let effective_words = effective.load(Ordering::Relaxed) as u64;
    let vectors = WordVectors::from_parts(vocab.words.clone(), dim, input, &corpus.source)?;
    Ok((
        vectors,
        Word2VecReport {
            vocabulary: vocab.len(),
            corpus_words,
            effective_words,
            seconds,
            effective_words_per_second: effective_words as f64 / seconds.max(1e-9),
        },
    ))
}

fn check(c: &Word2VecConfig) -> Result<()> {
    let bad = |field: &str, message: &str| Err(Error::config(field, message.to_string()));
    if c.dim == 0 {
        return bad("dim", "vectors need at least one dimension");
    }
    if c.window == 0 {
        return bad("window", "the window must hold at least one neighbour");
    }
    if c.negative == 0 && !c.hs {
        return bad(
            "negative",
            "choose negative sampling (--negative N) or --hs",
        );
    }
    if c.negative > kernels::MAX_NEGATIVE {
        return Err(Error::config(
            "negative",
            format!("at most {} samples per pair", kernels::MAX_NEGATIVE),
        ));
    }
    if c.epochs == 0 || c.threads == 0 {
        return bad("epochs/threads", "must be at least 1");
    }
    if !(c.alpha > 0.0 && c.min_alpha >= 0.0 && c.min_alpha <= c.alpha) {
        return bad("alpha", "needs 0 ≤ min_alpha ≤ alpha and alpha > 0");
    }
    if c.sample.is_nan() || c.sample < 0.0 {
        return bad("sample", "must be ≥ 0");
    }
    Ok(())
}

/// Sentence ranges of about `JOB_WORDS` words each.
fn jobs(ids: &[Vec<u32>]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut first, mut words) = (0, 0);
    for (i, s) in ids.iter().enumerate() {
        words += s.len();
        if words >= JOB_WORDS {
            out.push((first, i + 1));
            first = i + 1;
            words = 0;
        }
    }
    if first < ids.len() {
        out.push((first, ids.len()));
    }
    out
}

/// Trains on one sentence; returns the words kept after subsampling.
fn train_sentence(
    step: &Step,
    weights: &Weights,
    worker: &mut Worker,
    sentence: &[u32],
    config: &Word2VecConfig,
) -> usize {
    let vocab = step.vocab;
    let kept: Vec<u32> = sentence
        .iter()
        .copied()
        .filter(|&w| {
            let keep = vocab.keep[w as usize];
            keep == u32::MAX || keep as u64 >= (worker.next_random() & 0xFFFF_FFFF)
        })
        .collect();
    let mut context = Vec::with_capacity(2 * config.window);
    for (i, &center) in kept.iter().enumerate() {
        let shrink = (worker.next_random() % config.window as u64) as usize;
        let reach = config.window - shrink;
        let (lo, hi) = (i.saturating_sub(reach), (i + reach + 1).min(kept.len()));
        match config.arch {
            Architecture::SkipGram => {
                for (j, &neighbour) in kept.iter().enumerate().take(hi).skip(lo) {
                    if j != i {
                        kernels::skip_gram(step, weights, worker, center, neighbour);
                    }
                }
            }
            Architecture::Cbow => {
                context.clear();
                context.extend((lo..hi).filter(|&j| j != i).map(|j| kept[j]));
                kernels::cbow(step, weights, worker, center, &context, config.cbow_mean);
            }
        }
    }
    kept.len()
}

/// Reads a corpus and trains (a convenience for the command line).
pub fn train_files(
    paths: &[PathBuf],
    tokenization: Tokenization,
    config: &Word2VecConfig,
    progress: &Progress<'_>,
) -> Result<(WordVectors, Word2VecReport)> {
    if paths.is_empty() {
        return Err(Error::config("corpus", "give at least one corpus file"));
    }
    train(&Corpus::read(paths, tokenization)?, config, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sentences drawn from two topics that never mix.
    fn two_topics() -> Corpus {
        let topics = [
            ["cat", "dog", "horse", "cow", "sheep", "goat", "pig", "duck"],
            [
                "hammer", "saw", "drill", "wrench", "chisel", "pliers", "file", "plane",
            ],
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let sentences = (0..4000)
            .map(|k| {
                let topic = &topics[k % 2];
                (0..8)
                    .map(|_| topic[rng.random_range(0..topic.len())].to_string())
                    .collect()
            })
            .collect();
        Corpus::from_sentences(sentences)
    }

    #[test]
    fn neighbours_come_from_the_same_topic() {
        for arch in [Architecture::SkipGram, Architecture::Cbow] {
            for hs in [false, true] {
                let config = Word2VecConfig {
                    arch,
                    dim: 16,
                    hs,
                    negative: if hs { 0 } else { 5 },
                    min_count: 1,
                    epochs: 3,
                    ..Default::default()
                };
                let (vectors, report) = train(&two_topics(), &config, &|_, _| {}).unwrap();
                assert_eq!(report.vocabulary, 16);
                assert_eq!(report.corpus_words, 32_000);
                for word in ["cat", "hammer"] {
                    let animal = word == "cat";
                    let near = vectors.neighbors(word, 5).unwrap();
                    for n in near {
                        let same = ["cat", "dog", "horse", "cow", "sheep", "goat", "pig", "duck"]
                            .contains(&n.word.as_str())
                            == animal;
                        assert!(same, "{arch:?} hs={hs}: {word} ~ {}", n.word);
                    }
                }
            }
        }
    }

    #[test]
    fn bad_settings_and_corpora_are_named() {
        let corpus = two_topics();
        let err = |c: Word2VecConfig| train(&corpus, &c, &|_, _| {}).unwrap_err().to_string();
        assert!(err(Word2VecConfig {
            dim: 0,
            ..Default::default()
        })
        .contains("dim"));
        assert!(err(Word2VecConfig {
            min_count: 1_000_000,
            ..Default::default()
        })
        .contains("min_count"));
        let empty = Corpus::from_sentences(Vec::new());
        let e = train(&empty, &Word2VecConfig::default(), &|_, _| {}).unwrap_err();
        assert!(e.to_string().contains("no words"), "{e}");
    }

    #[test]
    fn simple_preprocess_keeps_lower_cased_words_of_letters() {
        assert_eq!(
            simple_preprocess("Ação é 42 vezes _x  mais-rápida, Dr. a caçar3!"),
            ["ação", "vezes", "mais", "rápida", "dr", "caçar"]
        );
    }
}

//! Intrinsic evaluation of word vectors as gensim 4.4's `KeyedVectors` computes it: analogy
//! accuracy per section (`evaluate_word_analogies`: 3CosAdd over the `restrict_vocab` most
//! frequent words, case-insensitive, questions with unknown words skipped) and the Spearman and
//! Pearson correlations with human similarity judgements (`evaluate_word_pairs`).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Serialize;

use super::WordVectors;
use crate::error::{Error, Result};
use crate::nn::gemm::matmul;

/// Candidates looked at per question: gensim's `most_similar(topn=5)`.
const TOPN: usize = 5;
/// Questions scored per matrix product.
const QUESTIONS_PER_PRODUCT: usize = 512;

/// Analogy accuracy of one section of the questions file (or of all of them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SectionAccuracy {
    /// The section's name (`capital-common-countries`, …; `Total accuracy` for all).
    pub section: String,
    /// Questions answered correctly.
    pub correct: usize,
    /// Questions evaluated (all four words known).
    pub total: usize,
    /// `correct / total` (0 when no question was evaluated).
    pub accuracy: f64,
}

/// What [`evaluate_analogies`] found.
#[derive(Debug, Clone, Serialize)]
pub struct AnalogyReport {
    /// One entry per section, in file order, then the total (gensim's `Total accuracy`).
    pub sections: Vec<SectionAccuracy>,
    /// Questions skipped because a word is outside the evaluated vocabulary.
    pub oov_questions: usize,
    /// Well-formed questions in the file.
    pub questions: usize,
}

impl AnalogyReport {
    /// The overall accuracy (gensim's returned score).
    pub fn accuracy(&self) -> f64 {
        self.sections.last().map_or(0.0, |s| s.accuracy)
    }
}

/// What [`evaluate_word_pairs`] found.
#[derive(Debug, Clone, Serialize)]
pub struct PairsReport {
    /// Spearman's rank correlation between the human and the cosine similarities.
    pub spearman: f64,
    /// Pearson's correlation between them.
    pub pearson: f64,
    /// Pairs evaluated.
    pub pairs: usize,
    /// Pairs skipped because a word is outside the evaluated vocabulary.
    pub oov_pairs: usize,
}

/// The evaluated vocabulary: the first `restrict_vocab` words, upper-cased unless
/// `case_sensitive`, each form mapped to its first (most frequent) row.
struct Vocabulary {
    rows: HashMap<String, usize>,
    size: usize,
    case_sensitive: bool,
}

impl Vocabulary {
    fn new(vectors: &WordVectors, restrict_vocab: usize, case_sensitive: bool) -> Self {
        let size = restrict_vocab.min(vectors.len());
        let mut rows = HashMap::with_capacity(size);
        for (i, word) in vectors.words[..size].iter().enumerate() {
            let key = if case_sensitive {
                word.clone()
            } else {
                word.to_uppercase()
            };
            rows.entry(key).or_insert(i);
        }
        Self {
            rows,
            size,
            case_sensitive,
        }
    }

    fn key(&self, word: &str) -> String {
        if self.case_sensitive {
            word.to_string()
        } else {
            word.to_uppercase()
        }
    }
}

/// One analogy question: rows of a, b, c and the expected answer's key, in its section.
struct Question {
    section: usize,
    rows: [usize; 3],
    keys: [String; 3],
    expected: String,
}

/// Accuracy on an analogy file (`: section` lines, then `a b c d` lines meaning a is to b as c
/// is to d): the answer is the word nearest to `b − a + c` (unit vectors) among the first
/// `restrict_vocab` words, the question's own words excluded (gensim's default is 300,000).
pub fn evaluate_analogies(
    vectors: &WordVectors,
    path: &Path,
    restrict_vocab: usize,
    case_sensitive: bool,
) -> Result<AnalogyReport> {
    let vocab = Vocabulary::new(vectors, restrict_vocab, case_sensitive);
    let text = crate::fsio::read_text(path)?;
    let mut names: Vec<String> = Vec::new();
    let mut questions = Vec::new();
    let (mut well_formed, mut oov) = (0, 0);
    for (number, line) in text.lines().enumerate() {
        if let Some(name) = line.strip_prefix(": ") {
            names.push(name.trim_start_matches([':', ' ']).trim().to_string());
            continue;
        }
        if names.is_empty() {
            return Err(Error::BadRow {
                path: path.to_path_buf(),
                line: number + 1,
                message: "a question before the first ': section' line".into(),
            });
        }
        let words: Vec<String> = line.split_whitespace().map(|w| vocab.key(w)).collect();
        let [a, b, c, d] = words.as_slice() else {
            continue; // gensim skips lines that are not four words
        };
        well_formed += 1;
        let rows: Option<Vec<usize>> = [a, b, c, d]
            .iter()
            .map(|w| vocab.rows.get(*w).copied())
            .collect();
        let Some(rows) = rows else {
            oov += 1;
            continue;
        };
        questions.push(Question {
            section: names.len() - 1,
            rows: [rows[0], rows[1], rows[2]],
            keys: [a.clone(), b.clone(), c.clone()],
            expected: d.clone(),
        });
    }
    let correct = answer(vectors, &vocab, &questions);
    let mut sections: Vec<SectionAccuracy> = names
        .into_iter()
        .map(|section| SectionAccuracy {
            section,
            correct: 0,
            total: 0,
            accuracy: 0.0,
        })
        .collect();
    for (q, ok) in questions.iter().zip(&correct) {
        sections[q.section].total += 1;
        sections[q.section].correct += usize::from(*ok);
    }
    sections.push(SectionAccuracy {
        section: "Total accuracy".into(),
        correct: correct.iter().filter(|ok| **ok).count(),
        total: questions.len(),
        accuracy: 0.0,
    });
    for s in &mut sections {
        s.accuracy = if s.total == 0 {
            0.0
        } else {
            s.correct as f64 / s.total as f64
        };
    }
    Ok(AnalogyReport {
        sections,
        oov_questions: oov,
        questions: well_formed,
    })
}

/// Whether each question is answered correctly, scoring questions in blocks with one matrix
/// product each: `dists = vectors · mean / norms`, as gensim's `most_similar`.
fn answer(vectors: &WordVectors, vocab: &Vocabulary, questions: &[Question]) -> Vec<bool> {
    let (dim, n) = (vectors.dim, vocab.size);
    let table = &vectors.values[..n * dim];
    let norms: Vec<f32> = table
        .chunks(dim)
        .map(|row| row.iter().map(|v| v * v).sum::<f32>().sqrt())
        .collect();
    let mut correct = Vec::with_capacity(questions.len());
    for block in questions.chunks(QUESTIONS_PER_PRODUCT) {
        // mean = unit(b) + unit(c) − unit(a), normalised (gensim divides by 3 first).
        let mut means = vec![0f32; block.len() * dim];
        for (q, mean) in block.iter().zip(means.chunks_mut(dim)) {
            for (&row, sign) in q.rows.iter().zip([-1.0f32, 1.0, 1.0]) {
                let unit = &vectors.unit[row * dim..(row + 1) * dim];
                mean.iter_mut().zip(unit).for_each(|(m, u)| *m += sign * u);
            }
            let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            mean.iter_mut().for_each(|v| *v /= norm);
        }
        // scores (questions × n) = means · tableᵀ.
        let mut scores = vec![0f32; block.len() * n];
        matmul(
            block.len(),
            n,
            dim,
            &mut scores,
            (1, n as isize),
            &means,
            (1, dim as isize),
            table,
            (dim as isize, 1),
            false,
            true,
        );
        for (q, row) in block.iter().zip(scores.chunks_mut(n)) {
            row.iter_mut().zip(&norms).for_each(|(s, norm)| *s /= norm);
            correct.push(judge(q, row, vectors, vocab));
        }
    }
    correct
}

/// gensim's rule: among the `TOPN` best words other than the question's rows, the first whose
/// key is not one of the question's words is the prediction (the last one if none is).
fn judge(q: &Question, scores: &[f32], vectors: &WordVectors, vocab: &Vocabulary) -> bool {
    let mut best: Vec<(f32, usize)> = Vec::with_capacity(TOPN + 1);
    for (i, &s) in scores.iter().enumerate() {
        if q.rows.contains(&i) || (best.len() == TOPN && s <= best[TOPN - 1].0) {
            continue;
        }
        let at = best.partition_point(|(b, _)| *b >= s);
        best.insert(at, (s, i));
        best.truncate(TOPN);
    }
    let ignore: HashSet<&str> = q.keys.iter().map(String::as_str).collect();
    let mut predicted = None;
    for &(_, i) in &best {
        let key = vocab.key(&vectors.words[i]);
        let done = !ignore.contains(key.as_str());
        predicted = Some(key);
        if done {
            break;
        }
    }
    predicted.as_deref() == Some(q.expected.as_str())
}

/// Correlations with a word-pairs file (`word1<TAB>word2<TAB>score` lines, `#` comments;
/// malformed lines skipped as gensim does): the cosine similarity of each pair whose words are
/// among the first `restrict_vocab`.
pub fn evaluate_word_pairs(
    vectors: &WordVectors,
    path: &Path,
    restrict_vocab: usize,
    case_sensitive: bool,
) -> Result<PairsReport> {
    let vocab = Vocabulary::new(vectors, restrict_vocab, case_sensitive);
    let text = crate::fsio::read_text(path)?;
    let (mut gold, mut model, mut oov) = (Vec::new(), Vec::new(), 0);
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [a, b, score] = fields.as_slice() else {
            continue;
        };
        let Ok(score) = score.trim().parse::<f64>() else {
            continue;
        };
        match (vocab.rows.get(&vocab.key(a)), vocab.rows.get(&vocab.key(b))) {
            (Some(&ia), Some(&ib)) => {
                gold.push(score);
                model.push(vectors.cosine_of_rows(ia, ib) as f64);
            }
            _ => oov += 1,
        }
    }
    if gold.is_empty() {
        return Err(Error::Parse {
            path: path.to_path_buf(),
            message: "no word pair with both words in the vectors' vocabulary (lines are \
                      word1<TAB>word2<TAB>score)"
                .into(),
        });
    }
    Ok(PairsReport {
        spearman: pearson(&ranks(&gold), &ranks(&model)),
        pearson: pearson(&gold, &model),
        pairs: gold.len(),
        oov_pairs: oov,
    })
}

/// Ranks from 1, ties given their average rank (scipy's `rankdata`).
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let average = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = average;
        }
        start = end;
    }
    ranks
}

/// Pearson's correlation coefficient (0 when either side is constant).
fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        return 0.0;
    }
    sxy / (sxx * syy).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_share_their_average_rank() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn spearman_of_a_monotone_relation_is_one() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let y = [1.0, 8.0, 27.0, 64.0];
        assert!((pearson(&ranks(&x), &ranks(&y)) - 1.0).abs() < 1e-12);
        assert!(pearson(&x, &y) < 0.99);
    }
}

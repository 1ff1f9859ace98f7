//! ROUGE as Google's `rouge-score` computes it (`RougeScorer(types, use_stemmer)`): texts
//! lower-cased, every run of characters outside `a-z0-9` a space (accented letters included),
//! tokens of more than 3 letters Porter-stemmed when asked (NLTK's variant); ROUGE-N from
//! clipped n-gram counts, ROUGE-L from the longest common subsequence, ROUGE-Lsum from the
//! union LCS of each reference line against all hypothesis lines (lines split on `\n`).
//! With several references the one of highest F-measure counts (`score_multi`); a corpus
//! score is the mean of the pairs' precision, recall and F-measure.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::porter;
use crate::error::{Error, Result};

/// Precision, recall and F-measure of one ROUGE type.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct RougeScore {
    /// Matches / hypothesis units.
    pub precision: f64,
    /// Matches / reference units.
    pub recall: f64,
    /// Their harmonic mean.
    pub fmeasure: f64,
}

impl RougeScore {
    fn new(precision: f64, recall: f64) -> Self {
        let fmeasure = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Self {
            precision,
            recall,
            fmeasure,
        }
    }
}

/// The ROUGE types of `rouge-score`'s usual call.
pub const DEFAULT_TYPES: [&str; 4] = ["rouge1", "rouge2", "rougeL", "rougeLsum"];

/// What to compute.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Ngram(usize),
    Lcs,
    LcsSummary,
}

fn kind(name: &str) -> Result<Kind> {
    match name {
        "rougeL" => Ok(Kind::Lcs),
        "rougeLsum" => Ok(Kind::LcsSummary),
        _ => match name.strip_prefix("rouge").map(str::parse::<usize>) {
            Some(Ok(n)) if (1..=9).contains(&n) => Ok(Kind::Ngram(n)),
            _ => Err(Error::config(
                "rouge_types",
                format!("unknown ROUGE type '{name}' (rouge1 … rouge9, rougeL, rougeLsum)"),
            )),
        },
    }
}

/// `rouge-score`'s tokens of a text.
pub fn tokenize(text: &str, use_stemmer: bool) -> Vec<String> {
    let lower = text.to_lowercase();
    let spaced: String = lower
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                ' '
            }
        })
        .collect();
    spaced
        .split(' ')
        .filter(|t| !t.is_empty())
        .map(|t| {
            if use_stemmer && t.len() > 3 {
                porter::stem(t)
            } else {
                t.to_string()
            }
        })
        .filter(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        .collect()
}

/// Scores of one hypothesis against one reference for each type.
pub fn score(
    reference: &str,
    hypothesis: &str,
    types: &[&str],
    use_stemmer: bool,
) -> Result<BTreeMap<String, RougeScore>> {
    let kinds = types.iter().map(|t| kind(t)).collect::<Result<Vec<_>>>()?;
    let reference_tokens = tokenize(reference, use_stemmer);
    let hypothesis_tokens = tokenize(hypothesis, use_stemmer);
    let mut out = BTreeMap::new();
    for (name, kind) in types.iter().zip(kinds) {
        let s = match kind {
            Kind::Ngram(n) => ngram_score(&reference_tokens, &hypothesis_tokens, n),
            Kind::Lcs => lcs_score(&reference_tokens, &hypothesis_tokens),
            Kind::LcsSummary => {
                let lines = |text: &str| -> Vec<Vec<String>> {
                    text.split('\n')
                        .filter(|l| !l.is_empty())
                        .map(|l| tokenize(l, use_stemmer))
                        .collect()
                };
                summary_lcs_score(&lines(reference), &lines(hypothesis))
            }
        };
        out.insert(name.to_string(), s);
    }
    Ok(out)
}

/// Each type's score against the reference of highest F-measure for that type.
pub fn score_multi(
    references: &[&str],
    hypothesis: &str,
    types: &[&str],
    use_stemmer: bool,
) -> Result<BTreeMap<String, RougeScore>> {
    let all = references
        .iter()
        .map(|r| score(r, hypothesis, types, use_stemmer))
        .collect::<Result<Vec<_>>>()?;
    let mut best = BTreeMap::new();
    for t in types {
        // numpy's argmax: the first of equal maxima.
        let mut chosen: Option<RougeScore> = None;
        for s in &all {
            let s = s[*t];
            if chosen.is_none_or(|c| s.fmeasure > c.fmeasure) {
                chosen = Some(s);
            }
        }
        best.insert(t.to_string(), chosen.unwrap_or_default());
    }
    Ok(best)
}

/// Mean precision, recall and F-measure over pairs; `references[k][i]` is the k-th reference
/// of hypothesis i.
pub fn corpus_rouge(
    hypotheses: &[&str],
    references: &[Vec<&str>],
    types: &[&str],
    use_stemmer: bool,
) -> Result<BTreeMap<String, RougeScore>> {
    if references.is_empty() || references.iter().any(|r| r.len() != hypotheses.len()) {
        return Err(Error::config(
            "references",
            format!(
                "each reference set needs one line per hypothesis ({})",
                hypotheses.len()
            ),
        ));
    }
    let mut sums: BTreeMap<String, RougeScore> = BTreeMap::new();
    for (i, h) in hypotheses.iter().enumerate() {
        let refs: Vec<&str> = references.iter().map(|r| r[i]).collect();
        for (t, s) in score_multi(&refs, h, types, use_stemmer)? {
            let sum = sums.entry(t).or_default();
            sum.precision += s.precision;
            sum.recall += s.recall;
            sum.fmeasure += s.fmeasure;
        }
    }
    let n = hypotheses.len().max(1) as f64;
    Ok(sums
        .into_iter()
        .map(|(t, s)| {
            (
                t,
                RougeScore {
                    precision: s.precision / n,
                    recall: s.recall / n,
                    fmeasure: s.fmeasure / n,
                },
            )
        })
        .collect())
}

fn ngrams(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    if tokens.len() >= n {
        for w in tokens.windows(n) {
            *counts.entry(w).or_insert(0) += 1;
        }
    }
    counts
}

fn ngram_score(reference: &[String], hypothesis: &[String], n: usize) -> RougeScore {
    let (r, h) = (ngrams(reference, n), ngrams(hypothesis, n));
    let overlap: usize = r
        .iter()
        .map(|(g, &c)| c.min(h.get(g).copied().unwrap_or(0)))
        .sum();
    let (rc, hc): (usize, usize) = (r.values().sum(), h.values().sum());
    RougeScore::new(
        overlap as f64 / hc.max(1) as f64,
        overlap as f64 / rc.max(1) as f64,
    )
}

/// The LCS length table of `a` (rows) and `b` (columns).
fn lcs_table(a: &[String], b: &[String]) -> Vec<Vec<usize>> {
    let mut t = vec![vec![0; b.len() + 1]; a.len() + 1];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            t[i][j] = if a[i - 1] == b[j - 1] {
                t[i - 1][j - 1] + 1
            } else {
                t[i - 1][j].max(t[i][j - 1])
            };
        }
    }
    t
}

fn lcs_score(reference: &[String], hypothesis: &[String]) -> RougeScore {
    if reference.is_empty() || hypothesis.is_empty() {
        return RougeScore::default();
    }
    let lcs = lcs_table(reference, hypothesis)[reference.len()][hypothesis.len()] as f64;
    RougeScore::new(lcs / hypothesis.len() as f64, lcs / reference.len() as f64)
}

/// Indices in `reference` of one LCS with `candidate`, read back as `rouge-score` does.
fn lcs_indices(reference: &[String], candidate: &[String]) -> Vec<usize> {
    let t = lcs_table(reference, candidate);
    let (mut i, mut j) = (reference.len(), candidate.len());
    let mut out = Vec::new();
    while i > 0 && j > 0 {
        if reference[i - 1] == candidate[j - 1] {
            out.push(i - 1);
            i -= 1;
            j -= 1;
        } else if t[i][j - 1] > t[i - 1][j] {
            j -= 1;
        } else {
            i -= 1;
        }
    }
    out.reverse();
    out
}

fn summary_lcs_score(references: &[Vec<String>], hypotheses: &[Vec<String>]) -> RougeScore {
    let m: usize = references.iter().map(Vec::len).sum();
    let n: usize = hypotheses.iter().map(Vec::len).sum();
    if references.is_empty() || hypotheses.is_empty() || m == 0 || n == 0 {
        return RougeScore::default();
    }
    let count = |lines: &[Vec<String>]| {
        let mut c: HashMap<String, usize> = HashMap::new();
        for t in lines.iter().flatten() {
            *c.entry(t.clone()).or_insert(0) += 1;
        }
        c
    };
    let (mut left_r, mut left_h) = (count(references), count(hypotheses));
    let mut hits = 0usize;
    for r in references {
        let mut union: Vec<usize> = hypotheses
            .iter()
            .flat_map(|h| lcs_indices(r, h))
            .collect::<HashSet<usize>>()
            .into_iter()
            .collect();
        union.sort_unstable();
        for token in union.into_iter().map(|i| &r[i]) {
            let (cr, ch) = (
                left_r.get(token).copied().unwrap_or(0),
                left_h.get(token).copied().unwrap_or(0),
            );
            if cr > 0 && ch > 0 {
                hits += 1;
                left_r.insert(token.clone(), cr - 1);
                left_h.insert(token.clone(), ch - 1);
            }
        }
    }
    RougeScore::new(hits as f64 / n as f64, hits as f64 / m as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_drop_accents_and_punctuation_as_rouge_score_does() {
        assert_eq!(
            tokenize("A ação, já!  Run-time 42", false),
            ["a", "a", "o", "j", "run", "time", "42"]
        );
        assert_eq!(
            tokenize("The cats were running", true),
            ["the", "cat", "were", "run"]
        );
    }

    #[test]
    fn identical_texts_score_one_and_disjoint_zero() {
        let s = score("the cat sat", "the cat sat", &DEFAULT_TYPES, false).unwrap();
        assert!(s.values().all(|s| (s.fmeasure - 1.0).abs() < 1e-12));
        let s = score("the cat sat", "dogs bark loudly", &DEFAULT_TYPES, false).unwrap();
        assert!(s.values().all(|s| s.fmeasure == 0.0));
        assert!(kind("rougeX").is_err());
    }
}

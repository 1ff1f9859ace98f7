//! chrF exactly as sacrebleu computes it by default (`CHRF()`: character n-grams of orders 1–6
//! with whitespace removed, β = 2, mixed case, no word n-grams): per segment the reference with
//! the best F-score, then one F-score of the summed statistics.
//!
//! ```text
//! chrF_β = (1 + β²) · P · R / (β² · P + R),   P, R averaged over the n-gram orders present
//! ```

use std::collections::HashMap;

use serde::Serialize;

use super::translation::{check_streams, python_split};
use crate::error::Result;

/// Character n-gram orders.
const CHAR_ORDER: usize = 6;
/// Recall weighs β² times precision.
const BETA: f64 = 2.0;

/// A chrF score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChrfScore {
    /// The score, 0–100.
    pub score: f64,
    /// β.
    pub beta: f64,
    /// Character n-gram orders.
    pub char_order: usize,
}

/// [hypothesis, reference, matched] n-gram counts of each order.
type Stats = [[usize; 3]; CHAR_ORDER];

/// The characters of `line` without its whitespace.
fn characters(line: &str) -> Vec<char> {
    python_split(line).concat().chars().collect()
}

/// Character n-grams of orders 1–6 with their counts.
fn char_ngrams(chars: &[char]) -> Vec<HashMap<&[char], usize>> {
    (1..=CHAR_ORDER)
        .map(|n| {
            let mut counts = HashMap::new();
            for window in chars.windows(n) {
                *counts.entry(window).or_insert(0) += 1;
            }
            counts
        })
        .collect()
}

/// sacrebleu's `_compute_f_score` (without epsilon smoothing).
fn f_score(stats: &Stats) -> f64 {
    let factor = BETA * BETA;
    let (mut precision, mut recall, mut orders) = (0.0, 0.0, 0);
    for &[hyp, reference, matched] in stats {
        if hyp > 0 && reference > 0 {
            precision += matched as f64 / hyp as f64;
            recall += matched as f64 / reference as f64;
            orders += 1;
        }
    }
    if orders == 0 {
        return 0.0;
    }
    let (p, r) = (precision / orders as f64, recall / orders as f64);
    if p + r == 0.0 {
        return 0.0;
    }
    100.0 * (1.0 + factor) * p * r / (factor * p + r)
}

/// The statistics of one segment against the reference that gives it the best F-score.
fn segment(hypothesis: &str, references: &[&str]) -> Stats {
    let hyp_chars = characters(hypothesis);
    let hyp = char_ngrams(&hyp_chars);
    let mut best: (f64, Stats) = (-1.0, [[0; 3]; CHAR_ORDER]);
    for reference in references {
        let ref_chars = characters(reference);
        let reference = char_ngrams(&ref_chars);
        let mut stats = [[0; 3]; CHAR_ORDER];
        for (n, (h, r)) in hyp.iter().zip(&reference).enumerate() {
            let matched: usize = h
                .iter()
                .map(|(gram, &count)| r.get(gram).map_or(0, |&rc| count.min(rc)))
                .sum();
            let hyp_count: usize = h.values().sum();
            // No hits are counted for an order the reference does not have.
            stats[n] = [
                if r.is_empty() { 0 } else { hyp_count },
                r.values().sum(),
                matched,
            ];
        }
        let f = f_score(&stats);
        if f > best.0 {
            best = (f, stats);
        }
    }
    best.1
}

fn finish(stats: &Stats) -> ChrfScore {
    ChrfScore {
        score: f_score(stats),
        beta: BETA,
        char_order: CHAR_ORDER,
    }
}

/// Corpus chrF of `hypotheses` against reference streams (`references[k][i]` is the `k`-th
/// reference of segment `i`).
pub fn corpus_chrf(hypotheses: &[&str], references: &[Vec<&str>]) -> Result<ChrfScore> {
    check_streams(hypotheses, references)?;
    let mut sum: Stats = [[0; 3]; CHAR_ORDER];
    for (i, hyp) in hypotheses.iter().enumerate() {
        let refs: Vec<&str> = references.iter().map(|stream| stream[i]).collect();
        for (total, s) in sum.iter_mut().zip(segment(hyp, &refs)) {
            for k in 0..3 {
                total[k] += s[k];
            }
        }
    }
    Ok(finish(&sum))
}

/// chrF of one hypothesis against its references.
pub fn sentence_chrf(hypothesis: &str, references: &[&str]) -> ChrfScore {
    finish(&segment(hypothesis, references))
}

/// sacrebleu's signature of the default chrF for `refs` references per segment.
pub fn chrf_signature(refs: usize) -> String {
    format!("nrefs:{refs}|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_text_scores_100_and_whitespace_does_not_count() {
        let refs = vec![vec!["o gato está no tapete"]];
        let same = corpus_chrf(&["o  gato está no\ttapete"], &refs).unwrap();
        assert!((same.score - 100.0).abs() < 1e-9, "{}", same.score);
        assert_eq!(corpus_chrf(&["xyz"], &refs).unwrap().score, 0.0);
    }
}

//! BLEU exactly as sacrebleu computes it by default (`BLEU()`: the `13a` tokenizer, mixed case,
//! exponential smoothing, n-grams up to 4, the closest reference length), for a corpus with one
//! or several references per segment, and sentence BLEU (`effective_order=True`).
//!
//! ```text
//! BLEU = BP · exp(¼ Σₙ log pₙ),   pₙ = matched n-grams / hypothesis n-grams (clipped counts)
//! BP   = 1 if c ≥ r, else exp(1 − r/c)     c: hypothesis length, r: closest reference length
//! ```

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use super::translation::{check_streams, python_rstrip, python_split};
use crate::error::Result;

/// The n-gram orders BLEU counts.
const MAX_ORDER: usize = 4;

/// A BLEU score with its statistics, as sacrebleu's `BLEUScore`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BleuScore {
    /// The score, 0–100.
    pub score: f64,
    /// Matched n-grams of each order.
    pub counts: [usize; MAX_ORDER],
    /// Hypothesis n-grams of each order.
    pub totals: [usize; MAX_ORDER],
    /// n-gram precisions (smoothed), in percent.
    pub precisions: [f64; MAX_ORDER],
    /// The brevity penalty.
    pub bp: f64,
    /// Hypothesis tokens.
    pub sys_len: usize,
    /// Reference tokens (the closest reference of each segment).
    pub ref_len: usize,
}

/// sacrebleu's `13a` tokenizer (mteval-v13a): unescapes a few entities, then splits
/// punctuation and symbols off words, keeping periods and commas inside numbers.
pub fn tokenize_13a(line: &str) -> String {
    static RULES: LazyLock<[(Regex, &str); 4]> = LazyLock::new(|| {
        let re = |p: &str| Regex::new(p).expect("a valid pattern");
        [
            (re(r"([\{-~\[-`\x20-&\(-\+:-@/])"), " $1 "),
            (re(r"([^0-9])([\.,])"), "$1 $2 "),
            (re(r"([\.,])([^0-9])"), " $1 $2"),
            (re(r"([0-9])(-)"), "$1 $2 "),
        ]
    });
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut line = format!(" {line} ");
    for (rule, replacement) in RULES.iter() {
        line = rule.replace_all(&line, *replacement).into_owned();
    }
    python_split(&line).join(" ")
}

/// The n-grams (orders 1–4) of a tokenized line with their counts, and its length in tokens.
fn ngrams(tokens: &[&str]) -> HashMap<Vec<String>, usize> {
    let mut counts = HashMap::new();
    for n in 1..=MAX_ORDER {
        for window in tokens.windows(n) {
            *counts
                .entry(window.iter().map(|t| t.to_string()).collect())
                .or_insert(0) += 1;
        }
    }
    counts
}

/// The sufficient statistics of one segment: hypothesis length, closest reference length,
/// matches and totals per order.
struct Segment {
    sys_len: usize,
    ref_len: usize,
    correct: [usize; MAX_ORDER],
    total: [usize; MAX_ORDER],
}

fn segment(hypothesis: &str, references: &[&str]) -> Segment {
    let hyp = tokenize_13a(python_rstrip(hypothesis));
    let hyp_tokens = python_split(&hyp);
    let mut ref_ngrams: HashMap<Vec<String>, usize> = HashMap::new();
    let mut ref_lens = Vec::with_capacity(references.len());
    for reference in references {
        let tokenized = tokenize_13a(python_rstrip(reference));
        let tokens = python_split(&tokenized);
        ref_lens.push(tokens.len());
        for (gram, count) in ngrams(&tokens) {
            let slot = ref_ngrams.entry(gram).or_insert(0);
            *slot = (*slot).max(count);
        }
    }
    // The closest reference length; on a tie, the shorter one.
    let hyp_len = hyp_tokens.len();
    let mut closest: Option<(usize, usize)> = None;
    for &len in &ref_lens {
        let diff = hyp_len.abs_diff(len);
        closest = match closest {
            Some((d, l)) if diff > d || (diff == d && len >= l) => Some((d, l)),
            _ => Some((diff, len)),
        };
    }
    let mut correct = [0; MAX_ORDER];
    let mut total = [0; MAX_ORDER];
    for (gram, count) in ngrams(&hyp_tokens) {
        let n = gram.len() - 1;
        total[n] += count;
        if let Some(&r) = ref_ngrams.get(&gram) {
            correct[n] += count.min(r);
        }
    }
    Segment {
        sys_len: hyp_len,
        ref_len: closest.map_or(0, |(_, l)| l),
        correct,
        total,
    }
}

/// The score of summed statistics with exponential smoothing (sacrebleu's `compute_bleu`).
fn score(stats: &Segment, effective_order: bool) -> BleuScore {
    let (sys_len, ref_len) = (stats.sys_len, stats.ref_len);
    let bp = if sys_len < ref_len {
        if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    let mut precisions = [0.0; MAX_ORDER];
    let mut out = BleuScore {
        score: 0.0,
        counts: stats.correct,
        totals: stats.total,
        precisions,
        bp,
        sys_len,
        ref_len,
    };
    if stats.correct.iter().all(|&c| c == 0) {
        return out;
    }
    let mut smooth = 1.0;
    let mut order = MAX_ORDER;
    for (n, (precision, (&correct, &total))) in precisions
        .iter_mut()
        .zip(stats.correct.iter().zip(&stats.total))
        .enumerate()
    {
        if total == 0 {
            break;
        }
        if effective_order {
            order = n + 1;
        }
        *precision = if correct == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total as f64)
        } else {
            100.0 * correct as f64 / total as f64
        };
    }
    let log = |p: f64| if p == 0.0 { -9_999_999_999.0 } else { p.ln() };
    out.score =
        bp * (precisions[..order].iter().map(|&p| log(p)).sum::<f64>() / order as f64).exp();
    out.precisions = precisions;
    out
}

/// Corpus BLEU of `hypotheses` against reference streams (`references[k][i]` is the `k`-th
/// reference of segment `i`; every stream as long as the hypotheses).
pub fn corpus_bleu(hypotheses: &[&str], references: &[Vec<&str>]) -> Result<BleuScore> {
    check_streams(hypotheses, references)?;
    let mut sum = Segment {
        sys_len: 0,
        ref_len: 0,
        correct: [0; MAX_ORDER],
        total: [0; MAX_ORDER],
    };
    for (i, hyp) in hypotheses.iter().enumerate() {
        let refs: Vec<&str> = references.iter().map(|stream| stream[i]).collect();
        let s = segment(hyp, &refs);
        sum.sys_len += s.sys_len;
        sum.ref_len += s.ref_len;
        for n in 0..MAX_ORDER {
            sum.correct[n] += s.correct[n];
            sum.total[n] += s.total[n];
        }
    }
    Ok(score(&sum, false))
}

/// Sentence BLEU of one hypothesis against its references (sacrebleu's `sentence_bleu`: the
/// effective order, so a short sentence is not zero for lacking 4-grams).
pub fn sentence_bleu(hypothesis: &str, references: &[&str]) -> BleuScore {
    score(&segment(hypothesis, references), true)
}

/// sacrebleu's signature of the default BLEU for `refs` references per segment.
pub fn bleu_signature(refs: usize) -> String {
    format!("nrefs:{refs}|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_13a_tokenizer_splits_punctuation_but_not_numbers() {
        assert_eq!(
            tokenize_13a("Olá, mundo! Custa R$3,50 (ou 3.5)-isso."),
            "Olá , mundo ! Custa R $ 3,50 ( ou 3.5 ) -isso ."
        );
        assert_eq!(tokenize_13a("a &amp; b"), "a & b");
    }

    #[test]
    fn identical_text_scores_100_and_nothing_in_common_scores_0() {
        let refs = vec![vec!["o gato está no tapete ."]];
        let same = corpus_bleu(&["o gato está no tapete ."], &refs).unwrap();
        assert!((same.score - 100.0).abs() < 1e-9);
        let none = corpus_bleu(&["xyz"], &refs).unwrap();
        assert_eq!(none.score, 0.0);
    }
}

//! Bag-of-words features like scikit-learn's `CountVectorizer` / `TfidfVectorizer`: lower-case,
//! tokens of two or more word characters, word n-grams, `min_df`, `max_features`, and counts,
//! binary presence or TF-IDF (smooth idf, optional sublinear tf, L2 norm).

use std::collections::HashMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How term counts become feature values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weighting {
    /// Raw counts (`CountVectorizer`).
    Counts,
    /// 1 when present (`CountVectorizer(binary=True)`).
    Binary,
    /// TF-IDF with L2-normalised rows (`TfidfVectorizer`).
    #[default]
    Tfidf,
}

impl std::str::FromStr for Weighting {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "counts" | "count" => Ok(Self::Counts),
            "binary" => Ok(Self::Binary),
            "tfidf" | "tf-idf" => Ok(Self::Tfidf),
            other => Err(format!(
                "unknown weighting '{other}' (use counts, binary or tfidf)"
            )),
        }
    }
}

/// Settings of a [`Vectorizer`], named as in scikit-learn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VectorizerConfig {
    /// Feature values.
    pub weighting: Weighting,
    /// Smallest and largest n-gram size.
    pub ngram_range: (usize, usize),
    /// Keep terms found in at least this many documents.
    pub min_df: usize,
    /// Keep at most this many terms, the most frequent.
    pub max_features: Option<usize>,
    /// Use `1 + ln(tf)` instead of `tf` (TF-IDF only).
    pub sublinear_tf: bool,
    /// Lower-case before tokenising.
    pub lowercase: bool,
}

impl Default for VectorizerConfig {
    fn default() -> Self {
        Self {
            weighting: Weighting::Tfidf,
            ngram_range: (1, 2),
            min_df: 1,
            max_features: None,
            sublinear_tf: false,
            lowercase: true,
        }
    }
}

/// A fitted bag-of-words vectorizer: vocabulary (sorted, as scikit-learn's) and idf weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vectorizer {
    /// The settings.
    pub config: VectorizerConfig,
    /// Terms in feature order.
    pub vocabulary: Vec<String>,
    /// Inverse document frequency per feature (TF-IDF only; empty otherwise).
    pub idf: Vec<f32>,
    #[serde(skip)]
    index: HashMap<String, u32>,
}

/// A sparse feature row: `(feature index, value)` sorted by index.
pub type SparseRow = Vec<(u32, f32)>;

fn token_pattern() -> Regex {
    // scikit-learn's default token_pattern, (?u)\b\w\w+\b.
    Regex::new(r"\b\w\w+\b").expect("static regex")
}

impl Vectorizer {
    fn terms(&self, re: &Regex, text: &str) -> Vec<String> {
        let text = if self.config.lowercase {
            text.to_lowercase()
        } else {
            text.to_string()
        };
        let tokens: Vec<&str> = re.find_iter(&text).map(|m| m.as_str()).collect();
        let (lo, hi) = self.config.ngram_range;
        let mut terms = Vec::new();
        for n in lo..=hi {
            for window in tokens.windows(n) {
                terms.push(window.join(" "));
            }
        }
        terms
    }

    /// Learns the vocabulary and idf from `texts`.
    pub fn fit<S: AsRef<str>>(config: VectorizerConfig, texts: &[S]) -> Result<Self> {
        let (lo, hi) = config.ngram_range;
        if lo == 0 || hi < lo {
            return Err(Error::config(
                "ngram_range",
                format!("must be 1 ≤ min ≤ max, got ({lo}, {hi})"),
            ));
        }
        let mut this = Self {
            config,
            vocabulary: Vec::new(),
            idf: Vec::new(),
            index: HashMap::new(),
        };
        let re = token_pattern();
        let mut df: HashMap<String, (u32, u64)> = HashMap::new();
        for text in texts {
            let mut terms = this.terms(&re, text.as_ref());
            let total = terms.len();
            terms.sort_unstable();
            let mut i = 0;
            while i < total {
                let mut j = i;
                while j < total && terms[j] == terms[i] {
                    j += 1;
                }
                let entry = df.entry(std::mem::take(&mut terms[i])).or_insert((0, 0));
                entry.0 += 1;
                entry.1 += (j - i) as u64;
                i = j;
            }
        }
        let mut kept: Vec<(String, u32, u64)> = df
            .into_iter()
            .filter(|(_, (d, _))| *d as usize >= this.config.min_df)
            .map(|(t, (d, c))| (t, d, c))
            .collect();
        if let Some(max) = this.config.max_features {
            // Most frequent first; ties broken alphabetically so the result is deterministic.
            kept.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
            kept.truncate(max);
        }
        kept.sort_by(|a, b| a.0.cmp(&b.0));
        if kept.is_empty() {
            return Err(Error::config("vectorizer", "the vocabulary is empty: no text has a token of two or more letters (or min_df is too high)"));
        }
        let n_docs = texts.len() as f64;
        if this.config.weighting == Weighting::Tfidf {
            this.idf = kept
                .iter()
                .map(|(_, d, _)| (((1.0 + n_docs) / (1.0 + *d as f64)).ln() + 1.0) as f32)
                .collect();
        }
        this.vocabulary = kept.into_iter().map(|k| k.0).collect();
        Ok(this.after_load())
    }

    /// Rebuilds the term lookup after deserialisation.
    pub fn after_load(mut self) -> Self {
        self.index = self
            .vocabulary
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        self
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.vocabulary.len()
    }

    /// True when the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.vocabulary.is_empty()
    }

    /// The sparse feature rows of `texts`.
    pub fn transform<S: AsRef<str>>(&self, texts: &[S]) -> Vec<SparseRow> {
        let re = token_pattern();
        texts
            .iter()
            .map(|t| self.transform_one(&re, t.as_ref()))
            .collect()
    }

    fn transform_one(&self, re: &Regex, text: &str) -> SparseRow {
        let mut counts: HashMap<u32, f32> = HashMap::new();
        for term in self.terms(re, text) {
            if let Some(&i) = self.index.get(&term) {
                *counts.entry(i).or_insert(0.0) += 1.0;
            }
        }
        let mut row: SparseRow = counts.into_iter().collect();
        row.sort_by_key(|(i, _)| *i);
        match self.config.weighting {
            Weighting::Counts => {}
            Weighting::Binary => row.iter_mut().for_each(|(_, v)| *v = 1.0),
            Weighting::Tfidf => {
                for (i, v) in row.iter_mut() {
                    let tf = if self.config.sublinear_tf {
                        1.0 + v.ln()
                    } else {
                        *v
                    };
                    *v = tf * self.idf[*i as usize];
                }
                let norm = row.iter().map(|(_, v)| v * v).sum::<f32>().sqrt();
                if norm > 0.0 {
                    row.iter_mut().for_each(|(_, v)| *v /= norm);
                }
            }
        }
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values computed with scikit-learn 1.x:
    /// `TfidfVectorizer(ngram_range=(1,2)).fit(docs)`; vocabulary_ and transform(["the cat sat"]).
    #[test]
    fn tfidf_matches_scikit_learn() {
        let docs = ["the cat sat", "the dog sat down", "a cat"];
        let v = Vectorizer::fit(VectorizerConfig::default(), &docs).unwrap();
        assert_eq!(
            v.vocabulary,
            [
                "cat", "cat sat", "dog", "dog sat", "down", "sat", "sat down", "the", "the cat",
                "the dog"
            ]
        );
        let row = v.transform(&["the cat sat"]).remove(0);
        // idf = ln((1+n)/(1+df)) + 1: cat, sat, the have df 2; "cat sat", "the cat" df 1.
        let a = (4.0f32 / 3.0).ln() + 1.0;
        let b = 2.0f32.ln() + 1.0;
        let norm = (3.0 * a * a + 2.0 * b * b).sqrt();
        let expect = [
            (0, a / norm),
            (1, b / norm),
            (5, a / norm),
            (7, a / norm),
            (8, b / norm),
        ];
        assert_eq!(row.len(), 5);
        for ((i, v), (ei, ev)) in row.iter().zip(expect) {
            assert_eq!(*i, ei);
            assert!((v - ev).abs() < 1e-6);
        }
        // scikit-learn prints 0.39351120409397233 and 0.5174199439321682.
        assert!((row[0].1 - 0.393_511_2).abs() < 1e-6 && (row[1].1 - 0.517_419_9).abs() < 1e-6);
    }

    #[test]
    fn max_features_keeps_most_frequent() {
        let config = VectorizerConfig {
            weighting: Weighting::Counts,
            ngram_range: (1, 1),
            max_features: Some(2),
            ..Default::default()
        };
        let v = Vectorizer::fit(config, &["aa bb bb cc cc cc"]).unwrap();
        assert_eq!(v.vocabulary, ["bb", "cc"]);
        assert_eq!(v.transform(&["cc cc aa"]).remove(0), vec![(1, 2.0)]);
    }

    #[test]
    fn empty_vocabulary_is_an_error() {
        let err = Vectorizer::fit(VectorizerConfig::default(), &["a b c"]).unwrap_err();
        assert!(err.to_string().contains("vocabulary is empty"), "{err}");
    }
}

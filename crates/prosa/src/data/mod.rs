//! Datasets of labelled text: reading, splitting, shuffling, subsetting, balancing, statistics.
//!
//! A [`Dataset`] is plain rows; every operation returns a new dataset, and every random choice
//! takes an explicit seed so runs reproduce.

pub mod conll;
pub mod corpus;
pub mod gettext;
mod labels;
pub mod parallel;
mod read;
mod stats;

use std::collections::BTreeMap;
use std::path::PathBuf;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use labels::LabelMap;
pub use read::{
    embedded_tweets, read_bytes, read_file, Encoding, Format, ReadOptions, EMBEDDED_TWEETS,
};
pub use stats::{DatasetStats, LengthStats};

use crate::error::{Error, Result};

/// One row: a text, its label (if the file has labels) and the line it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The text.
    pub text: String,
    /// The label as written in the file (integers stay strings until mapped to ids).
    pub label: Option<String>,
    /// 1-based line in the source file, for error messages.
    pub line: usize,
}

/// A collection of examples read from one source.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// The rows.
    pub examples: Vec<Example>,
    /// The file they came from.
    pub source: PathBuf,
    /// How many rows were skipped because their text was empty.
    pub skipped_empty: usize,
}

/// How [`Dataset::balance`] evens out the classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Balance {
    /// Repeat random rows of the smaller classes up to the largest class's size.
    Over,
    /// Drop random rows of the larger classes down to the smallest class's size.
    Under,
}

impl std::str::FromStr for Balance {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "over" => Ok(Balance::Over),
            "under" => Ok(Balance::Under),
            other => Err(format!("expected 'over' or 'under', got '{other}'")),
        }
    }
}

impl Dataset {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The texts, in order.
    pub fn texts(&self) -> Vec<&str> {
        self.examples.iter().map(|e| e.text.as_str()).collect()
    }

    fn with_examples(&self, examples: Vec<Example>) -> Dataset {
        Dataset {
            examples,
            source: self.source.clone(),
            skipped_empty: 0,
        }
    }

    /// The label map of this dataset's labels (sorted; numerically if all are integers).
    pub fn label_map(&self) -> Result<LabelMap> {
        let labels = self
            .examples
            .iter()
            .map(|e| self.label_of(e))
            .collect::<Result<Vec<_>>>()?;
        Ok(LabelMap::fit(labels))
    }

    fn label_of<'a>(&self, e: &'a Example) -> Result<&'a str> {
        e.label.as_deref().ok_or_else(|| Error::BadRow {
            path: self.source.clone(),
            line: e.line,
            message: "this row has no label (choose the label column with --label-column)".into(),
        })
    }

    /// Class ids of every row under `map`; a label the map does not know is an error naming
    /// the file and line.
    pub fn label_ids(&self, map: &LabelMap) -> Result<Vec<u32>> {
        self.examples
            .iter()
            .map(|e| {
                let label = self.label_of(e)?;
                map.id(label).ok_or_else(|| Error::UnknownLabel {
                    path: self.source.clone(),
                    line: e.line,
                    label: label.to_string(),
                    known: map.describe(),
                })
            })
            .collect()
    }

    /// A shuffled copy.
    pub fn shuffle(&self, seed: u64) -> Dataset {
        let mut examples = self.examples.clone();
        examples.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        self.with_examples(examples)
    }

    /// The rows in `range` (like Hugging Face's `select(range(n))`); the range is clipped.
    pub fn select(&self, range: std::ops::Range<usize>) -> Dataset {
        let end = range.end.min(self.len());
        let start = range.start.min(end);
        self.with_examples(self.examples[start..end].to_vec())
    }

    /// Splits off a random `test_size` fraction as a test set. With `stratify`, each class is
    /// split in the same proportion (like scikit-learn's `train_test_split(stratify=y)`).
    pub fn train_test_split(
        &self,
        test_size: f64,
        seed: u64,
        stratify: bool,
    ) -> Result<(Dataset, Dataset)> {
        if !(test_size > 0.0 && test_size < 1.0) {
            return Err(Error::config(
                "test_size",
                format!("must be between 0 and 1 (exclusive), got {test_size}"),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let groups: Vec<Vec<usize>> = if stratify {
            let mut by_class: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            for (i, e) in self.examples.iter().enumerate() {
                by_class.entry(self.label_of(e)?).or_default().push(i);
            }
            by_class.into_values().collect()
        } else {
            vec![(0..self.len()).collect()]
        };
        let mut train = Vec::new();
        let mut test = Vec::new();
        for mut group in groups {
            group.shuffle(&mut rng);
            let n_test = ((group.len() as f64) * test_size).round() as usize;
            test.extend_from_slice(&group[..n_test]);
            train.extend_from_slice(&group[n_test..]);
        }
        // Mix the classes again so neither split is ordered by class.
        train.shuffle(&mut rng);
        test.shuffle(&mut rng);
        let pick = |ids: &[usize]| {
            self.with_examples(ids.iter().map(|&i| self.examples[i].clone()).collect())
        };
        let (train, test) = (pick(&train), pick(&test));
        if train.is_empty() || test.is_empty() {
            return Err(Error::config(
                "test_size",
                format!(
                    "splitting {} rows with test_size {test_size} leaves an empty split",
                    self.len()
                ),
            ));
        }
        Ok((train, test))
    }

    /// Keras' `validation_split`: the last `fraction` of the rows (not shuffled) becomes the
    /// validation set; returns `(train, validation)`.
    pub fn validation_split(&self, fraction: f64) -> Result<(Dataset, Dataset)> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(Error::config(
                "validation_split",
                format!("must be between 0 and 1 (exclusive), got {fraction}"),
            ));
        }
        let cut = self.len() - ((self.len() as f64) * fraction).round() as usize;
        Ok((self.select(0..cut), self.select(cut..self.len())))
    }

    /// Evens out the class sizes by over- or under-sampling, then shuffles.
    pub fn balance(&self, how: Balance, seed: u64) -> Result<Dataset> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut by_class: BTreeMap<&str, Vec<&Example>> = BTreeMap::new();
        for e in &self.examples {
            by_class.entry(self.label_of(e)?).or_default().push(e);
        }
        let sizes = by_class.values().map(Vec::len);
        let target = match how {
            Balance::Over => sizes.max().unwrap_or(0),
            Balance::Under => sizes.min().unwrap_or(0),
        };
        let mut examples = Vec::new();
        for rows in by_class.values_mut() {
            rows.shuffle(&mut rng);
            for i in 0..target {
                examples.push(rows[i % rows.len()].clone());
            }
        }
        examples.shuffle(&mut rng);
        Ok(self.with_examples(examples))
    }

    /// Rows, class distribution and text-length percentiles.
    pub fn stats(&self) -> DatasetStats {
        DatasetStats::of(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n_a: usize, n_b: usize) -> Dataset {
        let examples = (0..n_a + n_b)
            .map(|i| Example {
                text: format!("text {i}"),
                label: Some(if i < n_a { "a" } else { "b" }.into()),
                line: i + 2,
            })
            .collect();
        Dataset {
            examples,
            source: "toy.csv".into(),
            skipped_empty: 0,
        }
    }

    fn count(d: &Dataset, label: &str) -> usize {
        d.examples
            .iter()
            .filter(|e| e.label.as_deref() == Some(label))
            .count()
    }

    #[test]
    fn stratified_split_keeps_class_proportions_and_is_seeded() {
        let d = toy(80, 20);
        let (train, test) = d.train_test_split(0.2, 42, true).unwrap();
        assert_eq!((count(&test, "a"), count(&test, "b")), (16, 4));
        assert_eq!(train.len(), 80);
        let (_, again) = d.train_test_split(0.2, 42, true).unwrap();
        assert_eq!(test, again);
        let (_, other) = d.train_test_split(0.2, 7, true).unwrap();
        assert_ne!(test, other);
    }

    #[test]
    fn validation_split_takes_the_tail_like_keras() {
        let (train, val) = toy(8, 2).validation_split(0.2).unwrap();
        assert_eq!(train.len(), 8);
        assert_eq!(val.examples[0].text, "text 8");
    }

    #[test]
    fn balancing_evens_class_sizes() {
        let over = toy(30, 10).balance(Balance::Over, 1).unwrap();
        assert_eq!((count(&over, "a"), count(&over, "b")), (30, 30));
        let under = toy(30, 10).balance(Balance::Under, 1).unwrap();
        assert_eq!((count(&under, "a"), count(&under, "b")), (10, 10));
    }

    #[test]
    fn unknown_label_names_file_and_line() {
        let d = toy(2, 1);
        let map = LabelMap::fit(["a"]);
        let err = d.label_ids(&map).unwrap_err().to_string();
        assert_eq!(
            err,
            "toy.csv, line 4: unknown label 'b' (the model knows: a)"
        );
    }
}

//! Dataset statistics: row count, class distribution and text-length percentiles.

use serde::Serialize;

use super::Dataset;

/// Percentiles of text length, in whitespace-separated words.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LengthStats {
    /// Mean length.
    pub mean: f64,
    /// Shortest text.
    pub min: usize,
    /// Median.
    pub p50: usize,
    /// 90th percentile.
    pub p90: usize,
    /// 95th percentile.
    pub p95: usize,
    /// 99th percentile.
    pub p99: usize,
    /// Longest text.
    pub max: usize,
}

/// Summary of a dataset, printable as a table or as JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetStats {
    /// The source file.
    pub source: String,
    /// Number of rows kept.
    pub rows: usize,
    /// Rows skipped because their text was empty.
    pub skipped_empty: usize,
    /// `(label, count)` per class, in label-map order; empty when unlabelled.
    pub classes: Vec<(String, usize)>,
    /// Text length in words.
    pub words: LengthStats,
    /// Text length in characters.
    pub chars: LengthStats,
}

fn length_stats(mut lengths: Vec<usize>) -> LengthStats {
    lengths.sort_unstable();
    let n = lengths.len().max(1);
    // Nearest-rank percentile.
    let pct = |p: f64| {
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        lengths.get(rank.clamp(1, n) - 1).copied().unwrap_or(0)
    };
    LengthStats {
        mean: lengths.iter().sum::<usize>() as f64 / n as f64,
        min: lengths.first().copied().unwrap_or(0),
        p50: pct(50.0),
        p90: pct(90.0),
        p95: pct(95.0),
        p99: pct(99.0),
        max: lengths.last().copied().unwrap_or(0),
    }
}

impl DatasetStats {
    /// Computes the statistics of `data`.
    pub fn of(data: &Dataset) -> Self {
        let mut classes = Vec::new();
        if let Ok(map) = data.label_map() {
            if let Ok(ids) = data.label_ids(&map) {
                let mut counts = vec![0usize; map.len()];
                for id in ids {
                    counts[id as usize] += 1;
                }
                classes = map.names().iter().cloned().zip(counts).collect();
            }
        }
        DatasetStats {
            source: data.source.display().to_string(),
            rows: data.len(),
            skipped_empty: data.skipped_empty,
            classes,
            words: length_stats(
                data.examples
                    .iter()
                    .map(|e| e.text.split_whitespace().count())
                    .collect(),
            ),
            chars: length_stats(
                data.examples
                    .iter()
                    .map(|e| e.text.chars().count())
                    .collect(),
            ),
        }
    }

    /// A human-readable table.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "source: {}\nrows: {} (skipped {} empty)\n",
            self.source, self.rows, self.skipped_empty
        );
        if !self.classes.is_empty() {
            out.push_str("\nclass                 count   share\n");
            for (label, count) in &self.classes {
                out.push_str(&format!(
                    "{label:<20} {count:>6}  {:>5.1}%\n",
                    100.0 * *count as f64 / self.rows.max(1) as f64
                ));
            }
        }
        out.push_str("\nlength     mean   min   p50   p90   p95   p99    max\n");
        for (name, s) in [("words", &self.words), ("chars", &self.chars)] {
            out.push_str(&format!(
                "{name:<8} {:>6.1} {:>5} {:>5} {:>5} {:>5} {:>5} {:>6}\n",
                s.mean, s.min, s.p50, s.p90, s.p95, s.p99, s.max
            ));
        }
        out
    }
}

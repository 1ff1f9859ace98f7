//! The record of a run: one entry per evaluation, written as `history.json` and `history.csv`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::fsio;

/// What was measured at one evaluation point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Fractional epoch (1.0 = end of the first epoch).
    pub epoch: f64,
    /// Global optimisation step.
    pub step: usize,
    /// Mean training loss since the previous entry.
    pub train_loss: f64,
    /// Evaluation metrics (`eval_loss`, `eval_accuracy`, `eval_macro_f1`, …).
    pub metrics: BTreeMap<String, f64>,
    /// Learning rate of the last update.
    pub learning_rate: f64,
    /// Seconds since the run started (resumed runs include the earlier time).
    pub wall_time_s: f64,
}

/// All entries of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct History {
    /// Entries in time order.
    pub entries: Vec<HistoryEntry>,
}

impl History {
    /// The metric names that appear in any entry, sorted.
    pub fn metric_names(&self) -> Vec<String> {
        let names: BTreeSet<&String> = self.entries.iter().flat_map(|e| e.metrics.keys()).collect();
        names.into_iter().cloned().collect()
    }

    /// Appends the entries of a later stage that started from fresh counters, continuing this
    /// history's epochs, steps and time (a run in stages, such as ULMFiT's gradual unfreezing,
    /// then reads as one run).
    pub fn append_stage(&mut self, stage: &History) {
        let (epoch, step, time) = self
            .entries
            .last()
            .map_or((0.0, 0, 0.0), |e| (e.epoch, e.step, e.wall_time_s));
        self.entries
            .extend(stage.entries.iter().map(|e| HistoryEntry {
                epoch: e.epoch + epoch,
                step: e.step + step,
                wall_time_s: e.wall_time_s + time,
                ..e.clone()
            }));
    }

    /// The series `(epoch, value)` of `metric` (`train_loss`, `learning_rate` or an eval metric).
    pub fn series(&self, metric: &str) -> Vec<(f64, f64)> {
        self.entries
            .iter()
            .filter_map(|e| {
                let v = match metric {
                    "train_loss" => Some(e.train_loss),
                    "learning_rate" => Some(e.learning_rate),
                    other => e.metrics.get(other).copied(),
                };
                v.map(|v| (e.epoch, v))
            })
            .collect()
    }

    /// `(step, a, b)` of every entry that has both metrics `a` and `b`.
    pub fn metric_pairs(&self, a: &str, b: &str) -> Vec<(usize, f64, f64)> {
        self.entries
            .iter()
            .filter_map(|e| Some((e.step, *e.metrics.get(a)?, *e.metrics.get(b)?)))
            .collect()
    }

    /// The history as CSV text: fixed columns, then one column per metric.
    pub fn to_csv(&self) -> String {
        let metrics = self.metric_names();
        let mut out = String::from("epoch,step,train_loss,learning_rate,wall_time_s");
        for m in &metrics {
            out.push(',');
            out.push_str(m);
        }
        out.push('\n');
        for e in &self.entries {
            out.push_str(&format!(
                "{:.4},{},{:.6},{:.6e},{:.2}",
                e.epoch, e.step, e.train_loss, e.learning_rate, e.wall_time_s
            ));
            for m in &metrics {
                out.push(',');
                if let Some(v) = e.metrics.get(m) {
                    out.push_str(&format!("{v:.6}"));
                }
            }
            out.push('\n');
        }
        out
    }

    /// Writes `history.json` and `history.csv` into `dir`, atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        fsio::write_json(&dir.join("history.json"), self)?;
        fsio::write_atomic(&dir.join("history.csv"), self.to_csv().as_bytes())
    }

    /// Reads `history.json` from `dir`.
    pub fn load(dir: &Path) -> Result<History> {
        fsio::read_json(&dir.join("history.json"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(epoch: f64, step: usize, wall_time_s: f64) -> HistoryEntry {
        HistoryEntry {
            epoch,
            step,
            train_loss: 1.0,
            metrics: BTreeMap::new(),
            learning_rate: 1e-3,
            wall_time_s,
        }
    }

    #[test]
    fn a_later_stage_continues_epochs_steps_and_time() {
        let mut run = History::default();
        run.append_stage(&History {
            entries: vec![entry(1.0, 10, 2.0)],
        });
        run.append_stage(&History {
            entries: vec![entry(1.0, 10, 3.0), entry(2.0, 20, 5.0)],
        });
        let got: Vec<(f64, usize, f64)> = run
            .entries
            .iter()
            .map(|e| (e.epoch, e.step, e.wall_time_s))
            .collect();
        assert_eq!(got, [(1.0, 10, 2.0), (2.0, 20, 5.0), (3.0, 30, 7.0)]);
    }
}

//! Classification metrics with scikit-learn's definitions: accuracy, per-class precision,
//! recall and F1, their macro / micro / weighted averages, the confusion matrix and
//! `classification_report`. A zero denominator gives 0 (scikit-learn's `zero_division=0`).
//! Entity scores as seqeval computes them ([`entities`]); translation scores as sacrebleu
//! computes them ([`bleu`], [`chrf`]).

pub mod bleu;
pub mod chrf;
pub mod entities;
pub mod porter;
pub mod rouge;
mod translation;

use serde::Serialize;

/// Rows are true classes, columns predicted classes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfusionMatrix {
    /// `counts[true][predicted]`.
    pub counts: Vec<Vec<usize>>,
}

impl ConfusionMatrix {
    /// Counts `(true, predicted)` pairs over `num_classes` classes.
    pub fn new(y_true: &[u32], y_pred: &[u32], num_classes: usize) -> Self {
        let mut counts = vec![vec![0; num_classes]; num_classes];
        for (&t, &p) in y_true.iter().zip(y_pred) {
            if (t as usize) < num_classes && (p as usize) < num_classes {
                counts[t as usize][p as usize] += 1;
            }
        }
        Self { counts }
    }

    /// A plain-text table with class names on both axes.
    pub fn to_table(&self, names: &[String]) -> String {
        let width = names.iter().map(String::len).max().unwrap_or(4).max(6) + 2;
        let mut out = format!("{:>width$}", "true \\ pred");
        for n in names {
            out.push_str(&format!("{n:>width$}"));
        }
        out.push('\n');
        for (name, row) in names.iter().zip(&self.counts) {
            out.push_str(&format!("{name:>width$}"));
            for c in row {
                out.push_str(&format!("{c:>width$}"));
            }
            out.push('\n');
        }
        out
    }
}

/// Precision, recall, F1 and support of one class or one average.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prf {
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1 score.
    pub f1: f64,
    /// Number of true rows of the class (or of all classes for averages).
    pub support: usize,
}

fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

fn f1(p: f64, r: f64) -> f64 {
    ratio(2.0 * p * r, p + r)
}

/// Everything `classification_report` shows, as numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationReport {
    /// Class names in id order.
    pub labels: Vec<String>,
    /// Per-class scores, in id order.
    pub per_class: Vec<Prf>,
    /// Fraction of rows predicted right.
    pub accuracy: f64,
    /// Unweighted mean over classes.
    pub macro_avg: Prf,
    /// Scores from the global counts of true positives, false positives and negatives.
    pub micro_avg: Prf,
    /// Mean over classes weighted by support.
    pub weighted_avg: Prf,
    /// The confusion matrix.
    pub confusion: ConfusionMatrix,
}

impl ClassificationReport {
    /// Scores predictions `y_pred` against `y_true` for the classes named in `labels`.
    pub fn new(y_true: &[u32], y_pred: &[u32], labels: &[String]) -> Self {
        let k = labels.len();
        let confusion = ConfusionMatrix::new(y_true, y_pred, k);
        let m = &confusion.counts;
        let total: usize = y_true.len();
        let mut per_class = Vec::with_capacity(k);
        let (mut tp_all, mut fp_all, mut fn_all) = (0usize, 0usize, 0usize);
        for (c, row) in m.iter().enumerate() {
            let tp = row[c];
            let predicted: usize = m.iter().map(|r| r[c]).sum();
            let support: usize = row.iter().sum();
            tp_all += tp;
            fp_all += predicted - tp;
            fn_all += support - tp;
            let precision = ratio(tp as f64, predicted as f64);
            let recall = ratio(tp as f64, support as f64);
            per_class.push(Prf {
                precision,
                recall,
                f1: f1(precision, recall),
                support,
            });
        }
        let mean = |weight: &dyn Fn(&Prf) -> f64| {
            let w: f64 = per_class.iter().map(weight).sum();
            let avg =
                |get: fn(&Prf) -> f64| ratio(per_class.iter().map(|p| weight(p) * get(p)).sum(), w);
            Prf {
                precision: avg(|p| p.precision),
                recall: avg(|p| p.recall),
                f1: avg(|p| p.f1),
                support: total,
            }
        };
        let macro_avg = mean(&|_| 1.0);
        let weighted_avg = mean(&|p| p.support as f64);
        let micro_p = ratio(tp_all as f64, (tp_all + fp_all) as f64);
        let micro_r = ratio(tp_all as f64, (tp_all + fn_all) as f64);
        let accuracy = ratio(
            y_true.iter().zip(y_pred).filter(|(t, p)| t == p).count() as f64,
            total as f64,
        );
        ClassificationReport {
            labels: labels.to_vec(),
            per_class,
            accuracy,
            macro_avg,
            micro_avg: Prf {
                precision: micro_p,
                recall: micro_r,
                f1: f1(micro_p, micro_r),
                support: total,
            },
            weighted_avg,
            confusion,
        }
    }

    /// The report laid out like scikit-learn's `classification_report` (two decimals).
    pub fn to_table(&self) -> String {
        let width = self
            .labels
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(0)
            .max("weighted avg".len());
        // The exact layout of scikit-learn: the name, a space, then " {:>9}" per column.
        let mut out = format!(
            "{:>width$}  {:>9} {:>9} {:>9} {:>9}\n\n",
            "", "precision", "recall", "f1-score", "support"
        );
        let row = |name: &str, p: &Prf| {
            format!(
                "{name:>width$}  {:>9.2} {:>9.2} {:>9.2} {:>9}\n",
                p.precision, p.recall, p.f1, p.support
            )
        };
        for (name, p) in self.labels.iter().zip(&self.per_class) {
            out.push_str(&row(name, p));
        }
        out.push('\n');
        out.push_str(&format!(
            "{:>width$}  {:>9} {:>9} {:>9.2} {:>9}\n",
            "accuracy", "", "", self.accuracy, self.macro_avg.support
        ));
        out.push_str(&row("macro avg", &self.macro_avg));
        out.push_str(&row("weighted avg", &self.weighted_avg));
        out
    }
}

/// Index of the largest value of each row of `probabilities`.
pub fn argmax_rows(rows: &[Vec<f32>]) -> Vec<u32> {
    rows.iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .fold((0usize, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 {
                        (i, v)
                    } else {
                        best
                    }
                })
                .0 as u32
        })
        .collect()
}

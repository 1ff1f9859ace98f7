//! Entity-level scores of tag sequences, as seqeval computes them by default (conlleval's
//! chunking): an entity starts at `B-X`, or at `I-X` after a tag of another type; it ends where
//! the next tag does not continue it. A predicted entity counts when type, start and end match.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

/// Precision, recall and F1 of one entity type (or of all of them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityScore {
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
    /// Entities of this type in the truth.
    pub support: usize,
}

/// Entity-level scores: per type and micro-averaged over all entities.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityReport {
    /// By entity type (`PER`, `LOC`, …).
    pub per_type: BTreeMap<String, EntityScore>,
    /// Over all entities (seqeval's "micro avg").
    pub micro: EntityScore,
}

/// The entities of one tag sequence as `(type, start, end)` with `end` exclusive.
pub fn entities(tags: &[impl AsRef<str>]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut open: Option<(String, usize)> = None;
    for (i, tag) in tags.iter().enumerate() {
        let tag = tag.as_ref();
        let (prefix, kind) = match tag.split_once('-') {
            Some((p, k)) => (p, k),
            None => ("O", ""),
        };
        let continues = prefix == "I" && open.as_ref().is_some_and(|(k, _)| k == kind);
        if !continues {
            if let Some((k, start)) = open.take() {
                out.push((k, start, i));
            }
            if prefix == "B" || prefix == "I" {
                open = Some((kind.to_string(), i));
            }
        }
    }
    if let Some((k, start)) = open {
        out.push((k, start, tags.len()));
    }
    out
}

fn score(tp: usize, predicted: usize, actual: usize) -> EntityScore {
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let (p, r) = (ratio(tp, predicted), ratio(tp, actual));
    EntityScore {
        precision: p,
        recall: r,
        f1: if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        },
        support: actual,
    }
}

/// Scores predicted tag sequences against the true ones, sentence by sentence.
pub fn entity_report<S: AsRef<str>>(truth: &[Vec<S>], predicted: &[Vec<S>]) -> EntityReport {
    let mut counts: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for (t, p) in truth.iter().zip(predicted) {
        let true_set: HashSet<_> = entities(t).into_iter().collect();
        let pred_set: HashSet<_> = entities(p).into_iter().collect();
        for e in &true_set {
            counts.entry(e.0.clone()).or_default().2 += 1;
        }
        for e in &pred_set {
            let c = counts.entry(e.0.clone()).or_default();
            c.1 += 1;
            if true_set.contains(e) {
                c.0 += 1;
            }
        }
    }
    let total = counts
        .values()
        .fold((0, 0, 0), |a, c| (a.0 + c.0, a.1 + c.1, a.2 + c.2));
    EntityReport {
        per_type: counts
            .into_iter()
            .map(|(k, (tp, pred, actual))| (k, score(tp, pred, actual)))
            .collect(),
        micro: score(total.0, total.1, total.2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_follow_conlleval() {
        let tags = [
            "B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-ORG", "O",
        ];
        assert_eq!(
            entities(&tags),
            vec![
                ("PER".to_string(), 0, 2),
                ("LOC".to_string(), 3, 5),
                ("LOC".to_string(), 5, 6),
                ("ORG".to_string(), 6, 7)
            ]
        );
    }

    #[test]
    fn scores_equal_seqeval() {
        // seqeval.metrics.classification_report on these gives PER 1.0/0.5/0.67, LOC 0.5/1.0/0.67,
        // micro 0.667/0.667/0.667.
        let truth = vec![
            vec!["B-PER", "I-PER", "O", "B-LOC"],
            vec!["B-PER", "O", "O", "O"],
        ];
        let pred = vec![
            vec!["B-PER", "I-PER", "O", "B-LOC"],
            vec!["O", "O", "B-LOC", "O"],
        ];
        let r = entity_report(&truth, &pred);
        let per = &r.per_type["PER"];
        assert_eq!((per.precision, per.recall, per.support), (1.0, 0.5, 2));
        let loc = &r.per_type["LOC"];
        assert_eq!((loc.precision, loc.recall), (0.5, 1.0));
        assert!((r.micro.f1 - 2.0 / 3.0).abs() < 1e-12);
    }
}

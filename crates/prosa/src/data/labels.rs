//! Label maps: the stable correspondence between label names and class ids, stored in a model's
//! `config.json` as Hugging Face's `id2label` / `label2id`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Class names in id order. Built sorted (numerically when every label is an integer), so the
/// same data always gives the same ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LabelMap {
    names: Vec<String>,
}

impl LabelMap {
    /// A map from names given in id order.
    pub fn from_names(names: Vec<String>) -> Self {
        Self { names }
    }

    /// The sorted distinct labels of `labels`.
    pub fn fit<'a>(labels: impl IntoIterator<Item = &'a str>) -> Self {
        let mut names: Vec<String> = labels.into_iter().map(str::to_string).collect();
        names.sort();
        names.dedup();
        if names.iter().all(|n| n.parse::<i64>().is_ok()) {
            names.sort_by_key(|n| n.parse::<i64>().unwrap_or_default());
        }
        Self { names }
    }

    /// The id of `label`.
    pub fn id(&self, label: &str) -> Option<u32> {
        self.names.iter().position(|n| n == label).map(|i| i as u32)
    }

    /// The name of class `id`.
    pub fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("?", String::as_str)
    }

    /// All names, in id order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there are no classes.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Hugging Face's `id2label` (keys are ids written as strings).
    pub fn id2label(&self) -> BTreeMap<String, String> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, n)| (i.to_string(), n.clone()))
            .collect()
    }

    /// Hugging Face's `label2id`.
    pub fn label2id(&self) -> BTreeMap<String, u32> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect()
    }

    /// Rebuilds a map from Hugging Face's `id2label`.
    pub fn from_id2label(map: &BTreeMap<String, String>) -> Option<Self> {
        let mut pairs: Vec<(usize, String)> = map
            .iter()
            .map(|(k, v)| k.parse::<usize>().ok().map(|k| (k, v.clone())))
            .collect::<Option<_>>()?;
        pairs.sort();
        if pairs.iter().enumerate().any(|(i, (k, _))| i != *k) {
            return None;
        }
        Some(Self::from_names(pairs.into_iter().map(|p| p.1).collect()))
    }

    /// The names joined for error messages.
    pub fn describe(&self) -> String {
        self.names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_labels_sort_numerically() {
        let m = LabelMap::fit(["10", "2", "1", "2"]);
        assert_eq!(m.names(), ["1", "2", "10"]);
        assert_eq!(m.id("10"), Some(2));
        let back = LabelMap::from_id2label(&m.id2label()).unwrap();
        assert_eq!(back, m);
    }
}

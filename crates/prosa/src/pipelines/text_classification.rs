//! `text-classification`: the top classes of each text with their probabilities.

use std::path::Path;

use candle_core::Device;
use serde::Serialize;
use serde_json::Value;

use super::registry::{input_texts, to_values, Params, Pipeline};
use crate::error::Result;
use crate::models::{load_classifier, TextClassifier};

/// One class and its probability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScore {
    /// Class name.
    pub label: String,
    /// Probability.
    pub score: f32,
}

/// Any prosa classifier folder (bag-of-words, recurrent or encoder) as a pipeline.
pub struct TextClassification {
    model: Box<dyn TextClassifier>,
}

impl TextClassification {
    /// Loads a classifier folder.
    pub fn from_pretrained(dir: &Path, device: &Device) -> Result<Self> {
        Ok(Self {
            model: load_classifier(dir, device)?,
        })
    }

    /// The `top_k` classes of each text, most probable first.
    pub fn run(&self, texts: &[&str], top_k: usize) -> Result<Vec<Vec<ClassScore>>> {
        let labels = self.model.labels();
        Ok(self
            .model
            .predict_proba(texts)?
            .into_iter()
            .map(|probs| {
                let mut scored: Vec<ClassScore> = probs
                    .iter()
                    .enumerate()
                    .map(|(i, &score)| ClassScore {
                        label: labels.name(i as u32).to_string(),
                        score,
                    })
                    .collect();
                scored.sort_by(|a, b| b.score.total_cmp(&a.score));
                scored.truncate(top_k.max(1));
                scored
            })
            .collect())
    }
}

/// Parameters of the `text-classification` pipeline.
pub const PARAMETERS: &[&str] = &["top_k"];

impl Pipeline for TextClassification {
    fn task(&self) -> &'static str {
        "text-classification"
    }

    fn run_batch(&self, inputs: &[Value], params: &Params) -> Result<Vec<Value>> {
        to_values(self.run(&input_texts(inputs)?, params.usize("top_k", 1)?)?)
    }
}

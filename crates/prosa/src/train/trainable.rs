//! What a model offers the [`super::Trainer`]: its parameters and the loss of a batch of its
//! examples (and, for classifiers, predictions); optionally lengths for `group_by_length`,
//! metrics of its own and parameters that never train.

use std::collections::BTreeMap;

use candle_core::Tensor;

use crate::error::Result;
use crate::nn::{ForwardCtx, ParamStore};

/// What a model returns for one batch.
pub struct StepOutput {
    /// Mean loss over the batch (a scalar tensor connected to the parameters).
    pub loss: Tensor,
    /// Predicted class per example, for classification metrics.
    pub predictions: Option<Vec<u32>>,
    /// True class per example.
    pub targets: Option<Vec<u32>>,
}

/// A model the [`Trainer`] can train.
pub trait Trainable {
    /// One training example, already prepared (token ids, features, label…).
    type Example: Sync;

    /// The model's parameters.
    fn params(&self) -> &ParamStore;

    /// Forward pass over a batch, returning its loss.
    fn forward_batch(&self, batch: &[&Self::Example], ctx: &mut ForwardCtx) -> Result<StepOutput>;

    /// True for language models: evaluation also reports `eval_perplexity = exp(eval_loss)`.
    fn reports_perplexity(&self) -> bool {
        false
    }

    /// True when `forward_batch` returns predictions and targets (classifiers, taggers, masked
    /// LMs), so evaluation reports accuracy (and F1 scores when the classes have names).
    fn reports_predictions(&self) -> bool {
        true
    }

    /// The names (without `eval_`) of the metrics [`extra_metrics`](Self::extra_metrics) gives.
    fn extra_metric_names(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// The length of an example (tokens), for `group_by_length`; `None` when examples have none.
    fn example_length(&self, _example: &Self::Example) -> Option<usize> {
        None
    }

    /// Metrics the model computes itself at each evaluation (a translator's BLEU), keyed
    /// without `eval_`.
    fn extra_metrics(&self, _examples: &[Self::Example]) -> Result<BTreeMap<String, f64>> {
        Ok(BTreeMap::new())
    }

    /// Parameters saved with the model but never trained (transformers' registered buffers,
    /// such as BART's `final_logits_bias`).
    fn buffers(&self) -> Vec<&'static str> {
        Vec::new()
    }
}

//! Classification losses, with PyTorch's semantics for class weights (a weighted mean).

use candle_core::{Device, Tensor, D};

use crate::error::{Error, Result};

/// Cross-entropy of `logits` (batch, classes) against `targets`, optionally class-weighted as
/// PyTorch's `CrossEntropyLoss(weight=…)`.
pub fn cross_entropy(
    logits: &Tensor,
    targets: &[u32],
    class_weights: Option<&Tensor>,
) -> Result<Tensor> {
    let t = Tensor::new(targets, logits.device())?;
    let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let picked = log_probs.gather(&t.unsqueeze(1)?, 1)?.squeeze(1)?;
    weighted_mean(&picked, &t, class_weights)?
        .neg()
        .map_err(Into::into)
}

/// Binary cross-entropy of logits `z` (batch, 1) against 0/1 targets, computed stably as
/// `max(z, 0) - z·y + ln(1 + e^{-|z|})` (PyTorch's `BCEWithLogitsLoss`), optionally weighted
/// per class.
pub fn binary_cross_entropy(
    z: &Tensor,
    targets: &[u32],
    class_weights: Option<&Tensor>,
) -> Result<Tensor> {
    let z = z.squeeze(1)?;
    let t = Tensor::new(targets, z.device())?;
    let y = t.to_dtype(z.dtype())?;
    let per_example = ((z.relu()? - (&z * &y)?)? + (z.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    weighted_mean(&per_example, &t, class_weights)
}

/// Mean of `values` (batch), or their mean weighted by the class weight of each target.
fn weighted_mean(
    values: &Tensor,
    targets: &Tensor,
    class_weights: Option<&Tensor>,
) -> Result<Tensor> {
    Ok(match class_weights {
        None => values.mean_all()?,
        Some(w) => {
            let w = w.index_select(targets, 0)?;
            (values.mul(&w)?.sum_all()? / w.sum_all()?)?
        }
    })
}

/// The class-weight tensor of a model config, checked against the number of classes.
pub fn class_weight_tensor(weights: Option<&[f32]>, num_labels: usize) -> Result<Option<Tensor>> {
    match weights {
        Some(w) if w.len() != num_labels => Err(Error::config(
            "class_weights",
            format!("{} weights for {} classes", w.len(), num_labels),
        )),
        Some(w) => Ok(Some(Tensor::new(w, &Device::Cpu)?)),
        None => Ok(None),
    }
}

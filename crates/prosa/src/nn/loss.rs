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
pub fn class_weight_tensor(
    weights: Option<&[f32]>,
    num_labels: usize,
    device: &Device,
) -> Result<Option<Tensor>> {
    match weights {
        Some(w) if w.len() != num_labels => Err(Error::config(
            "class_weights",
            format!("{} weights for {} classes", w.len(), num_labels),
        )),
        Some(w) => Ok(Some(Tensor::new(w, device)?)),
        None => Ok(None),
    }
}

/// Mean cross-entropy of the rows of `logits` (rows, classes) that have a target, as one op:
/// the forward pass is one log-sum-exp per row, the backward pass writes
/// `(softmax − one_hot) / counted` directly (the composed version makes half a dozen
/// temporaries the size of the logits, which for a language model's vocabulary dominate).
struct SoftmaxCrossEntropyOp {
    targets: Vec<Option<u32>>,
    /// Label smoothing ε: the target distribution is `(1 − ε)·one_hot + ε/classes`.
    smoothing: f32,
    /// Each row's log-sum-exp, kept by the forward pass for the backward pass.
    log_sum_exps: std::sync::Mutex<Vec<f32>>,
}

impl SoftmaxCrossEntropyOp {
    fn counted(&self) -> usize {
        self.targets.iter().filter(|t| t.is_some()).count().max(1)
    }
}

/// log Σ exp(row).
fn log_sum_exp(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    row.iter().map(|v| (v - max).exp()).sum::<f32>().ln() + max
}

impl candle_core::CustomOp1 for SoftmaxCrossEntropyOp {
    fn name(&self) -> &'static str {
        "prosa-softmax-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let x = super::gemm::cpu_f32(s, l, "logits")?;
        let classes = l.dims().last().copied().unwrap_or(1);
        let lse: Vec<f32> = x
            .par_chunks(classes)
            .zip(self.targets.par_iter())
            .map(|(row, t)| if t.is_some() { log_sum_exp(row) } else { 0.0 })
            .collect();
        // lse − (1 − ε)·x_t − ε·mean(x): PyTorch's cross-entropy with label smoothing.
        let eps = self.smoothing;
        let total: f64 = x
            .chunks(classes)
            .zip(&self.targets)
            .zip(&lse)
            .filter_map(|((row, t), l)| {
                t.map(|t| {
                    let mut loss = l - (1.0 - eps) * row[t as usize];
                    if eps > 0.0 {
                        loss -= eps * row.iter().sum::<f32>() / classes as f32;
                    }
                    loss as f64
                })
            })
            .sum();
        *self.log_sum_exps.lock().expect("not poisoned") = lse;
        let mean = (total / self.counted() as f64) as f32;
        Ok((candle_core::CpuStorage::F32(vec![mean]), ().into()))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        _loss: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        use rayon::prelude::*;
        let scale = grad.to_scalar::<f32>()? / self.counted() as f32;
        let classes = logits.dim(candle_core::D::Minus1)?;
        let saved = self.log_sum_exps.lock().expect("not poisoned").clone();
        // Every element is written below (rows without a target get zeros), so the buffer is
        // filled once instead of zeroed first — it is as large as the logits.
        let n = logits.elem_count();
        let mut dx: Vec<f32> = Vec::with_capacity(n);
        super::gemm::with_f32(logits, |x| {
            dx.spare_capacity_mut()[..n]
                .par_chunks_mut(classes)
                .zip(x.par_chunks(classes))
                .zip(self.targets.par_iter())
                .enumerate()
                .for_each(|(r, ((d, row), t))| match t {
                    Some(t) => {
                        let lse = saved.get(r).copied().unwrap_or_else(|| log_sum_exp(row));
                        let uniform = self.smoothing / classes as f32;
                        for (d, v) in d.iter_mut().zip(row) {
                            d.write(scale * ((v - lse).exp() - uniform));
                        }
                        let at = *t as usize;
                        d[at].write(
                            scale * ((row[at] - lse).exp() - uniform - (1.0 - self.smoothing)),
                        );
                    }
                    None => d.iter_mut().for_each(|d| {
                        d.write(0.0);
                    }),
                })
        })?;
        // SAFETY: the loop above wrote all n elements (one chunk per row, every element of it).
        unsafe { dx.set_len(n) };
        Ok(Some(Tensor::from_vec(dx, logits.shape(), logits.device())?))
    }
}

/// Mean cross-entropy of `logits` (rows, classes) over the rows whose target is `Some`
/// (`None` rows are ignored, as PyTorch's `ignore_index = -100`). Fused with its backward pass
/// on the CPU in f32.
pub fn softmax_cross_entropy(logits: &Tensor, targets: &[Option<u32>]) -> Result<Tensor> {
    smoothed_cross_entropy(logits, targets, 0.0)
}

/// [`softmax_cross_entropy`] against targets smoothed by `smoothing` (PyTorch's
/// `CrossEntropyLoss(label_smoothing=ε)`: `(1 − ε)·NLL + ε·mean over classes of −log p`).
pub fn smoothed_cross_entropy(
    logits: &Tensor,
    targets: &[Option<u32>],
    smoothing: f32,
) -> Result<Tensor> {
    if !(0.0..1.0).contains(&smoothing) {
        return Err(Error::config(
            "label_smoothing",
            format!("must be in [0, 1), got {smoothing}"),
        ));
    }
    let (rows, classes) = logits.dims2()?;
    if rows != targets.len() {
        return Err(Error::config(
            "targets",
            format!("{} targets for {rows} rows of logits", targets.len()),
        ));
    }
    if let Some(bad) = targets.iter().flatten().find(|&&t| t as usize >= classes) {
        return Err(Error::config(
            "targets",
            format!("target {bad} is outside the {classes} classes"),
        ));
    }
    if logits.device().is_cpu() && logits.dtype() == candle_core::DType::F32 {
        let op = SoftmaxCrossEntropyOp {
            targets: targets.to_vec(),
            smoothing,
            log_sum_exps: std::sync::Mutex::new(Vec::new()),
        };
        return Ok(logits.contiguous()?.apply_op1(op)?);
    }
    let (rows_kept, kept): (Vec<u32>, Vec<u32>) = targets
        .iter()
        .enumerate()
        .filter_map(|(r, t)| t.map(|t| (r as u32, t)))
        .unzip();
    let picked = logits.index_select(&Tensor::new(rows_kept.as_slice(), logits.device())?, 0)?;
    let nll = cross_entropy(&picked, &kept, None)?;
    if smoothing == 0.0 {
        return Ok(nll);
    }
    let log_p = candle_nn::ops::log_softmax(&picked, candle_core::D::Minus1)?;
    let uniform = log_p.mean_all()?.neg()?;
    Ok(((nll * (1.0 - smoothing as f64))? + (uniform * smoothing as f64)?)?)
}

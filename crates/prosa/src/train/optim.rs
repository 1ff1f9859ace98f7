//! Optimizers (AdamW, Adam, SGD with momentum) over parameter groups, with a state that can be
//! saved and restored so a resumed run continues exactly.
//!
//! Parameter groups follow PyTorch: each parameter belongs to the first group whose name
//! pattern matches it; a group can scale the learning rate, set its own weight decay, or be
//! frozen. As in Hugging Face's Trainer, biases and normalisation weights get no weight decay.

use std::collections::HashMap;
use std::path::Path;

use std::cell::RefCell;

use candle_core::{backprop::GradStore, CpuStorage, DType, InplaceOp2, Layout, Tensor, Var};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsio;
use crate::nn::{load_safetensors, ParamStore};

/// Which update rule to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam with decoupled weight decay (Loshchilov & Hutter).
    #[default]
    AdamW,
    /// Adam with weight decay added to the gradient (L2).
    Adam,
    /// Stochastic gradient descent with (optional) momentum.
    Sgd,
}

impl std::str::FromStr for OptimizerKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "adamw" => Ok(Self::AdamW),
            "adam" => Ok(Self::Adam),
            "sgd" => Ok(Self::Sgd),
            other => Err(format!(
                "unknown optimizer '{other}' (use adamw, adam or sgd)"
            )),
        }
    }
}

/// Hyperparameters of the update rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OptimizerConfig {
    /// The rule.
    pub kind: OptimizerKind,
    /// Adam's beta1.
    pub beta1: f64,
    /// Adam's beta2.
    pub beta2: f64,
    /// Adam's epsilon.
    pub epsilon: f64,
    /// SGD momentum (0 disables it).
    pub momentum: f64,
    /// Default weight decay.
    pub weight_decay: f64,
    /// Scale each parameter's step by its root mean square (at least 1e-3), as Adafactor's
    /// relative steps and nanoT5's AdamWScale do: T5's initialisation (embeddings of size 1,
    /// queries of size (d_model·d_kv)^-0.5) assumes such steps.
    #[serde(default)]
    pub scale_by_parameter_rms: bool,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            kind: OptimizerKind::AdamW,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            momentum: 0.9,
            weight_decay: 0.0,
            scale_by_parameter_rms: false,
        }
    }
}

/// A rule that gives matching parameters their own learning rate or weight decay, or freezes
/// them. Patterns use `*` as a wildcard: `"encoder.layer.0.*"`, `"*.bias"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ParamGroup {
    /// Name pattern.
    pub pattern: String,
    /// Multiplies the scheduled learning rate (1 when unset).
    pub lr_scale: Option<f64>,
    /// Replaces the default weight decay.
    pub weight_decay: Option<f64>,
    /// Frozen parameters are never updated.
    pub frozen: bool,
}

/// True when `name` matches the `*`-wildcard `pattern`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

fn exempt_from_decay(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with("bias")
        || lower.contains("layernorm")
        || lower.contains("layer_norm")
        || lower.contains("norm.weight")
}

struct Slot {
    name: String,
    var: Var,
    lr_scale: f64,
    weight_decay: f64,
    /// Adam's first moment, or SGD's momentum buffer (empty until the first update).
    m: Vec<f32>,
    /// Adam's second moment (empty until the first update).
    v: Vec<f32>,
}

/// One update rule with its step-dependent constants, applied element by element.
#[derive(Clone, Copy)]
struct Rule {
    config: OptimizerConfig,
    lr: f32,
    weight_decay: f32,
    /// Adam's bias corrections 1 - beta^t.
    correction1: f32,
    correction2: f32,
}

/// Tensors with at least this many values are updated in parallel chunks of this size.
const PARALLEL_UPDATE_MIN: usize = 1 << 16;

impl Rule {
    /// Updates `theta` in place from `grad`, keeping the moments in `m` and `v`.
    fn apply(&self, theta: &mut [f32], grad: &[f32], m: &mut Vec<f32>, v: &mut Vec<f32>) {
        debug_assert_eq!(theta.len(), grad.len());
        let c = &self.config;
        let (lr, wd) = (self.lr, self.weight_decay);
        match c.kind {
            OptimizerKind::AdamW | OptimizerKind::Adam => {
                m.resize(theta.len(), 0.0);
                v.resize(theta.len(), 0.0);
                let (b1, b2, eps) = (c.beta1 as f32, c.beta2 as f32, c.epsilon as f32);
                let decoupled = c.kind == OptimizerKind::AdamW;
                let (l2, shrink) = if decoupled {
                    (0.0, 1.0 - lr * wd)
                } else {
                    (wd, 1.0)
                };
                let (inv_c1, inv_c2) = (1.0 / self.correction1, 1.0 / self.correction2);
                let update = |theta: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]| {
                    // Zipped iterators (no bounds checks) so the loop vectorises, with AVX-512
                    // where the CPU has it.
                    crate::nn::lanes::vectorized(
                        #[inline(always)]
                        || {
                            for (((p, &g), m), v) in theta
                                .iter_mut()
                                .zip(grad)
                                .zip(m.iter_mut())
                                .zip(v.iter_mut())
                            {
                                let g = g + l2 * *p;
                                *m = b1 * *m + (1.0 - b1) * g;
                                *v = b2 * *v + (1.0 - b2) * g * g;
                                let step = (*m * inv_c1) / ((*v * inv_c2).sqrt() + eps);
                                *p = *p * shrink - lr * step;
                            }
                        },
                    )
                };
                if theta.len() < PARALLEL_UPDATE_MIN {
                    update(theta, grad, m, v);
                } else {
                    // Large tensors (embeddings) are memory-bound: spread them over the pool.
                    theta
                        .par_chunks_mut(PARALLEL_UPDATE_MIN)
                        .zip(grad.par_chunks(PARALLEL_UPDATE_MIN))
                        .zip(m.par_chunks_mut(PARALLEL_UPDATE_MIN))
                        .zip(v.par_chunks_mut(PARALLEL_UPDATE_MIN))
                        .for_each(|(((p, g), m), v)| update(p, g, m, v));
                }
            }
            OptimizerKind::Sgd => {
                let mu = c.momentum as f32;
                if mu > 0.0 {
                    m.resize(theta.len(), 0.0);
                }
                for i in 0..theta.len() {
                    let mut g = grad[i] + wd * theta[i];
                    if mu > 0.0 {
                        // From a zero buffer the first step gives buf = g, as in PyTorch.
                        m[i] = mu * m[i] + g;
                        g = m[i];
                    }
                    theta[i] -= lr * g;
                }
            }
        }
    }
}

/// The rule applied in place to a parameter's CPU storage (no tensor copies).
struct InPlace<'a> {
    rule: Rule,
    m: RefCell<&'a mut Vec<f32>>,
    v: RefCell<&'a mut Vec<f32>>,
}

impl InplaceOp2 for InPlace<'_> {
    fn name(&self) -> &'static str {
        "prosa-optimizer-step"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let (CpuStorage::F32(theta), CpuStorage::F32(grad)) = (s1, s2) else {
            candle_core::bail!("the optimizer updates f32 parameters only")
        };
        let (Some((a, b)), Some((c, d))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("the optimizer needs contiguous parameters and gradients")
        };
        self.rule.apply(
            &mut theta[a..b],
            &grad[c..d],
            &mut self.m.borrow_mut(),
            &mut self.v.borrow_mut(),
        );
        Ok(())
    }
}

/// An optimizer bound to the trainable parameters of a [`ParamStore`].
pub struct Optimizer {
    config: OptimizerConfig,
    slots: Vec<Slot>,
    /// Number of updates made so far.
    pub step: usize,
}

impl Optimizer {
    /// Binds `config` to the parameters of `store`, applying `groups` (first match wins).
    pub fn new(store: &ParamStore, config: OptimizerConfig, groups: &[ParamGroup]) -> Result<Self> {
        let mut slots = Vec::new();
        for (name, var) in store.vars() {
            let group = groups.iter().find(|g| glob_match(&g.pattern, &name));
            if group.is_some_and(|g| g.frozen) {
                continue;
            }
            let default_decay = if exempt_from_decay(&name) {
                0.0
            } else {
                config.weight_decay
            };
            slots.push(Slot {
                lr_scale: group.and_then(|g| g.lr_scale).unwrap_or(1.0),
                weight_decay: group.and_then(|g| g.weight_decay).unwrap_or(default_decay),
                name,
                var,
                m: Vec::new(),
                v: Vec::new(),
            });
        }
        if slots.is_empty() {
            return Err(Error::config(
                "param_groups",
                "every parameter is frozen: nothing to train",
            ));
        }
        Ok(Self {
            config,
            slots,
            step: 0,
        })
    }

    /// Names of the parameters this optimizer updates.
    pub fn trainable_names(&self) -> Vec<&str> {
        self.slots.iter().map(|s| s.name.as_str()).collect()
    }

    /// Number of scalar parameters this optimizer updates.
    pub fn num_trainable(&self) -> usize {
        self.slots.iter().map(|s| s.var.elem_count()).sum()
    }

    /// The gradients of the trainable parameters, in slot order (`None` where unused).
    pub fn collect_grads(&self, grads: &GradStore) -> Vec<Option<Tensor>> {
        self.slots
            .iter()
            .map(|s| grads.get(s.var.as_tensor()).cloned())
            .collect()
    }

    /// Applies one update with learning rate `lr` and the gradients from
    /// [`Optimizer::collect_grads`]. On the CPU the update runs in place over each parameter's
    /// storage in one pass; elsewhere through host copies.
    pub fn apply(&mut self, grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let config = self.config;
        for (slot, grad) in self.slots.iter_mut().zip(grads) {
            let Some(grad) = grad else { continue };
            let relative = if config.scale_by_parameter_rms {
                let theta = slot.var.as_tensor();
                let rms = theta
                    .to_dtype(DType::F32)?
                    .sqr()?
                    .mean_all()?
                    .to_scalar::<f32>()?
                    .sqrt();
                f64::from(rms).max(1e-3)
            } else {
                1.0
            };
            let rule = Rule {
                config,
                lr: (lr * slot.lr_scale * relative) as f32,
                weight_decay: slot.weight_decay as f32,
                correction1: (1.0 - config.beta1.powi(t)) as f32,
                correction2: (1.0 - config.beta2.powi(t)) as f32,
            };
            let grad = grad.to_dtype(DType::F32)?.contiguous()?;
            let theta = slot.var.as_tensor();
            if theta.device().is_cpu() && theta.dtype() == DType::F32 && theta.is_contiguous() {
                let op = InPlace {
                    rule,
                    m: RefCell::new(&mut slot.m),
                    v: RefCell::new(&mut slot.v),
                };
                theta.inplace_op2(&grad, &op)?;
            } else {
                let mut values = theta
                    .flatten_all()?
                    .to_dtype(DType::F32)?
                    .to_vec1::<f32>()?;
                rule.apply(
                    &mut values,
                    &grad.flatten_all()?.to_vec1::<f32>()?,
                    &mut slot.m,
                    &mut slot.v,
                );
                let updated = Tensor::from_vec(values, theta.shape(), theta.device())?
                    .to_dtype(theta.dtype())?;
                slot.var.set(&updated)?;
            }
        }
        Ok(())
    }

    /// Saves the moment buffers to a safetensors file (the step count goes in the trainer state).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = HashMap::new();
        for slot in &self.slots {
            for (prefix, buf) in [("m", &slot.m), ("v", &slot.v)] {
                if !buf.is_empty() {
                    let t = Tensor::from_slice(buf.as_slice(), buf.len(), &crate::device::host())?;
                    tensors.insert(format!("{prefix}.{}", slot.name), t);
                }
            }
        }
        let tmp = fsio::temporary_sibling(path);
        candle_core::safetensors::save(&tensors, &tmp)?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }

    /// Restores the buffers saved by [`Optimizer::save`] and the step count.
    pub fn load(&mut self, path: &Path, step: usize) -> Result<()> {
        let mut tensors = load_safetensors(path, &crate::device::host())?;
        for slot in &mut self.slots {
            for (prefix, buf) in [("m", &mut slot.m), ("v", &mut slot.v)] {
                *buf = match tensors.remove(&format!("{prefix}.{}", slot.name)) {
                    Some(t) => t.flatten_all()?.to_vec1::<f32>()?,
                    None => Vec::new(),
                };
                let expected = slot.var.elem_count();
                if !buf.is_empty() && buf.len() != expected {
                    return Err(Error::Tensor {
                        path: path.to_path_buf(),
                        name: format!("{prefix}.{}", slot.name),
                        message: format!(
                            "optimizer state has {} values, the parameter {expected}",
                            buf.len()
                        ),
                    });
                }
            }
        }
        self.step = step;
        Ok(())
    }
}

/// Scales `grads` in place so their global L2 norm is at most `max_norm`; returns the norm
/// before clipping.
pub fn clip_grad_norm(grads: &mut [Option<Tensor>], max_norm: f64) -> Result<f64> {
    let mut total = 0f64;
    for g in grads.iter().flatten() {
        total += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
    }
    let norm = total.sqrt();
    if norm > max_norm && norm.is_finite() {
        let scale = max_norm / (norm + 1e-6);
        for g in grads.iter_mut().flatten() {
            *g = (&*g * scale)?;
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn glob_patterns() {
        assert!(glob_match("encoder.*", "encoder.layer.0.weight"));
        assert!(glob_match("*.bias", "classifier.bias"));
        assert!(glob_match("a*c*e", "abcde"));
        assert!(!glob_match("a*c*e", "abde"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("encoder.*", "decoder.x"));
    }

    /// One AdamW step from zero state matches the closed form: theta - lr * sign(g) (since
    /// m_hat / sqrt(v_hat) = g / |g|) with decoupled decay.
    #[test]
    fn adamw_first_step_matches_closed_form() {
        let store = ParamStore::new(Device::Cpu);
        store
            .insert("w", &Tensor::new(&[1.0f32, -2.0], &Device::Cpu).unwrap())
            .unwrap();
        let config = OptimizerConfig {
            weight_decay: 0.1,
            epsilon: 0.0,
            ..Default::default()
        };
        let mut opt = Optimizer::new(&store, config, &[]).unwrap();
        let g = Tensor::new(&[0.5f32, -3.0], &Device::Cpu).unwrap();
        opt.apply(&[Some(g)], 0.01).unwrap();
        let w: Vec<f32> = store.get("w").unwrap().as_tensor().to_vec1().unwrap();
        let expect = [1.0 * (1.0 - 0.001) - 0.01, -2.0 * (1.0 - 0.001) + 0.01];
        for (a, b) in w.iter().zip(expect) {
            assert!((a - b as f32).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn steps_scaled_by_parameter_rms_are_relative_to_each_weight() {
        let store = ParamStore::new(Device::Cpu);
        let small = Tensor::new(&[0.03f32, -0.04], &Device::Cpu).unwrap();
        let large = Tensor::new(&[3.0f32, -4.0], &Device::Cpu).unwrap();
        let tiny = Tensor::new(&[0.0f32, 0.0], &Device::Cpu).unwrap();
        store.insert("small", &small).unwrap();
        store.insert("large", &large).unwrap();
        store.insert("tiny", &tiny).unwrap();
        let config = OptimizerConfig {
            epsilon: 0.0,
            scale_by_parameter_rms: true,
            ..Default::default()
        };
        let mut opt = Optimizer::new(&store, config, &[]).unwrap();
        let g = Tensor::new(&[1.0f32, 1.0], &Device::Cpu).unwrap();
        opt.apply(&[Some(g.clone()), Some(g.clone()), Some(g)], 0.1)
            .unwrap();
        // Adam's first step is lr per coordinate; here lr × RMS (at least 1e-3).
        let rms = |a: f32, b: f32| ((a * a + b * b) / 2.0).sqrt();
        for (name, before, scale) in [
            ("small", [0.03f32, -0.04], rms(0.03, -0.04)),
            ("large", [3.0, -4.0], rms(3.0, -4.0)),
            ("tiny", [0.0, 0.0], 1e-3),
        ] {
            let w: Vec<f32> = store.get(name).unwrap().as_tensor().to_vec1().unwrap();
            for (a, b) in w.iter().zip(before) {
                assert!((b - a - 0.1 * scale).abs() < 1e-4, "{name}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn frozen_groups_are_left_out() {
        let store = ParamStore::new(Device::Cpu);
        let t = Tensor::zeros(2, candle_core::DType::F32, &Device::Cpu).unwrap();
        store.insert("encoder.w", &t).unwrap();
        store.insert("head.w", &t).unwrap();
        let groups = [ParamGroup {
            pattern: "encoder.*".into(),
            frozen: true,
            ..Default::default()
        }];
        let opt = Optimizer::new(&store, OptimizerConfig::default(), &groups).unwrap();
        assert_eq!(opt.trainable_names(), ["head.w"]);
    }
}

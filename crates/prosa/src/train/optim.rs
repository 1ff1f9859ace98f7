//! Optimizers (AdamW, Adam, SGD with momentum) over parameter groups, with a state that can be
//! saved and restored so a resumed run continues exactly.
//!
//! Parameter groups follow PyTorch: each parameter belongs to the first group whose name
//! pattern matches it; a group can scale the learning rate, set its own weight decay, or be
//! frozen. As in Hugging Face's Trainer, biases and normalisation weights get no weight decay.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{backprop::GradStore, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::params::{load_safetensors, ParamStore};
use crate::error::{Error, Result};
use crate::fsio;

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
    /// Adam's first moment, or SGD's momentum buffer.
    m: Option<Tensor>,
    /// Adam's second moment.
    v: Option<Tensor>,
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
                m: None,
                v: None,
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
    /// [`Optimizer::collect_grads`].
    pub fn apply(&mut self, grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let c = self.config;
        for (slot, grad) in self.slots.iter_mut().zip(grads) {
            let Some(grad) = grad else { continue };
            let lr = lr * slot.lr_scale;
            let theta = slot.var.as_tensor();
            let wd = slot.weight_decay;
            let new_theta = match c.kind {
                OptimizerKind::AdamW | OptimizerKind::Adam => {
                    let grad = if c.kind == OptimizerKind::Adam && wd > 0.0 {
                        (grad + (theta * wd)?)?
                    } else {
                        grad.clone()
                    };
                    let m = match &slot.m {
                        Some(m) => ((m * c.beta1)? + (&grad * (1.0 - c.beta1))?)?,
                        None => (&grad * (1.0 - c.beta1))?,
                    };
                    let v = match &slot.v {
                        Some(v) => ((v * c.beta2)? + (grad.sqr()? * (1.0 - c.beta2))?)?,
                        None => (grad.sqr()? * (1.0 - c.beta2))?,
                    };
                    let m_hat = (&m / (1.0 - c.beta1.powi(t)))?;
                    let v_hat = (&v / (1.0 - c.beta2.powi(t)))?;
                    let update = (m_hat / (v_hat.sqrt()? + c.epsilon)?)?;
                    slot.m = Some(m);
                    slot.v = Some(v);
                    let decayed = if c.kind == OptimizerKind::AdamW && wd > 0.0 {
                        (theta * (1.0 - lr * wd))?
                    } else {
                        theta.clone()
                    };
                    (decayed - (update * lr)?)?
                }
                OptimizerKind::Sgd => {
                    let grad = if wd > 0.0 {
                        (grad + (theta * wd)?)?
                    } else {
                        grad.clone()
                    };
                    let step = if c.momentum > 0.0 {
                        let buf = match &slot.m {
                            Some(b) => ((b * c.momentum)? + &grad)?,
                            None => grad,
                        };
                        slot.m = Some(buf.clone());
                        buf
                    } else {
                        grad
                    };
                    (theta - (step * lr)?)?
                }
            };
            slot.var.set(&new_theta)?;
        }
        Ok(())
    }

    /// Saves the moment buffers to a safetensors file (the step count goes in the trainer state).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = HashMap::new();
        for slot in &self.slots {
            if let Some(m) = &slot.m {
                tensors.insert(format!("m.{}", slot.name), m.clone());
            }
            if let Some(v) = &slot.v {
                tensors.insert(format!("v.{}", slot.name), v.clone());
            }
        }
        let tmp = fsio::temporary_sibling(path);
        candle_core::safetensors::save(&tensors, &tmp)?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }

    /// Restores the buffers saved by [`Optimizer::save`] and the step count.
    pub fn load(&mut self, path: &Path, step: usize) -> Result<()> {
        let mut tensors = load_safetensors(path, &candle_core::Device::Cpu)?;
        for slot in &mut self.slots {
            let device = slot.var.device().clone();
            let fetch = |t: Option<Tensor>| t.map(|t| t.to_device(&device)).transpose();
            slot.m = fetch(tensors.remove(&format!("m.{}", slot.name)))?;
            slot.v = fetch(tensors.remove(&format!("v.{}", slot.name)))?;
            for buf in [&slot.m, &slot.v].into_iter().flatten() {
                if buf.dims() != slot.var.dims() {
                    return Err(Error::Tensor {
                        path: path.to_path_buf(),
                        name: slot.name.clone(),
                        message: format!(
                            "optimizer state has shape {:?}, the parameter {:?}",
                            buf.dims(),
                            slot.var.dims()
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

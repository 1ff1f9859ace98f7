//! Named trainable parameters with seeded initialisation, saved to and loaded from safetensors.
//!
//! Candle's CPU random generator cannot be seeded, so every initial value is drawn here from one
//! ChaCha generator: the same seed gives the same model. Names follow the checkpoint's tensor
//! names (`classifier.weight`), and a [`ParamBuilder`] prefix mirrors the module nesting, as
//! candle's `VarBuilder::pp` does.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::error::{Error, Result};
use crate::fsio;
use crate::nn::weights_file::{open_safetensors, TensorSource};

/// How a parameter starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// One constant.
    Const(f64),
    /// Uniform in `[lo, hi)`.
    Uniform {
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        hi: f64,
    },
    /// Normal with mean 0.
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// PyTorch's `nn.Linear` default: uniform in ±1/sqrt(fan_in), fan_in = last dimension.
    LinearDefault,
    /// Glorot/Xavier uniform (Keras' default for dense layers).
    XavierUniform,
}

#[derive(Default)]
struct Inner {
    order: Vec<String>,
    vars: HashMap<String, Var>,
}

/// The parameters of a model, in creation order. Cloning shares the same parameters.
#[derive(Clone)]
pub struct ParamStore {
    inner: Arc<Mutex<Inner>>,
    device: Device,
}

impl std::fmt::Debug for ParamStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamStore")
            .field("names", &self.names())
            .finish()
    }
}

impl ParamStore {
    /// An empty store on `device`.
    pub fn new(device: Device) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            device,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-update; the map is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The device parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A builder that creates parameters with initial values drawn from `seed`.
    pub fn builder(&self, seed: u64) -> ParamBuilder {
        ParamBuilder {
            store: self.clone(),
            prefix: String::new(),
            rng: Rc::new(RefCell::new(ChaCha8Rng::seed_from_u64(seed))),
            dtype: DType::F32,
        }
    }

    /// Parameter names in creation order.
    pub fn names(&self) -> Vec<String> {
        self.lock().order.clone()
    }

    /// `(name, variable)` pairs in creation order.
    pub fn vars(&self) -> Vec<(String, Var)> {
        let inner = self.lock();
        inner
            .order
            .iter()
            .map(|n| (n.clone(), inner.vars[n].clone()))
            .collect()
    }

    /// The variable called `name`.
    pub fn get(&self, name: &str) -> Option<Var> {
        self.lock().vars.get(name).cloned()
    }

    /// Total number of scalar parameters.
    pub fn num_parameters(&self) -> usize {
        self.lock().vars.values().map(|v| v.elem_count()).sum()
    }

    /// Adds a parameter with a given value.
    pub fn insert(&self, name: &str, value: &Tensor) -> Result<Tensor> {
        let var = Var::from_tensor(&value.to_device(&self.device)?)?;
        let mut inner = self.lock();
        if inner.vars.insert(name.to_string(), var.clone()).is_none() {
            inner.order.push(name.to_string());
        }
        Ok(var.as_tensor().clone())
    }

    /// Copies of all values, by name.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.lock()
            .vars
            .iter()
            .map(|(n, v)| {
                (
                    n.clone(),
                    v.as_tensor()
                        .copy()
                        .unwrap_or_else(|_| v.as_tensor().clone()),
                )
            })
            .collect()
    }

    /// Writes every parameter to a safetensors file, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors: HashMap<String, Tensor> = self
            .vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        let tmp = fsio::temporary_sibling(path);
        candle_core::safetensors::save(&tensors, &tmp)?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }

    /// Overwrites every parameter with the tensor of the same name in `path`. A missing tensor
    /// or a tensor with another shape is an error naming it; tensors the model does not have
    /// are returned in the report.
    pub fn load(&self, path: &Path) -> Result<LoadReport> {
        self.assign(&open_safetensors(path)?, path)
    }

    /// Overwrites parameters from `tensors` (which came from `path`) under the one loading
    /// policy ([`ParamStore::load_tensors`]) with no parameter allowed to start fresh.
    pub fn assign<S: TensorSource>(
        &self,
        tensors: &HashMap<String, S>,
        path: &Path,
    ) -> Result<LoadReport> {
        self.load_tensors(tensors, path, &|_| false)
    }

    /// Overwrites parameters from `tensors` (which came from `path`) as transformers loads a
    /// checkpoint: a parameter missing from the file, or of another shape, is an error naming
    /// it unless `fresh_allowed(name)` (a newly initialised head), when it keeps its initial
    /// value and is listed; tensors the model does not have are listed as unexpected (the
    /// caller warns). Nothing is written unless every name and shape passes; then each tensor
    /// is read (from its file, for a [`LazyTensor`]) and copied into its parameter in turn, so
    /// a checkpoint is never held whole beside the model. A tensor whose bytes cannot be read
    /// is an error naming the file (the model is then half loaded: callers discard it).
    ///
    /// [`LazyTensor`]: super::weights_file::LazyTensor
    pub fn load_tensors<S: TensorSource>(
        &self,
        tensors: &HashMap<String, S>,
        path: &Path,
        fresh_allowed: &dyn Fn(&str) -> bool,
    ) -> Result<LoadReport> {
        let vars = self.vars();
        let mut report = LoadReport::default();
        let mut assign = Vec::with_capacity(vars.len());
        for (name, var) in &vars {
            let error = |message: String| Error::Tensor {
                path: path.to_path_buf(),
                name: name.clone(),
                message,
            };
            match tensors.get(name) {
                Some(t) if t.dims() == var.dims() => assign.push((var, t)),
                Some(t) if fresh_allowed(name) => {
                    report.mismatched.push(format!(
                        "{name}: {:?} in the file, {:?} in the model",
                        t.dims(),
                        var.dims()
                    ));
                    report.newly_initialized.push(name.clone());
                }
                Some(t) => {
                    return Err(error(format!(
                        "shape {:?} in the file, but the model expects {:?}",
                        t.dims(),
                        var.dims()
                    )))
                }
                None if fresh_allowed(name) => report.newly_initialized.push(name.clone()),
                None => {
                    return Err(error(format!(
                        "missing (the model expects shape {:?})",
                        var.dims()
                    )))
                }
            }
        }
        report.unexpected = tensors
            .keys()
            .filter(|k| !vars.iter().any(|(n, _)| n == *k))
            .cloned()
            .collect();
        report.unexpected.sort();
        for (var, source) in assign {
            let tensor = source.tensor(&self.device)?;
            var.set(&tensor.to_dtype(var.dtype())?)?;
        }
        Ok(report)
    }
}

/// What loading a checkpoint found besides the tensors it used, as transformers reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Parameters that kept their initial values (a new head).
    pub newly_initialized: Vec<String>,
    /// Of those, the ones whose checkpoint tensor had another shape, with both shapes.
    pub mismatched: Vec<String>,
    /// Checkpoint tensors the model does not have (ignored).
    pub unexpected: Vec<String>,
}

/// Reads a safetensors file; a truncated or corrupt file is an error naming it.
pub fn load_safetensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    if !path.exists() {
        return Err(Error::folder(path, "file not found"));
    }
    candle_core::safetensors::load(path, device).map_err(|e| {
        Error::folder(
            path,
            format!("cannot read safetensors (truncated or corrupt?): {e}"),
        )
    })
}

/// Creates parameters under a name prefix; `pp("encoder")` descends one level.
#[derive(Clone)]
pub struct ParamBuilder {
    store: ParamStore,
    prefix: String,
    rng: Rc<RefCell<ChaCha8Rng>>,
    dtype: DType,
}

impl ParamBuilder {
    /// Creates parameters of `dtype` instead of f32 (f64 for gradient checks).
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// A builder one level down: names get `prefix.` in front.
    pub fn pp(&self, name: &str) -> ParamBuilder {
        let prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        };
        ParamBuilder {
            prefix,
            ..self.clone()
        }
    }

    /// The full name of `name` under this builder's prefix.
    pub fn full_name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// Creates parameter `name` of `shape`, initialised by `init`.
    pub fn param(&self, name: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let mut rng = self.rng.borrow_mut();
        let fan_in = shape.last().copied().unwrap_or(1).max(1) as f64;
        let fan_out = shape.first().copied().unwrap_or(1).max(1) as f64;
        let values: Vec<f32> = match init {
            Init::Zeros => vec![0.0; n],
            Init::Const(c) => vec![c as f32; n],
            Init::Uniform { lo, hi } => (0..n).map(|_| rng.random_range(lo..hi) as f32).collect(),
            Init::Normal { std } => {
                let normal =
                    Normal::new(0.0, std).map_err(|e| Error::config(name, e.to_string()))?;
                (0..n).map(|_| normal.sample(&mut *rng) as f32).collect()
            }
            Init::LinearDefault => {
                let b = 1.0 / fan_in.sqrt();
                (0..n).map(|_| rng.random_range(-b..b) as f32).collect()
            }
            Init::XavierUniform => {
                let b = (6.0 / (fan_in + fan_out)).sqrt();
                (0..n).map(|_| rng.random_range(-b..b) as f32).collect()
            }
        };
        let tensor = Tensor::from_vec(values, shape, self.store.device())?.to_dtype(self.dtype)?;
        self.store.insert(&self.full_name(name), &tensor)
    }

    /// The store parameters go into.
    pub fn store(&self) -> &ParamStore {
        &self.store
    }
}

//! Named trainable parameters with seeded initialisation, saved to and loaded from safetensors.
//!
//! Candle's CPU random generator cannot be seeded, so every initial value is drawn here from one
//! ChaCha generator: the same seed gives the same model. Names follow the checkpoint's tensor
//! names (`classifier.weight`), and a [`ParamBuilder`] prefix mirrors the module nesting, as
//! candle's `VarBuilder::pp` does.
//!
//! A model about to be loaded from a checkpoint ([`ParamStore::for_checkpoint`]) draws nothing
//! while it is built: its random parameters start as zeros, and the draws are made when
//! [`ParamStore::load_tensors`] knows which parameters the checkpoint left fresh — only those
//! keep their values, but every draw before them is made again (and dropped) in creation order,
//! so a fresh head starts from the same stream, hence the same values, as in a model built
//! eagerly. Loading BERT-base drew 110 million normal values for nothing before (a third of
//! its loading time).

use std::collections::{HashMap, HashSet};
use std::path::Path;
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
    /// For a store built for a checkpoint: each builder's random draws not made yet.
    deferred: Option<Vec<Arc<Mutex<Draws>>>>,
}

/// One seeded stream of initial values and, while it is deferred, the parameters still owed
/// their draws (in creation order).
struct Draws {
    rng: ChaCha8Rng,
    pending: Vec<PendingDraw>,
}

/// A random parameter created as zeros, its draws made when the checkpoint is loaded.
struct PendingDraw {
    name: String,
    var: Var,
    init: Init,
    shape: Vec<usize>,
}

/// Locks `mutex`; a poisoned lock only means another thread panicked mid-update.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
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

    /// An empty store on `device` for a model that [`ParamStore::load_tensors`] fills next: its
    /// random initial values are drawn there, and only for the parameters the checkpoint
    /// lacks (see the module's doc). Until then those parameters are zeros.
    pub fn for_checkpoint(device: Device) -> Self {
        let store = Self::new(device);
        store.lock().deferred = Some(Vec::new());
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// The device parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A builder that creates parameters with initial values drawn from `seed`.
    pub fn builder(&self, seed: u64) -> ParamBuilder {
        let draws = Arc::new(Mutex::new(Draws {
            rng: ChaCha8Rng::seed_from_u64(seed),
            pending: Vec::new(),
        }));
        if let Some(deferred) = self.lock().deferred.as_mut() {
            deferred.push(draws.clone());
        }
        ParamBuilder {
            store: self.clone(),
            prefix: String::new(),
            draws,
            dtype: DType::F32,
        }
    }

    /// Makes the draws a store for a checkpoint deferred: each builder's stream is run in
    /// creation order up to its last parameter not in `loaded`, and those parameters take
    /// their values from it. The store then draws as usual; the draws of loaded parameters
    /// after the last fresh one stay owed, made (and dropped) only if that builder creates
    /// another random parameter.
    fn finish_deferred_draws(&self, loaded: &HashSet<&str>) -> Result<()> {
        let Some(deferred) = self.lock().deferred.take() else {
            return Ok(());
        };
        for draws in deferred {
            let mut draws = lock(&draws);
            let Draws { rng, pending } = &mut *draws;
            let owed = pending
                .iter()
                .rposition(|p| !loaded.contains(p.name.as_str()))
                .map_or(0, |last| last + 1);
            for p in pending.drain(..owed) {
                if loaded.contains(p.name.as_str()) {
                    draw(p.init, &p.shape, rng, &p.name, |_| {})?;
                } else {
                    let mut values = Vec::with_capacity(p.var.elem_count());
                    draw(p.init, &p.shape, rng, &p.name, |v| values.push(v))?;
                    let tensor = Tensor::from_vec(values, p.shape, p.var.device())?;
                    p.var.set(&tensor.to_dtype(p.var.dtype())?)?;
                }
            }
        }
        Ok(())
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
                Some(t) if t.dims() == var.dims() => assign.push((name, var, t)),
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
        let loaded: HashSet<&str> = assign.iter().map(|(name, _, _)| name.as_str()).collect();
        self.finish_deferred_draws(&loaded)?;
        for (_, var, source) in &assign {
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
    draws: Arc<Mutex<Draws>>,
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

    /// Creates parameter `name` of `shape`, initialised by `init` (for a store built for a
    /// checkpoint, random values are drawn when it is loaded).
    pub fn param(&self, name: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        let full_name = self.full_name(name);
        let device = self.store.device();
        let n: usize = shape.iter().product();
        let var = match init {
            Init::Zeros => Var::zeros(shape, self.dtype, device)?,
            Init::Const(c) => var_from(vec![c as f32; n], shape, self.dtype, device)?,
            random => {
                if let Init::Normal { std } = random {
                    Normal::new(0.0, std).map_err(|e| Error::config(name, e.to_string()))?;
                }
                let mut draws = lock(&self.draws);
                if self.store.lock().deferred.is_some() {
                    let var = Var::zeros(shape, self.dtype, device)?;
                    draws.pending.push(PendingDraw {
                        name: full_name.clone(),
                        var: var.clone(),
                        init,
                        shape: shape.to_vec(),
                    });
                    var
                } else {
                    let Draws { rng, pending } = &mut *draws;
                    // Draws still owed to loaded parameters (the builder outlived the load).
                    for p in pending.drain(..) {
                        draw(p.init, &p.shape, rng, &p.name, |_| {})?;
                    }
                    let mut values = Vec::with_capacity(n);
                    draw(init, shape, rng, name, |v| values.push(v))?;
                    var_from(values, shape, self.dtype, device)?
                }
            }
        };
        self.store.insert(&full_name, var.as_tensor())
    }

    /// The store parameters go into.
    pub fn store(&self) -> &ParamStore {
        &self.store
    }
}

/// A variable of `dtype` holding `values` (f32), without a copy when `dtype` is f32.
fn var_from(values: Vec<f32>, shape: &[usize], dtype: DType, device: &Device) -> Result<Var> {
    if dtype == DType::F32 {
        return Ok(Var::from_vec(values, shape, device)?);
    }
    Ok(Var::from_tensor(
        &Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?,
    )?)
}

/// Draws the initial values of a parameter of `shape` from `rng`, one by one into `sink`
/// (nothing is drawn for constant inits). `name` names the parameter in errors.
fn draw(
    init: Init,
    shape: &[usize],
    rng: &mut ChaCha8Rng,
    name: &str,
    mut sink: impl FnMut(f32),
) -> Result<()> {
    let n: usize = shape.iter().product();
    let fan_in = shape.last().copied().unwrap_or(1).max(1) as f64;
    let fan_out = shape.first().copied().unwrap_or(1).max(1) as f64;
    let mut uniform = |b: f64| (0..n).for_each(|_| sink(rng.random_range(-b..b) as f32));
    match init {
        Init::Zeros => (0..n).for_each(|_| sink(0.0)),
        Init::Const(c) => (0..n).for_each(|_| sink(c as f32)),
        Init::Uniform { lo, hi } => (0..n).for_each(|_| sink(rng.random_range(lo..hi) as f32)),
        Init::Normal { std } => {
            let normal = Normal::new(0.0, std).map_err(|e| Error::config(name, e.to_string()))?;
            (0..n).for_each(|_| sink(normal.sample(rng) as f32));
        }
        Init::LinearDefault => uniform(1.0 / fan_in.sqrt()),
        Init::XavierUniform => uniform((6.0 / (fan_in + fan_out)).sqrt()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four parameters of a small model: a body the checkpoint has and a head it may lack.
    fn build(store: &ParamStore) -> Vec<Tensor> {
        build_with(&store.builder(7))
    }

    fn build_with(vb: &ParamBuilder) -> Vec<Tensor> {
        let body = vb.pp("body");
        vec![
            body.param("embed", &[5, 3], Init::Normal { std: 0.5 })
                .unwrap(),
            body.param("norm", &[3], Init::Const(1.0)).unwrap(),
            body.param("dense", &[4, 3], Init::LinearDefault).unwrap(),
            vb.param("head", &[2, 4], Init::XavierUniform).unwrap(),
        ]
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn deferred_draws_give_fresh_parameters_the_values_an_eager_build_gives() {
        let eager = ParamStore::new(Device::Cpu);
        let expected = build(&eager);
        let checkpoint: HashMap<String, Tensor> = ["body.embed", "body.norm", "body.dense"]
            .iter()
            .map(|n| {
                let var = eager.get(n).unwrap();
                (n.to_string(), (var.as_tensor() * 3.0).unwrap())
            })
            .collect();

        // The head is fresh: its values come from the stream after the body's draws.
        let deferred = ParamStore::for_checkpoint(Device::Cpu);
        let built = build(&deferred);
        assert!(values(&built[3]).iter().all(|v| *v == 0.0), "not drawn yet");
        let report = deferred
            .load_tensors(&checkpoint, Path::new("w.safetensors"), &|n| n == "head")
            .unwrap();
        assert_eq!(report.newly_initialized, ["head"]);
        assert_eq!(values(&built[3]), values(&expected[3]));
        for i in 0..3 {
            let tripled: Vec<f32> = values(&expected[i]).iter().map(|v| v * 3.0).collect();
            assert_eq!(values(&built[i]), tripled, "parameter {i}");
        }

        // A fresh parameter in the middle: the one before it is drawn and dropped.
        let mut partial = checkpoint.clone();
        partial.remove("body.dense");
        partial.insert(
            "head".into(),
            Tensor::ones((2, 4), DType::F32, &Device::Cpu).unwrap(),
        );
        let deferred = ParamStore::for_checkpoint(Device::Cpu);
        let built = build(&deferred);
        deferred
            .load_tensors(&partial, Path::new("w.safetensors"), &|n| n == "body.dense")
            .unwrap();
        assert_eq!(values(&built[2]), values(&expected[2]));
        assert_eq!(values(&built[3]), vec![1.0; 8]);

        // A builder kept past the load makes the draws it still owes first: its next parameter
        // is the one an eager build's builder makes next.
        let eager_builder = ParamStore::new(Device::Cpu).builder(7);
        build_with(&eager_builder);
        let eager_next = eager_builder.param("next", &[3, 2], Init::Normal { std: 1.0 });
        let deferred = ParamStore::for_checkpoint(Device::Cpu);
        let kept = deferred.builder(7);
        build_with(&kept);
        let all: HashMap<String, Tensor> = ["body.embed", "body.norm", "body.dense", "head"]
            .iter()
            .map(|n| (n.to_string(), eager.get(n).unwrap().as_tensor().clone()))
            .collect();
        deferred.assign(&all, Path::new("w.safetensors")).unwrap();
        let next = kept.param("next", &[3, 2], Init::Normal { std: 1.0 });
        assert_eq!(values(&next.unwrap()), values(&eager_next.unwrap()));

        // Once loaded, the store draws as usual.
        let later = deferred
            .builder(7)
            .param("extra", &[5, 3], Init::Normal { std: 0.5 });
        assert_eq!(values(&later.unwrap()), values(&expected[0]));
    }
}

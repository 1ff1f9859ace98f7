//! Batch normalisation over features (PyTorch's `BatchNorm1d` on (batch, features)): in
//! training each feature is normalised by the batch's mean and biased variance and the running
//! statistics move toward the batch's (`momentum` 0.1, the running variance unbiased); in
//! evaluation the running statistics are used. Names as PyTorch's: `weight`, `bias`,
//! `running_mean`, `running_var` (the last two are buffers: saved, never trained).

use candle_core::{Tensor, Var};

use super::params::{Init, ParamBuilder};
use super::ForwardCtx;
use crate::error::{Error, Result};

/// PyTorch's default `eps`.
const EPS: f64 = 1e-5;
/// PyTorch's default `momentum`.
const MOMENTUM: f64 = 0.1;

/// A batch-norm layer.
pub struct BatchNorm1d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
}

impl BatchNorm1d {
    /// A layer over `features` features: γ = 1, β = 0, running mean 0 and variance 1.
    pub fn new(features: usize, vb: &ParamBuilder) -> Result<Self> {
        let weight = vb.param("weight", &[features], Init::Const(1.0))?;
        let bias = vb.param("bias", &[features], Init::Zeros)?;
        vb.param("running_mean", &[features], Init::Zeros)?;
        vb.param("running_var", &[features], Init::Const(1.0))?;
        let var = |name: &str| {
            vb.store()
                .get(&vb.full_name(name))
                .ok_or_else(|| Error::config(name, "missing after creation"))
        };
        Ok(Self {
            weight,
            bias,
            running_mean: var("running_mean")?,
            running_var: var("running_var")?,
        })
    }

    /// The names of the buffers under `prefix` (what a model lists as its `buffers`).
    pub fn buffer_names(prefix: &str) -> [String; 2] {
        [
            format!("{prefix}.running_mean"),
            format!("{prefix}.running_var"),
        ]
    }

    /// Normalises `x` (batch, features).
    pub fn forward(&self, x: &Tensor, ctx: &ForwardCtx) -> Result<Tensor> {
        let (mean, var) = if ctx.train {
            let n = x.dim(0)?;
            if n < 2 {
                return Err(Error::config(
                    "batch_size",
                    "batch normalisation needs at least 2 rows per training batch",
                ));
            }
            let mean = x.mean(0)?;
            let centred = x.broadcast_sub(&mean)?;
            let var = centred.sqr()?.mean(0)?;
            // The running statistics take the batch's, detached (the unbiased variance).
            let unbiased = (var.detach() * (n as f64 / (n as f64 - 1.0)))?;
            let next_mean = ((self.running_mean.as_tensor() * (1.0 - MOMENTUM))?
                + (mean.detach() * MOMENTUM)?)?;
            let next_var =
                ((self.running_var.as_tensor() * (1.0 - MOMENTUM))? + (unbiased * MOMENTUM)?)?;
            self.running_mean.set(&next_mean)?;
            self.running_var.set(&next_var)?;
            (mean, var)
        } else {
            (
                self.running_mean.as_tensor().clone(),
                self.running_var.as_tensor().clone(),
            )
        };
        let normalised = x
            .broadcast_sub(&mean)?
            .broadcast_div(&(var + EPS)?.sqrt()?)?;
        Ok(normalised
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)?)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use rand::SeedableRng;

    use super::*;
    use crate::nn::ParamStore;

    #[test]
    fn training_normalises_the_batch_and_moves_the_running_statistics() {
        let store = ParamStore::new(Device::Cpu);
        let bn = BatchNorm1d::new(2, &store.builder(0).pp("bn")).unwrap();
        let x = Tensor::new(&[[1f32, 10.0], [3.0, 10.0], [5.0, 10.0]], &Device::Cpu).unwrap();
        let ctx = ForwardCtx::training(rand_chacha::ChaCha8Rng::seed_from_u64(0));
        let y = bn.forward(&x, &ctx).unwrap().to_vec2::<f32>().unwrap();
        // Feature 0: mean 3, biased variance 8/3.
        let s = (8f32 / 3.0 + 1e-5).sqrt();
        assert!((y[0][0] + 2.0 / s).abs() < 1e-5 && (y[2][0] - 2.0 / s).abs() < 1e-5);
        assert!(
            y.iter().all(|r| r[1].abs() < 1e-3),
            "a constant feature becomes 0"
        );
        // Running: mean 0.9·0 + 0.1·3; variance 0.9·1 + 0.1·4 (unbiased 8/2).
        let rm = store
            .get("bn.running_mean")
            .unwrap()
            .as_tensor()
            .to_vec1::<f32>()
            .unwrap();
        let rv = store
            .get("bn.running_var")
            .unwrap()
            .as_tensor()
            .to_vec1::<f32>()
            .unwrap();
        assert!(
            (rm[0] - 0.3).abs() < 1e-6 && (rv[0] - 1.3).abs() < 1e-6,
            "{rm:?} {rv:?}"
        );
        // Evaluation uses them.
        let e = bn
            .forward(&x, &ForwardCtx::eval())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert!((e[0][0] - (1.0 - 0.3) / (1.3f32 + 1e-5).sqrt()).abs() < 1e-5);
        assert_eq!(
            BatchNorm1d::buffer_names("bn"),
            ["bn.running_mean", "bn.running_var"]
        );
    }
}

//! ELMo's scalar mix (Peters et al. 2018, eq. 1): a task's representation of a token is
//! `γ · Σ_j s_j h_j`, the layers' vectors `h_j` weighted by `s = softmax(w)`, with `w` and `γ`
//! learned by the task (AllenNLP's `ScalarMix` names: `scalar_parameters.{j}`, `gamma`).

use candle_core::Tensor;

use super::params::{Init, ParamBuilder};
use crate::error::{Error, Result};

/// Learned softmax-normalised layer weights and a scale.
pub struct ScalarMix {
    weights: Vec<Tensor>,
    gamma: Tensor,
}

impl ScalarMix {
    /// A mix of `layers` layers: equal weights (w = 0) and γ = 1.
    pub fn new(layers: usize, vb: &ParamBuilder) -> Result<Self> {
        if layers == 0 {
            return Err(Error::config("scalar_mix", "needs at least one layer"));
        }
        let weights = (0..layers)
            .map(|j| vb.param(&format!("scalar_parameters.{j}"), &[1], Init::Zeros))
            .collect::<Result<_>>()?;
        let gamma = vb.param("gamma", &[1], Init::Const(1.0))?;
        Ok(Self { weights, gamma })
    }

    /// `γ · Σ softmax(w)_j · layers[j]`; every layer has the same shape.
    pub fn forward(&self, layers: &[Tensor]) -> Result<Tensor> {
        if layers.len() != self.weights.len() {
            return Err(Error::config(
                "scalar_mix",
                format!(
                    "{} layers given to a mix of {}",
                    layers.len(),
                    self.weights.len()
                ),
            ));
        }
        let s = candle_nn::ops::softmax(&Tensor::cat(&self.weights, 0)?, 0)?;
        let mut mixed = layers[0].broadcast_mul(&s.narrow(0, 0, 1)?)?;
        for (j, layer) in layers.iter().enumerate().skip(1) {
            mixed = (mixed + layer.broadcast_mul(&s.narrow(0, j, 1)?)?)?;
        }
        Ok(mixed.broadcast_mul(&self.gamma)?)
    }

    /// The normalised layer weights `softmax(w)` and γ, as numbers.
    pub fn weights(&self) -> Result<(Vec<f32>, f32)> {
        let s = candle_nn::ops::softmax(&Tensor::cat(&self.weights, 0)?, 0)?;
        Ok((s.to_vec1()?, self.gamma.to_vec1::<f32>()?[0]))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::nn::ParamStore;

    #[test]
    fn equal_weights_average_the_layers_and_gamma_scales() {
        let store = ParamStore::new(Device::Cpu);
        let mix = ScalarMix::new(3, &store.builder(0)).unwrap();
        let layer = |v: f32| Tensor::full(v, (2, 4), &Device::Cpu).unwrap();
        let out = mix.forward(&[layer(1.0), layer(2.0), layer(6.0)]).unwrap();
        assert!(out
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .all(|v| (v - 3.0).abs() < 1e-6));
        store
            .get("gamma")
            .unwrap()
            .set(&Tensor::new(&[2f32], &Device::Cpu).unwrap())
            .unwrap();
        store
            .get("scalar_parameters.2")
            .unwrap()
            .set(&Tensor::new(&[1e3f32], &Device::Cpu).unwrap())
            .unwrap();
        let out = mix.forward(&[layer(1.0), layer(2.0), layer(6.0)]).unwrap();
        assert!((out.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0] - 12.0).abs() < 1e-4);
        assert!(mix.forward(&[layer(1.0)]).is_err());
    }
}

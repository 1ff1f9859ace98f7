//! What the ELMo classifier and tagger share: the biLM loaded under `elmo.` of their own
//! parameters (frozen there), and the head over its features — a learned scalar mix of the
//! layers, then dense + ReLU + dense.

use std::path::Path;

use candle_core::{Device, Tensor};

use crate::error::Result;
use crate::nn::scalar_mix::ScalarMix;
use crate::nn::{dropout, load_safetensors, ForwardCtx, Init, ParamBuilder, ParamStore};

/// Loads the biLM folder's weights into `params` under `elmo.`; the other parameters keep
/// their fresh values.
pub(super) fn load_bilm(params: &ParamStore, elmo_dir: &Path, device: &Device) -> Result<()> {
    let path = elmo_dir.join("model.safetensors");
    let tensors = load_safetensors(&path, device)?
        .into_iter()
        .map(|(k, v)| (format!("elmo.{k}"), v))
        .collect();
    params.load_tensors(&tensors, &path, &|name| !name.starts_with("elmo."))?;
    Ok(())
}

/// Scalar mix, then dense + ReLU + dense.
pub(super) struct MixHead {
    mix: ScalarMix,
    hidden: (Tensor, Tensor),
    output: (Tensor, Tensor),
    layers: usize,
    width: usize,
    dropout: f32,
}

impl MixHead {
    /// A head over `layers` layers of `width` features, `outputs` logits (`scalar_mix.*`,
    /// `hidden.*`, `classifier.*` under `vb`).
    pub(super) fn new(
        vb: &ParamBuilder,
        layers: usize,
        width: usize,
        hidden: usize,
        outputs: usize,
        dropout: f32,
    ) -> Result<Self> {
        let dense = |name: &str, out: usize, inp: usize| -> Result<(Tensor, Tensor)> {
            let d = vb.pp(name);
            Ok((
                d.param("weight", &[out, inp], Init::XavierUniform)?,
                d.param("bias", &[out], Init::Zeros)?,
            ))
        };
        Ok(Self {
            mix: ScalarMix::new(layers, &vb.pp("scalar_mix"))?,
            hidden: dense("hidden", hidden, width)?,
            output: dense("classifier", outputs, hidden)?,
            layers,
            width,
            dropout,
        })
    }

    /// Logits (rows, outputs) of `rows` feature rows, each `layers × width` values.
    pub(super) fn logits(
        &self,
        features: &[f32],
        rows: usize,
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        let device = self.hidden.0.device();
        let x = Tensor::from_slice(features, (rows, self.layers, self.width), device)?;
        let per_layer: Vec<Tensor> = (0..self.layers)
            .map(|j| x.narrow(1, j, 1)?.squeeze(1))
            .collect::<candle_core::Result<_>>()?;
        let mixed = dropout(&self.mix.forward(&per_layer)?, self.dropout, ctx)?;
        let h = crate::nn::linear::linear(&mixed, &self.hidden.0, &self.hidden.1)?.relu()?;
        let h = dropout(&h, self.dropout, ctx)?;
        crate::nn::linear::linear(&h, &self.output.0, &self.output.1)
    }

    /// The learned layer weights `softmax(w)` and γ.
    pub(super) fn mix_weights(&self) -> Result<(Vec<f32>, f32)> {
        self.mix.weights()
    }
}

//! The one projection layer of every model: `y = x·Wᵀ + b` over the last dimension, whatever
//! form the weight takes — dense `nn.Linear` (trainable), GPT-2's `Conv1D` layout, or a GGUF
//! tensor multiplied in its quantized form. Dense weights keep a packed copy for few-row
//! inference products ([`super::dense_panels`]).

use std::sync::Arc;

use candle_core::quantized::QMatMul;
use candle_core::{Module, Tensor};

use super::activation::Activation;
use super::dense_panels::{self, PanelCache};
use super::linear::{conv1d_linear, linear, linear_no_bias};
use super::norm::Norm;
use super::params::{Init, ParamBuilder};
use super::quantized::QuantMatrix;
use crate::error::Result;

/// The weight of a projection.
#[derive(Clone)]
pub enum Weight {
    /// `nn.Linear` layout (out, in), f32.
    Dense(Tensor),
    /// GPT-2's `Conv1D` layout (in, out), f32.
    Conv1d(Tensor),
    /// A GGUF tensor (out, in) of type Q4_0, Q4_1, Q8_0 or F16, multiplied by prosa's kernels.
    Blocks(Arc<QuantMatrix>),
    /// A GGUF tensor of another type, multiplied in its quantized form by candle.
    Quantized(Arc<QMatMul>),
}

/// `y = x·Wᵀ + b` over the last dimension.
#[derive(Clone)]
pub struct Projection {
    /// The weight.
    pub weight: Weight,
    /// The bias, if the layer has one.
    pub bias: Option<Tensor>,
    /// The dense weight packed for few-row inference products, made on first use.
    panels: PanelCache,
}

impl Projection {
    /// A projection from its parts.
    pub fn new(weight: Weight, bias: Option<Tensor>) -> Self {
        Self {
            weight,
            bias,
            panels: PanelCache::default(),
        }
    }

    /// A dense layer `name.weight` (outputs, inputs) drawn from `init`, and `name.bias`
    /// (zeros) when `bias` is set — PyTorch's `nn.Linear` names and layout.
    pub fn dense(
        vb: &ParamBuilder,
        name: &str,
        inputs: usize,
        outputs: usize,
        init: Init,
        bias: bool,
    ) -> Result<Self> {
        let vb = vb.pp(name);
        Ok(Self::new(
            Weight::Dense(vb.param("weight", &[outputs, inputs], init)?),
            bias.then(|| vb.param("bias", &[outputs], Init::Zeros))
                .transpose()?,
        ))
    }

    /// GPT-2's `Conv1D`: `name.weight` (inputs, outputs) drawn from `init`, `name.bias` zeros.
    pub fn conv1d(
        vb: &ParamBuilder,
        name: &str,
        inputs: usize,
        outputs: usize,
        init: Init,
    ) -> Result<Self> {
        let vb = vb.pp(name);
        Ok(Self::new(
            Weight::Conv1d(vb.param("weight", &[inputs, outputs], init)?),
            Some(vb.param("bias", &[outputs], Init::Zeros)?),
        ))
    }

    /// Applies the projection to `x` (…, in).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(y) = self.packed_product(x, self.bias.as_ref())? {
            return Ok(y);
        }
        match &self.weight {
            Weight::Dense(w) => match &self.bias {
                Some(b) => linear(x, w, b),
                None => linear_no_bias(x, w),
            },
            Weight::Conv1d(w) => match &self.bias {
                Some(b) => conv1d_linear(x, w, b),
                None => {
                    let zeros = Tensor::zeros(w.dim(1)?, x.dtype(), x.device())?;
                    conv1d_linear(x, w, &zeros)
                }
            },
            Weight::Blocks(q) => self.add_bias(q.matmul(x)?),
            Weight::Quantized(q) => self.add_bias(q.forward(&x.contiguous()?)?),
        }
    }

    /// `activation(x·Wᵀ + b)` (a feed-forward layer's inner activations): through the packed
    /// dense weight the activation is taken as the product writes its sums; otherwise the
    /// product, then the activation over that fresh output (in place where nothing records a
    /// gradient). The same bits either way.
    pub fn forward_activated(&self, x: &Tensor, activation: Activation) -> Result<Tensor> {
        if let Some((w, out_in)) = self.dense_weight() {
            let weight = (w, self.bias.as_ref());
            let y = dense_panels::activated_product(x, weight, out_in, &self.panels, activation)?;
            if let Some(y) = y {
                return Ok(y);
            }
        }
        activation.apply_owned(self.forward(x)?)
    }

    /// `norm(x·Wᵀ + b + residual)` (a post-LN layer's output projection with its add & norm):
    /// through the packed dense weight each output row is added to its residual row and normed
    /// as soon as the product has written it, while it is in cache; otherwise the product, then
    /// [`Norm::forward_residual`]. The same bits either way. No dropout: for inference.
    pub fn forward_residual_norm(
        &self,
        x: &Tensor,
        residual: &Tensor,
        norm: &Norm,
    ) -> Result<Tensor> {
        if let (Some((w, out_in)), Some(parts)) = (self.dense_weight(), norm.layer_parts()) {
            let weight = (w, self.bias.as_ref());
            let y = dense_panels::residual_normed_product(
                x,
                weight,
                out_in,
                &self.panels,
                residual,
                parts,
            )?;
            if let Some(y) = y {
                return Ok(y);
            }
        }
        norm.forward_residual(residual, &self.forward(x)?)
    }

    /// SwiGLU of the projection of `x` through a weight stacked as `[gate | up]` (`2·width`
    /// outputs): `silu(x·gateᵀ) ⊙ x·upᵀ`. Through an F16 GGUF weight without a bias, outside
    /// training, the two halves are combined as the product writes them
    /// ([`QuantMatrix::swiglu_matmul`]); otherwise the product, then
    /// [`super::activation::swiglu_stacked`]. The same bits either way.
    pub fn forward_swiglu(&self, x: &Tensor, width: usize) -> Result<Tensor> {
        if let (Weight::Blocks(q), None) = (&self.weight, &self.bias) {
            if !candle_core::backprop::grad_tracking() {
                if let Some(y) = q.swiglu_matmul(x, width)? {
                    return Ok(y);
                }
            }
        }
        super::activation::swiglu_stacked(&self.forward(x)?, width)
    }

    /// `x·Wᵀ + offset` for a projection without a bias of its own, the offset (out, or 1 × out;
    /// not trained) added to the finished product as a separate step, as transformers adds
    /// BART's `final_logits_bias`. The packed few-row product adds it as it writes its sums,
    /// which gives the same bits.
    pub fn forward_offset(&self, x: &Tensor, offset: &Tensor) -> Result<Tensor> {
        if self.bias.is_none() {
            if let Some(y) = self.packed_product(x, Some(offset))? {
                return Ok(y);
            }
        }
        Ok(self.forward(x)?.broadcast_add(offset)?)
    }

    /// `x·Wᵀ + bias` through the packed dense weight, or `None` where that path does not apply
    /// (a quantized weight, or see [`dense_panels::product`]).
    fn packed_product(&self, x: &Tensor, bias: Option<&Tensor>) -> Result<Option<Tensor>> {
        match self.dense_weight() {
            Some((w, out_in)) => dense_panels::product(x, w, bias, out_in, &self.panels),
            None => Ok(None),
        }
    }

    /// A dense weight and whether it is in `nn.Linear`'s layout (else `Conv1D`'s), or `None`
    /// for a quantized one.
    fn dense_weight(&self) -> Option<(&Tensor, bool)> {
        match &self.weight {
            Weight::Dense(w) => Some((w, true)),
            Weight::Conv1d(w) => Some((w, false)),
            Weight::Blocks(_) | Weight::Quantized(_) => None,
        }
    }

    /// The products of several projections of the same `x`, side by side (…, Σ outputs), as
    /// one product through `stack`'s packed copy of their weights stacked by outputs; `None`
    /// unless every weight is a dense `nn.Linear` one and the packed path applies
    /// ([`dense_panels::stacked_product`]).
    pub fn stacked_forward(
        parts: &[&Projection],
        x: &Tensor,
        stack: &PanelCache,
    ) -> Result<Option<Tensor>> {
        let mut dense = Vec::with_capacity(parts.len());
        for p in parts {
            let Weight::Dense(w) = &p.weight else {
                return Ok(None);
            };
            dense.push((w, p.bias.as_ref()));
        }
        dense_panels::stacked_product(x, &dense, stack)
    }

    /// Whether a packed copy of the weight is held: made by a few-row inference product on a
    /// CPU that has the kernel, as large as the weight ([`super::dense_panels`]).
    pub fn has_packed_weight(&self) -> bool {
        self.panels.is_packed()
    }

    fn add_bias(&self, y: Tensor) -> Result<Tensor> {
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

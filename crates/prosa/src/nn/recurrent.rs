//! Recurrent layers: Elman RNN (tanh), LSTM and GRU, stacked and optionally bidirectional, with
//! PyTorch's parameter names and gate layout (`weight_ih_l0`, `weight_hh_l0_reverse`, …) so
//! weights move both ways between prosa and `torch.nn.RNN/LSTM/GRU`.
//!
//! The equations (the e-book's Figures 4–8; Cho et al. 2014 for the GRU), per time step t:
//!
//! ```text
//! RNN:  h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
//! LSTM: i, f, g, o = σ, σ, tanh, σ of (W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), split in four
//!       c_t = f ⊙ c_{t-1} + i ⊙ g;   h_t = o ⊙ tanh(c_t)
//! GRU:  r, z = σ of the first two quarters of (W_ih x_t + b_ih) + (W_hh h_{t-1} + b_hh)
//!       n   = tanh(third part of (W_ih x_t + b_ih) + r ⊙ third part of (W_hh h_{t-1} + b_hh))
//!       h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}
//! ```
//!
//! The input projection `W_ih x_t + b_ih` of every time step is one matrix product before the
//! time loop. A mask (1 for real tokens, 0 for padding) keeps the state unchanged over padded
//! steps, so Keras-style pre-padding does not disturb the final state.

use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

pub use super::cell::CellKind;
use super::context::ForwardCtx;
use super::dropout::dropout;
use super::fused_recurrent::FusedRecurrent;
use super::params::{Init, ParamBuilder};
use crate::error::{Error, Result};

/// Shape of a recurrent stack.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RecurrentConfig {
    /// The cell.
    pub cell: CellKind,
    /// Width of the input vectors.
    pub input_size: usize,
    /// Width of the hidden state.
    pub hidden_size: usize,
    /// Stacked layers.
    pub num_layers: usize,
    /// Also read the sequence backwards and concatenate both states.
    pub bidirectional: bool,
    /// Dropout on the outputs of every layer but the last (training only).
    pub dropout: f32,
}

struct Direction {
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
}

/// What a recurrent stack returns.
pub struct RecurrentOutput {
    /// Hidden state of the last layer at every step: (batch, seq, hidden × directions).
    pub outputs: Tensor,
    /// Final hidden state of the last layer: (batch, hidden × directions); for the backward
    /// direction, the state after reading the first token.
    pub last: Tensor,
}

/// A stack of recurrent layers.
pub struct Recurrent {
    config: RecurrentConfig,
    /// Run each direction's time loop as one fused op (CPU, f32); otherwise per-step tensor ops.
    fused: bool,
    /// A unidirectional stack that reads from the last token to the first (a backward LM).
    reversed: bool,
    /// DropConnect on the hidden-to-hidden weights in training (the AWD-LSTM's weight drop).
    weight_drop: f32,
    /// `layers[l][d]`: layer l, direction d (0 forward, 1 backward).
    layers: Vec<Vec<Direction>>,
}

impl Recurrent {
    /// Creates the parameters under `vb` with PyTorch's names and initialisation
    /// (uniform in ±1/sqrt(hidden)).
    pub fn new(config: RecurrentConfig, vb: &ParamBuilder) -> Result<Self> {
        if config.num_layers == 0 || config.hidden_size == 0 || config.input_size == 0 {
            return Err(Error::config(
                "recurrent",
                "layers, hidden size and input size must be at least 1",
            ));
        }
        let h = config.hidden_size;
        let g = config.cell.gates() * h;
        let bound = 1.0 / (h as f64).sqrt();
        let init = Init::Uniform {
            lo: -bound,
            hi: bound,
        };
        let dirs = if config.bidirectional { 2 } else { 1 };
        let mut layers = Vec::with_capacity(config.num_layers);
        for l in 0..config.num_layers {
            let input = if l == 0 { config.input_size } else { h * dirs };
            let mut directions = Vec::with_capacity(dirs);
            for d in 0..dirs {
                let suffix = if d == 0 {
                    format!("l{l}")
                } else {
                    format!("l{l}_reverse")
                };
                directions.push(Direction {
                    w_ih: vb.param(&format!("weight_ih_{suffix}"), &[g, input], init)?,
                    w_hh: vb.param(&format!("weight_hh_{suffix}"), &[g, h], init)?,
                    b_ih: vb.param(&format!("bias_ih_{suffix}"), &[g], init)?,
                    b_hh: vb.param(&format!("bias_hh_{suffix}"), &[g], init)?,
                });
            }
            layers.push(directions);
        }
        Ok(Self {
            config,
            fused: true,
            reversed: false,
            weight_drop: 0.0,
            layers,
        })
    }

    /// Makes a unidirectional stack read each sequence from its end (ELMo's backward language
    /// model): with right padding and a mask, the padded steps come first and leave the zero
    /// state as it is.
    pub fn set_reversed(&mut self, reversed: bool) {
        self.reversed = reversed;
    }

    /// Chooses the fused time loop (the default; used on the CPU in f32) or the reference
    /// implementation with one tensor op per gate and step (any device and dtype).
    pub fn set_fused(&mut self, fused: bool) {
        self.fused = fused;
    }

    /// DropConnect (Merity et al. 2017's weight drop, fastai's `WeightDropout`): in training,
    /// each forward pass drops entries of every `weight_hh` with probability `p` (the rest
    /// scaled by `1 / (1 - p)`), the same dropped weights for every step and sequence of the
    /// batch; the gradient reaches the kept entries.
    pub fn set_weight_drop(&mut self, p: f32) {
        self.weight_drop = p;
    }

    /// The configuration.
    pub fn config(&self) -> &RecurrentConfig {
        &self.config
    }

    /// Width of the outputs: hidden × directions.
    pub fn output_size(&self) -> usize {
        self.config.hidden_size * if self.config.bidirectional { 2 } else { 1 }
    }

    /// Runs the stack over `x` (batch, seq, input); `mask` (batch, seq) holds 1 for real
    /// tokens and 0 for padding (`None`: every step is real).
    pub fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        ctx: &mut ForwardCtx,
    ) -> Result<RecurrentOutput> {
        let mut input = x.clone();
        let mut last = Vec::new();
        for (l, directions) in self.layers.iter().enumerate() {
            if l > 0 {
                input = dropout(&input, self.config.dropout, ctx)?;
            }
            let mut outs = Vec::with_capacity(directions.len());
            last.clear();
            for (d, params) in directions.iter().enumerate() {
                let reverse = d == 1 || (self.reversed && !self.config.bidirectional);
                let dropped;
                let params = if ctx.train && self.weight_drop > 0.0 {
                    dropped = Direction {
                        w_ih: params.w_ih.clone(),
                        w_hh: dropout(&params.w_hh, self.weight_drop, ctx)?,
                        b_ih: params.b_ih.clone(),
                        b_hh: params.b_hh.clone(),
                    };
                    &dropped
                } else {
                    params
                };
                let (out, h) = self.run_direction(params, &input, mask, reverse)?;
                outs.push(out);
                last.push(h);
            }
            input = if outs.len() == 1 {
                outs.remove(0)
            } else {
                Tensor::cat(&outs, D::Minus1)?
            };
        }
        let last = if last.len() == 1 {
            last.remove(0)
        } else {
            Tensor::cat(&last, D::Minus1)?
        };
        Ok(RecurrentOutput {
            outputs: input,
            last,
        })
    }

    /// One direction of one layer: returns (outputs (batch, seq, hidden), final state).
    fn run_direction(
        &self,
        p: &Direction,
        x: &Tensor,
        mask: Option<&Tensor>,
        reverse: bool,
    ) -> Result<(Tensor, Tensor)> {
        let (batch, seq, input) = x.dims3()?;
        let h_size = self.config.hidden_size;
        // All time steps' input projections W_ih x_t in one product: (batch, seq, gates × hidden).
        if self.fused && x.device().is_cpu() && x.dtype() == DType::F32 {
            let op = FusedRecurrent {
                cell: self.config.cell,
                hidden: h_size,
                mask: mask
                    .map(|m| m.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>())
                    .transpose()?,
                reverse,
                record: Default::default(),
            };
            // The op projects the inputs and adds both biases itself (see its module).
            let weights = Tensor::cat(&[&p.w_ih, &p.w_hh], 1)?;
            let biases = Tensor::stack(&[&p.b_ih, &p.b_hh], 0)?;
            let outputs = x.contiguous()?.apply_op3(&weights, &biases, op)?;
            let last = outputs
                .narrow(1, if reverse { 0 } else { seq - 1 }, 1)?
                .squeeze(1)?;
            return Ok((outputs, last));
        }
        // All time steps' input projections W_ih x_t + b_ih in one product: (batch, seq, gates × hidden).
        let projected = x
            .reshape((batch * seq, input))?
            .matmul(&p.w_ih.t()?)?
            .broadcast_add(&p.b_ih)?
            .reshape((batch, seq, p.w_ih.dim(0)?))?;
        let w_hh_t = p.w_hh.t()?;
        let zeros = Tensor::zeros((batch, h_size), x.dtype(), x.device())?;
        let mut h = zeros.clone();
        let mut c = zeros;
        let mut outputs = vec![None; seq];
        let steps: Vec<usize> = if reverse {
            (0..seq).rev().collect()
        } else {
            (0..seq).collect()
        };
        for t in steps {
            let xt = projected.narrow(1, t, 1)?.squeeze(1)?;
            let hh = h.matmul(&w_hh_t)?.broadcast_add(&p.b_hh)?;
            let (h_new, c_new) = match self.config.cell {
                CellKind::Rnn => ((xt + hh)?.tanh()?, None),
                CellKind::Lstm => {
                    let gates = (xt + hh)?;
                    let chunk = |k: usize| gates.narrow(1, k * h_size, h_size);
                    let i = candle_nn::ops::sigmoid(&chunk(0)?)?;
                    let f = candle_nn::ops::sigmoid(&chunk(1)?)?;
                    let g = chunk(2)?.tanh()?;
                    let o = candle_nn::ops::sigmoid(&chunk(3)?)?;
                    let c_new = ((f * &c)? + (i * g)?)?;
                    ((o * c_new.tanh()?)?, Some(c_new))
                }
                CellKind::Gru => {
                    let xi = |k: usize| xt.narrow(1, k * h_size, h_size);
                    let hi = |k: usize| hh.narrow(1, k * h_size, h_size);
                    let r = candle_nn::ops::sigmoid(&(xi(0)? + hi(0)?)?)?;
                    let z = candle_nn::ops::sigmoid(&(xi(1)? + hi(1)?)?)?;
                    let n = (xi(2)? + (r * hi(2)?)?)?.tanh()?;
                    let h_new = ((z.ones_like()? - &z)? * n)?.add(&(z * &h)?)?;
                    (h_new, None)
                }
            };
            match mask {
                Some(m) => {
                    // Keep the previous state where the step is padding.
                    let keep = m.narrow(1, t, 1)?.to_dtype(x.dtype())?;
                    h = blend(&keep, &h_new, &h)?;
                    if let Some(c_new) = c_new {
                        c = blend(&keep, &c_new, &c)?;
                    }
                }
                None => {
                    h = h_new;
                    if let Some(c_new) = c_new {
                        c = c_new;
                    }
                }
            }
            outputs[t] = Some(h.clone());
        }
        let outputs: Vec<Tensor> = outputs
            .into_iter()
            .map(|o| o.expect("every step visited"))
            .collect();
        Ok((Tensor::stack(&outputs, 1)?, h))
    }
}

/// `keep ⊙ new + (1 - keep) ⊙ old`, with `keep` (batch, 1) broadcast over the features.
fn blend(keep: &Tensor, new: &Tensor, old: &Tensor) -> Result<Tensor> {
    Ok((old + keep.broadcast_mul(&(new - old)?)?)?)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use rand::SeedableRng;

    use super::*;
    use crate::nn::ParamStore;

    #[test]
    fn weight_drop_acts_on_the_recurrent_weights_in_training_only() {
        let store = ParamStore::new(Device::Cpu);
        let config = RecurrentConfig {
            cell: CellKind::Lstm,
            input_size: 3,
            hidden_size: 4,
            num_layers: 1,
            bidirectional: false,
            dropout: 0.0,
        };
        let mut lstm = Recurrent::new(config, &store.builder(1)).unwrap();
        let x = Tensor::rand(-1f32, 1.0, (2, 5, 3), &Device::Cpu).unwrap();
        let run = |lstm: &Recurrent, ctx: &mut ForwardCtx| {
            let out = lstm.forward(&x, None, ctx).unwrap().outputs;
            out.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        let plain = run(&lstm, &mut ForwardCtx::eval());
        // p → 1: every recurrent weight is dropped, as if W_hh were zero.
        lstm.set_weight_drop(1.0 - 1e-7);
        let mut ctx = ForwardCtx::training(rand_chacha::ChaCha8Rng::seed_from_u64(3));
        let dropped = run(&lstm, &mut ctx);
        assert_eq!(
            run(&lstm, &mut ForwardCtx::eval()),
            plain,
            "evaluation keeps every weight"
        );
        let w_hh = store.get("weight_hh_l0").unwrap();
        w_hh.set(&w_hh.as_tensor().zeros_like().unwrap()).unwrap();
        let without = run(&lstm, &mut ForwardCtx::eval());
        let worst = dropped
            .iter()
            .zip(&without)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(worst < 1e-6, "{worst}");
        assert!(plain
            .iter()
            .zip(&without)
            .any(|(a, b)| (a - b).abs() > 1e-3));
    }
}

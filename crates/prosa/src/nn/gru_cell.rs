//! One step of a GRU (PyTorch's `nn.GRUCell`, names and gate order r, z, n), for decoders that
//! feed each step's input from the step before (attention contexts, generated tokens):
//!
//! ```text
//! r = σ(W_ir x + b_ir + W_hr h + b_hr)      z = σ(W_iz x + b_iz + W_hz h + b_hz)
//! n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))      h' = (1 − z) ⊙ n + z ⊙ h
//! ```

use candle_core::Tensor;

use super::linear::linear;
use super::params::{Init, ParamBuilder};
use crate::error::Result;

/// The parameters of one GRU cell.
pub struct GruCell {
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
    hidden: usize,
}

impl GruCell {
    /// Creates `weight_ih` (3h, input), `weight_hh` (3h, h), `bias_ih`, `bias_hh` under `vb`,
    /// uniform in ±1/√h as PyTorch.
    pub fn new(vb: &ParamBuilder, input: usize, hidden: usize) -> Result<Self> {
        let b = 1.0 / (hidden as f64).sqrt();
        let init = Init::Uniform { lo: -b, hi: b };
        Ok(Self {
            w_ih: vb.param("weight_ih", &[3 * hidden, input], init)?,
            w_hh: vb.param("weight_hh", &[3 * hidden, hidden], init)?,
            b_ih: vb.param("bias_ih", &[3 * hidden], init)?,
            b_hh: vb.param("bias_hh", &[3 * hidden], init)?,
            hidden,
        })
    }

    /// The next state of `h` (batch, hidden) after input `x` (batch, input).
    pub fn step(&self, x: &Tensor, h: &Tensor) -> Result<Tensor> {
        let gi = linear(x, &self.w_ih, &self.b_ih)?;
        let gh = linear(h, &self.w_hh, &self.b_hh)?;
        let hs = self.hidden;
        let part = |t: &Tensor, k: usize| t.narrow(1, k * hs, hs);
        let r = candle_nn::ops::sigmoid(&(part(&gi, 0)? + part(&gh, 0)?)?)?;
        let z = candle_nn::ops::sigmoid(&(part(&gi, 1)? + part(&gh, 1)?)?)?;
        let n = (part(&gi, 2)? + (r * part(&gh, 2)?)?)?.tanh()?;
        // (1 − z)·n + z·h = n + z·(h − n)
        Ok((&n + (z * (h - &n)?)?)?)
    }
}

//! Layers shared by the models, on candle: dropout with prosa's seeded randomness, and the
//! recurrent layers (RNN, LSTM, GRU).

mod fused_recurrent;
mod gemm;
pub mod linear;
pub mod loss;
pub mod norm;
pub mod recurrent;
pub mod rope;
mod scratch;

use candle_core::Tensor;
use rand::Rng;

use crate::error::Result;
use crate::train::ForwardCtx;

/// Inverted dropout: in training, zeroes each value with probability `p` and scales the rest by
/// `1 / (1 - p)`; in evaluation, returns `x` unchanged. The mask comes from `ctx.rng`, so it is
/// reproducible from the run's seed.
pub fn dropout(x: &Tensor, p: f32, ctx: &mut ForwardCtx) -> Result<Tensor> {
    if !ctx.train || p <= 0.0 {
        return Ok(x.clone());
    }
    let keep = 1.0 - p;
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| {
            if ctx.rng.random::<f32>() < keep {
                1.0 / keep
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    Ok(x.mul(&mask)?)
}

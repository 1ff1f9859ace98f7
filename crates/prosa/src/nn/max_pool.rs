//! Max-pooling over the positions of (batch, positions, features) — a character CNN's
//! pooling over a word — with PyTorch's gradient: each output's gradient goes to the *first*
//! position holding the maximum. (candle's `max` sends it to every tied position, which
//! multiplies it for the identical windows of a word's padding.)

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use super::gemm::{cpu_f32, with_f32};
use crate::error::Result;

/// The first position of each (row, feature)'s maximum.
fn argmax_first(x: &[f32], positions: usize, features: usize) -> Vec<usize> {
    let rows = x.len() / (positions * features).max(1);
    let mut best = vec![0usize; rows * features];
    for r in 0..rows {
        let block = &x[r * positions * features..(r + 1) * positions * features];
        let best = &mut best[r * features..(r + 1) * features];
        for p in 1..positions {
            let row = &block[p * features..(p + 1) * features];
            for (f, v) in row.iter().enumerate() {
                if *v > block[best[f] * features + f] {
                    best[f] = p;
                }
            }
        }
    }
    best
}

struct MaxOverPositions;

impl CustomOp1 for MaxOverPositions {
    fn name(&self) -> &'static str {
        "prosa-max-over-positions"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = cpu_f32(s, l, "max-pool input")?;
        let (rows, positions, features) = l.shape().dims3()?;
        let best = argmax_first(x, positions, features);
        let out: Vec<f32> = best
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let (r, f) = (i / features, i % features);
                x[(r * positions + p) * features + f]
            })
            .collect();
        Ok((CpuStorage::F32(out), Shape::from((rows, features))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (rows, positions, features) = x.dims3()?;
        let best = with_f32(x, |xs| argmax_first(xs, positions, features))?;
        let g = grad.flatten_all()?.to_vec1::<f32>()?;
        let mut dx = vec![0f32; rows * positions * features];
        for (i, &p) in best.iter().enumerate() {
            let (r, f) = (i / features, i % features);
            dx[(r * positions + p) * features + f] = g[i];
        }
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// The maximum over dimension 1 of `x` (rows, positions, features): (rows, features).
pub fn max_over_positions(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        return Ok(x.contiguous()?.apply_op1(MaxOverPositions)?);
    }
    Ok(x.max(1)?)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    #[test]
    fn ties_send_the_gradient_to_the_first_maximum_only() {
        // Positions 1 and 2 tie for feature 0; feature 1 peaks at position 0.
        let x =
            Var::from_vec(vec![1f32, 5.0, 3.0, 2.0, 3.0, 1.0], (1, 3, 2), &Device::Cpu).unwrap();
        let y = max_over_positions(x.as_tensor()).unwrap();
        assert_eq!(y.to_vec2::<f32>().unwrap(), [[3.0, 5.0]]);
        let grads = y.sum_all().unwrap().backward().unwrap();
        let g = grads
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(g, [0.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
    }
}

//! Inverted dropout as one candle op whose mask is a hash of the step's seed and the position,
//! so the backward pass recomputes the mask instead of storing it.

use candle_core::Tensor;
use rand::Rng;

use super::context::ForwardCtx;
use super::gemm;
use crate::error::Result;

/// SplitMix64: a counter-based hash, so element `i`'s mask bit needs no sequential generator.
#[inline(always)]
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Dropout as one op: element `i` is kept when its 16 bits of a hash of `(seed, i / 4)` fall
/// below `keep` (so `p` is honoured to 1/65536); the
/// backward pass recomputes the same mask from the seed instead of storing it.
struct DropoutOp {
    seed: u64,
    keep: f32,
}

impl DropoutOp {
    fn apply(&self, values: &[f32]) -> Vec<f32> {
        use rayon::prelude::*;
        const CHUNK: usize = 1 << 14;
        // One 64-bit hash gives the 16-bit draws of four neighbouring elements.
        let threshold = (self.keep as f64 * 65536.0) as u64;
        let scale = 1.0 / self.keep;
        let mut out = vec![0f32; values.len()];
        out.par_chunks_mut(CHUNK)
            .zip(values.par_chunks(CHUNK))
            .enumerate()
            .for_each(|(c, (o, x))| {
                let base = (c * CHUNK / 4) as u64;
                let group = |g: usize, o: &mut [f32], x: &[f32]| {
                    let h = splitmix64(self.seed ^ (base + g as u64));
                    for (k, (o, v)) in o.iter_mut().zip(x).enumerate() {
                        let draw = (h >> (16 * k)) & 0xFFFF;
                        *o = if draw < threshold { v * scale } else { 0.0 };
                    }
                };
                // Whole groups of four (unrolled), then the tail.
                let whole = o.len() / 4 * 4;
                let (head, tail) = o.split_at_mut(whole);
                for (g, (o, x)) in head.chunks_exact_mut(4).zip(x.chunks_exact(4)).enumerate() {
                    group(g, o, x);
                }
                if !tail.is_empty() {
                    group(whole / 4, tail, &x[whole..]);
                }
            });
        out
    }
}

impl candle_core::CustomOp1 for DropoutOp {
    fn name(&self) -> &'static str {
        "prosa-dropout"
    }

    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let x = gemm::cpu_f32(s, l, "dropout input")?;
        Ok((
            candle_core::CpuStorage::F32(self.apply(x)),
            l.shape().clone(),
        ))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let dx = gemm::with_f32(&grad.contiguous()?, |g| self.apply(g))?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// Inverted dropout: in training, zeroes each value with probability `p` and scales the rest by
/// `1 / (1 - p)`; in evaluation, returns `x` unchanged. The mask comes from `ctx.rng`, so it is
/// reproducible from the run's seed.
pub fn dropout(x: &Tensor, p: f32, ctx: &mut ForwardCtx) -> Result<Tensor> {
    if !ctx.train || p <= 0.0 {
        return Ok(x.clone());
    }
    let keep = 1.0 - p;
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        let op = DropoutOp {
            seed: ctx.rng.random(),
            keep,
        };
        return Ok(x.contiguous()?.apply_op1(op)?);
    }
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

/// Dropout with one mask broadcast over `mask_shape` (which divides `x`'s shape): the AWD-LSTM's
/// regularisers (Merity et al. 2017) as fastai writes them. Training only; the kept entries are
/// scaled by `1 / (1 - p)`.
fn broadcast_dropout(
    x: &Tensor,
    mask_shape: &[usize],
    p: f32,
    ctx: &mut ForwardCtx,
) -> Result<Tensor> {
    if !ctx.train || p <= 0.0 {
        return Ok(x.clone());
    }
    let keep = 1.0 - p;
    let n: usize = mask_shape.iter().product();
    let mask: Vec<f32> = (0..n)
        .map(|_| {
            if ctx.rng.random::<f32>() < keep {
                1.0 / keep
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::from_vec(mask, mask_shape, x.device())?.to_dtype(x.dtype())?;
    Ok(x.broadcast_mul(&mask)?)
}

/// Locked ("variational") dropout of a sequence (batch, steps, features): the same features are
/// dropped at every step of a sequence (fastai's `RNNDropout`, mask (batch, 1, features)).
pub fn locked_dropout(x: &Tensor, p: f32, ctx: &mut ForwardCtx) -> Result<Tensor> {
    let (batch, _, features) = x.dims3()?;
    broadcast_dropout(x, &[batch, 1, features], p, ctx)
}

/// Embedding dropout of an embedding matrix (vocab, dim): whole words are dropped — every use
/// of a dropped word in the batch reads zeros (fastai's `EmbeddingDropout`, mask (vocab, 1)).
pub fn embedding_dropout(weight: &Tensor, p: f32, ctx: &mut ForwardCtx) -> Result<Tensor> {
    let (vocab, _) = weight.dims2()?;
    broadcast_dropout(weight, &[vocab, 1], p, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn dropout_keeps_the_expected_share_and_its_gradient_uses_the_same_mask() {
        let x = candle_core::Var::from_tensor(
            &Tensor::ones(100_000, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap(),
        )
        .unwrap();
        let mut ctx = ForwardCtx::training(rand_chacha::ChaCha8Rng::seed_from_u64(3));
        let y = dropout(x.as_tensor(), 0.25, &mut ctx).unwrap();
        let values = y.to_vec1::<f32>().unwrap();
        let kept = values.iter().filter(|v| **v != 0.0).count() as f64 / values.len() as f64;
        assert!((kept - 0.75).abs() < 0.01, "kept {kept}");
        assert!(values
            .iter()
            .all(|v| *v == 0.0 || (*v - 1.0 / 0.75).abs() < 1e-6));
        let grad = y.sum_all().unwrap().backward().unwrap();
        let g = grad.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(g, values);
        // Another call draws another mask.
        let again = dropout(x.as_tensor(), 0.25, &mut ctx)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_ne!(again, values);
    }

    #[test]
    fn locked_dropout_drops_the_same_features_at_every_step() {
        let mut ctx = ForwardCtx::training(rand_chacha::ChaCha8Rng::seed_from_u64(7));
        let x = Tensor::ones(
            (2, 5, 40),
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let y = locked_dropout(&x, 0.5, &mut ctx)
            .unwrap()
            .to_vec3::<f32>()
            .unwrap();
        for row in &y {
            assert!(
                row.iter().all(|step| step == &row[0]),
                "the mask changed across steps"
            );
            assert!(row[0].iter().all(|v| *v == 0.0 || *v == 2.0));
            assert!(row[0].contains(&0.0) && row[0].contains(&2.0));
        }
        assert_ne!(y[0][0], y[1][0], "each sequence draws its own mask");
        let w = Tensor::ones((30, 4), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
        let e = embedding_dropout(&w, 0.5, &mut ctx)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert!(
            e.iter().all(|r| r.iter().all(|v| *v == r[0])),
            "whole words are dropped"
        );
        assert!(e.iter().any(|r| r[0] == 0.0) && e.iter().any(|r| r[0] == 2.0));
        let eval = locked_dropout(&x, 0.5, &mut ForwardCtx::eval()).unwrap();
        assert_eq!(eval.to_vec3::<f32>().unwrap(), x.to_vec3::<f32>().unwrap());
    }
}

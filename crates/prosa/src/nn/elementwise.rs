//! The sum of two tensors of one shape (a Transformer layer's skip connection) on the threads
//! of [`super::spin_pool`]. candle's add runs on its own pool of threads and waits on a barrier,
//! while this crate's helpers, spinning between products, hold the same cores: in MiniLM's
//! embeddings the two adds of each layer spent more time waiting than adding (2.6% of the
//! calling thread against a 0.4% add).

use candle_core::{DType, Tensor};

use super::gemm::with_f32;
use super::lanes::vectorized;
use super::{spin_pool, uninit};
use crate::error::Result;

/// Values per task: 64 KiB of each operand.
const CHUNK: usize = 1 << 14;

/// `a + b` for tensors of the same shape: on the spin pool for f32 tensors in CPU memory that
/// no gradient is tracked through (the same values as candle's add), else candle's add.
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let f32_cpu = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
    let plain = !a.track_op() && !b.track_op() && f32_cpu(a) && f32_cpu(b);
    if !plain || a.dims() != b.dims() {
        return Ok((a + b)?);
    }
    let sum = with_f32(a, |xs| {
        with_f32(b, |ys| {
            let mut out = uninit::buffer(xs.len());
            spin_pool::for_each_chunk_mut(&mut out, CHUNK, |i, o| {
                let (x, y) = (&xs[i * CHUNK..], &ys[i * CHUNK..]);
                vectorized(
                    #[inline(always)]
                    || {
                        for ((o, x), y) in o.iter_mut().zip(x).zip(y) {
                            o.write(x + y);
                        }
                    },
                )
            });
            // SAFETY: each chunk's loop wrote every value of its chunk (the operands are as
            // long as the output), and the chunks cover `out`.
            unsafe { uninit::assume_written(out) }
        })
    })??;
    Ok(Tensor::from_vec(sum, a.dims(), a.device())?)
}

#[cfg(test)]
mod tests {
    use super::add;
    use candle_core::{Device, Tensor};

    #[test]
    fn adds_as_candle_does_also_past_a_chunk_and_through_views() {
        let device = Device::Cpu;
        let n = 3 * super::CHUNK + 5;
        let a = Tensor::randn(0f32, 1.0, (n / 5, 5), &device).unwrap();
        let b = Tensor::randn(0f32, 1.0, (n / 5, 5), &device).unwrap();
        let bits = |t: &Tensor| -> Vec<u32> {
            let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            v.into_iter().map(f32::to_bits).collect()
        };
        assert_eq!(bits(&add(&a, &b).unwrap()), bits(&(&a + &b).unwrap()));
        // A transposed view (copied first) and mismatched shapes (left to candle's error).
        let (at, bt) = (a.t().unwrap(), b.t().unwrap());
        assert_eq!(bits(&add(&at, &bt).unwrap()), bits(&(&at + &bt).unwrap()));
        assert!(add(&a, &at).is_err());
    }
}

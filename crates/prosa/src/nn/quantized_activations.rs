//! Activation rows quantized to 8-bit blocks of 32 for the integer kernels, as llama.cpp's
//! `quantize_row_q8` does it: per block the scale `max|x| / 127`, the quants `round(x / scale)`
//! and `scale · Σq` (the term the 4-bit weights' minimums multiply).
//!
//! Long inputs (prompts) are split over the spinning helpers; every block is quantized by the
//! same operations whichever thread takes it and however many rows come together, so a row's
//! quants are the same in a prompt, a decode step or the fused decode path.

use super::BLOCK;
use crate::nn::lanes::vectorized;
use crate::nn::spin_pool;

/// Adding 1.5·2²³ rounds an f32 of magnitude below 2²² to the nearest integer.
const ROUNDING: f32 = 12_582_912.0;

/// Blocks per task of a long input (4,096 values): smaller inputs are quantized in one go.
const TASK_BLOCKS: usize = 128;

/// Activation rows quantized to 8-bit blocks: scale, scale × Σq, and the quants.
pub(super) struct QuantizedRows {
    pub(super) scales: Vec<f32>,
    pub(super) sums: Vec<f32>,
    pub(super) quants: Vec<i8>,
}

/// Quantizes `x` (whole rows of `cols` values, `cols` a multiple of 32) block by block. With
/// `offset`, every quant is stored offset by 128 (`q ^ 0x80` read as unsigned), the form of the
/// unsigned operand of `vpdpbusd`; scales and sums are those of the signed quants.
pub(super) fn quantize_rows(x: &[f32], cols: usize, offset: bool) -> QuantizedRows {
    debug_assert_eq!(x.len() % cols.max(1), 0);
    let blocks = x.len() / BLOCK;
    let mut quants = vec![0i8; blocks * BLOCK];
    let mut per_block = vec![[0f32; 2]; blocks];
    let run = |first: usize, quants: &mut [i8], per_block: &mut [[f32; 2]]| {
        let x = &x[first * BLOCK..(first + per_block.len()) * BLOCK];
        vectorized(
            #[inline(always)]
            || {
                for ((values, q), meta) in x
                    .chunks_exact(BLOCK)
                    .zip(quants.chunks_exact_mut(BLOCK))
                    .zip(per_block.iter_mut())
                {
                    *meta = quantize_block(values, q, offset);
                }
            },
        )
    };
    if blocks <= TASK_BLOCKS {
        run(0, &mut quants, &mut per_block);
    } else {
        spin_pool::for_each_chunk_pair_mut(
            &mut quants,
            TASK_BLOCKS * BLOCK,
            &mut per_block,
            TASK_BLOCKS,
            |i, quants, per_block| run(i * TASK_BLOCKS, quants, per_block),
        );
    }
    let (scales, sums) = per_block.into_iter().map(|[s, t]| (s, t)).unzip();
    QuantizedRows {
        scales,
        sums,
        quants,
    }
}

/// One block: writes its quants and returns `[scale, scale · Σq]`.
#[inline(always)]
fn quantize_block(values: &[f32], out: &mut [i8], offset: bool) -> [f32; 2] {
    // max|x| in sixteen lanes (the maximum does not depend on the order; NaNs are skipped).
    let mut lanes = [0f32; BLOCK / 2];
    for (i, lane) in lanes.iter_mut().enumerate() {
        *lane = values[i].abs().max(values[i + BLOCK / 2].abs());
    }
    let amax = lanes.iter().fold(0f32, |m, &v| m.max(v));
    let d = amax / 127.0;
    let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
    let flip = if offset { 0x80u8 } else { 0 };
    let mut sum = 0i32;
    for (o, &v) in out.iter_mut().zip(values) {
        // Round to nearest by adding 1.5·2²³: the sum's low mantissa bits are then the integer,
        // read off its bits (a float-to-int `as` saturates, which does not vectorise).
        let bits = (v * inv + ROUNDING).to_bits() as i32;
        let v = bits
            .wrapping_sub(ROUNDING.to_bits() as i32)
            .clamp(-127, 127);
        *o = (v as i8 as u8 ^ flip) as i8;
        sum += v;
    }
    [d, d * sum as f32]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: one block after another, in order, with libm's rounding.
    fn reference(x: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<i8>) {
        let (mut scales, mut sums, mut quants) = (vec![], vec![], vec![]);
        for values in x.chunks_exact(BLOCK) {
            let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut sum = 0;
            for v in values {
                let q = (v * inv).round_ties_even() as i32;
                quants.push(q as i8);
                sum += q;
            }
            scales.push(d);
            sums.push(d * sum as f32);
        }
        (scales, sums, quants)
    }

    #[test]
    fn long_and_short_inputs_quantize_like_the_block_by_block_reference() {
        // 300 rows of 64: split over tasks, the last one short; a zero block too.
        let mut x: Vec<f32> = (0..300 * 64)
            .map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0)
            .collect();
        x[64..96].fill(0.0);
        for take in [64, 300 * 64] {
            let x = &x[..take];
            let got = quantize_rows(x, 64, false);
            let (scales, sums, quants) = reference(x);
            assert_eq!(got.quants, quants);
            assert_eq!(got.scales, scales);
            assert_eq!(got.sums, sums);
            let flipped = quantize_rows(x, 64, true);
            let back: Vec<i8> = flipped
                .quants
                .iter()
                .map(|&q| (q as u8 ^ 0x80) as i8)
                .collect();
            assert_eq!(back, quants);
            assert_eq!(flipped.scales, scales);
        }
    }
}

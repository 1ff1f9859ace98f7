//! A projection's output split into heads for inference in one pass, rotated on the way where
//! the model has rotary positions. The composed path (narrow, reshape, transpose, contiguous,
//! then the rotation op) copied a decoder prompt's queries and keys three times each, and the
//! rotation op's rayon workers, woken twice a layer, then spun beside the spin pool's helpers
//! for the same two cores. Here each head's rows are read where the projection wrote them and
//! written once, split and rotated, on the spin pool. Same arithmetic as the rotation op
//! ([`rotate_head`]).

use candle_core::{DType, Tensor};

use super::gemm::with_f32;
use super::rope::{rotate_head, RopeStyle};
use super::{spin_pool, uninit};
use crate::error::{Error, Result};

/// How heads are rotated: the cosines and sines, (seq, d/2) or (batch, seq, d/2), and the
/// channel pairing.
pub(crate) type Rotation<'a> = (&'a Tensor, &'a Tensor, RopeStyle);

/// Columns `first..first + heads·d` of `all` (batch, seq, width) as heads (batch, heads, seq,
/// d), each position's head rotated by `rotary`'s angles when given. `None` where a gradient is
/// tracked through `all` or an operand is not f32 in CPU memory (the caller composes candle's
/// ops then).
pub(crate) fn split_heads(
    all: &Tensor,
    first: usize,
    heads: usize,
    d: usize,
    rotary: Option<Rotation>,
) -> Result<Option<Tensor>> {
    let f32_cpu = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
    let tables_f32 = rotary.is_none_or(|(cos, sin, _)| f32_cpu(cos) && f32_cpu(sin));
    if all.track_op() || !f32_cpu(all) || !tables_f32 || d == 0 {
        return Ok(None);
    }
    let (batch, seq, width) = all.dims3()?;
    if first + heads * d > width {
        return Err(Error::config(
            "attention",
            format!("{heads} heads of {d} from column {first} exceed projections of {width}"),
        ));
    }
    let empty = Tensor::zeros(0, DType::F32, all.device())?;
    let (cos, sin) = rotary.map_or((&empty, &empty), |(cos, sin, _)| (cos, sin));
    let split = with_f32(all, |values| {
        with_f32(cos, |cos| {
            with_f32(sin, |sin| {
                let half = d / 2;
                // (seq, d/2) shared by the batch, or (batch, seq, d/2).
                let per_batch = cos.len() == batch * seq * half;
                let fits = d.is_multiple_of(2) && (per_batch || cos.len() == seq * half);
                if rotary.is_some() && (!fits || sin.len() != cos.len()) {
                    return Err(Error::config(
                        "rope",
                        format!(
                            "cos/sin tables of {} and {} values do not fit {batch} × {seq} \
                             positions of {d}",
                            cos.len(),
                            sin.len()
                        ),
                    ));
                }
                let mut out = uninit::buffer(batch * heads * seq * d);
                spin_pool::for_each_chunk_mut(&mut out, seq * d, |bh, head| {
                    let (b, h) = (bh / heads, bh % heads);
                    let table = if per_batch { b * seq * half } else { 0 };
                    let mut rotated = vec![0f32; d];
                    for (p, row) in head.chunks_exact_mut(d).enumerate() {
                        let at = (b * seq + p) * width + first + h * d;
                        let source = &values[at..at + d];
                        match rotary {
                            Some((_, _, style)) => {
                                let angles = table + p * half..table + (p + 1) * half;
                                let (c, s) = (&cos[angles.clone()], &sin[angles]);
                                rotate_head(source, c, s, style, 1.0, &mut rotated);
                                uninit::write(row, rotated.iter().copied());
                            }
                            None => uninit::write(row, source.iter().copied()),
                        }
                    }
                });
                // SAFETY: each task wrote every row (`d` values per position) of its head, and
                // the heads cover `out`.
                Ok(unsafe { uninit::assume_written(out) })
            })
        })
    })????;
    Ok(Some(Tensor::from_vec(
        split,
        (batch, heads, seq, d),
        all.device(),
    )?))
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::split_heads;
    use crate::nn::rope::{rope, rope_tables, RopeStyle};

    fn bits(t: &Tensor) -> Vec<u32> {
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v.into_iter().map(f32::to_bits).collect()
    }

    #[test]
    fn splits_and_rotates_as_the_composed_ops_do() {
        let device = Device::Cpu;
        let (batch, seq, heads, d, first) = (2, 5, 3, 8, 16);
        let width = first + heads * d + 8;
        let all = Tensor::randn(0f32, 1.0, (batch, seq, width), &device).unwrap();
        let positions: Vec<u32> = (3..3 + seq as u32).collect();
        let (cos, sin) = rope_tables(&positions, d, 10_000.0, &device).unwrap();
        let composed = all
            .narrow(2, first, heads * d)
            .unwrap()
            .reshape((batch, seq, heads, d))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap();
        for style in [RopeStyle::Half, RopeStyle::Interleaved] {
            let rotary = (&cos, &sin, style);
            let got = split_heads(&all, first, heads, d, Some(rotary))
                .unwrap()
                .unwrap();
            let expected = rope(&composed, &cos, &sin, style).unwrap();
            assert_eq!(bits(&got), bits(&expected), "{style:?}");
        }
        let plain = split_heads(&all, first, heads, d, None).unwrap().unwrap();
        assert_eq!(bits(&plain), bits(&composed));
        // Past the projections' width: a named error, not a panic.
        let err = split_heads(&all, width - d, heads, d, None).unwrap_err();
        assert!(err.to_string().contains("exceed"), "{err}");
    }
}

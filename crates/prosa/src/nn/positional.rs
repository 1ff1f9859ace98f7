//! Sinusoidal position encodings ("Attention is all you need", §3.5):
//!
//! ```text
//! PE(pos, 2i)     = sin(pos / 10000^(2i / d))
//! PE(pos, 2i + 1) = cos(pos / 10000^(2i / d))
//! ```
//!
//! Fixed, not learned: each dimension is a sinusoid of its own wavelength, so a relative
//! offset is a linear function of the encodings.

use candle_core::{Device, Tensor};

use crate::error::Result;

/// The encodings of `positions` for a model of width `d` (`positions.len()`, d).
pub fn sinusoidal(positions: &[u32], d: usize, device: &Device) -> Result<Tensor> {
    let mut values = Vec::with_capacity(positions.len() * d);
    for &pos in positions {
        for j in 0..d {
            let i = (j / 2) as f64;
            let angle = pos as f64 / 10_000f64.powf(2.0 * i / d as f64);
            values.push(if j % 2 == 0 { angle.sin() } else { angle.cos() } as f32);
        }
    }
    Ok(Tensor::from_vec(values, (positions.len(), d), device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_zero_is_sin_0_cos_0_and_the_first_pair_turns_at_one_radian_per_step() {
        let pe = sinusoidal(&[0, 1], 4, &crate::device::host())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(pe[0], [0.0, 1.0, 0.0, 1.0]);
        assert!((pe[1][0] - 1f32.sin()).abs() < 1e-7 && (pe[1][1] - 1f32.cos()).abs() < 1e-7);
        assert!(
            (pe[1][2] - 0.01f32.sin()).abs() < 1e-7,
            "wavelength 10000^(2/4) = 100"
        );
    }
}

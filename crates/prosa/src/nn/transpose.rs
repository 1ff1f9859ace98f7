//! A 16 × 16 block of f32 transposed in AVX-512 registers: the attention kernel's keys
//! (`attention_rows.rs`) and a dense weight's rows turned into the packed groups' layout as a
//! product goes (`dense_rows.rs`).

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    /// The columns of 16 rows of 16 values: interleaved by pairs of values, then by pairs of
    /// pairs within each 128-bit lane, then lanes gathered across rows in two steps.
    #[inline(always)]
    pub(crate) unsafe fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
        // t[2i] lane L: row 2i and 2i+1's values 4L, 4L+1 interleaved; t[2i+1]: 4L+2, 4L+3.
        let t: [__m512; 16] = std::array::from_fn(|i| {
            let (a, b) = (r[i & !1], r[i | 1]);
            if i % 2 == 0 {
                _mm512_unpacklo_ps(a, b)
            } else {
                _mm512_unpackhi_ps(a, b)
            }
        });
        // u[4g + k] lane L: value 4L + k of rows 4g..4g + 4.
        let u: [__m512; 16] = std::array::from_fn(|i| {
            let (g, k) = (i / 4, i % 4);
            let (x, y) = (t[4 * g + k / 2], t[4 * g + 2 + k / 2]);
            if k % 2 == 0 {
                _mm512_shuffle_ps::<0x44>(x, y)
            } else {
                _mm512_shuffle_ps::<0xEE>(x, y)
            }
        });
        let mut columns = [_mm512_setzero_ps(); 16];
        for k in 0..4 {
            // Lanes 0 and 2, then 1 and 3, of row groups 0 and 1, and of 2 and 3.
            let even01 = _mm512_shuffle_f32x4::<0x88>(u[k], u[4 + k]);
            let odd01 = _mm512_shuffle_f32x4::<0xDD>(u[k], u[4 + k]);
            let even23 = _mm512_shuffle_f32x4::<0x88>(u[8 + k], u[12 + k]);
            let odd23 = _mm512_shuffle_f32x4::<0xDD>(u[8 + k], u[12 + k]);
            columns[k] = _mm512_shuffle_f32x4::<0x88>(even01, even23);
            columns[8 + k] = _mm512_shuffle_f32x4::<0xDD>(even01, even23);
            columns[4 + k] = _mm512_shuffle_f32x4::<0x88>(odd01, odd23);
            columns[12 + k] = _mm512_shuffle_f32x4::<0xDD>(odd01, odd23);
        }
        columns
    }
}

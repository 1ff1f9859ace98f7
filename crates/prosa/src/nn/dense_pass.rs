//! The pass kernel of the dense f32 groups (`dense_panels.rs`): one group (or a span of
//! its input positions) against up to six activation rows, each row's value broadcast into 24
//! sums whose lanes are outputs, prefetching a share of the weights read next. AVX-512F only.

/// Outputs per group: four 16-lane vectors.
pub(super) const GROUP: usize = 64;

/// Activation rows per pass, at most (24 accumulators of 32 registers).
pub(super) const PASS: usize = 6;

/// One pass: `weights` (`steps × 64`: a group, or a span of its input positions) against
/// `lanes.len()` (1–6) activation rows, `x[j·stride..j·stride + steps]` for row `j`, added to
/// the sums in `lanes` (which start from zero when the flag says the span is a group's first),
/// prefetching its share of the weights after it.
pub(super) type PassKernel = fn(&[f32], &[f32], usize, &mut [[f32; GROUP]], bool, Prefetch);

/// What a span's pass prefetches: the positions (256 bytes each: a position of a packed group)
/// `share`, `share + shares`, … of `ahead` (the
/// weights after the span in memory, as many positions as it has or fewer), so that a span's
/// `shares` passes together fetch all of them.
#[derive(Clone, Copy)]
pub(super) struct Prefetch<'a> {
    /// The weights after the span in memory.
    pub(super) ahead: &'a [u8],
    /// This pass's share of them.
    pub(super) share: usize,
    /// Passes sharing them out.
    pub(super) shares: usize,
}

/// The pass kernel, where the CPU has AVX-512F.
pub(super) fn pass_kernel() -> Option<PassKernel> {
    #[cfg(target_arch = "x86_64")]
    let kernel: Option<PassKernel> = Some(x86::pass);
    #[cfg(not(target_arch = "x86_64"))]
    let kernel = None;
    kernel.filter(|_| super::panel_tasks::has_avx512f())
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Prefetch, GROUP, PASS};

    /// A pass (`PassKernel`); only handed out by `pass_kernel` once the CPU was found to have
    /// AVX-512F.
    pub(super) fn pass(
        weights: &[f32],
        x: &[f32],
        stride: usize,
        lanes: &mut [[f32; GROUP]],
        fresh: bool,
        prefetch: Prefetch,
    ) {
        let rows = lanes.len();
        let steps = weights.len() / GROUP;
        assert!((1..=PASS).contains(&rows) && weights.len() == steps * GROUP);
        assert!(steps <= stride && x.len() >= (rows - 1) * stride + steps);
        assert!(prefetch.shares > prefetch.share);
        let (w, xp) = (weights.as_ptr(), x.as_ptr());
        // SAFETY: AVX-512F is present (checked by `pass_kernel`); the asserts bound every read.
        unsafe {
            match rows {
                1 => span::<1>(w, xp, stride, steps, lanes, fresh, prefetch),
                2 => span::<2>(w, xp, stride, steps, lanes, fresh, prefetch),
                3 => span::<3>(w, xp, stride, steps, lanes, fresh, prefetch),
                4 => span::<4>(w, xp, stride, steps, lanes, fresh, prefetch),
                5 => span::<5>(w, xp, stride, steps, lanes, fresh, prefetch),
                _ => span::<6>(w, xp, stride, steps, lanes, fresh, prefetch),
            }
        }
    }

    /// `R` rows against a group's span: per input position, the span's four vectors loaded once
    /// and multiplied with each row's value there, broadcast, into 24 sums at most whose lanes
    /// are outputs — carried in `lanes` from the span before, so a group's sums are the same
    /// products added in the same order however it is cut into spans.
    #[target_feature(enable = "avx512f")]
    unsafe fn span<const R: usize>(
        weights: *const f32,
        x: *const f32,
        stride: usize,
        steps: usize,
        lanes: &mut [[f32; GROUP]],
        fresh: bool,
        prefetch: Prefetch,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        if !fresh {
            for (row, sums) in acc.iter_mut().zip(lanes.iter()) {
                for (v, a) in row.iter_mut().enumerate() {
                    *a = _mm512_loadu_ps(sums.as_ptr().add(16 * v));
                }
            }
        }
        let step = |acc: &mut [[__m512; 4]; R], k: usize| {
            let w = weights.add(k * GROUP);
            let weights = [0, 1, 2, 3].map(|v| _mm512_loadu_ps(w.add(16 * v)));
            for (j, row) in acc.iter_mut().enumerate() {
                let value = _mm512_set1_ps(*x.add(j * stride + k));
                for (a, w) in row.iter_mut().zip(weights) {
                    *a = _mm512_fmadd_ps(w, value, *a);
                }
            }
        };
        let ahead_steps = prefetch.ahead.len() / (4 * GROUP);
        if ahead_steps == 0 {
            for k in 0..steps {
                step(&mut acc, k);
            }
        } else {
            for k in (0..steps).step_by(prefetch.shares) {
                let target = k + prefetch.share;
                if target < ahead_steps {
                    let line = prefetch.ahead.as_ptr().add(target * 4 * GROUP) as *const i8;
                    // Into L2: the span being read fills most of L1.
                    for v in 0..4 {
                        _mm_prefetch::<_MM_HINT_T1>(line.add(64 * v));
                    }
                }
                for k in k..(k + prefetch.shares).min(steps) {
                    step(&mut acc, k);
                }
            }
        }
        for (out, row) in lanes.iter_mut().zip(acc) {
            for (v, a) in row.into_iter().enumerate() {
                _mm512_storeu_ps(out.as_mut_ptr().add(16 * v), a);
            }
        }
    }
}

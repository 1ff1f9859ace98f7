//! The pass kernel of the dense f32 groups (`dense_panels.rs`): one group (or a span of
//! its input positions) against up to six activation rows, each row's value broadcast into 24
//! sums whose lanes are outputs, prefetching a share of the weights read next; and its widening
//! form for F16 groups (`half_groups.rs`), which converts each weight vector as it loads it and
//! stores the f32 values for the passes after it. AVX-512F only.

use std::ops::Range;

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

/// A pass over F16 weights that widens them as it goes: `halves` (`steps × 64`) are converted
/// to f32 in registers, used as [`PassKernel`]'s weights, and stored into `widened` (as long), so
/// that the passes after it read f32 — the widening rides along the first pass's arithmetic
/// instead of a pass of its own over memory.
pub(super) type WideningPass =
    fn(&[half::f16], &mut [f32], &[f32], usize, &mut [[f32; GROUP]], bool, Prefetch);

/// The pass kernel, where the CPU has AVX-512F.
pub(super) fn pass_kernel() -> Option<PassKernel> {
    #[cfg(target_arch = "x86_64")]
    let kernel: Option<PassKernel> = Some(x86::pass);
    #[cfg(not(target_arch = "x86_64"))]
    let kernel = None;
    kernel.filter(|_| super::panel_tasks::has_avx512f())
}

/// The widening pass kernel, where the CPU has AVX-512F (whose `vcvtph2ps` widens).
pub(super) fn widening_pass() -> Option<WideningPass> {
    #[cfg(target_arch = "x86_64")]
    let kernel: Option<WideningPass> = Some(x86::widening_pass);
    #[cfg(not(target_arch = "x86_64"))]
    let kernel = None;
    kernel.filter(|_| super::panel_tasks::has_avx512f())
}

/// `rows` cut into as few passes of at most [`PASS`] rows as can be, their sizes differing by
/// one at most (larger first): 20 rows as 5 + 5 + 5 + 5 rather than 6 + 6 + 6 + 2, 128 as
/// eighteen passes of 6 and four of 5 rather than twenty-one of 6 and one of 2 (a pass of few
/// rows loads as many weight vectors per position as a full one, for fewer sums).
pub(super) fn passes(rows: Range<usize>) -> impl Iterator<Item = Range<usize>> {
    let count = rows.len().div_ceil(PASS);
    let (base, larger) = match count {
        0 => (0, 0),
        n => (rows.len() / n, rows.len() % n),
    };
    (0..count).scan(rows.start, move |start, p| {
        let len = base + usize::from(p < larger);
        let pass = *start..*start + len;
        *start += len;
        Some(pass)
    })
}

/// Rows `rows` of `x` (`inputs` wide) over a group's input positions `at..at + steps`, in even
/// [`passes`] of at most [`PASS`], each adding its rows' products to their sums in `lanes`
/// (`lanes[j]`: row `rows.start + j`; from zero at the group's first span), the passes sharing
/// out prefetching `ahead` into L2. `pass(xs, sums, fresh, prefetch)` runs one pass over the
/// span's weights (the [`PassKernel`] with them bound), with the flag saying whether the sums
/// start from zero.
#[allow(clippy::too_many_arguments)]
pub(super) fn span_passes<'a>(
    mut pass: impl FnMut(&[f32], &mut [[f32; GROUP]], bool, Prefetch<'a>),
    steps: usize,
    x: &[f32],
    inputs: usize,
    rows: Range<usize>,
    at: usize,
    lanes: &mut [[f32; GROUP]],
    ahead: &'a [u8],
) {
    let shares = rows.len().div_ceil(PASS);
    for (share, pass_rows) in passes(rows.clone()).enumerate() {
        let (i, count) = (pass_rows.start, pass_rows.len());
        let xs = &x[i * inputs + at..(i + count - 1) * inputs + at + steps];
        let sums = &mut lanes[i - rows.start..][..count];
        let prefetch = Prefetch {
            ahead,
            share,
            shares,
        };
        pass(xs, sums, at == 0, prefetch);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::{Prefetch, GROUP, PASS};

    /// Where a pass reads its weights: packed f32, or F16 widened and stored as it goes.
    #[derive(Clone, Copy)]
    struct Source {
        weights: *const f32,
        halves: *const f16,
        widened: *mut f32,
    }

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
        let steps = weights.len() / GROUP;
        assert!(weights.len() == steps * GROUP);
        let source = Source {
            weights: weights.as_ptr(),
            halves: std::ptr::null(),
            widened: std::ptr::null_mut(),
        };
        // SAFETY: `steps × 64` weights (asserted); AVX-512F as above.
        unsafe { rows::<false>(source, steps, x, stride, lanes, fresh, prefetch) }
    }

    /// A widening pass (`WideningPass`); only handed out by `widening_pass` once the CPU was
    /// found to have AVX-512F.
    pub(super) fn widening_pass(
        halves: &[f16],
        widened: &mut [f32],
        x: &[f32],
        stride: usize,
        lanes: &mut [[f32; GROUP]],
        fresh: bool,
        prefetch: Prefetch,
    ) {
        let steps = halves.len() / GROUP;
        assert!(halves.len() == steps * GROUP && widened.len() == halves.len());
        let source = Source {
            weights: std::ptr::null(),
            halves: halves.as_ptr(),
            widened: widened.as_mut_ptr(),
        };
        // SAFETY: `steps × 64` halves and as many f32 to write (asserted); AVX-512F as above.
        unsafe { rows::<true>(source, steps, x, stride, lanes, fresh, prefetch) }
    }

    /// The span kernel for as many rows as `lanes` holds.
    ///
    /// # Safety
    /// `source` holds `steps × 64` weights (halves and as many widened values when `WIDEN`);
    /// the CPU has AVX-512F.
    unsafe fn rows<const WIDEN: bool>(
        source: Source,
        steps: usize,
        x: &[f32],
        stride: usize,
        lanes: &mut [[f32; GROUP]],
        fresh: bool,
        prefetch: Prefetch,
    ) {
        let rows = lanes.len();
        assert!((1..=PASS).contains(&rows));
        assert!(steps <= stride && x.len() >= (rows - 1) * stride + steps);
        assert!(prefetch.shares > prefetch.share);
        let (s, xp) = (source, x.as_ptr());
        // SAFETY: as the caller promises; the asserts bound every read of `x`.
        unsafe {
            match rows {
                1 => span::<1, WIDEN>(s, xp, stride, steps, lanes, fresh, prefetch),
                2 => span::<2, WIDEN>(s, xp, stride, steps, lanes, fresh, prefetch),
                3 => span::<3, WIDEN>(s, xp, stride, steps, lanes, fresh, prefetch),
                4 => span::<4, WIDEN>(s, xp, stride, steps, lanes, fresh, prefetch),
                5 => span::<5, WIDEN>(s, xp, stride, steps, lanes, fresh, prefetch),
                _ => span::<6, WIDEN>(s, xp, stride, steps, lanes, fresh, prefetch),
            }
        }
    }

    /// `R` rows against a group's span: per input position, the span's four vectors loaded once
    /// and multiplied with each row's value there, broadcast, into 24 sums at most whose lanes
    /// are outputs — carried in `lanes` from the span before, so a group's sums are the same
    /// products added in the same order however it is cut into spans. When `WIDEN`, the
    /// vectors are F16 widened as they are loaded (exactly), and stored for the passes after.
    #[target_feature(enable = "avx512f")]
    unsafe fn span<const R: usize, const WIDEN: bool>(
        source: Source,
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
            let at = k * GROUP;
            let weights = [0, 1, 2, 3].map(|v| {
                if WIDEN {
                    let halves = source.halves.add(at + 16 * v) as *const __m256i;
                    let wide = _mm512_cvtph_ps(_mm256_loadu_si256(halves));
                    _mm512_storeu_ps(source.widened.add(at + 16 * v), wide);
                    wide
                } else {
                    _mm512_loadu_ps(source.weights.add(at + 16 * v))
                }
            });
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

#[cfg(test)]
mod tests {
    #[test]
    fn passes_cover_the_rows_in_sizes_a_row_apart() {
        let sizes = |n: usize| super::passes(3..3 + n).map(|p| p.len()).collect::<Vec<_>>();
        assert_eq!(sizes(128), [[6; 18].as_slice(), &[5; 4]].concat());
        assert_eq!(
            (sizes(20), sizes(32), sizes(6), sizes(0)),
            (vec![5; 4], vec![6, 6, 5, 5, 5, 5], vec![6], vec![])
        );
        assert!(super::passes(3..10).map(|p| p.start).eq([3, 7]));
    }
}

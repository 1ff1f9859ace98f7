//! Loops the compiler can vectorise. The portable build targets SSE2, so element-wise loops run
//! four lanes wide; [`vectorized`] compiles a loop for AVX-512F where the CPU has it, and
//! [`fold`] and [`dot`] sum in sixteen independent lanes instead of one chain of dependent
//! additions (which no compiler may reorder).

/// Runs `body`, compiled for AVX-512F when the CPU has it: the closure is inlined into a
/// function with that target feature, so callers mark it `#[inline(always)]` (LLVM leaves a
/// large closure out of line otherwise, compiled for SSE2). The arithmetic is the same either
/// way, only the vector width changes.
#[inline(always)]
pub(crate) fn vectorized<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if super::panel_tasks::has_avx512f() {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { wide(body) };
    }
    body()
}

/// [`vectorized`]'s AVX-512F instance.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn wide<R>(body: impl FnOnce() -> R) -> R {
    body()
}

/// Folds `values` with `step` in sixteen independent lanes (no chain of dependent steps, so
/// the lanes vectorize), then joins the lanes with `join` and folds the remainder in.
#[inline(always)]
pub(crate) fn fold(
    values: &[f32],
    init: f32,
    step: impl Fn(f32, f32) -> f32,
    join: impl Fn(f32, f32) -> f32,
) -> f32 {
    const LANES: usize = 16;
    let mut lanes = [init; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = step(*lane, v);
        }
    }
    let joined = lanes.into_iter().fold(init, &join);
    rest.iter().fold(joined, |a, &v| step(a, v))
}

/// `Σ aᵢ·bᵢ` over the shorter of the two, in sixteen independent lanes joined in order, the
/// remainder last.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut lanes = [0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in a_chunks.zip(b_chunks) {
        for ((lane, a), b) in lanes.iter_mut().zip(a).zip(b) {
            *lane += a * b;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Asks for the cache lines of `values` in L2 (a hint: it reads nothing, and costs an
/// instruction per 64 bytes).
pub(crate) fn prefetch_l2<T>(values: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let start = values.as_ptr() as usize;
        for line in (start..start + size_of_val(values)).step_by(64) {
            // SAFETY: a prefetch of an address inside `values` reads and writes nothing.
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
                _mm_prefetch::<_MM_HINT_T1>(line as *const i8);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fold_in_lanes_sums_as_a_chain_does_within_rounding() {
        let values: Vec<f32> = (0..1_001).map(|i| (i as f32 * 0.37).sin()).collect();
        let chain: f64 = values.iter().map(|&v| v as f64).sum();
        let lanes = vectorized(|| fold(&values, 0.0, |a, v| a + v, |a, b| a + b));
        assert!((lanes as f64 - chain).abs() < 1e-4, "{lanes} vs {chain}");
        let max = fold(&values, f32::NEG_INFINITY, f32::max, f32::max);
        assert_eq!(
            max,
            values.iter().copied().fold(f32::NEG_INFINITY, f32::max)
        );
        assert_eq!(fold(&[], 0.0, |a, v| a + v, |a, b| a + b), 0.0);
    }
}

//! The one matrix-product helper of prosa's own ops: `gemm` over strided `f32` slices, with the
//! extents checked before the unsafe call, and reading a tensor's values without a copy.

use candle_core::{CpuStorage, Layout, Storage, Tensor};

/// `dst (m×n) = (accumulate ? dst : 0) + lhs · rhs`, with explicit (column, row) strides;
/// `parallel` spreads the product over the rayon pool.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_strides: (isize, isize),
    lhs: &[f32],
    lhs_strides: (isize, isize),
    rhs: &[f32],
    rhs_strides: (isize, isize),
    accumulate: bool,
    parallel: bool,
) {
    // SAFETY: every caller passes slices whose extents cover m×k, k×n and m×n under the given
    // strides (checked below), and dst does not alias lhs or rhs.
    let covers = |len: usize, rows: usize, cols: usize, (cs, rs): (isize, isize)| {
        rows == 0 || cols == 0 || ((rows - 1) * rs as usize + (cols - 1) * cs as usize) < len
    };
    assert!(
        covers(dst.len(), m, n, dst_strides)
            && covers(lhs.len(), m, k, lhs_strides)
            && covers(rhs.len(), k, n, rhs_strides),
        "matmul operands smaller than their shapes"
    );
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_strides.0,
            dst_strides.1,
            accumulate,
            lhs.as_ptr(),
            lhs_strides.0,
            lhs_strides.1,
            rhs.as_ptr(),
            rhs_strides.0,
            rhs_strides.1,
            1.0,
            1.0,
            false,
            false,
            false,
            if parallel {
                gemm::Parallelism::Rayon(0)
            } else {
                gemm::Parallelism::None
            },
        )
    }
}

/// Runs `f` on the values of `t` in place when it is a contiguous f32 CPU tensor, otherwise on
/// a copy.
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    {
        let (storage, layout) = t.storage_and_layout();
        if let (Storage::Cpu(CpuStorage::F32(values)), Some((a, b))) =
            (&*storage, layout.contiguous_offsets())
        {
            return Ok(f(&values[a..b]));
        }
    }
    let copy = t
        .flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1::<f32>()?;
    Ok(f(&copy))
}

/// The values of a contiguous f32 CPU storage; `what` names the operand in errors.
pub(crate) fn cpu_f32<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    what: &str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(values) = s else {
        candle_core::bail!("{what} must be f32")
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&values[a..b]),
        None => candle_core::bail!("{what} must be contiguous"),
    }
}

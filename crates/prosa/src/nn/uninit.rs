//! Output buffers that an op writes in full before anything reads them, allocated without the
//! zero-fill: at batch 1 the zero-fills of the products' and activations' outputs were ~6% of a
//! sentence's time, all on the calling thread while the helpers waited.

use std::mem::{ManuallyDrop, MaybeUninit};

/// `len` values for an op to write, unset (NaN in debug builds, so a value an op forgot to
/// write shows in the tests instead of reading uninitialised memory).
pub(crate) fn buffer(len: usize) -> Vec<MaybeUninit<f32>> {
    let mut values = Vec::with_capacity(len);
    if cfg!(debug_assertions) {
        values.resize(len, MaybeUninit::new(f32::NAN));
    } else {
        // SAFETY: `MaybeUninit` values need no initialisation, and the capacity is `len`.
        unsafe { values.set_len(len) };
    }
    values
}

/// The values of `buffer`, every one of which has been written.
///
/// # Safety
/// Every element of `buffer` must have been written.
pub(crate) unsafe fn assume_written(buffer: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut buffer = ManuallyDrop::new(buffer);
    let (ptr, len, capacity) = (buffer.as_mut_ptr(), buffer.len(), buffer.capacity());
    // SAFETY: same allocation, layout and length; `MaybeUninit<f32>` has `f32`'s layout and
    // every element is initialised (the caller's promise).
    unsafe { Vec::from_raw_parts(ptr.cast::<f32>(), len, capacity) }
}

/// Writes `values` into every element of `out` and returns them, initialised, to be worked on
/// in place. Panics (before reading anything) when `values` are fewer than `out`'s elements.
#[inline(always)]
pub(crate) fn write_all(
    out: &mut [MaybeUninit<f32>],
    values: impl ExactSizeIterator<Item = f32>,
) -> &mut [f32] {
    assert!(values.len() >= out.len(), "write_all: too few values");
    write(out, values);
    // SAFETY: every element was written just above (at least as many values as elements), and
    // `MaybeUninit<f32>` has `f32`'s layout.
    unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<f32>(), out.len()) }
}

/// Writes `values` into `out`, element by element (up to the shorter of the two).
#[inline(always)]
pub(crate) fn write(out: &mut [MaybeUninit<f32>], values: impl IntoIterator<Item = f32>) {
    for (o, v) in out.iter_mut().zip(values) {
        o.write(v);
    }
}

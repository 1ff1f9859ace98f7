//! Large read-mostly buffers (packed weights) on memory that Linux is asked to back with 2 MiB
//! pages. A decode step streams every weight once from main memory; on 4 KiB pages the CPU's
//! prefetchers stop at each page boundary and the walk misses the TLB every 4 KiB, so the
//! stream runs at about half the memory's rate (a Zen 4 core: 5–6 against 9–10 GFLOP/s for a
//! one-row product over 154 MB of weights, 50 against 70–78 at 16 rows). `malloc` leaves such
//! buffers on small pages unless the process was started with a glibc tunable, so the packed
//! copies are mapped here and advised (`madvise(MADV_HUGEPAGE)`, honoured where transparent huge
//! pages are `always` or `madvise`) before their first write. Elsewhere the advice is skipped and
//! the buffer is ordinary anonymous memory.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use bytemuck::Pod;
use memmap2::MmapMut;

use crate::error::Result;

/// A zero-filled buffer of `T` on advised anonymous memory (see the module's doc).
pub struct HugeBuffer<T: Pod> {
    map: MmapMut,
    len: usize,
    kind: PhantomData<T>,
}

impl<T: Pod> HugeBuffer<T> {
    /// `len` zeros.
    pub fn zeroed(len: usize) -> Result<Self> {
        let bytes = (len * size_of::<T>()).max(1);
        let map = MmapMut::map_anon(bytes)
            .map_err(|e| candle_core::Error::Msg(format!("cannot map {bytes} bytes: {e}")))?;
        #[cfg(target_os = "linux")]
        // Advice only: a kernel without transparent huge pages keeps small ones.
        let _ = map.advise(memmap2::Advice::HugePage);
        Ok(Self {
            map,
            len,
            kind: PhantomData,
        })
    }

    /// A copy of `values`.
    pub fn from_slice(values: &[T]) -> Result<Self> {
        let mut buffer = Self::zeroed(values.len())?;
        buffer.copy_from_slice(values);
        Ok(buffer)
    }
}

impl<T: Pod> Deref for HugeBuffer<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // Page-aligned memory of at least `len` values: the cast neither misaligns nor shortens.
        bytemuck::cast_slice(&self.map[..self.len * size_of::<T>()])
    }
}

impl<T: Pod> DerefMut for HugeBuffer<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        let bytes = self.len * size_of::<T>();
        bytemuck::cast_slice_mut(&mut self.map[..bytes])
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for HugeBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HugeBuffer")
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_holds_what_is_written_and_starts_at_zero() {
        let mut b = HugeBuffer::<f32>::zeroed(3 << 20).unwrap();
        assert_eq!(b.len(), 3 << 20);
        assert!(b.iter().all(|&v| v == 0.0));
        b[12_345] = 1.5;
        assert_eq!(b[12_345], 1.5);
        let copy = HugeBuffer::from_slice(&[1u8, 2, 3]).unwrap();
        assert_eq!(&copy[..], &[1, 2, 3]);
        assert!(HugeBuffer::<f32>::zeroed(0).unwrap().is_empty());
    }
}

//! Large read-mostly buffers (packed weights) that Linux is asked to back with 2 MiB pages. A
//! decode step streams every weight once from main memory; on 4 KiB pages the CPU's
//! prefetchers stop at each page boundary and the walk misses the TLB every 4 KiB, so the
//! stream runs well below the memory's rate (a Zen 4 core: 5–6 against 9–10 GFLOP/s for a
//! one-row product over 154 MB of weights, 50 against 70–78 at 16 rows). The buffer is an
//! ordinary `Vec` from the allocator (so memory freed earlier, such as a checkpoint's load
//! buffers, is reused); the 2 MiB-aligned part of its allocation is advised
//! (`madvise(MADV_HUGEPAGE)`, honoured where transparent huge pages are `always` or `madvise`)
//! before its first write. Elsewhere nothing is advised.

use bytemuck::Pod;

/// Pages of this many bytes back an advised range.
const HUGE_PAGE: usize = 2 << 20;

/// `len` zeros of `T`, the 2 MiB-aligned part of the allocation advised to Linux as huge-page
/// memory before it is written (see the module's doc).
pub(crate) fn zeroed_vec<T: Pod>(len: usize) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(len);
    advise_huge_pages(v.as_mut_ptr() as usize, len * size_of::<T>());
    v.resize(len, T::zeroed());
    v
}

/// Advises the whole 2 MiB pages inside `bytes` bytes from address `start`.
fn advise_huge_pages(start: usize, bytes: usize) {
    let first = start.next_multiple_of(HUGE_PAGE);
    let end = (start + bytes) / HUGE_PAGE * HUGE_PAGE;
    if end <= first {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: the range lies inside an allocation this process owns; the advice changes which
    // pages back it, never its contents, and failing (no transparent huge pages) is harmless.
    unsafe {
        libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_starts_at_zero_and_holds_what_is_written() {
        let mut b = zeroed_vec::<f32>(3 << 20);
        assert_eq!(b.len(), 3 << 20);
        assert!(b.iter().all(|&v| v == 0.0));
        b[12_345] = 1.5;
        assert_eq!(b[12_345], 1.5);
        assert!(zeroed_vec::<u8>(0).is_empty());
        assert_eq!(zeroed_vec::<u8>(3), vec![0, 0, 0]);
    }
}

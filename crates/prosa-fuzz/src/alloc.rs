//! A global allocator that refuses to hold more than [`LIMIT`] bytes at once: a loader that
//! tries to allocate past it (a file promising billions of entries) gets a failed allocation,
//! which aborts the worker — and the supervisor records the input as a finding.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The most heap a worker may hold: 1 GiB.
pub const LIMIT: usize = 1 << 30;

/// [`System`] with a cap on the bytes held.
pub struct Capped {
    held: AtomicUsize,
}

impl Capped {
    /// An allocator holding nothing yet.
    pub const fn new() -> Self {
        Self {
            held: AtomicUsize::new(0),
        }
    }

    fn reserve(&self, size: usize) -> bool {
        let before = self.held.fetch_add(size, Ordering::Relaxed);
        if before.saturating_add(size) > LIMIT {
            self.held.fetch_sub(size, Ordering::Relaxed);
            // A message before the abort: the supervisor shows it with the finding.
            let message = b"prosa-fuzz: an allocation would pass the 1 GiB limit\n";
            // SAFETY: writing a static buffer to stderr; no allocation involved.
            unsafe { libc_write(2, message.as_ptr(), message.len()) };
            return false;
        }
        true
    }
}

extern "C" {
    #[link_name = "write"]
    fn libc_write(fd: i32, buf: *const u8, count: usize) -> isize;
}

// SAFETY: every method forwards to `System` and only adds bookkeeping; a refused allocation
// returns null, as the `GlobalAlloc` contract allows.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !self.reserve(layout.size()) {
            return std::ptr::null_mut();
        }
        let p = System.alloc(layout);
        if p.is_null() {
            self.held.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !self.reserve(layout.size()) {
            return std::ptr::null_mut();
        }
        let p = System.alloc_zeroed(layout);
        if p.is_null() {
            self.held.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        self.held.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old && !self.reserve(new_size - old) {
            return std::ptr::null_mut();
        }
        let p = System.realloc(ptr, layout, new_size);
        if p.is_null() {
            if new_size > old {
                self.held.fetch_sub(new_size - old, Ordering::Relaxed);
            }
        } else if new_size < old {
            self.held.fetch_sub(old - new_size, Ordering::Relaxed);
        }
        p
    }
}

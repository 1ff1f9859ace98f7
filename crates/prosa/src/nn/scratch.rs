//! Recycled `f32` buffers for the fused ops' large temporaries. A fresh zeroed allocation of a
//! few megabytes per step costs a memset (and page faults) that is a tenth of an LSTM training
//! step; a buffer handed back here is reused by the next op that asks for one of its size.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// Buffers waiting for reuse.
static FREE: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// At most this many buffers wait in the free list; more are dropped.
const MAX_FREE: usize = 32;

/// A buffer of `len` values that goes back to the free list when dropped. Its values are
/// unspecified (left over from an earlier use): callers overwrite every value they read.
pub(crate) struct Scratch(Vec<f32>);

impl Scratch {
    /// A buffer of exactly `len` values, reused when the free list holds one large enough.
    pub fn take(len: usize) -> Self {
        let reused = {
            let mut free = FREE.lock().unwrap_or_else(|p| p.into_inner());
            // The smallest buffer that fits, so large ones stay for large requests.
            let best = free
                .iter()
                .enumerate()
                .filter(|(_, v)| v.capacity() >= len)
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i);
            best.map(|i| free.swap_remove(i))
        };
        let mut buffer = reused.unwrap_or_default();
        if buffer.len() >= len {
            buffer.truncate(len);
        } else {
            buffer.resize(len, 0.0);
        }
        Self(buffer)
    }
}

impl Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.0);
        if buffer.capacity() == 0 {
            return;
        }
        let mut free = FREE.lock().unwrap_or_else(|p| p.into_inner());
        if free.len() < MAX_FREE {
            free.push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_have_the_requested_length_whether_fresh_or_reused() {
        let mut first = Scratch::take(1000);
        first.fill(7.0);
        drop(first);
        for len in [600, 1000, 5000, 0] {
            let buffer = Scratch::take(len);
            assert_eq!(buffer.len(), len);
        }
    }
}

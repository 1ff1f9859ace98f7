//! Threads that stay awake through a decode step.
//!
//! A decode step makes ~120 small products (four per layer and the output layer), each a
//! fraction of a millisecond. Handing each to rayon's pool costs a wake-up of the sleeping
//! worker and a sleep after it (a sixth of the step in `perf`), because the work between two
//! products — norms, rotary, attention — is too long for the worker's spinning. Here the
//! caller (thread 0) drives the step and `threads − 1` helpers, started for the step, wait on
//! a spinning barrier for work to share: a product is posted, every thread computes its range
//! of weight rows, and thread 0 puts the ranges together; an attention is shared by heads.
//!
//! The helpers are plain scoped threads, not pool workers, so a spinning barrier cannot
//! starve a pool job it waits for. When thread 0 finishes, fails or panics, dropping its
//! [`Driver`] tells the helpers to stop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::Tensor;

use super::decode_attention::{decode_attention_heads, DecodeShape};
use super::kv_cache::with_cpu_f32;
use super::quantized::{QuantMatrix, QuantizedInput};

/// A barrier whose waiters spin (yielding now and then, should the machine be oversubscribed).
struct SpinBarrier {
    /// Threads that meet at the barrier: the team's size, lowered before thread 0's first wait
    /// when a helper could not be started.
    threads: AtomicUsize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

impl SpinBarrier {
    fn size(&self) -> usize {
        self.threads.load(Ordering::Acquire)
    }

    fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.size() {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(4096) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// Work the team shares: a product (rows split) or a decode-step attention (heads split).
#[derive(Clone)]
enum Work {
    Product(Arc<QuantMatrix>, Arc<QuantizedInput>),
    Attention(Arc<AttentionWork>),
}

/// One sequence's decode-step attention: its queries (heads × head_dim), the layer's cache
/// buffers (shared tensors, read in place) and the bias over the cached positions.
pub(crate) struct AttentionWork {
    /// The new position's query heads, rotated.
    pub q: Vec<f32>,
    /// The cached keys (1, kv_heads, capacity, head_dim).
    pub keys: Tensor,
    /// The cached values, laid out as the keys.
    pub values: Tensor,
    /// Added to the scaled scores, one per cached position.
    pub bias: Vec<f32>,
    /// The shapes.
    pub shape: DecodeShape,
}

impl Work {
    /// Thread `t`'s share of the work, of `threads`; empty when a cache buffer cannot be read.
    fn share(&self, t: usize, threads: usize) -> Vec<f32> {
        match self {
            Work::Product(matrix, input) => {
                let granule = matrix.row_granule();
                let units = share(matrix.dims().0.div_ceil(granule), t, threads);
                let rows = units.start * granule..(units.end * granule).min(matrix.dims().0);
                matrix.dot_rows(input, rows)
            }
            Work::Attention(a) => {
                let heads = share(a.shape.heads, t, threads);
                with_cpu_f32(&a.keys, |keys| {
                    with_cpu_f32(&a.values, |values| {
                        decode_attention_heads(&a.q, keys, values, &a.bias, a.shape, heads)
                    })
                })
                .flatten()
                .unwrap_or_default()
            }
        }
    }

    /// The length of the whole result.
    fn len(&self) -> usize {
        match self {
            Work::Product(matrix, _) => matrix.dims().0,
            Work::Attention(a) => a.shape.heads * a.shape.head_dim,
        }
    }
}

/// Posted work; `None` tells the helpers to stop.
type Job = Option<Work>;

/// What the threads share: the barrier, the posted product, each thread's part.
struct Shared {
    barrier: SpinBarrier,
    job: Mutex<Job>,
    parts: Vec<Mutex<Vec<f32>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked; the data is plain values.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The rows thread `t` of `threads` computes of a product with `rows` rows.
fn share(rows: usize, t: usize, threads: usize) -> std::ops::Range<usize> {
    (rows * t / threads)..(rows * (t + 1) / threads)
}

/// Thread 0's handle on the team: posts products, and stops the helpers when dropped.
pub(crate) struct Driver<'a> {
    shared: &'a Shared,
    /// Between a product's two barriers (helpers will wait at the second).
    in_product: std::cell::Cell<bool>,
}

impl Driver<'_> {
    /// `x · Wᵀ` for one activation row `x`, shared by the team; equal bit for bit to
    /// [`QuantMatrix::matmul_rows`] of the same row.
    pub(crate) fn matvec(&self, matrix: &Arc<QuantMatrix>, x: &[f32]) -> Vec<f32> {
        if self.shared.barrier.size() == 1 {
            return matrix.matmul_rows(x);
        }
        let input = Arc::new(matrix.quantize_input(x));
        self.run(Work::Product(matrix.clone(), input))
    }

    /// The contexts (heads × head_dim) of a decode-step attention, heads shared by the team;
    /// equal bit for bit to `decode_attention` over all heads. `None` when a cache buffer is
    /// not f32 in CPU memory.
    pub(crate) fn attention(&self, work: AttentionWork) -> Option<Vec<f32>> {
        let work = Work::Attention(Arc::new(work));
        let expected = work.len();
        let context = if self.shared.barrier.size() == 1 {
            work.share(0, 1)
        } else {
            self.run(work)
        };
        (context.len() == expected).then_some(context)
    }

    /// Posts `work`, does thread 0's share, and puts the shares together in thread order.
    fn run(&self, work: Work) -> Vec<f32> {
        let shared = self.shared;
        let threads = shared.barrier.size();
        let total = work.len();
        *lock(&shared.job) = Some(work.clone());
        shared.barrier.wait();
        self.in_product.set(true);
        let mut out = work.share(0, threads);
        shared.barrier.wait();
        self.in_product.set(false);
        out.reserve(total.saturating_sub(out.len()));
        for part in &shared.parts[1..threads] {
            out.extend_from_slice(&lock(part));
        }
        out
    }
}

impl Drop for Driver<'_> {
    fn drop(&mut self) {
        if self.shared.barrier.size() > 1 {
            if self.in_product.get() {
                // Unwinding out of a product: meet the helpers at its second barrier first.
                self.shared.barrier.wait();
            }
            *lock(&self.shared.job) = None;
            self.shared.barrier.wait();
        }
    }
}

/// A helper's loop: wait for a product, compute its share, until told to stop.
fn serve(shared: &Shared, t: usize) {
    loop {
        shared.barrier.wait();
        let Some(work) = lock(&shared.job).clone() else {
            return;
        };
        *lock(&shared.parts[t]) = work.share(t, shared.barrier.size());
        shared.barrier.wait();
    }
}

/// Runs `drive` on the calling thread with a team of up to `threads` (helpers started for the
/// call and joined before it returns; if the system refuses a thread, the team is smaller).
pub(crate) fn with_team<R>(threads: usize, drive: impl FnOnce(&Driver) -> R) -> R {
    let threads = threads.max(1);
    let shared = Shared {
        barrier: SpinBarrier {
            threads: AtomicUsize::new(threads),
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        },
        job: Mutex::new(None),
        parts: (0..threads).map(|_| Mutex::new(Vec::new())).collect(),
    };
    std::thread::scope(|scope| {
        let mut started = 1;
        for t in 1..threads {
            let shared = &shared;
            let helper = std::thread::Builder::new().spawn_scoped(scope, move || serve(shared, t));
            if helper.is_err() {
                break;
            }
            started += 1;
        }
        // Before thread 0's first wait, so the barrier counts only the threads that exist.
        shared.barrier.threads.store(started, Ordering::Release);
        let driver = Driver {
            shared: &shared,
            in_product: std::cell::Cell::new(false),
        };
        drive(&driver)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    #[test]
    fn a_team_product_equals_the_single_thread_one_and_stops_on_error() {
        let (rows, cols) = (50, 64);
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 31) % 97) as f32 / 48.0 - 1.0)
            .collect();
        let w = Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        let m = Arc::new(QuantMatrix::from_qtensor(&q).unwrap().unwrap());
        let x: Vec<f32> = (0..cols).map(|i| (i as f32).cos()).collect();
        let alone = m.matmul_rows(&x);
        for threads in [1, 2, 3] {
            let together = with_team(threads, |team| {
                (0..5).map(|_| team.matvec(&m, &x)).collect::<Vec<_>>()
            });
            assert!(together.iter().all(|v| v == &alone), "{threads} threads");
        }
        // Thread 0 giving up early still ends the helpers (the call returns).
        let failed: Result<(), &str> = with_team(2, |team| {
            team.matvec(&m, &x);
            Err("stopped")
        });
        assert_eq!(failed, Err("stopped"));
    }
}

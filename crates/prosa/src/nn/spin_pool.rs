//! Threads that stay awake between the small parallel jobs of an inference pass.
//!
//! A sentence through MiniLM or a Marian decode step is a chain of ~40–60 products of a few
//! hundred microseconds each, with norms and attention between them. Handed to rayon from the
//! calling thread, each product injects a job, wakes a sleeping worker and puts the caller to
//! sleep until the job is done: two wake-ups per product, each tens of microseconds on a
//! virtual machine. Here `threads − 1` helpers (plain threads, started on first use) spin for
//! [`SPIN`] after each job waiting for the next one, the caller works beside them instead of
//! sleeping, and only a helper idle for longer parks on a condition variable — as ONNX Runtime's
//! and OpenMP's pools spin between operators.
//!
//! One caller at a time: a second thread posting while the pool is busy (a server's concurrent
//! requests, a task posting from inside a job) runs its job through rayon instead. Helpers
//! yield the core now and then while spinning, so rayon's workers are not starved of it.

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, TryLockError};
use std::time::{Duration, Instant};

use rayon::prelude::*;

/// How long a helper keeps spinning after a job before it parks.
const SPIN: Duration = Duration::from_millis(2);

/// Jobs of more tasks than this (the count's 16 bits in [`Shared::state`]) go to rayon.
const MAX_TASKS: usize = 0xFFFF;

/// A job's tasks, as the helpers see it: a pointer to the caller's `&dyn Fn`.
type TaskRef<'a> = &'a (dyn Fn(usize) + Sync);

/// What the caller and the helpers share.
struct Shared {
    /// The posted job: generation (bits 32–63), next unclaimed task (16–31), task count
    /// (0–15). A task is claimed by advancing the middle field while the generation is
    /// unchanged, so a helper that saw an older job never runs a newer one's task.
    state: AtomicU64,
    /// The current job's `TaskRef`, written before its generation is published.
    job: AtomicPtr<()>,
    /// Tasks of the current job finished (or panicked).
    done: AtomicUsize,
    /// Helpers parked on `wake`.
    sleepers: AtomicUsize,
    parking: Mutex<()>,
    wake: Condvar,
    /// The first panic of the current job's tasks, re-raised on the caller's thread.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// Held by the thread posting a job.
    busy: Mutex<()>,
}

fn unpack(state: u64) -> (u32, usize, usize) {
    (
        (state >> 32) as u32,
        ((state >> 16) & 0xFFFF) as usize,
        (state & 0xFFFF) as usize,
    )
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a task panicked; the guarded data stays consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// The next task of job `generation`, if it is still posted and has one left.
    fn claim(&self, generation: u32) -> Option<usize> {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            let (posted, next, tasks) = unpack(state);
            if posted != generation || next >= tasks {
                return None;
            }
            match self.state.compare_exchange_weak(
                state,
                state + (1 << 16),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(next),
                Err(now) => state = now,
            }
        }
    }

    /// Runs the tasks of job `generation` that this thread can claim. `job` must be that job's
    /// `TaskRef` whenever a claim succeeds (the caller waits for every claimed task).
    fn work(&self, generation: u32, job: *const TaskRef) {
        while let Some(i) = self.claim(generation) {
            // SAFETY: the claim succeeded, so job `generation` is still posted: its caller is
            // waiting for this task, and its `TaskRef` (which `job` points to, being read after
            // the generation was published) is alive.
            let task = unsafe { *job };
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| task(i))) {
                lock(&self.panic).get_or_insert(payload);
            }
            self.done.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// A helper's loop: spin for a new job, park after [`SPIN`] without one, run its tasks.
    fn serve(&self) {
        let mut seen = unpack(self.state.load(Ordering::Acquire)).0;
        loop {
            let mut spins = 0u32;
            let mut since: Option<Instant> = None;
            let generation = loop {
                let now = unpack(self.state.load(Ordering::Acquire)).0;
                if now != seen {
                    break now;
                }
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(64) {
                    std::thread::yield_now();
                    if since.get_or_insert_with(Instant::now).elapsed() > SPIN {
                        self.park(seen);
                        spins = 0;
                        since = None;
                    }
                } else {
                    std::hint::spin_loop();
                }
            };
            seen = generation;
            self.work(
                generation,
                self.job.load(Ordering::Acquire) as *const TaskRef,
            );
        }
    }

    /// Sleeps until a job newer than `seen` is posted.
    fn park(&self, seen: u32) {
        let mut guard = lock(&self.parking);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        while unpack(self.state.load(Ordering::SeqCst)).0 == seen {
            guard = self.wake.wait(guard).unwrap_or_else(|p| p.into_inner());
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Posts `tasks` tasks of `task`, runs what the helpers leave, and returns when all are done.
    fn run(&self, tasks: usize, task: TaskRef) {
        let job: *const TaskRef = &task;
        self.job.store(job as *mut (), Ordering::Release);
        self.done.store(0, Ordering::Relaxed);
        let generation = unpack(self.state.load(Ordering::Relaxed)).0.wrapping_add(1);
        self.state.store(
            (u64::from(generation) << 32) | tasks as u64,
            Ordering::SeqCst,
        );
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = lock(&self.parking);
            self.wake.notify_all();
        }
        self.work(generation, job);
        let mut spins = 0u32;
        while self.done.load(Ordering::Acquire) < tasks {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1024) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        if let Some(payload) = lock(&self.panic).take() {
            resume_unwind(payload);
        }
    }
}

/// The pool, started on first use with one helper fewer than rayon's thread count; `None` on one
/// thread, or when no helper could be started.
fn pool() -> Option<&'static Shared> {
    static POOL: OnceLock<Option<&'static Shared>> = OnceLock::new();
    *POOL.get_or_init(|| {
        let helpers = rayon::current_num_threads().saturating_sub(1);
        if helpers == 0 {
            return None;
        }
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            state: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            done: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            parking: Mutex::new(()),
            wake: Condvar::new(),
            panic: Mutex::new(None),
            busy: Mutex::new(()),
        }));
        let started = (0..helpers)
            .filter(|h| {
                std::thread::Builder::new()
                    .name(format!("prosa-spin-{h}"))
                    .spawn(move || shared.serve())
                    .is_ok()
            })
            .count();
        (started > 0).then_some(shared)
    })
}

/// Runs `task(i)` for every `i < tasks`, shared by the calling thread and the spinning helpers,
/// and returns when all are done. A panicking task's panic is raised again here, once the
/// others are done. Rayon runs the job instead in a pass that records gradients (training, whose
/// `gemm` products use rayon's workers: helpers spinning beside them would take their cores),
/// when the pool is busy, or when the job is too large.
pub(crate) fn for_each_task(tasks: usize, task: impl Fn(usize) + Sync) {
    // Inside a pool of one thread (a `side_by_side` worker) the job is the thread's alone.
    if tasks <= 1 || rayon::current_num_threads() <= 1 {
        (0..tasks).for_each(task);
        return;
    }
    let pool = pool().filter(|_| tasks <= MAX_TASKS && !candle_core::backprop::grad_tracking());
    let Some(shared) = pool else {
        (0..tasks).into_par_iter().for_each(&task);
        return;
    };
    match shared.busy.try_lock() {
        Ok(_guard) => shared.run(tasks, &task),
        Err(TryLockError::Poisoned(p)) => {
            let _guard = p.into_inner();
            shared.run(tasks, &task)
        }
        Err(TryLockError::WouldBlock) => (0..tasks).into_par_iter().for_each(&task),
    }
}

/// `f(i, chunk)` for each chunk `i` of `data` (`chunk` items, the last one shorter), through
/// [`for_each_task`].
pub(crate) fn for_each_chunk_mut<T: Send>(
    data: &mut [T],
    chunk: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let chunk = chunk.max(1);
    let len = data.len();
    let base = SharedMut(data.as_mut_ptr());
    for_each_task(len.div_ceil(chunk), |i| {
        let start = i * chunk;
        let end = (start + chunk).min(len);
        // SAFETY: tasks have distinct `i`, so their ranges of `data` are disjoint, and `data`
        // stays mutably borrowed until every task has returned.
        let part = unsafe { std::slice::from_raw_parts_mut(base.at(start), end - start) };
        f(i, part)
    });
}

/// `f(i, a_chunk, b_chunk)` for the `i`-th chunks of `a` (`a_step` items) and `b` (`b_step`
/// items) together, through [`for_each_task`]; both slices must have the same number of chunks.
pub(crate) fn for_each_chunk_pair_mut<T: Send, U: Send>(
    a: &mut [T],
    a_step: usize,
    b: &mut [U],
    b_step: usize,
    f: impl Fn(usize, &mut [T], &mut [U]) + Sync,
) {
    let (a_step, b_step) = (a_step.max(1), b_step.max(1));
    let (a_len, b_len) = (a.len(), b.len());
    let chunks = a_len.div_ceil(a_step);
    assert_eq!(chunks, b_len.div_ceil(b_step), "chunk counts differ");
    let (a_base, b_base) = (SharedMut(a.as_mut_ptr()), SharedMut(b.as_mut_ptr()));
    for_each_task(chunks, |i| {
        let (a_start, b_start) = (i * a_step, i * b_step);
        let a_end = (a_start + a_step).min(a_len);
        let b_end = (b_start + b_step).min(b_len);
        // SAFETY: as in `for_each_chunk_mut`, for each of the two slices.
        let (a_part, b_part) = unsafe {
            (
                std::slice::from_raw_parts_mut(a_base.at(a_start), a_end - a_start),
                std::slice::from_raw_parts_mut(b_base.at(b_start), b_end - b_start),
            )
        };
        f(i, a_part, b_part)
    });
}

/// A pointer into a slice whose disjoint parts tasks on other threads write.
struct SharedMut<T>(*mut T);

// SAFETY: only used by `for_each_chunk_mut` and `for_each_chunk_pair_mut`, whose tasks touch
// disjoint parts.
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    fn at(&self, offset: usize) -> *mut T {
        // SAFETY (of the callers): `offset` is within the slice.
        unsafe { self.0.add(offset) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_also_from_concurrent_callers() {
        let callers: Vec<_> = (0..4)
            .map(|c| {
                std::thread::spawn(move || {
                    let _no_grad = candle_core::no_grad();
                    for round in 0..200 {
                        let tasks = 1 + (round * 7 + c) % 13;
                        let hits: Vec<AtomicUsize> =
                            (0..tasks).map(|_| AtomicUsize::new(0)).collect();
                        for_each_task(tasks, |i| {
                            hits[i].fetch_add(1, Ordering::Relaxed);
                        });
                        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.join().unwrap();
        }
    }

    #[test]
    fn a_panicking_task_panics_the_caller_after_the_others_finish() {
        let _no_grad = candle_core::no_grad();
        let finished = AtomicUsize::new(0);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            for_each_task(8, |i| {
                if i == 3 {
                    panic!("task 3");
                }
                finished.fetch_add(1, Ordering::Relaxed);
            })
        }));
        assert!(outcome.is_err());
        assert_eq!(finished.load(Ordering::Relaxed), 7);
        // The pool still serves jobs afterwards.
        let count = AtomicUsize::new(0);
        for_each_task(5, |_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 5);
    }
}

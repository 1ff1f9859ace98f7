//! Independent jobs run side by side, one per thread, each on its thread alone.
//!
//! An inference pass splits each product, norm and attention among the threads, and the
//! threads meet after each: ~60 meetings for a batch through MiniLM, each a wait for the slower
//! share. A caller with many batches (sentence embeddings of a corpus) does better to give each
//! thread batches of its own: nothing is shared, so nothing is waited for. Each worker runs
//! inside a rayon pool of one thread, where `rayon::current_num_threads()` is 1: the parallel
//! work a job would hand out (products, `par_iter`s, the spinning helpers of `spin_pool`) runs
//! on the worker's own thread. Every output is computed as in a pass on all threads — the split
//! of a product among tasks never splits a dot product — so the results have the same bits.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use rayon::{ThreadPool, ThreadPoolBuilder};

/// One single-thread pool per thread of rayon's global pool, made on first use; `None` on one
/// thread, or when a pool could not be made.
fn workers() -> Option<&'static [ThreadPool]> {
    static WORKERS: OnceLock<Option<Vec<ThreadPool>>> = OnceLock::new();
    WORKERS
        .get_or_init(|| {
            let threads = rayon::current_num_threads();
            if threads <= 1 {
                return None;
            }
            (0..threads)
                .map(|w| {
                    ThreadPoolBuilder::new()
                        .num_threads(1)
                        .thread_name(move |_| format!("prosa-side-{w}"))
                        .build()
                        .ok()
                })
                .collect()
        })
        .as_deref()
}

/// `job(i)` for every `i < jobs`, in that order in the answer. With at least as many jobs as
/// threads (and called from outside the workers), the threads take the jobs one at a time in
/// order, each running its job alone; otherwise the jobs run one after another here, each with
/// every thread. The first error stops the claiming of further jobs and is returned.
pub fn map<T: Send, E: Send>(
    jobs: usize,
    job: impl Fn(usize) -> Result<T, E> + Sync,
) -> Result<Vec<T>, E> {
    let threads = rayon::current_num_threads();
    let pools = workers().filter(|p| threads > 1 && jobs >= p.len());
    let Some(pools) = pools else {
        return (0..jobs).map(job).collect();
    };
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let answers: Vec<Mutex<Option<Result<T, E>>>> = (0..jobs).map(|_| Mutex::new(None)).collect();
    let work = || {
        while !failed.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= jobs {
                break;
            }
            let answer = job(i);
            failed.fetch_or(answer.is_err(), Ordering::Relaxed);
            *answers[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(answer);
        }
    };
    std::thread::scope(|scope| {
        for pool in &pools[1..] {
            scope.spawn(|| pool.install(work));
        }
        pools[0].install(work);
    });
    let mut out = Vec::with_capacity(jobs);
    for answer in answers {
        match answer.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(Ok(v)) => out.push(v),
            Some(Err(e)) => return Err(e),
            // Only after an error: the jobs claimed before it are all answered.
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_come_in_job_order_and_jobs_run_alone() {
        let out: Result<Vec<(usize, usize)>, ()> =
            map(37, |i| Ok((i, rayon::current_num_threads())));
        let out = out.unwrap();
        assert_eq!(
            out.iter().map(|p| p.0).collect::<Vec<_>>(),
            (0..37).collect::<Vec<_>>()
        );
        if rayon::current_num_threads() > 1 {
            assert!(out.iter().all(|p| p.1 == 1), "{out:?}");
        }
    }

    #[test]
    fn the_first_error_is_returned() {
        let out: Result<Vec<usize>, String> = map(50, |i| {
            if i == 7 {
                Err(format!("job {i}"))
            } else {
                Ok(i)
            }
        });
        assert_eq!(out.unwrap_err(), "job 7");
    }
}

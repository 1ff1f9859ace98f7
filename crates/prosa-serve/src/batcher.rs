//! Dynamic batching of one-shot work (embeddings, classification, every pipeline): requests
//! that arrive close together run as one batch on a worker thread of their own, off the async
//! runtime.
//!
//! The worker takes the first waiting request, waits up to `batch_wait` for more with the same
//! key (the same task parameters) until `max_batch_inputs` inputs are gathered, runs them in
//! one call, and hands each request its own slice of the results. A failed batch is re-run
//! request by request, so one bad input fails only its own request; a panic is caught and
//! answered with a 500, and the worker goes on.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::ApiError;

/// How a batcher gathers work.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Requests that may wait; one more is answered 503.
    pub queue: usize,
    /// How long the first request of a batch waits for company.
    pub batch_wait: Duration,
    /// Inputs of one batch at most.
    pub max_batch_inputs: usize,
}

/// The work a batcher does: a key (requests batch only with equal keys) and inputs in, one
/// output per input out.
pub type BatchFn<I, O> = dyn Fn(&str, &[I]) -> Result<Vec<O>, ApiError> + Send + 'static;

struct Job<I, O> {
    key: String,
    inputs: Vec<I>,
    reply: oneshot::Sender<Result<Vec<O>, ApiError>>,
}

/// The handle requests are submitted through.
pub struct Batcher<I, O> {
    name: String,
    jobs: SyncSender<Job<I, O>>,
    queued: Arc<AtomicUsize>,
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the worker thread of `name` doing `work`.
    pub fn spawn(name: &str, limits: BatchLimits, work: Box<BatchFn<I, O>>) -> Self {
        let (jobs, rx) = sync_channel(limits.queue.max(1));
        let queued = Arc::new(AtomicUsize::new(0));
        let worker_queued = queued.clone();
        std::thread::Builder::new()
            .name(format!("batcher {name}"))
            .spawn(move || crate::in_own_pool(|| worker(rx, limits, work, worker_queued)))
            .expect("the operating system starts a thread");
        Self {
            name: name.to_string(),
            jobs,
            queued,
        }
    }

    /// Requests waiting (not yet running).
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Runs `inputs` (batched with other requests of the same `key`) and waits for their
    /// outputs. A full queue is an immediate 503.
    pub async fn submit(&self, key: String, inputs: Vec<I>) -> Result<Vec<O>, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.queued.fetch_add(1, Ordering::Relaxed);
        match self.jobs.try_send(Job { key, inputs, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let n = self.queued.fetch_sub(1, Ordering::Relaxed);
                return Err(ApiError::overloaded(&self.name, n));
            }
            Err(TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                return Err(ApiError::shutting_down());
            }
        }
        answer
            .await
            .unwrap_or_else(|_| Err(ApiError::internal("the worker stopped")))
    }
}

fn worker<I, O>(
    rx: Receiver<Job<I, O>>,
    limits: BatchLimits,
    work: Box<BatchFn<I, O>>,
    queued: Arc<AtomicUsize>,
) {
    let mut waiting: VecDeque<Job<I, O>> = VecDeque::new();
    let take = |job: Job<I, O>| {
        queued.fetch_sub(1, Ordering::Relaxed);
        job
    };
    loop {
        let first = match waiting.pop_front() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => take(job),
                Err(_) => return,
            },
        };
        let mut batch = vec![first];
        let mut inputs = batch[0].inputs.len();
        // Requests with the same key already waiting join first, then new arrivals until the
        // wait is over or the batch is full.
        let mut others = VecDeque::new();
        while let Some(job) = waiting.pop_front() {
            if job.key == batch[0].key && inputs + job.inputs.len() <= limits.max_batch_inputs {
                inputs += job.inputs.len();
                batch.push(job);
            } else {
                others.push_back(job);
            }
        }
        waiting = others;
        let deadline = Instant::now() + limits.batch_wait;
        while inputs < limits.max_batch_inputs {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(job) => {
                    let job = take(job);
                    if job.key == batch[0].key
                        && inputs + job.inputs.len() <= limits.max_batch_inputs
                    {
                        inputs += job.inputs.len();
                        batch.push(job);
                    } else {
                        waiting.push_back(job);
                    }
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        // Clients that left before their turn cost nothing.
        batch.retain(|job| !job.reply.is_closed());
        run_batch(batch, work.as_ref());
    }
}

/// Runs the batch in one call; when that fails and the batch holds several requests, each is
/// run alone so the failure lands on the request that caused it.
fn run_batch<I, O>(batch: Vec<Job<I, O>>, work: &BatchFn<I, O>) {
    if batch.is_empty() {
        return;
    }
    if batch.len() > 1 {
        let key = batch[0].key.clone();
        let (replies, input_lists): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|j| (j.reply, j.inputs)).unzip();
        let sizes: Vec<usize> = input_lists.iter().map(Vec::len).collect();
        let all: Vec<I> = input_lists.into_iter().flatten().collect();
        match guarded(work, &key, &all) {
            Ok(outputs) if outputs.len() == all.len() => {
                let mut outputs = outputs.into_iter();
                for (reply, n) in replies.into_iter().zip(sizes) {
                    let _ = reply.send(Ok(outputs.by_ref().take(n).collect()));
                }
            }
            _ => {
                // Split the inputs back into their requests and run each alone.
                let mut all = all.into_iter();
                for (reply, n) in replies.into_iter().zip(sizes) {
                    let inputs: Vec<I> = all.by_ref().take(n).collect();
                    let _ = reply.send(guarded(work, &key, &inputs));
                }
            }
        }
        return;
    }
    let job = batch.into_iter().next().expect("one job");
    let _ = job.reply.send(guarded(work, &job.key, &job.inputs));
}

/// `work`, with a panic turned into a 500.
fn guarded<I, O>(work: &BatchFn<I, O>, key: &str, inputs: &[I]) -> Result<Vec<O>, ApiError> {
    catch_unwind(AssertUnwindSafe(|| work(key, inputs))).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        Err(ApiError::internal(format!(
            "the model failed on this request: {what}"
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> BatchLimits {
        BatchLimits {
            queue: 64,
            batch_wait: Duration::from_millis(50),
            max_batch_inputs: 16,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_run_as_one_batch_and_get_their_own_outputs() {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let batcher = Arc::new(Batcher::spawn(
            "double",
            limits(),
            Box::new(move |_key: &str, xs: &[u32]| {
                seen.fetch_add(1, Ordering::SeqCst);
                Ok(xs.iter().map(|x| x * 2).collect())
            }),
        ));
        let tasks: Vec<_> = (0..4u32)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { b.submit("k".into(), vec![i, 10 + i]).await })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            let i = i as u32;
            assert_eq!(t.await.unwrap().unwrap(), vec![2 * i, 20 + 2 * i]);
        }
        assert!(
            calls.load(Ordering::SeqCst) < 4,
            "4 requests within the wait ran in {} calls",
            calls.load(Ordering::SeqCst)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bad_input_fails_its_own_request_and_a_panic_is_a_500() {
        let batcher = Arc::new(Batcher::spawn(
            "picky",
            limits(),
            Box::new(|_key: &str, xs: &[i32]| {
                if xs.contains(&-1) {
                    return Err(ApiError::bad_request("negative"));
                }
                if xs.contains(&-2) {
                    panic!("boom");
                }
                Ok(xs.to_vec())
            }),
        ));
        let good = {
            let b = batcher.clone();
            tokio::spawn(async move { b.submit("k".into(), vec![1, 2]).await })
        };
        let bad = {
            let b = batcher.clone();
            tokio::spawn(async move { b.submit("k".into(), vec![-1]).await })
        };
        assert_eq!(good.await.unwrap().unwrap(), vec![1, 2]);
        assert_eq!(bad.await.unwrap().unwrap_err().status.as_u16(), 400);
        let panicked = batcher.submit("k".into(), vec![-2]).await.unwrap_err();
        assert_eq!(panicked.status.as_u16(), 500);
        assert!(panicked.message.contains("boom"));
        // The worker survived.
        assert_eq!(batcher.submit("k".into(), vec![7]).await.unwrap(), vec![7]);
    }
}

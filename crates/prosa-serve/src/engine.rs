//! Continuous batching of generations for one decoder: a thread of its own owns the decoding.
//!
//! Each step, requests that arrived are admitted (their prompt processed alone, into a cache
//! of their own), then every sequence in flight advances by one token in a single forward pass
//! ([`DecoderModel::decode_rows`]: the weight products are shared, each sequence attends to its
//! own cache). Sequences leave as they finish or as their client disconnects, and new ones join
//! at the next step, so 8 streams cost far less than 8 times one. Beam search, which needs all
//! its beams in step, runs whole when its turn comes.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::Instant;

use prosa::generation::generate;
use prosa::models::decoder::DecoderModel;
use prosa::nn::ForwardCtx;
use prosa::text::SubwordTokenizer;

use crate::error::ApiError;
use crate::metrics::{Metrics, ModelLabel};
use crate::sequence::{Event, FinishReason, Request, Sequence};

/// How many generations an engine takes.
#[derive(Debug, Clone, Copy)]
pub struct EngineLimits {
    /// Requests that may wait; one more is answered 503.
    pub queue: usize,
    /// Sequences decoding together at most.
    pub max_active: usize,
}

/// The handle generations are submitted through.
pub struct Engine {
    name: String,
    /// The model (shared with the request handlers, which tokenize).
    pub model: Arc<DecoderModel>,
    requests: SyncSender<Request>,
    queued: Arc<AtomicUsize>,
}

impl Engine {
    /// Starts the decoding thread of `model`.
    pub fn spawn(
        name: &str,
        model: Arc<DecoderModel>,
        limits: EngineLimits,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (requests, rx) = sync_channel(limits.queue.max(1));
        let queued = Arc::new(AtomicUsize::new(0));
        let worker = Worker {
            name: name.to_string(),
            model: model.clone(),
            queued: queued.clone(),
            metrics,
            max_active: limits.max_active.max(1),
        };
        std::thread::Builder::new()
            .name(format!("engine {name}"))
            .spawn(move || crate::in_own_pool(|| worker.run(rx)))
            .expect("the operating system starts a thread");
        Self {
            name: name.to_string(),
            model,
            requests,
            queued,
        }
    }

    /// Requests waiting to start.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Queues a generation; its events arrive on the request's channel. A full queue is a 503.
    pub fn submit(&self, request: Request) -> Result<(), ApiError> {
        self.queued.fetch_add(1, Ordering::Relaxed);
        match self.requests.try_send(request) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                let n = self.queued.fetch_sub(1, Ordering::Relaxed);
                Err(ApiError::overloaded(&self.name, n))
            }
            Err(TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                Err(ApiError::shutting_down())
            }
        }
    }
}

struct Worker {
    name: String,
    model: Arc<DecoderModel>,
    queued: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    max_active: usize,
}

impl Worker {
    fn run(self, rx: Receiver<Request>) {
        // Checked when the model was loaded; a model without one answers every request 500.
        let model = self.model.clone();
        let Ok(tokenizer) = model.tokenizer() else {
            while let Ok(request) = rx.recv() {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                let error = ApiError::internal("the model has no tokenizer");
                let _ = request.events.send((request.index, Event::Failed(error)));
            }
            return;
        };
        let mut active: Vec<Sequence> = Vec::new();
        let label = ModelLabel {
            model: self.name.clone(),
        };
        loop {
            if active.is_empty() {
                match rx.recv() {
                    Ok(request) => self.admit(request, tokenizer, &mut active),
                    Err(_) => return,
                }
            }
            while active.len() < self.max_active {
                match rx.try_recv() {
                    Ok(request) => self.admit(request, tokenizer, &mut active),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) if active.is_empty() => return,
                    Err(TryRecvError::Disconnected) => break,
                }
            }
            active.retain(|s| !s.cancelled());
            self.metrics
                .active_sequences
                .get_or_create(&label)
                .set(active.len() as i64);
            if !active.is_empty() {
                self.step(tokenizer, &mut active);
            }
        }
    }

    /// Processes a new request's prompt and chooses its first token.
    fn admit(&self, request: Request, tokenizer: &SubwordTokenizer, active: &mut Vec<Sequence>) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        if request.events.is_closed() {
            return;
        }
        if request.config.num_beams > 1 {
            self.beam_search(request);
            return;
        }
        self.metrics
            .prompt_tokens
            .inc_by(request.prompt.len() as u64);
        let prefill = catch_unwind(AssertUnwindSafe(|| {
            let mut cache = self.model.new_cache();
            let n = request.prompt.len();
            let positions: Vec<u32> = (0..n as u32).collect();
            // No backward pass follows: the prompt goes through the kernels `generate()` uses
            // (fused causal attention), so a request gets the tokens the library gives.
            let mut ctx = ForwardCtx::inference();
            let logits = self.model.forward(
                std::slice::from_ref(&request.prompt),
                &[positions],
                &[vec![1; n]],
                Some(&mut cache),
                &mut ctx,
                true,
            )?;
            Ok::<_, prosa::Error>((cache, logits.flatten_all()?.to_vec1::<f32>()?))
        }));
        match prefill {
            Ok(Ok((cache, scores))) => {
                let mut sequence = Sequence::new(request, cache, self.model.config.max_positions);
                self.metrics.generated_tokens.inc();
                if sequence.advance(scores, tokenizer) {
                    active.push(sequence);
                }
            }
            Ok(Err(e)) => {
                let _ = request
                    .events
                    .send((request.index, Event::Failed(e.into())));
            }
            Err(_) => {
                let error = ApiError::internal("the model failed on this prompt");
                let _ = request.events.send((request.index, Event::Failed(error)));
            }
        }
    }

    /// One token for every sequence in flight, in one forward pass.
    fn step(&self, tokenizer: &SubwordTokenizer, active: &mut Vec<Sequence>) {
        let started = Instant::now();
        let tokens: Vec<u32> = active.iter().map(|s| s.pending).collect();
        let positions: Vec<u32> = active.iter().map(Sequence::position).collect();
        let mut caches: Vec<_> = active
            .iter_mut()
            .map(|s| std::mem::replace(&mut s.cache, prosa::models::decoder::KvCache::new(0)))
            .collect();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let logits = self.model.decode_rows(&tokens, &positions, &mut caches)?;
            Ok::<_, prosa::Error>(logits.to_vec2::<f32>()?)
        }));
        for (s, cache) in active.iter_mut().zip(caches) {
            s.cache = cache;
        }
        let rows = match result {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => {
                let error = ApiError::from(e);
                active.drain(..).for_each(|mut s| {
                    s.fail(error.clone());
                });
                return;
            }
            Err(_) => {
                let error = ApiError::internal("the model failed while decoding");
                active.drain(..).for_each(|mut s| {
                    s.fail(error.clone());
                });
                return;
            }
        };
        let mut keep = Vec::with_capacity(rows.len());
        for (s, scores) in active.iter_mut().zip(rows) {
            keep.push(s.advance(scores, tokenizer));
        }
        let mut flags = keep.into_iter();
        active.retain(|_| flags.next().unwrap_or(false));
        self.metrics.generated_tokens.inc_by(tokens.len() as u64);
        self.metrics.decode_steps.inc();
        self.metrics.decode_rows.inc_by(tokens.len() as u64);
        let seconds = started.elapsed().as_secs_f64();
        if seconds > 0.0 {
            self.metrics
                .decode_tokens_per_second
                .set(tokens.len() as f64 / seconds);
        }
    }

    /// Beam search as `generate()` runs it, whole, then its text.
    fn beam_search(&self, request: Request) {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let out = generate(
                self.model.as_ref(),
                std::slice::from_ref(&request.prompt),
                &request.config,
                None,
            )?;
            let new = out.new_tokens.into_iter().next().unwrap_or_default();
            let text = self.model.tokenizer()?.decode(&new, true)?;
            Ok::<_, prosa::Error>((new, text))
        }));
        let send = |event: Event| {
            let _ = request.events.send((request.index, event));
        };
        match outcome {
            Ok(Ok((new, text))) => {
                let ended = new
                    .last()
                    .is_some_and(|t| request.config.eos_token_ids.contains(t));
                self.metrics.generated_tokens.inc_by(new.len() as u64);
                send(Event::Text(text));
                send(Event::Done {
                    reason: if ended {
                        FinishReason::Stop
                    } else {
                        FinishReason::Length
                    },
                    prompt_tokens: request.prompt.len(),
                    completion_tokens: new.len(),
                });
            }
            Ok(Err(e)) => send(Event::Failed(e.into())),
            Err(_) => send(Event::Failed(ApiError::internal(
                "the model failed during beam search",
            ))),
        }
    }
}

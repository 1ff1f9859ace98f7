//! `GET /metrics` in Prometheus' text format (with the `prometheus-client` crate): requests by
//! endpoint and status, a latency histogram per endpoint, prompt and generated tokens, decode
//! throughput, sequences decoding together, and the requests waiting for each model.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The labels of a request count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route (`/v1/chat/completions`, …).
    pub endpoint: String,
    /// The HTTP status answered.
    pub status: u16,
}

/// The label of a per-endpoint series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    /// The route.
    pub endpoint: String,
}

/// The label of a per-model series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabel {
    /// The model's name.
    pub model: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms … 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every series the server exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Requests answered, by endpoint and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Seconds from request to answer (to the last byte of a stream), by endpoint.
    pub latency: Family<EndpointLabel, Histogram, fn() -> Histogram>,
    /// Prompt tokens read by generation.
    pub prompt_tokens: Counter,
    /// Tokens generated.
    pub generated_tokens: Counter,
    /// Decode steps run (each advances every sequence in flight by one token).
    pub decode_steps: Counter,
    /// Sequences advanced by decode steps, summed: divided by `decode_steps`, the mean batch.
    pub decode_rows: Counter,
    /// Tokens per second of the last decode step (all sequences together).
    pub decode_tokens_per_second: Gauge<f64, AtomicU64>,
    /// Sequences decoding together, per model.
    pub active_sequences: Family<ModelLabel, Gauge>,
    /// Requests waiting for a model.
    pub queue_depth: Family<ModelLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("prosa");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<EndpointLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let prompt_tokens = Counter::default();
        let generated_tokens = Counter::default();
        let decode_steps = Counter::default();
        let decode_rows = Counter::default();
        let decode_tokens_per_second = Gauge::<f64, AtomicU64>::default();
        let active_sequences = Family::<ModelLabel, Gauge>::default();
        let queue_depth = Family::<ModelLabel, Gauge>::default();
        registry.register("requests", "HTTP requests answered", requests.clone());
        registry.register(
            "request_duration_seconds",
            "Seconds from request to the end of its answer",
            latency.clone(),
        );
        registry.register(
            "prompt_tokens",
            "Prompt tokens read by generation",
            prompt_tokens.clone(),
        );
        registry.register(
            "generated_tokens",
            "Tokens generated",
            generated_tokens.clone(),
        );
        registry.register(
            "decode_steps",
            "Decode steps run (each advances every sequence in flight by one token)",
            decode_steps.clone(),
        );
        registry.register(
            "decode_rows",
            "Sequences advanced by decode steps, summed (over decode_steps: the mean batch)",
            decode_rows.clone(),
        );
        registry.register(
            "decode_tokens_per_second",
            "Tokens per second of the last decode step, all sequences together",
            decode_tokens_per_second.clone(),
        );
        registry.register(
            "active_sequences",
            "Sequences decoding together",
            active_sequences.clone(),
        );
        registry.register(
            "queue_depth",
            "Requests waiting for a model",
            queue_depth.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            requests,
            latency,
            prompt_tokens,
            generated_tokens,
            decode_steps,
            decode_rows,
            decode_tokens_per_second,
            active_sequences,
            queue_depth,
        }
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn observe(&self, endpoint: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.to_string(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&EndpointLabel {
                endpoint: endpoint.to_string(),
            })
            .observe(seconds);
    }

    /// Sets a per-model gauge.
    pub fn set_queue_depth(&self, model: &str, depth: usize) {
        self.queue_depth
            .get_or_create(&ModelLabel {
                model: model.to_string(),
            })
            .set(depth as i64);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}

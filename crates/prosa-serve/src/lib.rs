//! `prosa serve`: prosa models over HTTP, without Python.
//!
//! - OpenAI-compatible endpoints (`/v1/models`, `/v1/chat/completions` with server-sent-event
//!   streaming, `/v1/completions`, `/v1/embeddings`), so the official clients work as they are;
//! - `/v1/pipeline/{task}` for every prosa pipeline, answering in transformers' shapes;
//! - `/health`, `/metrics` (Prometheus) and a web playground at `/`.
//!
//! Requests are parsed and answered on a tokio runtime; models compute on threads of their own
//! ([`engine`]: continuous batching of generations; [`batcher`]: dynamic batching of everything
//! else), so the server answers health checks while models work. Limits (body size, queue,
//! timeouts, context) end in OpenAI-shaped JSON errors, never in a crash.

#![warn(missing_docs)]

pub mod batcher;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod models;
mod openai;
mod playground;
mod routes;
pub mod sequence;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use candle_core::Device;

pub use error::ApiError;
pub use models::{ModelSpec, Models, WorkLimits};
pub use routes::{router, AppState};

/// Everything `prosa serve` is told.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The models.
    pub models: Vec<ModelSpec>,
    /// Address to listen on.
    pub host: String,
    /// Port (0: any free port).
    pub port: u16,
    /// Bearer key required on `/v1/*` when set.
    pub api_key: Option<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Longest a request may take.
    pub request_timeout: Duration,
    /// Queueing and batching.
    pub limits: WorkLimits,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            models: Vec::new(),
            host: "127.0.0.1".into(),
            port: 8080,
            api_key: None,
            max_body_bytes: 4 << 20,
            request_timeout: Duration::from_secs(300),
            limits: WorkLimits {
                batch: batcher::BatchLimits {
                    queue: 256,
                    batch_wait: Duration::from_millis(5),
                    max_batch_inputs: 64,
                },
                engine: engine::EngineLimits {
                    queue: 256,
                    max_active: 16,
                },
            },
        }
    }
}

/// Errors of starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A model failed to load.
    #[error("{0}")]
    Model(#[from] prosa::Error),
    /// The address could not be bound.
    #[error("cannot listen on {address}: {error}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        error: std::io::Error,
    },
    /// The server stopped on an I/O error.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs `work` on the calling thread as worker 0 of a thread pool of its own (as many threads
/// as the machine has): the many small parallel products of a model step then run on threads
/// that are already awake instead of being handed to a pool and waited for, two thread
/// wake-ups each.
pub(crate) fn in_own_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .use_current_thread()
        .build()
    {
        Ok(pool) => pool.install(work),
        Err(_) => work(),
    }
}

/// Loads the models and serves them until SIGTERM or Ctrl-C; in-flight requests finish first.
/// `on_ready` receives the bound address once requests are accepted.
pub async fn serve(
    config: ServeConfig,
    device: &Device,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let metrics = Arc::new(metrics::Metrics::default());
    let models = Models::load(&config.models, device, config.limits, &metrics)?;
    let state = Arc::new(AppState::new(models, metrics, &config));
    let address = format!("{}:{}", config.host, config.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|error| ServeError::Bind {
            address: address.clone(),
            error,
        })?;
    on_ready(listener.local_addr()?);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

/// [`serve`] on a runtime of its own (`threads` workers for HTTP; models compute on their own
/// threads), for callers without one (the CLI).
pub fn serve_blocking(
    config: ServeConfig,
    device: &Device,
    threads: usize,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("prosa-http")
        .enable_all()
        .build()?;
    runtime.block_on(serve(config, device, on_ready))
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

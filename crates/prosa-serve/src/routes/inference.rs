//! `POST /v1/embeddings` (OpenAI's shape, float or base64 vectors) and `POST
//! /v1/pipeline/{task}` (any prosa pipeline, answered as transformers' pipelines answer; on a
//! decoder, `text-generation` runs on the engine with the other generations).

use std::path::Path as FsPath;

use axum::extract::{Path, State};
use axum::Json;
use base64::Engine as _;
use serde_json::{json, Value};

use prosa::pipelines::Params;

use super::generate::Run;
use super::{Body, Shared};
use crate::error::ApiError;
use crate::openai::{parse_body, EmbeddingInput, EmbeddingRequest, PipelineRequest, Plan};

/// Texts of one embeddings request at most (OpenAI's limit).
const MAX_EMBEDDING_INPUTS: usize = 2048;

/// `POST /v1/embeddings`.
pub async fn embeddings(State(state): Shared, Body(body): Body) -> Result<Json<Value>, ApiError> {
    let request: EmbeddingRequest = parse_body(
        &body,
        &["model", "input", "encoding_format", "dimensions", "user"],
        &[],
    )?;
    let served = state.models.get(&request.model)?;
    let embedder = served.embedder.as_ref().ok_or_else(|| {
        ApiError::bad_param(
            "model",
            format!(
                "'{}' is not an encoder, so it gives no embeddings",
                served.name
            ),
        )
    })?;
    let texts = match request.input {
        EmbeddingInput::One(t) => vec![t],
        EmbeddingInput::Many(v) => v,
        EmbeddingInput::Tokens(_) => {
            return Err(ApiError::bad_param(
                "input",
                "input must be a string or a list of strings (token ids are not supported)",
            ))
        }
    };
    if texts.is_empty() || texts.len() > MAX_EMBEDDING_INPUTS {
        return Err(ApiError::bad_param(
            "input",
            format!("input must hold 1 to {MAX_EMBEDDING_INPUTS} texts"),
        ));
    }
    if let Some(i) = texts.iter().position(String::is_empty) {
        return Err(ApiError::bad_param(
            format!("input[{i}]"),
            "input texts must not be empty",
        ));
    }
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_param(
                "encoding_format",
                format!("'{other}' is not float or base64"),
            ))
        }
    };
    let outputs = tokio::time::timeout(state.timeout, embedder.submit(String::new(), texts))
        .await
        .map_err(|_| ApiError::timeout(state.timeout))??;
    let width = outputs.first().map_or(0, |(v, _)| v.len());
    if let Some(d) = request.dimensions.filter(|&d| d != width) {
        return Err(ApiError::bad_param(
            "dimensions",
            format!(
                "'{}' gives {width}-dimensional vectors, not {d}",
                served.name
            ),
        ));
    }
    let tokens: usize = outputs.iter().map(|(_, n)| n).sum();
    let data: Vec<Value> = outputs
        .into_iter()
        .enumerate()
        .map(|(i, (vector, _))| {
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": request.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })))
}

/// `POST /v1/pipeline/{task}`: `{"model", "inputs", "parameters"}` in; one input gives its
/// result, a list of inputs a list of results, as transformers' pipelines return them.
pub async fn pipeline(
    State(state): Shared,
    Path(task): Path<String>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let request: PipelineRequest = parse_body(&body, &["model", "inputs", "parameters"], &[])?;
    let served = state.models.get(&request.model)?;
    let (inputs, single) = match request.inputs {
        Value::Array(list) if list.is_empty() => {
            return Err(ApiError::bad_param("inputs", "inputs is an empty list"))
        }
        Value::Array(list) => (list, false),
        Value::Null => return Err(ApiError::bad_param("inputs", "inputs is missing")),
        one => (vec![one], true),
    };
    // The task and its parameters are checked here, so a bad one fails this request before it
    // joins a batch.
    crate::models::known_task(&task)?;
    Params::new(&request.parameters, &task)?;
    let mut outputs = match (&served.engine, task.as_str()) {
        (Some(engine), "text-generation") => {
            text_generation(engine, &inputs, &request.parameters, state.timeout).await?
        }
        _ => {
            let batcher = state.models.pipeline(&served, &task).await?;
            let key = request.parameters.to_string();
            tokio::time::timeout(state.timeout, batcher.submit(key, inputs))
                .await
                .map_err(|_| ApiError::timeout(state.timeout))??
        }
    };
    Ok(Json(if single {
        outputs.pop().unwrap_or(Value::Null)
    } else {
        Value::Array(outputs)
    }))
}

/// transformers' `text-generation` on the engine: `generated_text` is the prompt and its
/// continuation (only the answer with `chat`), 50 new tokens unless said.
async fn text_generation(
    engine: &crate::engine::Engine,
    inputs: &[Value],
    parameters: &Value,
    timeout: std::time::Duration,
) -> Result<Vec<Value>, ApiError> {
    let model = engine.model.clone();
    let chat = parameters
        .get("chat")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let texts = inputs
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str().map(str::to_string).ok_or_else(|| {
                ApiError::bad_param(format!("inputs[{i}]"), "must be a string (the prompt)")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let prompts = texts
        .iter()
        .map(|t| model.encode_prompt(t, chat))
        .collect::<prosa::Result<Vec<_>>>()?;
    let mut config = model.generation.clone();
    config.max_new_tokens = Some(50);
    let mut settings = parameters.clone();
    if let Some(object) = settings.as_object_mut() {
        object.remove("chat");
        if let Some(seed) = object.remove("seed") {
            config.seed = seed
                .as_u64()
                .ok_or_else(|| ApiError::bad_param("seed", "must be a whole number ≥ 0"))?;
        }
    }
    config.apply_json(&settings, FsPath::new("parameters"))?;
    config.validate()?;
    // Sampling: one generation per returned sequence. Beam search runs whole on the engine and
    // gives its best sequence (greedy with several sequences is refused by `validate`).
    let n = config.num_return_sequences;
    if config.num_beams > 1 && n > 1 {
        return Err(ApiError::bad_param(
            "num_return_sequences",
            "with beam search the server returns one sequence per prompt \
             (`prosa pipeline text-generation` returns several)",
        ));
    }
    let stop = std::mem::take(&mut config.stop_strings);
    let plan = Plan {
        config,
        stop,
        n,
        stream: false,
        include_usage: false,
    };
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    if longest >= model.config.max_positions {
        return Err(ApiError::bad_param(
            "inputs",
            format!(
                "a prompt has {longest} tokens; the model's context is {} tokens",
                model.config.max_positions
            ),
        ));
    }
    let run = Run::start(engine, &prompts, &plan)?;
    let choices = run.collect(timeout).await?;
    Ok(texts
        .iter()
        .enumerate()
        .map(|(p, prompt)| {
            let answers: Vec<Value> = choices[p * plan.n..(p + 1) * plan.n]
                .iter()
                .map(|c| {
                    let text = if chat {
                        c.text.clone()
                    } else {
                        format!("{prompt}{}", c.text)
                    };
                    json!({ "generated_text": text })
                })
                .collect();
            Value::Array(answers)
        })
        .collect())
}

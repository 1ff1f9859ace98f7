//! The HTTP routes, the state they share, and the layer every `/v1` request passes: the API key,
//! the body limit, and the request metrics.

mod generate;
mod inference;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::models::Models;
use crate::ServeConfig;

/// What every handler reads.
pub struct AppState {
    /// The models.
    pub models: Models,
    /// The Prometheus series.
    pub metrics: Arc<Metrics>,
    api_key: Option<String>,
    max_body_bytes: usize,
    /// Longest a request may take.
    pub timeout: Duration,
}

impl AppState {
    /// The state of a server with `models`.
    pub fn new(models: Models, metrics: Arc<Metrics>, config: &ServeConfig) -> Self {
        Self {
            models,
            metrics,
            api_key: config.api_key.clone(),
            max_body_bytes: config.max_body_bytes,
            timeout: config.request_timeout,
        }
    }
}

/// Shared state in handlers.
pub type Shared = State<Arc<AppState>>;

/// The whole application.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/v1/models", get(list_models))
        .route("/v1/models/{id}", get(one_model))
        .route("/v1/chat/completions", post(generate::chat))
        .route("/v1/completions", post(generate::completions))
        .route("/v1/embeddings", post(inference::embeddings))
        .route("/v1/pipeline/{task}", post(inference::pipeline))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard))
        .route("/", get(playground))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Checks the API key, then counts the request and its time by route and status.
async fn guard(State(state): Shared, request: Request, next: Next) -> Response {
    let endpoint = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_string(),
        |p| p.as_str().to_string(),
    );
    let started = Instant::now();
    let response = if authorized(&state, &request) {
        next.run(request).await
    } else {
        ApiError::unauthorized().into_response()
    };
    state.metrics.observe(
        &endpoint,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

fn authorized(state: &AppState, request: &Request) -> bool {
    let Some(key) = &state.api_key else {
        return true;
    };
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| constant_time_eq(given.trim().as_bytes(), key.as_bytes()))
}

/// Compares without an early exit, so the time taken does not reveal the key.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A request body, read within the body limit (413 beyond it, as an OpenAI error).
pub struct Body(pub Bytes);

impl FromRequest<Arc<AppState>> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        Bytes::from_request(request, state)
            .await
            .map(Body)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::too_large(state.max_body_bytes)
                } else {
                    ApiError::bad_request(rejection.body_text())
                }
            })
    }
}

fn model_json(m: &crate::models::ServedModel) -> Value {
    json!({
        "id": m.name,
        "object": "model",
        "created": m.created,
        "owned_by": "prosa",
        "prosa": {"kind": m.kind(), "path": m.path.display().to_string()},
    })
}

async fn list_models(State(state): Shared) -> Json<Value> {
    let data: Vec<Value> = state.models.all().iter().map(|m| model_json(m)).collect();
    Json(json!({"object": "list", "data": data}))
}

async fn one_model(State(state): Shared, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let model = state.models.get(&id)?;
    Ok(Json(model_json(&model)))
}

/// Answers while models compute (they run on their own threads).
async fn health(State(state): Shared) -> Json<Value> {
    let models: Vec<Value> = state
        .models
        .all()
        .iter()
        .map(|m| json!({"name": m.name, "kind": m.kind(), "queued": m.queued()}))
        .collect();
    Json(json!({"status": "ok", "models": models}))
}

async fn metrics(State(state): Shared) -> impl IntoResponse {
    for m in state.models.all() {
        state.metrics.set_queue_depth(&m.name, m.queued());
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn playground() -> Html<&'static str> {
    Html(crate::playground::PAGE)
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "No route {} {} (see GET /v1/models, POST /v1/chat/completions, /v1/completions, \
         /v1/embeddings, /v1/pipeline/TASK).",
        request.method(),
        request.uri().path()
    ))
}

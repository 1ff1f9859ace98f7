//! Errors as OpenAI's API shapes them: an HTTP status and
//! `{"error": {"message", "type", "param", "code"}}`, so existing clients raise their usual
//! exceptions (`BadRequestError`, `AuthenticationError`, `NotFoundError`, …).

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error answered to a client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for a person.
    pub message: String,
    /// OpenAI's error type (`invalid_request_error`, `authentication_error`, `server_error`, …).
    pub kind: &'static str,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
    /// A short machine-readable code (`model_not_found`, `context_length_exceeded`, …).
    pub code: Option<&'static str>,
    /// Seconds after which the client may retry (overload answers).
    pub retry_after: Option<Duration>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// 400: the request is malformed or asks for something impossible.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 400 naming the field at fault.
    pub fn bad_param(param: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::bad_request(message);
        e.param = Some(param.into());
        e
    }

    /// 401: a missing or wrong API key.
    pub fn unauthorized() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "Incorrect API key provided (send it as 'Authorization: Bearer KEY').",
        );
        e.code = Some("invalid_api_key");
        e
    }

    /// 404: no model of that name is served.
    pub fn model_not_found(name: &str, served: &[String]) -> Self {
        let mut e = Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!(
                "The model '{name}' does not exist (served: {}).",
                served.join(", ")
            ),
        );
        e.param = Some("model".into());
        e.code = Some("model_not_found");
        e
    }

    /// 404 for a path the server does not have.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "invalid_request_error", what)
    }

    /// 413: the body is larger than the server accepts.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("The request body is larger than the server's limit of {limit} bytes."),
        )
    }

    /// 503 with Retry-After: the queue of a model is full.
    pub fn overloaded(model: &str, queued: usize) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            format!(
                "The server is overloaded: {queued} requests are waiting for '{model}'. Retry shortly."
            ),
        );
        e.code = Some("overloaded");
        e.retry_after = Some(Duration::from_secs(1));
        e
    }

    /// 504: the request took longer than the server's timeout.
    pub fn timeout(after: Duration) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "server_error",
            format!(
                "The request did not finish within the server's timeout of {} s.",
                after.as_secs_f32()
            ),
        )
    }

    /// 500: the server failed on this request (the server itself keeps running).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// 503 while the server shuts down.
    pub fn shutting_down() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "The server is shutting down.",
        )
    }
}

/// prosa's errors are about what was asked (a setting, a token id, a prompt): 400, with the
/// message prosa wrote. Failures of the engine itself are 500.
impl From<prosa::Error> for ApiError {
    fn from(e: prosa::Error) -> Self {
        match e {
            prosa::Error::Candle(_) | prosa::Error::Io { .. } => Self::internal(e.to_string()),
            prosa::Error::Config { ref field, .. } => {
                let field = field
                    .strip_prefix("parameters.")
                    .unwrap_or(field)
                    .to_string();
                Self::bad_param(field, e.to_string())
            }
            other => Self::bad_request(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(after) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&after.as_secs().max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

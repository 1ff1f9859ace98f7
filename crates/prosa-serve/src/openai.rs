//! The request bodies of OpenAI's API as the server reads them, and their checks. Unknown
//! fields are errors (as OpenAI answers "Unrecognized request argument"); fields prosa cannot
//! honour (log-probabilities, presence/frequency penalties) are errors naming the field rather
//! than silently ignored. `top_k` and `repetition_penalty` are accepted as extensions, as vLLM
//! and llama.cpp's servers accept them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use prosa::generation::GenerationConfig;
use prosa::models::decoder::chat::ChatMessage;

use crate::error::ApiError;

/// `stop`: one string or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamOptions {
    /// Send a last chunk with the token counts.
    #[serde(default)]
    pub include_usage: bool,
}

/// A message's content: text, or a list of parts of which only text parts are understood.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Parts (`{"type": "text", "text": …}`).
    Parts(Vec<ContentPart>),
}

/// One part of a message's content.
#[derive(Debug, Clone, Deserialize)]
pub struct ContentPart {
    /// The part's type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its text.
    #[serde(default)]
    pub text: Option<String>,
}

/// One message of a chat request.
#[derive(Debug, Clone, Deserialize)]
pub struct MessageIn {
    /// `system`, `developer`, `user` or `assistant`.
    pub role: String,
    /// What was said. (A participant's `name` is accepted and not used.)
    #[serde(default)]
    pub content: Option<Content>,
}

/// The sampling fields chat and completions share.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Sampling {
    /// Temperature in [0, 2]; 0 is greedy (OpenAI's default is 1).
    pub temperature: Option<f32>,
    /// Nucleus threshold in (0, 1].
    pub top_p: Option<f32>,
    /// Extension: keep the `top_k` most likely tokens (0: all).
    pub top_k: Option<usize>,
    /// Extension: transformers' repetition penalty (> 1 discourages repeats).
    pub repetition_penalty: Option<f32>,
    /// Tokens to generate at most.
    pub max_tokens: Option<usize>,
    /// The same, chat's newer name.
    pub max_completion_tokens: Option<usize>,
    /// Up to 4 strings that end the answer (cut from it).
    pub stop: Option<OneOrMany>,
    /// Seed of the sampling; the same seed and request give the same answer.
    pub seed: Option<u64>,
    /// Answers per prompt.
    pub n: Option<usize>,
    /// Stream server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
    /// Must be 0 (not supported).
    pub frequency_penalty: Option<f32>,
    /// Must be 0 (not supported).
    pub presence_penalty: Option<f32>,
    /// Must be false/absent (not supported).
    pub logprobs: Option<serde_json::Value>,
    /// Must be absent (not supported).
    pub top_logprobs: Option<u32>,
}

/// The fields of [`Sampling`], for the check of unknown fields (serde cannot deny unknown
/// fields across a flattened struct).
pub const SAMPLING_FIELDS: &[&str] = &[
    "temperature",
    "top_p",
    "top_k",
    "repetition_penalty",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "n",
    "stream",
    "stream_options",
    "frequency_penalty",
    "presence_penalty",
    "logprobs",
    "top_logprobs",
    "user",
];

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    /// The model's name.
    pub model: String,
    /// The conversation.
    pub messages: Vec<MessageIn>,
    /// Sampling and limits.
    #[serde(flatten)]
    pub sampling: Sampling,
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    /// The model's name.
    pub model: String,
    /// One prompt or several.
    pub prompt: OneOrMany,
    /// Put the prompt before each answer.
    #[serde(default)]
    pub echo: bool,
    /// Must be absent (not supported).
    pub suffix: Option<String>,
    /// Must be 1 or absent.
    pub best_of: Option<usize>,
    /// Sampling and limits.
    #[serde(flatten)]
    pub sampling: Sampling,
}

/// `input` of an embeddings request.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    One(String),
    /// Several texts.
    Many(Vec<String>),
    /// Token ids (not supported: prosa embeds text).
    Tokens(serde::de::IgnoredAny),
}

/// `POST /v1/embeddings`.
#[derive(Debug, Clone, Deserialize)]
pub struct EmbeddingRequest {
    /// The model's name.
    pub model: String,
    /// The texts.
    pub input: EmbeddingInput,
    /// `float` (default) or `base64` (little-endian f32).
    pub encoding_format: Option<String>,
    /// Must equal the model's width when given. (`user` is accepted and not used.)
    pub dimensions: Option<usize>,
}

/// `POST /v1/pipeline/{task}`.
#[derive(Debug, Clone, Deserialize)]
pub struct PipelineRequest {
    /// The model's name.
    pub model: String,
    /// One input or a list.
    pub inputs: serde_json::Value,
    /// The task's parameters.
    #[serde(default)]
    pub parameters: serde_json::Value,
}

/// Parses a JSON body into `T`, first answering 400 for broken JSON, a body that is not an
/// object, and fields outside `fields` (the request's own) and `extra`.
pub fn parse_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    fields: &[&str],
    extra: &[&str],
) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "We could not parse the JSON body of your request: {e}"
        ))
    })?;
    let Some(object) = value.as_object() else {
        return Err(ApiError::bad_request(
            "The body of the request must be a JSON object.",
        ));
    };
    if let Some(bad) = object
        .keys()
        .find(|k| !fields.contains(&k.as_str()) && !extra.contains(&k.as_str()))
    {
        return Err(ApiError::bad_param(
            bad.clone(),
            format!("Unrecognized request argument supplied: {bad}"),
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("Invalid request: {e}")))
}

/// The messages as the chat template takes them; content parts other than text are errors.
pub fn chat_messages(messages: &[MessageIn]) -> Result<Vec<ChatMessage>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::bad_param(
            "messages",
            "messages must not be empty",
        ));
    }
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if !matches!(
                m.role.as_str(),
                "system" | "developer" | "user" | "assistant"
            ) {
                return Err(ApiError::bad_param(
                    format!("messages[{i}].role"),
                    format!(
                        "role '{}' is not one of system, developer, user, assistant",
                        m.role
                    ),
                ));
            }
            let content = match &m.content {
                None => String::new(),
                Some(Content::Text(t)) => t.clone(),
                Some(Content::Parts(parts)) => {
                    let mut text = String::new();
                    for (j, p) in parts.iter().enumerate() {
                        match (p.kind.as_str(), &p.text) {
                            ("text", Some(t)) => text.push_str(t),
                            _ => {
                                return Err(ApiError::bad_param(
                                    format!("messages[{i}].content[{j}]"),
                                    format!("only text parts are supported (got '{}')", p.kind),
                                ))
                            }
                        }
                    }
                    text
                }
            };
            let role = if m.role == "developer" {
                "system"
            } else {
                &m.role
            };
            Ok(ChatMessage {
                role: role.to_string(),
                content,
            })
        })
        .collect()
}

/// What a generation request asks for, checked.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Settings for the first answer (later ones differ only in seed).
    pub config: GenerationConfig,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Answers per prompt.
    pub n: usize,
    /// Stream.
    pub stream: bool,
    /// Send usage in the last streamed chunk.
    pub include_usage: bool,
}

/// A fresh seed for requests that give none.
fn fresh_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    now ^ COUNTER
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl Sampling {
    /// Checks the fields and builds the generation settings on the model's defaults `base`
    /// for a prompt of `prompt_tokens` in a context of `context` tokens; `default_max` new
    /// tokens when the request names none (capped by the context).
    pub fn plan(
        &self,
        base: &GenerationConfig,
        prompt_tokens: usize,
        context: usize,
        default_max: usize,
    ) -> Result<Plan, ApiError> {
        let temperature = self.temperature.unwrap_or(1.0);
        if !(0.0..=2.0).contains(&temperature) || temperature.is_nan() {
            return Err(ApiError::bad_param(
                "temperature",
                format!("{temperature} is not in [0, 2]"),
            ));
        }
        let top_p = self.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::bad_param(
                "top_p",
                format!("{top_p} is not in (0, 1]"),
            ));
        }
        let n = self.n.unwrap_or(1);
        if !(1..=16).contains(&n) {
            return Err(ApiError::bad_param("n", format!("{n} is not in 1..=16")));
        }
        for (name, value) in [
            ("frequency_penalty", self.frequency_penalty),
            ("presence_penalty", self.presence_penalty),
        ] {
            if value.is_some_and(|v| v != 0.0) {
                return Err(ApiError::bad_param(
                    name,
                    format!("{name} is not supported (use repetition_penalty, e.g. 1.2)"),
                ));
            }
        }
        if self
            .logprobs
            .as_ref()
            .is_some_and(|v| !v.is_null() && v != &serde_json::Value::Bool(false))
            || self.top_logprobs.is_some()
        {
            return Err(ApiError::bad_param(
                "logprobs",
                "logprobs are not supported",
            ));
        }
        let repetition_penalty = self.repetition_penalty.unwrap_or(1.0);
        if repetition_penalty.is_nan() || repetition_penalty <= 0.0 {
            return Err(ApiError::bad_param(
                "repetition_penalty",
                "repetition_penalty must be > 0",
            ));
        }
        let stop = self
            .stop
            .clone()
            .map(OneOrMany::into_vec)
            .unwrap_or_default();
        if stop.len() > 4 || stop.iter().any(String::is_empty) {
            return Err(ApiError::bad_param(
                "stop",
                "stop takes up to 4 non-empty strings",
            ));
        }
        if prompt_tokens >= context {
            return Err(context_exceeded(context, prompt_tokens, 0));
        }
        let requested = self.max_completion_tokens.or(self.max_tokens);
        let max_new = match requested {
            Some(0) => {
                return Err(ApiError::bad_param("max_tokens", "max_tokens must be ≥ 1"));
            }
            Some(m) if prompt_tokens + m > context => {
                return Err(context_exceeded(context, prompt_tokens, m));
            }
            Some(m) => m,
            None => default_max.min(context - prompt_tokens),
        };
        let mut config = base.clone();
        config.max_new_tokens = Some(max_new);
        config.do_sample = temperature > 0.0;
        config.temperature = if temperature > 0.0 { temperature } else { 1.0 };
        config.top_p = top_p;
        config.top_k = self.top_k.unwrap_or(0);
        config.repetition_penalty = repetition_penalty;
        config.num_beams = 1;
        config.num_return_sequences = 1;
        config.stop_strings.clear();
        config.seed = self.seed.unwrap_or_else(fresh_seed);
        Ok(Plan {
            config,
            stop,
            n,
            stream: self.stream,
            include_usage: self
                .stream_options
                .as_ref()
                .is_some_and(|o| o.include_usage),
        })
    }
}

/// OpenAI's 400 for a prompt and answer past the context.
fn context_exceeded(context: usize, prompt: usize, completion: usize) -> ApiError {
    let mut e = ApiError::bad_param(
        "messages",
        format!(
            "This model's maximum context length is {context} tokens. However, you requested \
             {} tokens ({prompt} in the messages, {completion} in the completion). Please reduce \
             the length of the messages or completion.",
            prompt + completion
        ),
    );
    e.code = Some("context_length_exceeded");
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling(json: &str) -> Sampling {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn temperature_zero_is_greedy_and_limits_name_the_field() {
        let base = GenerationConfig::default();
        let plan = sampling(r#"{"temperature": 0, "max_tokens": 5}"#)
            .plan(&base, 10, 100, 64)
            .unwrap();
        assert!(!plan.config.do_sample);
        assert_eq!(plan.config.max_new_tokens, Some(5));
        let e = sampling(r#"{"temperature": 3}"#)
            .plan(&base, 10, 100, 64)
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("temperature"));
        let e = sampling(r#"{"max_tokens": 95}"#)
            .plan(&base, 10, 100, 64)
            .unwrap_err();
        assert_eq!(e.code, Some("context_length_exceeded"));
        assert!(e.message.contains("maximum context length is 100 tokens"));
        let plan = sampling("{}").plan(&base, 90, 100, 64).unwrap();
        assert_eq!(
            plan.config.max_new_tokens,
            Some(10),
            "capped by the context"
        );
    }
}

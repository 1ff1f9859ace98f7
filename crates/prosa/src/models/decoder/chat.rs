//! Chat templates: the Jinja template a chat model ships with (a folder's `chat_template.jinja`
//! or `tokenizer_config.json`, read here; a GGUF file's metadata, read by the GGUF loader),
//! rendered with minijinja as transformers' `apply_chat_template` renders it with Jinja2 (Python
//! string methods included).

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// What was said.
    pub content: String,
}

impl ChatMessage {
    /// A user turn.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: "user".into(),
            content: content.into(),
        }
    }
}

/// Renders `template` for `messages`; with `add_generation_prompt`, the text ends where the
/// assistant's answer begins.
pub fn apply_chat_template(
    template: &str,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
    bos_token: &str,
    eos_token: &str,
) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |message: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                message,
            ))
        },
    );
    let bad = |e: minijinja::Error| Error::config("chat_template", e.to_string());
    env.add_template("chat", template).map_err(bad)?;
    let context = minijinja::context! {
        messages => messages,
        add_generation_prompt => add_generation_prompt,
        bos_token => bos_token,
        eos_token => eos_token,
    };
    env.get_template("chat")
        .map_err(bad)?
        .render(context)
        .map_err(bad)
}

/// The chat template (Jinja source) of the folder, if it has one.
pub(crate) fn chat_template(dir: &Path) -> Result<Option<String>> {
    let jinja = dir.join("chat_template.jinja");
    if jinja.exists() {
        return Ok(Some(crate::fsio::read_text(&jinja)?));
    }
    let config = dir.join("tokenizer_config.json");
    if !config.exists() {
        return Ok(None);
    }
    let v: Value = crate::fsio::read_json(&config)?;
    Ok(match v.get("chat_template") {
        Some(Value::String(s)) => Some(s.clone()),
        // A list of named templates: the default one.
        Some(Value::Array(list)) => list
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .and_then(|t| t.get("template"))
            .and_then(Value::as_str)
            .map(String::from),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chatml_template_renders_like_jinja2() {
        let template = "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'].strip() + '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
        let text =
            apply_chat_template(template, &[ChatMessage::user(" Hi ")], true, "", "").unwrap();
        assert_eq!(
            text,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }
}

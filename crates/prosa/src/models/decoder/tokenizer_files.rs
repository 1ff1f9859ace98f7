//! The tokenizer files of a decoder folder: `tokenizer.json`, and the chat template from
//! `tokenizer_config.json` or `chat_template.jinja`.

use std::path::Path;

use serde_json::Value;

use crate::error::Result;
use crate::text::SubwordTokenizer;

/// `tokenizer.json` of the folder, if there is one.
pub(crate) fn load_tokenizer(dir: &Path) -> Result<Option<SubwordTokenizer>> {
    let json = dir.join("tokenizer.json");
    if json.exists() {
        return Ok(Some(SubwordTokenizer::from_file(&json)?));
    }
    Ok(None)
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

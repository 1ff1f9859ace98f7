//! Model folders in the Hugging Face layout: `config.json` (architecture, hyperparameters and
//! label map), `model.safetensors`, and the tokenizer file. Loading checks every file and names
//! the one that is missing or malformed.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::fsio;
use crate::nn::ParamStore;
use crate::text::{SubwordTokenizer, WordTokenizer};

/// What a model writes besides its weights.
pub struct ModelFolder {
    /// The content of `config.json`.
    pub config: serde_json::Value,
    /// Other files by name and bytes: the tokenizer (`tokenizer.json`, `vectorizer.json`, …),
    /// `generation_config.json`.
    pub extra_files: Vec<(&'static str, Vec<u8>)>,
}

/// Writes a model folder: every file goes into a temporary folder first, which then replaces
/// `dir`, so an interrupted save never leaves a half-written model.
pub fn save(dir: &Path, folder: &ModelFolder, params: &ParamStore) -> Result<()> {
    let tmp = fsio::temporary_sibling(dir);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    fsio::create_dir(&tmp)?;
    fsio::write_json(&tmp.join("config.json"), &folder.config)?;
    params.save(&tmp.join("model.safetensors"))?;
    for (name, bytes) in &folder.extra_files {
        fsio::write_atomic(&tmp.join(name), bytes)?;
    }
    fsio::replace_dir(&tmp, dir)
}

/// The `model_type` of the folder's `config.json`.
pub fn model_type(dir: &Path) -> Result<String> {
    let value: serde_json::Value = read_json_file(&config_path(dir)?)?;
    value
        .get("model_type")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| Error::folder(dir.join("config.json"), "no \"model_type\" field"))
}

fn config_path(dir: &Path) -> Result<std::path::PathBuf> {
    if !dir.is_dir() {
        return Err(Error::folder(
            dir,
            "not a folder (expected config.json, model.safetensors and a tokenizer inside)",
        ));
    }
    Ok(dir.join("config.json"))
}

/// Parses `config.json` of `dir` into the model's config type.
pub fn read_config<T: DeserializeOwned>(dir: &Path) -> Result<T> {
    read_json_file(&config_path(dir)?)
}

/// Parses a JSON file of a model folder; a missing file or a parse error names the file.
pub fn read_json_file<T: DeserializeOwned>(path: &Path) -> Result<T> {
    if !path.exists() {
        return Err(Error::folder(path, "file not found"));
    }
    let text = fsio::read_text(path)?;
    serde_json::from_str(&text).map_err(|e| Error::folder(path, format!("invalid: {e}")))
}

/// The label map of a model folder from its `config.json` fields, checked to name classes
/// `0..num_labels`.
pub fn labels_from_config(
    dir: &Path,
    id2label: &std::collections::BTreeMap<String, String>,
    num_labels: usize,
) -> Result<crate::data::LabelMap> {
    crate::data::LabelMap::from_id2label(id2label)
        .filter(|l| l.len() == num_labels)
        .ok_or_else(|| {
            Error::folder(
                dir.join("config.json"),
                "id2label must map 0..num_labels-1 to class names",
            )
        })
}

/// The folder's tokenizer: `tokenizer.json`, else a BERT WordPiece tokenizer from `vocab.txt`.
pub fn load_tokenizer(dir: &Path) -> Result<Option<SubwordTokenizer>> {
    let json = dir.join("tokenizer.json");
    if json.exists() {
        return Ok(Some(SubwordTokenizer::from_file(&json)?));
    }
    let vocab = dir.join("vocab.txt");
    if vocab.exists() {
        let lowercase = read_json_file::<serde_json::Value>(&dir.join("tokenizer_config.json"))
            .ok()
            .and_then(|v| v.get("do_lower_case").and_then(|b| b.as_bool()))
            .unwrap_or(true);
        return Ok(Some(SubwordTokenizer::from_bert_vocab(&vocab, lowercase)?));
    }
    Ok(None)
}

/// The folder of a model over a Keras-style word tokenizer: `config` as `config.json` and the
/// tokenizer as `word_tokenizer.json`.
pub fn with_word_tokenizer(
    config: &impl serde::Serialize,
    tokenizer: &WordTokenizer,
) -> Result<ModelFolder> {
    let json = |field: &str, v: serde_json::Result<Vec<u8>>| {
        v.map_err(|e| Error::config(field, e.to_string()))
    };
    Ok(ModelFolder {
        config: serde_json::to_value(config).map_err(|e| Error::config("config", e.to_string()))?,
        extra_files: vec![(
            "word_tokenizer.json",
            json("tokenizer", serde_json::to_vec(tokenizer))?,
        )],
    })
}

/// The `word_tokenizer.json` of a folder, checked against the `vocab_size` of its config.
pub fn read_word_tokenizer(dir: &Path, vocab_size: usize) -> Result<WordTokenizer> {
    let path = dir.join("word_tokenizer.json");
    let tokenizer: WordTokenizer = read_json_file(&path)?;
    let tokenizer = tokenizer.after_load();
    if tokenizer.num_ids() != vocab_size {
        return Err(Error::folder(
            path,
            format!(
                "{} word ids, but config.json says vocab_size = {vocab_size}",
                tokenizer.num_ids()
            ),
        ));
    }
    Ok(tokenizer)
}

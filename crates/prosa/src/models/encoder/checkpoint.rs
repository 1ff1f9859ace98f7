//! Reading Hugging Face encoder weights: one `model.safetensors` or shards listed in
//! `model.safetensors.index.json`; tensor names with or without the family prefix (`bert.`),
//! legacy `gamma`/`beta` layer-norm names, and buffers and tied copies that are not parameters.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};
use crate::train::load_safetensors;

/// The weight files of a folder, with the file to name in errors.
pub fn read_weights(dir: &Path, device: &Device) -> Result<(HashMap<String, Tensor>, PathBuf)> {
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok((load_safetensors(&single, device)?, single));
    }
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let value: serde_json::Value = crate::models::folder::read_json_file(&index)?;
        let map = value
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::folder(&index, "no \"weight_map\" object"))?;
        let mut files: Vec<&str> = map.values().filter_map(|v| v.as_str()).collect();
        files.sort_unstable();
        files.dedup();
        let mut all = HashMap::new();
        for file in files {
            all.extend(load_safetensors(&dir.join(file), device)?);
        }
        return Ok((all, index));
    }
    let hint = if dir.join("pytorch_model.bin").exists() {
        " (pytorch_model.bin is not supported: save the model with safetensors)"
    } else {
        ""
    };
    Err(Error::folder(
        single,
        format!("file not found, nor model.safetensors.index.json{hint}"),
    ))
}

/// Checkpoint entries that are never parameters: position-id buffers and decoder weights tied
/// to the word embeddings.
pub fn is_ignorable(name: &str) -> bool {
    name.ends_with("position_ids")
        || name.ends_with("predictions.decoder.weight")
        || name.ends_with("predictions.decoder.bias")
        || name == "lm_head.decoder.weight"
        || name == "lm_head.decoder.bias"
        || name == "vocab_projector.weight"
}

/// Renames checkpoint tensors to prosa's names: legacy layer-norm names, and the family prefix
/// added or removed so the encoder's tensors match `wanted` (the model's parameter names).
pub fn normalise_names(
    tensors: HashMap<String, Tensor>,
    prefix: &str,
    wanted: &[String],
) -> HashMap<String, Tensor> {
    let model_has_prefix = wanted.iter().any(|n| n.starts_with(&format!("{prefix}.")));
    tensors
        .into_iter()
        .filter(|(name, _)| !is_ignorable(name))
        .map(|(name, t)| {
            let name = name
                .replace("LayerNorm.gamma", "LayerNorm.weight")
                .replace("LayerNorm.beta", "LayerNorm.bias");
            let stripped = name.strip_prefix(&format!("{prefix}.")).map(str::to_string);
            let name = match (model_has_prefix, stripped) {
                (false, Some(s)) => s,
                (true, None) if is_encoder_tensor(&name) => format!("{prefix}.{name}"),
                (_, s) => s.map_or(name, |s| format!("{prefix}.{s}")),
            };
            (name, t)
        })
        .collect()
}

fn is_encoder_tensor(name: &str) -> bool {
    ["embeddings.", "encoder.", "transformer.", "pooler."]
        .iter()
        .any(|p| name.starts_with(p))
}

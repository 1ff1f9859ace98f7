//! The one checkpoint policy of every family: weights read from `model.safetensors` or from the
//! shards a `model.safetensors.index.json` lists (each shard must lie inside the folder), one
//! tensor at a time, loaded by name as transformers does ([`ParamStore::load_tensors`]): missing tensors are an
//! error unless a new head starts fresh, tensors the model does not have are ignored with a
//! warning naming them.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::nn::params::LoadReport;
use crate::nn::weights_file::{open_safetensors, LazyTensor, TensorSource};
use crate::nn::ParamStore;

/// The tensors of a folder's weight files, by name, not read yet (each is read when loaded
/// into its parameter), with the file to name in errors.
pub fn read_weights(dir: &Path) -> Result<(HashMap<String, LazyTensor>, PathBuf)> {
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok((open_safetensors(&single)?, single));
    }
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let value: serde_json::Value = super::folder::read_json_file(&index)?;
        let map = value
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::folder(&index, "no \"weight_map\" object"))?;
        let mut files: Vec<&str> = map.values().filter_map(|v| v.as_str()).collect();
        files.sort_unstable();
        files.dedup();
        let mut all = HashMap::new();
        for file in files {
            all.extend(open_safetensors(&shard_path(dir, &index, file)?)?);
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

/// The path of a shard named in an index: a plain file name or a relative path inside the
/// folder. Absolute paths and `..` are refused, so an index cannot make prosa read a file
/// outside the model folder.
fn shard_path(dir: &Path, index: &Path, file: &str) -> Result<PathBuf> {
    let relative = Path::new(file);
    let inside = !file.is_empty()
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !inside {
        return Err(Error::folder(
            index,
            format!(
                "shard \"{file}\" is outside the model folder (shards must be files inside it)"
            ),
        ));
    }
    Ok(dir.join(relative))
}

/// Loads `tensors` (read from `file`) into `params` under the one policy, and warns on stderr
/// about tensors the model does not use, as transformers does.
pub fn load_checkpoint<S: TensorSource>(
    params: &ParamStore,
    tensors: &HashMap<String, S>,
    file: &Path,
    fresh_allowed: &dyn Fn(&str) -> bool,
) -> Result<LoadReport> {
    let report = params.load_tensors(tensors, file, fresh_allowed)?;
    warn_unexpected(file, &report.unexpected);
    Ok(report)
}

/// Prints the warning for checkpoint tensors a model does not use (none: nothing).
pub fn warn_unexpected(file: &Path, unexpected: &[String]) {
    if unexpected.is_empty() {
        return;
    }
    const SHOWN: usize = 8;
    let mut names = unexpected
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if unexpected.len() > SHOWN {
        names.push_str(&format!(" and {} more", unexpected.len() - SHOWN));
    }
    eprintln!(
        "warning: {}: {} tensor(s) of the checkpoint are not used by the model and were ignored: {names}",
        file.display(),
        unexpected.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_must_lie_inside_the_folder() {
        let (dir, index) = (
            Path::new("/m"),
            Path::new("/m/model.safetensors.index.json"),
        );
        assert_eq!(
            shard_path(dir, index, "model-00001.safetensors").unwrap(),
            Path::new("/m/model-00001.safetensors")
        );
        assert!(shard_path(dir, index, "sub/model-00002.safetensors").is_ok());
        for bad in ["../secret.safetensors", "/etc/passwd", "a/../../b", ""] {
            let err = shard_path(dir, index, bad).unwrap_err().to_string();
            assert!(err.contains("outside the model folder"), "{bad}: {err}");
        }
    }
}

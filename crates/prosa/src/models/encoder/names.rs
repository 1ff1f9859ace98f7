//! Encoder checkpoint names: tensor names with or without the family prefix (`bert.`), legacy
//! `gamma`/`beta` layer-norm names, and buffers and tied copies that are not parameters.

use std::collections::HashMap;

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
pub fn normalise_names<S>(
    tensors: HashMap<String, S>,
    prefix: &str,
    wanted: &[String],
) -> HashMap<String, S> {
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

//! `config.json` of GPT-2 and Llama checkpoints read into one shape. The two families name their
//! hyperparameters differently (`n_embd` / `hidden_size`, `n_layer` / `num_hidden_layers`, …);
//! the defaults are transformers'. The original JSON is kept so a saved folder carries every
//! field it was loaded with.

use std::path::Path;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::nn::rope::RopeStyle;

/// The decoder families prosa implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecoderFamily {
    /// GPT-2: learned positions, pre-LN blocks with layer norm, GELU, `Conv1D` weights.
    Gpt2,
    /// Llama (and SmolLM2, Mistral-like models without sliding windows): RMSNorm, RoPE,
    /// SwiGLU, grouped-query attention.
    Llama,
}

impl DecoderFamily {
    /// `model_type` in config.json.
    pub fn model_type(self) -> &'static str {
        match self {
            DecoderFamily::Gpt2 => "gpt2",
            DecoderFamily::Llama => "llama",
        }
    }

    /// The transformers class of the causal-LM model.
    pub fn class_name(self) -> &'static str {
        match self {
            DecoderFamily::Gpt2 => "GPT2LMHeadModel",
            DecoderFamily::Llama => "LlamaForCausalLM",
        }
    }

    /// Parses a family name (`gpt2`, `llama`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "gpt2" => Some(DecoderFamily::Gpt2),
            "llama" | "mistral" | "qwen2" => Some(DecoderFamily::Llama),
            _ => None,
        }
    }
}

/// The hyperparameters of a decoder-only language model.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderConfig {
    /// Architecture family.
    pub family: DecoderFamily,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Number of blocks.
    pub num_layers: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Key/value heads (fewer than `num_heads` for grouped-query attention).
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// The context length: learned positions (GPT-2) or the trained RoPE range (Llama).
    pub max_positions: usize,
    /// Epsilon of the layer or RMS norms.
    pub norm_eps: f64,
    /// RoPE base (Llama).
    pub rope_theta: f64,
    /// How RoPE pairs channels: Hugging Face checkpoints rotate halves, GGUF files neighbours.
    pub rope_style: RopeStyle,
    /// Whether the output layer shares the token-embedding matrix.
    pub tie_word_embeddings: bool,
    /// Whether the Llama attention projections have biases (Qwen2-style models do).
    pub attention_bias: bool,
    /// Dropout on embeddings, residual branches and attention probabilities while training.
    pub dropout: f32,
    /// Standard deviation of the initial weights.
    pub initializer_range: f64,
    /// Beginning-of-sequence token.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token(s).
    pub eos_token_ids: Vec<u32>,
    /// Padding token.
    pub pad_token_id: Option<u32>,
    /// The config.json this came from (fields prosa does not use are written back unchanged).
    pub raw: Value,
}

fn ids(v: Option<&Value>) -> Vec<u32> {
    match v {
        Some(Value::Number(n)) => n.as_u64().map(|n| vec![n as u32]).unwrap_or_default(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_u64())
            .map(|n| n as u32)
            .collect(),
        _ => Vec::new(),
    }
}

impl DecoderConfig {
    /// A small GPT-2 to train from scratch.
    pub fn gpt2(
        vocab_size: usize,
        hidden: usize,
        layers: usize,
        heads: usize,
        context: usize,
    ) -> Self {
        let mut c = Self {
            family: DecoderFamily::Gpt2,
            vocab_size,
            hidden_size: hidden,
            num_layers: layers,
            num_heads: heads,
            num_kv_heads: heads,
            head_dim: hidden / heads.max(1),
            intermediate_size: 4 * hidden,
            max_positions: context,
            norm_eps: 1e-5,
            rope_theta: 10_000.0,
            rope_style: RopeStyle::Half,
            tie_word_embeddings: true,
            attention_bias: true,
            dropout: 0.1,
            initializer_range: 0.02,
            bos_token_id: None,
            eos_token_ids: Vec::new(),
            pad_token_id: None,
            raw: Value::Null,
        };
        c.raw = c.to_json();
        c
    }

    /// Reads `config.json` of a folder.
    pub fn from_folder(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = crate::fsio::read_text(&path)?;
        let value: Value = serde_json::from_str(&text).map_err(|e| Error::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Self::from_json(value, &path)
    }

    /// Interprets a parsed config.json; `path` names it in errors.
    pub fn from_json(raw: Value, path: &Path) -> Result<Self> {
        let model_type = raw.get("model_type").and_then(Value::as_str).unwrap_or("");
        let family = DecoderFamily::parse(model_type).ok_or_else(|| {
            Error::folder(
                path,
                format!(
                    "model_type \"{model_type}\" is not a decoder prosa knows (gpt2, llama, mistral, qwen2)"
                ),
            )
        })?;
        let int = |key: &str| raw.get(key).and_then(Value::as_u64).map(|v| v as usize);
        let float = |key: &str| raw.get(key).and_then(Value::as_f64);
        let need = |key: &str| {
            int(key).ok_or_else(|| Error::folder(path, format!("missing integer field \"{key}\"")))
        };
        let bos_token_id = ids(raw.get("bos_token_id")).first().copied();
        let eos_token_ids = ids(raw.get("eos_token_id"));
        let pad_token_id = ids(raw.get("pad_token_id")).first().copied();
        let c = match family {
            DecoderFamily::Gpt2 => {
                let hidden = need("n_embd")?;
                let heads = need("n_head")?;
                if let Some(act) = raw.get("activation_function").and_then(Value::as_str) {
                    if !matches!(act, "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast") {
                        return Err(Error::folder(
                            path,
                            format!("activation_function \"{act}\" is not supported (gelu_new)"),
                        ));
                    }
                }
                if raw.get("scale_attn_by_inverse_layer_idx") == Some(&Value::Bool(true)) {
                    return Err(Error::folder(
                        path,
                        "scale_attn_by_inverse_layer_idx = true is not supported",
                    ));
                }
                Self {
                    family,
                    vocab_size: need("vocab_size")?,
                    hidden_size: hidden,
                    num_layers: need("n_layer")?,
                    num_heads: heads,
                    num_kv_heads: heads,
                    head_dim: hidden / heads.max(1),
                    intermediate_size: int("n_inner").unwrap_or(4 * hidden),
                    max_positions: int("n_positions").unwrap_or(1024),
                    norm_eps: float("layer_norm_epsilon").unwrap_or(1e-5),
                    rope_theta: 10_000.0,
                    rope_style: RopeStyle::Half,
                    tie_word_embeddings: raw
                        .get("tie_word_embeddings")
                        .and_then(Value::as_bool)
                        .unwrap_or(true),
                    attention_bias: true,
                    dropout: float("resid_pdrop").unwrap_or(0.1) as f32,
                    initializer_range: float("initializer_range").unwrap_or(0.02),
                    bos_token_id,
                    eos_token_ids,
                    pad_token_id,
                    raw: raw.clone(),
                }
            }
            DecoderFamily::Llama => {
                let hidden = need("hidden_size")?;
                let heads = need("num_attention_heads")?;
                let act = raw
                    .get("hidden_act")
                    .and_then(Value::as_str)
                    .unwrap_or("silu");
                if act != "silu" {
                    return Err(Error::folder(
                        path,
                        format!("hidden_act \"{act}\" is not supported (silu)"),
                    ));
                }
                let rope = raw
                    .get("rope_parameters")
                    .or_else(|| raw.get("rope_scaling"));
                let rope_type = rope
                    .and_then(|r| r.get("rope_type").or_else(|| r.get("type")))
                    .and_then(Value::as_str)
                    .unwrap_or("default");
                if rope_type != "default" {
                    return Err(Error::folder(
                        path,
                        format!("rope_type \"{rope_type}\" is not supported (default)"),
                    ));
                }
                let rope_theta = rope
                    .and_then(|r| r.get("rope_theta"))
                    .and_then(Value::as_f64)
                    .or_else(|| float("rope_theta"))
                    .unwrap_or(10_000.0);
                Self {
                    family,
                    vocab_size: need("vocab_size")?,
                    hidden_size: hidden,
                    num_layers: need("num_hidden_layers")?,
                    num_heads: heads,
                    num_kv_heads: int("num_key_value_heads").unwrap_or(heads),
                    head_dim: int("head_dim").unwrap_or(hidden / heads.max(1)),
                    intermediate_size: need("intermediate_size")?,
                    max_positions: int("max_position_embeddings").unwrap_or(2048),
                    norm_eps: float("rms_norm_eps").unwrap_or(1e-6),
                    rope_theta,
                    rope_style: RopeStyle::Half,
                    tie_word_embeddings: raw
                        .get("tie_word_embeddings")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    attention_bias: raw
                        .get("attention_bias")
                        .and_then(Value::as_bool)
                        .unwrap_or(model_type == "qwen2"),
                    dropout: float("attention_dropout").unwrap_or(0.0) as f32,
                    initializer_range: float("initializer_range").unwrap_or(0.02),
                    bos_token_id,
                    eos_token_ids,
                    pad_token_id,
                    raw: raw.clone(),
                }
            }
        };
        c.validate()
            .map_err(|message| Error::folder(path, message))?;
        Ok(c)
    }

    /// Checks the sizes before anything is allocated: every size positive and within sane
    /// bounds, heads that divide the width and share key/value heads evenly. The message names
    /// the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        crate::models::limits::check_sizes(&[
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_layers),
            ("num_attention_heads", self.num_heads),
            ("num_key_value_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_positions),
        ])?;
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(format!(
                "{} attention heads cannot share {} key/value heads",
                self.num_heads, self.num_kv_heads
            ));
        }
        if self.family == DecoderFamily::Gpt2 && !self.hidden_size.is_multiple_of(self.num_heads) {
            return Err(format!(
                "n_embd {} is not a multiple of n_head {}",
                self.hidden_size, self.num_heads
            ));
        }
        if self.family == DecoderFamily::Llama && !self.head_dim.is_multiple_of(2) {
            return Err(format!("head_dim {} must be even for RoPE", self.head_dim));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout {} must be in [0, 1)", self.dropout));
        }
        let (h, f) = (self.hidden_size as f64, self.intermediate_size as f64);
        let attention = 4.0 * h * (self.num_heads * self.head_dim) as f64;
        crate::models::limits::check_parameter_count(
            (self.vocab_size + self.max_positions) as f64 * h
                + self.num_layers as f64 * (attention + 3.0 * h * f),
        )
    }

    /// transformers' generation defaults with this model's special tokens.
    pub fn generation_defaults(&self) -> crate::generation::GenerationConfig {
        crate::generation::GenerationConfig::from_special_tokens(
            self.bos_token_id,
            &self.eos_token_ids,
            self.pad_token_id,
        )
    }

    /// config.json as transformers writes it: the loaded fields, with prosa's values on top.
    pub fn to_json(&self) -> Value {
        let mut v = match &self.raw {
            Value::Object(_) => self.raw.clone(),
            _ => json!({}),
        };
        let eos = match self.eos_token_ids.as_slice() {
            [] => Value::Null,
            [one] => json!(one),
            many => json!(many),
        };
        // f32 settings written as the decimals they were given (0.1, not 0.10000000149).
        let dropout = (self.dropout as f64 * 1e6).round() / 1e6;
        let fields = match self.family {
            DecoderFamily::Gpt2 => json!({
                "architectures": [self.family.class_name()],
                "model_type": "gpt2",
                "vocab_size": self.vocab_size,
                "n_embd": self.hidden_size,
                "n_layer": self.num_layers,
                "n_head": self.num_heads,
                "n_inner": if self.intermediate_size == 4 * self.hidden_size { Value::Null } else { json!(self.intermediate_size) },
                "n_positions": self.max_positions,
                "activation_function": "gelu_new",
                "layer_norm_epsilon": self.norm_eps,
                "resid_pdrop": dropout,
                "embd_pdrop": dropout,
                "attn_pdrop": dropout,
                "initializer_range": self.initializer_range,
                "tie_word_embeddings": self.tie_word_embeddings,
                "bos_token_id": self.bos_token_id,
                "eos_token_id": eos,
                "pad_token_id": self.pad_token_id,
            }),
            DecoderFamily::Llama => json!({
                "architectures": [self.family.class_name()],
                "model_type": self.raw.get("model_type").and_then(Value::as_str).unwrap_or("llama"),
                "vocab_size": self.vocab_size,
                "hidden_size": self.hidden_size,
                "num_hidden_layers": self.num_layers,
                "num_attention_heads": self.num_heads,
                "num_key_value_heads": self.num_kv_heads,
                "head_dim": self.head_dim,
                "intermediate_size": self.intermediate_size,
                "max_position_embeddings": self.max_positions,
                "rms_norm_eps": self.norm_eps,
                "rope_theta": self.rope_theta,
                "hidden_act": "silu",
                "attention_bias": self.attention_bias,
                "attention_dropout": dropout,
                "initializer_range": self.initializer_range,
                "tie_word_embeddings": self.tie_word_embeddings,
                "bos_token_id": self.bos_token_id,
                "eos_token_id": eos,
                "pad_token_id": self.pad_token_id,
            }),
        };
        if let (Value::Object(map), Value::Object(new)) = (&mut v, fields) {
            if self.family == DecoderFamily::Llama && map.contains_key("rope_parameters") {
                map.insert(
                    "rope_parameters".into(),
                    json!({"rope_theta": self.rope_theta, "rope_type": "default"}),
                );
            }
            map.insert("dtype".into(), json!("float32"));
            for (k, val) in new {
                map.insert(k, val);
            }
        }
        v
    }
}

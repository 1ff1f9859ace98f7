//! T5's `config.json` (transformers' `T5Config`): v1.0 (ReLU feed-forward, embeddings tied to
//! the output with the d_model^-0.5 rescale) and v1.1 / FLAN-T5 (gated GELU, untied).

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::nn::activation::Activation;

/// The feed-forward of a T5 block, from `feed_forward_proj`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedForwardKind {
    /// The activation (`relu`, or `gelu_new` for "gated-gelu").
    pub activation: Activation,
    /// Gated: `act(wi_0·x) ⊙ wi_1·x` instead of `act(wi·x)`.
    pub gated: bool,
}

/// The fields of a T5 `config.json` prosa reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct T5Config {
    /// Rows of the shared embedding.
    pub vocab_size: usize,
    /// Width of the model.
    pub d_model: usize,
    /// Width of a head's keys and values.
    pub d_kv: usize,
    /// Width of the feed-forward layer.
    pub d_ff: usize,
    /// Encoder blocks.
    pub num_layers: usize,
    /// Decoder blocks (default: `num_layers`).
    #[serde(default)]
    pub num_decoder_layers: Option<usize>,
    /// Attention heads.
    pub num_heads: usize,
    /// Buckets of relative positions.
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
    /// Distance beyond which relative positions share the last bucket.
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: usize,
    /// Dropout everywhere in training.
    #[serde(default = "default_dropout")]
    pub dropout_rate: f32,
    /// ε of the RMS norms.
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// "relu", "gated-gelu" (also "gelu", "gated-relu", …).
    #[serde(default = "default_ff")]
    pub feed_forward_proj: String,
    /// Output layer = shared embedding (transformers 4: also the d_model^-0.5 rescale).
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    /// Rescale decoder outputs by d_model^-0.5 before the output layer (transformers 5 writes
    /// it, with `tie_word_embeddings` always true; absent: as `tie_word_embeddings`).
    #[serde(default)]
    pub scale_decoder_outputs: Option<bool>,
    /// The first decoder input.
    #[serde(default)]
    pub decoder_start_token_id: Option<u32>,
    /// Padding.
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// End of sequence.
    #[serde(default)]
    pub eos_token_id: Option<u32>,
}

fn default_buckets() -> usize {
    32
}
fn default_max_distance() -> usize {
    128
}
fn default_dropout() -> f32 {
    0.1
}
fn default_eps() -> f64 {
    1e-6
}
fn default_ff() -> String {
    "relu".into()
}
fn default_true() -> bool {
    true
}

impl T5Config {
    /// Reads and checks `config.json` of `dir`; errors name the file and the setting.
    pub fn from_folder(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let config: T5Config = crate::models::folder::read_config(dir)?;
        config
            .validate()
            .map_err(|message| Error::folder(&path, message))?;
        Ok(config)
    }

    /// What is wrong with the sizes and settings, if anything.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("d_kv", self.d_kv),
            ("d_ff", self.d_ff),
            ("num_heads", self.num_heads),
            (
                "relative_attention_num_buckets",
                self.relative_attention_num_buckets,
            ),
        ] {
            if v == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        crate::models::limits::check_sizes(&[
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("d_ff", self.d_ff),
            ("num_layers", self.num_layers),
            ("num_heads", self.num_heads * self.d_kv),
        ])?;
        self.feed_forward()?;
        if self.decoder_start_token_id.or(self.pad_token_id).is_none() {
            return Err(
                "no decoder_start_token_id (nor pad_token_id, which T5 starts from)".into(),
            );
        }
        Ok(())
    }

    /// The feed-forward kind of `feed_forward_proj`.
    pub fn feed_forward(&self) -> std::result::Result<FeedForwardKind, String> {
        let (gated, act) = match self.feed_forward_proj.strip_prefix("gated-") {
            Some(act) => (true, act),
            None => (false, self.feed_forward_proj.as_str()),
        };
        // transformers maps "gated-gelu" to the tanh GELU (`gelu_new`).
        let name = if act == "gelu" && gated {
            "gelu_new"
        } else {
            act
        };
        let activation = Activation::from_name(name).ok_or_else(|| {
            format!(
                "feed_forward_proj \"{}\" is not one prosa knows (relu, gated-gelu, gelu, gated-relu)",
                self.feed_forward_proj
            )
        })?;
        Ok(FeedForwardKind { activation, gated })
    }

    /// Whether decoder outputs are rescaled by d_model^-0.5 (T5 v1.0, not v1.1).
    pub fn scales_output(&self) -> bool {
        self.scale_decoder_outputs
            .unwrap_or(self.tie_word_embeddings)
    }

    /// Decoder blocks.
    pub fn decoder_layers(&self) -> usize {
        self.num_decoder_layers.unwrap_or(self.num_layers)
    }

    /// The decoder's first input.
    pub fn decoder_start(&self) -> u32 {
        self.decoder_start_token_id
            .or(self.pad_token_id)
            .unwrap_or(0)
    }
}

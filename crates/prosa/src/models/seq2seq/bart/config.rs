//! `config.json` of BART (`BartConfig`) and Marian (`MarianConfig`): the same post-LN
//! encoder–decoder with different embeddings.

use serde::Deserialize;

use crate::nn::activation::Activation;

/// Which of the two families a folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// BART: learned positions with offset 2, `layernorm_embedding`.
    Bart,
    /// Marian: sinusoidal positions (sines, then cosines), `scale_embedding`, no embedding norm.
    Marian,
}

/// The fields prosa reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BartConfig {
    /// "bart" or "marian".
    pub model_type: String,
    /// Rows of the embeddings.
    pub vocab_size: usize,
    /// Width of the model.
    pub d_model: usize,
    /// Encoder layers.
    pub encoder_layers: usize,
    /// Decoder layers.
    pub decoder_layers: usize,
    /// Encoder attention heads.
    pub encoder_attention_heads: usize,
    /// Decoder attention heads.
    pub decoder_attention_heads: usize,
    /// Encoder feed-forward width.
    pub encoder_ffn_dim: usize,
    /// Decoder feed-forward width.
    pub decoder_ffn_dim: usize,
    /// "gelu" (BART), "swish" (Marian), …
    #[serde(default = "default_activation")]
    pub activation_function: String,
    /// Positions.
    pub max_position_embeddings: usize,
    /// Multiply token embeddings by √d_model.
    #[serde(default)]
    pub scale_embedding: bool,
    /// Dropout on sub-layer outputs.
    #[serde(default)]
    pub dropout: f32,
    /// Dropout on attention probabilities.
    #[serde(default)]
    pub attention_dropout: f32,
    /// Dropout after the feed-forward activation.
    #[serde(default)]
    pub activation_dropout: f32,
    /// Padding.
    pub pad_token_id: u32,
    /// End of sequence.
    pub eos_token_id: Option<u32>,
    /// The first decoder input.
    pub decoder_start_token_id: Option<u32>,
    /// Marian: one embedding for both sides (default) or separate ones.
    #[serde(default = "default_true")]
    pub share_encoder_decoder_embeddings: bool,
}

fn default_activation() -> String {
    "gelu".into()
}
fn default_true() -> bool {
    true
}

impl BartConfig {
    /// The family of `model_type`.
    pub fn family(&self) -> std::result::Result<Family, String> {
        match self.model_type.as_str() {
            "bart" => Ok(Family::Bart),
            "marian" => Ok(Family::Marian),
            other => Err(format!("model_type \"{other}\" is not bart or marian")),
        }
    }

    /// The feed-forward activation.
    pub fn activation(&self) -> std::result::Result<Activation, String> {
        Activation::from_name(&self.activation_function).ok_or_else(|| {
            format!(
                "activation_function \"{}\" is not one prosa knows (gelu, gelu_new, relu, swish)",
                self.activation_function
            )
        })
    }

    /// What is wrong with the settings, if anything.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.family()?;
        self.activation()?;
        for (name, heads) in [
            ("encoder_attention_heads", self.encoder_attention_heads),
            ("decoder_attention_heads", self.decoder_attention_heads),
        ] {
            if heads == 0 || !self.d_model.is_multiple_of(heads) {
                return Err(format!(
                    "d_model {} is not a multiple of {name} {heads}",
                    self.d_model
                ));
            }
        }
        crate::models::limits::check_sizes(&[
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("encoder_ffn_dim", self.encoder_ffn_dim),
            ("decoder_ffn_dim", self.decoder_ffn_dim),
            ("encoder_layers", self.encoder_layers),
            ("decoder_layers", self.decoder_layers),
            ("max_position_embeddings", self.max_position_embeddings),
        ])?;
        if self.decoder_start_token_id.is_none() {
            return Err("no decoder_start_token_id".into());
        }
        Ok(())
    }
}

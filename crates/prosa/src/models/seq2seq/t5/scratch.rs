//! A small T5 from scratch: a T5 v1.1 / FLAN-T5-style `config.json` (gated GELU, untied output
//! layer, relative positions) of chosen sizes, and a T5-style tokenizer trained on the corpus
//! (SentencePiece Unigram, `<pad>` `</s>` `<unk>` first, `</s>` appended, the sentinels
//! `<extra_id_99>` … `<extra_id_0>` last, as T5's own vocabulary has them).

use serde_json::json;

use super::T5ForConditionalGeneration;
use crate::error::{Error, Result};
use crate::text::{SubwordKind, SubwordTokenizer, SubwordTrainConfig};

/// Sentinels of T5 vocabularies.
pub const EXTRA_IDS: usize = 100;

/// Sizes of a T5 made from scratch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct T5Size {
    /// Width of the model.
    pub d_model: usize,
    /// Encoder blocks (the decoder has as many).
    pub num_layers: usize,
    /// Attention heads (`d_kv` = d_model / heads).
    pub num_heads: usize,
    /// Width of the gated feed-forward layer.
    pub d_ff: usize,
    /// Dropout in training.
    pub dropout: f32,
}

impl T5Size {
    /// A fresh model of these sizes over `tokenizer`, weights seeded by `seed`.
    pub fn model(
        &self,
        tokenizer: SubwordTokenizer,
        device: &candle_core::Device,
        seed: u64,
    ) -> Result<T5ForConditionalGeneration> {
        let mut model =
            T5ForConditionalGeneration::new(self.config_json(&tokenizer)?, device, seed)?;
        model.tokenizer = Some(tokenizer);
        Ok(model)
    }

    /// The `config.json` of a `T5ForConditionalGeneration` of these sizes over `tokenizer`.
    pub fn config_json(&self, tokenizer: &SubwordTokenizer) -> Result<serde_json::Value> {
        if self.num_heads == 0 || !self.d_model.is_multiple_of(self.num_heads) {
            return Err(Error::config(
                "model.num_heads",
                format!(
                    "{} heads do not divide the width {}",
                    self.num_heads, self.d_model
                ),
            ));
        }
        let id = |t: &str| {
            tokenizer
                .token_to_id(t)
                .ok_or_else(|| Error::Tokenizer(format!("the T5 vocabulary has no {t}")))
        };
        Ok(json!({
            "architectures": ["T5ForConditionalGeneration"],
            "model_type": "t5",
            "vocab_size": tokenizer.vocab_size(),
            "d_model": self.d_model,
            "d_kv": self.d_model / self.num_heads,
            "d_ff": self.d_ff,
            "num_layers": self.num_layers,
            "num_decoder_layers": self.num_layers,
            "num_heads": self.num_heads,
            "relative_attention_num_buckets": 32,
            "relative_attention_max_distance": 128,
            "dropout_rate": self.dropout,
            "layer_norm_epsilon": 1e-6,
            "initializer_factor": 1.0,
            "feed_forward_proj": "gated-gelu",
            "tie_word_embeddings": false,
            "is_encoder_decoder": true,
            "pad_token_id": id("<pad>")?,
            "eos_token_id": id("</s>")?,
            "decoder_start_token_id": id("<pad>")?,
        }))
    }
}

/// A T5-style Unigram tokenizer of `vocab_size` pieces (sentinels added on top) trained on
/// `texts`.
pub fn train_tokenizer<I, S>(texts: I, vocab_size: usize) -> Result<SubwordTokenizer>
where
    I: Iterator<Item = S> + Send,
    S: AsRef<str> + Send,
{
    let config = SubwordTrainConfig::new(SubwordKind::Unigram, vocab_size);
    let tokenizer = SubwordTokenizer::train_from_texts(&config, texts)?;
    let sentinels: Vec<String> = (0..EXTRA_IDS)
        .rev()
        .map(|i| format!("<extra_id_{i}>"))
        .collect();
    tokenizer.add_special_tokens(&sentinels);
    tokenizer.append_eos("</s>")?;
    Ok(tokenizer)
}

/// Ids of `<extra_id_0>`, `<extra_id_1>`, … in the tokenizer (as many as it has, in order).
pub fn sentinel_ids(tokenizer: &SubwordTokenizer) -> Vec<u32> {
    (0..)
        .map_while(|i| tokenizer.token_to_id(&format!("<extra_id_{i}>")))
        .collect()
}

//! `BartForConditionalGeneration` and `MarianMTModel`: the post-LN encoder–decoder of BART
//! (Lewis et al. 2020) and of Marian (the OPUS-MT translators), with transformers' names —
//!
//! ```text
//! embeddings: E[ids]·(√d if scale_embedding) + positions   (BART: learned, offset 2, then
//!             layernorm_embedding; Marian: sinusoidal, sines then cosines)
//! layer:      x = self_attn_layer_norm(x + SelfAttention(x))
//!             x = encoder_attn_layer_norm(x + CrossAttention(x, encoder))     (decoder)
//!             x = final_layer_norm(x + fc2(act(fc1·x)))
//! logits:     decoder states · E_sharedᵀ + final_logits_bias
//! ```

pub mod config;

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use self::config::{BartConfig, Family};
use super::transformer::DecoderState;
use crate::error::{Error, Result};
use crate::generation::{GenerationConfig, Generator, Start};
use crate::models::checkpoint::{load_checkpoint, read_weights};
use crate::models::folder;
use crate::nn::activation::Activation;
use crate::nn::attention::{padding_bias, Mask, MultiHeadAttention, Qkv};
use crate::nn::kv_cache::{CrossMemory, KvCache};
use crate::nn::norm::Norm;
use crate::nn::projection::{Projection, Weight};
use crate::nn::{dropout, ForwardCtx, Init, ParamBuilder, ParamStore};
use crate::text::SubwordTokenizer;

/// Offset of BART's learned positions (rows 0 and 1 are never used).
const BART_POSITION_OFFSET: usize = 2;

fn attention(
    vb: &ParamBuilder,
    d: usize,
    heads: usize,
    c: &BartConfig,
) -> Result<MultiHeadAttention> {
    let dense = |name: &str| Projection::dense(vb, name, d, d, Init::Normal { std: 0.02 }, true);
    Ok(MultiHeadAttention {
        qkv: Qkv::separate(dense("q_proj")?, dense("k_proj")?, dense("v_proj")?),
        out: dense("out_proj")?,
        heads,
        kv_heads: heads,
        head_dim: d / heads,
        attention_dropout: c.attention_dropout,
        output_dropout: c.dropout,
        scale: None,
    })
}

/// One encoder or decoder layer.
struct Layer {
    self_attn: MultiHeadAttention,
    self_norm: Norm,
    cross: Option<(MultiHeadAttention, Norm)>,
    fc1: Projection,
    fc2: Projection,
    final_norm: Norm,
    activation: Activation,
    activation_dropout: f32,
    dropout: f32,
}

impl Layer {
    fn new(vb: &ParamBuilder, c: &BartConfig, decoder: bool) -> Result<Self> {
        let d = c.d_model;
        let (heads, ffn) = if decoder {
            (c.decoder_attention_heads, c.decoder_ffn_dim)
        } else {
            (c.encoder_attention_heads, c.encoder_ffn_dim)
        };
        let init = Init::Normal { std: 0.02 };
        Ok(Self {
            self_attn: attention(&vb.pp("self_attn"), d, heads, c)?,
            self_norm: Norm::layer(vb, "self_attn_layer_norm", d, 1e-5)?,
            cross: decoder
                .then(|| -> Result<_> {
                    Ok((
                        attention(&vb.pp("encoder_attn"), d, heads, c)?,
                        Norm::layer(vb, "encoder_attn_layer_norm", d, 1e-5)?,
                    ))
                })
                .transpose()?,
            fc1: Projection::dense(vb, "fc1", d, ffn, init, true)?,
            fc2: Projection::dense(vb, "fc2", ffn, d, init, true)?,
            final_norm: Norm::layer(vb, "final_layer_norm", d, 1e-5)?,
            activation: c
                .activation()
                .map_err(|m| Error::config("activation_function", m))?,
            activation_dropout: c.activation_dropout,
            dropout: c.dropout,
        })
    }

    fn feed_forward(&self, x: &Tensor, ctx: &mut ForwardCtx) -> Result<Tensor> {
        let h = self.fc1.forward_activated(x, self.activation)?;
        let h = self
            .fc2
            .forward(&dropout(&h, self.activation_dropout, ctx)?)?;
        self.final_norm
            .forward_residual(x, &dropout(&h, self.dropout, ctx)?)
    }
}

/// Token and position embeddings of one side.
struct Embeddings {
    tokens: Tensor,
    /// BART: the learned table (positions + 2, d); Marian: the sinusoidal table.
    positions: Tensor,
    norm: Option<Norm>,
    scale: f64,
    offset: usize,
    dropout: f32,
    /// The padding id, whose row never trains (torch's `padding_idx`).
    pad: u32,
}

impl Embeddings {
    /// Embeddings of id rows whose first position is `first`: (batch, seq, d).
    fn forward(&self, ids: &[Vec<u32>], first: usize, ctx: &mut ForwardCtx) -> Result<Tensor> {
        let seq = ids.first().map_or(0, Vec::len);
        let rows = self.positions.dim(0)?;
        if first + seq + self.offset > rows {
            return Err(Error::config(
                "max_position_embeddings",
                format!(
                    "{} positions, but the model has {}",
                    first + seq,
                    rows - self.offset
                ),
            ));
        }
        let words = crate::nn::embedding::lookup_with_padding_idx(&self.tokens, ids, self.pad)?;
        let positions = self.positions.narrow(0, first + self.offset, seq)?;
        let mut x = (words * self.scale)?.broadcast_add(&positions)?;
        if let Some(norm) = &self.norm {
            x = norm.forward(&x)?;
        }
        dropout(&x, self.dropout, ctx)
    }
}

/// Marian's sinusoidal table: sines in the first half of each row, cosines in the second.
fn marian_positions(rows: usize, d: usize, device: &Device) -> Result<Tensor> {
    let half = d.div_ceil(2);
    let mut values = vec![0f32; rows * d];
    for pos in 0..rows {
        for j in 0..d {
            let i = if j < half { j } else { j - half };
            let angle = pos as f64 / 10_000f64.powf(2.0 * i as f64 / d as f64);
            values[pos * d + j] = if j < half { angle.sin() } else { angle.cos() } as f32;
        }
    }
    Ok(Tensor::from_vec(values, (rows, d), device)?)
}

/// The files of a Marian tokenizer as opus-mt folders ship it.
const MARIAN_TOKENIZER_FILES: [&str; 4] = [
    "source.spm",
    "target.spm",
    "vocab.json",
    "tokenizer_config.json",
];

/// A BART or Marian encoder–decoder with its language-model head.
pub struct BartForConditionalGeneration {
    /// The settings of `config.json`.
    pub config: BartConfig,
    /// BART or Marian.
    pub family: Family,
    /// The tokenizer: `tokenizer.json`, or Marian's `source.spm` + `vocab.json`.
    pub tokenizer: Option<SubwordTokenizer>,
    /// Decoding defaults.
    pub generation: GenerationConfig,
    raw_config: serde_json::Value,
    /// Marian's SentencePiece tokenizer files as read, written back on save.
    spm_files: Vec<(&'static str, Vec<u8>)>,
    params: ParamStore,
    encoder_embeddings: Embeddings,
    decoder_embeddings: Embeddings,
    encoder: Vec<Layer>,
    decoder: Vec<Layer>,
    /// The output layer: the decoder's (tied) token embedding.
    lm_head: Projection,
    final_logits_bias: Tensor,
}

impl BartForConditionalGeneration {
    /// A fresh model of `raw_config`, weights seeded by `seed`.
    pub fn new(raw_config: serde_json::Value, device: &Device, seed: u64) -> Result<Self> {
        Self::build(raw_config, ParamStore::new(device.clone()), seed)
    }

    /// The model's parameters created in `params` (see [`ParamStore::for_checkpoint`]).
    fn build(raw_config: serde_json::Value, params: ParamStore, seed: u64) -> Result<Self> {
        let c: BartConfig = serde_json::from_value(raw_config.clone())
            .map_err(|e| Error::config("config", e.to_string()))?;
        c.validate().map_err(|m| Error::config("config", m))?;
        let family = c.family().map_err(|m| Error::config("model_type", m))?;
        let device = &params.device().clone();
        let vb = params.builder(seed);
        let model = vb.pp("model");
        let init = Init::Normal { std: 0.02 };
        let shared = model.param("shared.weight", &[c.vocab_size, c.d_model], init)?;
        let side = |name: &str, tokens: Tensor| -> Result<Embeddings> {
            let vb = model.pp(name);
            let (positions, norm, offset) = match family {
                Family::Bart => (
                    vb.param(
                        "embed_positions.weight",
                        &[c.max_position_embeddings + BART_POSITION_OFFSET, c.d_model],
                        init,
                    )?,
                    Some(Norm::layer(&vb, "layernorm_embedding", c.d_model, 1e-5)?),
                    BART_POSITION_OFFSET,
                ),
                Family::Marian => (
                    marian_positions(c.max_position_embeddings, c.d_model, device)?,
                    None,
                    0,
                ),
            };
            Ok(Embeddings {
                tokens,
                positions,
                norm,
                scale: if c.scale_embedding {
                    (c.d_model as f64).sqrt()
                } else {
                    1.0
                },
                offset,
                dropout: c.dropout,
                pad: c.pad_token_id,
            })
        };
        let (encoder_tokens, decoder_tokens) = if c.share_encoder_decoder_embeddings {
            (shared.clone(), shared)
        } else {
            (
                model.param(
                    "encoder.embed_tokens.weight",
                    &[c.vocab_size, c.d_model],
                    init,
                )?,
                model.param(
                    "decoder.embed_tokens.weight",
                    &[c.vocab_size, c.d_model],
                    init,
                )?,
            )
        };
        let layers = |side: &str, n: usize, decoder: bool| -> Result<Vec<Layer>> {
            (0..n)
                .map(|i| Layer::new(&model.pp(&format!("{side}.layers.{i}")), &c, decoder))
                .collect()
        };
        let generation = GenerationConfig {
            eos_token_ids: c.eos_token_id.into_iter().collect(),
            pad_token_id: Some(c.pad_token_id),
            bos_token_id: c.decoder_start_token_id,
            ..GenerationConfig::default()
        };
        Ok(Self {
            lm_head: Projection::new(Weight::Dense(decoder_tokens.clone()), None),
            encoder_embeddings: side("encoder", encoder_tokens)?,
            decoder_embeddings: side("decoder", decoder_tokens)?,
            encoder: layers("encoder", c.encoder_layers, false)?,
            decoder: layers("decoder", c.decoder_layers, true)?,
            final_logits_bias: vb.param("final_logits_bias", &[1, c.vocab_size], Init::Zeros)?,
            config: c,
            family,
            tokenizer: None,
            generation,
            raw_config,
            spm_files: Vec::new(),
            params,
        })
    }

    /// Loads a Hugging Face BART or Marian folder.
    pub fn from_pretrained(dir: &Path, device: &Device) -> Result<Self> {
        let raw: serde_json::Value = folder::read_config(dir)?;
        let mut model = Self::build(raw, ParamStore::for_checkpoint(device.clone()), 0)
            .map_err(|e| Error::folder(dir.join("config.json"), e.to_string()))?;
        let (mut tensors, file) = read_weights(dir)?;
        // The output layer is the (tied) embedding; Marian's positions are computed.
        tensors.remove("lm_head.weight");
        if model.family == Family::Marian {
            tensors.remove("model.encoder.embed_positions.weight");
            tensors.remove("model.decoder.embed_positions.weight");
        }
        if model.config.share_encoder_decoder_embeddings {
            tensors.remove("model.encoder.embed_tokens.weight");
            tensors.remove("model.decoder.embed_tokens.weight");
        }
        load_checkpoint(&model.params, &tensors, &file, &|_| false)?;
        model.tokenizer = folder::load_tokenizer(dir)?;
        if model.tokenizer.is_none() && dir.join("source.spm").exists() {
            model.tokenizer = Some(crate::text::sentencepiece::from_marian_files(dir)?);
            for name in MARIAN_TOKENIZER_FILES {
                if dir.join(name).exists() {
                    model
                        .spm_files
                        .push((name, crate::fsio::read_bytes(&dir.join(name))?));
                }
            }
        }
        model.generation = GenerationConfig::from_folder(dir, model.generation.clone())?;
        Ok(model)
    }

    /// Writes a folder transformers loads (Marian's SentencePiece files as they were read, or
    /// `tokenizer.json`); atomic.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        let tokenizer = if self.spm_files.is_empty() {
            super::SavedTokenizer::Json(self.tokenizer.as_ref())
        } else {
            super::SavedTokenizer::Files(&self.spm_files)
        };
        super::save_hf_folder(
            dir,
            &self.raw_config,
            &self.generation,
            tokenizer,
            &self.params,
        )
    }

    /// The parameters.
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// `config.json` as read (for settings prosa does not model, such as
    /// `task_specific_params`).
    pub fn raw_config(&self) -> &serde_json::Value {
        &self.raw_config
    }

    /// The encoder's last hidden states (batch, seq, d).
    pub fn encode(
        &self,
        ids: &[Vec<u32>],
        mask: &[Vec<u32>],
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        let mut x = self.encoder_embeddings.forward(ids, 0, ctx)?;
        let bias = padding_bias(mask, DType::F32, x.device())?;
        for layer in &self.encoder {
            let h = layer
                .self_attn
                .forward(&x, Mask::Bidirectional(&bias), None, None, ctx)?;
            x = layer.self_norm.forward_residual(&x, &h)?;
            x = layer.feed_forward(&x, ctx)?;
        }
        Ok(x)
    }

    /// Each decoder layer's keys and values of the encoder output.
    fn memories(&self, encoded: &Tensor, mask: &[Vec<u32>]) -> Result<Vec<CrossMemory>> {
        let pad = padding_bias(mask, encoded.dtype(), encoded.device())?;
        self.decoder
            .iter()
            .filter_map(|l| l.cross.as_ref())
            .map(|(attention, _)| attention.memory(encoded, &pad))
            .collect()
    }

    /// Decoder states (batch, new, d) of new ids; `mask` covers cached + new positions.
    fn decode(
        &self,
        ids: &[Vec<u32>],
        mask: &[Vec<u32>],
        memories: &[CrossMemory],
        mut cache: Option<&mut KvCache>,
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        let first = cache.as_ref().map_or(0, |c| c.len());
        let mut y = self.decoder_embeddings.forward(ids, first, ctx)?;
        let bias = padding_bias(mask, DType::F32, y.device())?;
        for (i, layer) in self.decoder.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| c.layer(i));
            let h = layer
                .self_attn
                .forward(&y, Mask::Causal(&bias), None, layer_cache, ctx)?;
            y = layer.self_norm.forward_residual(&y, &h)?;
            if let Some((attention, norm)) = &layer.cross {
                y = norm.forward_residual(&y, &attention.cross(&y, &memories[i], ctx)?)?;
            }
            y = layer.feed_forward(&y, ctx)?;
        }
        Ok(y)
    }

    fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        // A buffer in transformers: saved, never trained.
        self.lm_head
            .forward_offset(hidden, &self.final_logits_bias.detach())
    }

    /// Logits (batch, target, vocab) of teacher-forced decoder ids given the sources.
    pub fn forward(
        &self,
        ids: &[Vec<u32>],
        mask: &[Vec<u32>],
        decoder_ids: &[Vec<u32>],
        decoder_mask: &[Vec<u32>],
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        let encoded = self.encode(ids, mask, ctx)?;
        let memories = self.memories(&encoded, mask)?;
        let hidden = self.decode(decoder_ids, decoder_mask, &memories, None, ctx)?;
        self.logits(&hidden)
    }
}

impl Generator for BartForConditionalGeneration {
    type Cache = DecoderState;

    /// Unused: the cache is made by [`start`](Generator::start), from the sources.
    fn new_cache(&self) -> DecoderState {
        DecoderState::empty()
    }

    /// Encodes the sources once (padded on the right) and starts every row from
    /// `decoder_start_token_id`.
    fn start(&self, inputs: &[Vec<u32>], _g: &GenerationConfig) -> Result<Start<DecoderState>> {
        let pad = self.config.pad_token_id;
        DecoderState::start_from_sources(
            inputs,
            pad,
            self.config.decoder_start_token_id.unwrap_or(pad),
            self.decoder.len(),
            |ids, mask| {
                let encoded = self.encode(ids, mask, &mut ForwardCtx::inference())?;
                self.memories(&encoded, mask)
            },
        )
    }

    fn next_token_logits(
        &self,
        ids: &[Vec<u32>],
        _positions: &[Vec<u32>],
        attention_mask: &[Vec<u32>],
        cache: &mut DecoderState,
    ) -> Result<Tensor> {
        let hidden = self.decode(
            ids,
            attention_mask,
            &cache.memories,
            Some(&mut cache.self_attention),
            &mut ForwardCtx::eval(),
        )?;
        let last = hidden.narrow(1, hidden.dim(1)? - 1, 1)?;
        self.logits(&last)
    }

    fn context_size(&self) -> usize {
        self.config.max_position_embeddings
    }

    fn tokenizer(&self) -> Result<&SubwordTokenizer> {
        self.tokenizer
            .as_ref()
            .ok_or_else(|| Error::config("tokenizer", "the folder has no tokenizer.json"))
    }
}

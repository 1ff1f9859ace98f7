//! T5 (`T5ForConditionalGeneration`): Hugging Face folders in and out, the encoder run once and
//! the decoder generating through [`crate::generation::Generator`] — v1.0 (ReLU, tied
//! embeddings, decoder outputs rescaled by d_model^-0.5) and v1.1 / FLAN-T5 (gated GELU, no
//! rescale, a separate `lm_head` in transformers 4 checkpoints; transformers 5 ties it and says
//! `scale_decoder_outputs`).

pub mod config;
pub mod encoder;
pub mod layers;
pub mod scratch;
pub mod span_corruption;

use std::path::Path;

use candle_core::{Device, Tensor};

use self::config::T5Config;
use self::layers::Stack;
use super::transformer::DecoderState;
use crate::error::{Error, Result};
use crate::generation::{GenerationConfig, Generator, Start};
use crate::models::checkpoint::{load_checkpoint, read_weights};
use crate::models::folder;
use crate::nn::projection::{Projection, Weight};
use crate::nn::{ForwardCtx, Init, ParamStore};
use crate::text::SubwordTokenizer;

/// The `model_type` of T5 folders.
pub const MODEL_TYPE: &str = "t5";

/// Copies of the shared embedding that checkpoints may hold (tied in the model).
const TIED_COPIES: [&str; 2] = ["encoder.embed_tokens.weight", "decoder.embed_tokens.weight"];

/// A T5 encoder–decoder with its language-model head.
pub struct T5ForConditionalGeneration {
    /// The sizes and settings of `config.json`.
    pub config: T5Config,
    /// The tokenizer, when the folder has one.
    pub tokenizer: Option<SubwordTokenizer>,
    /// Decoding defaults (`generation_config.json`).
    pub generation: GenerationConfig,
    /// `config.json` as read, written back on save.
    raw_config: serde_json::Value,
    params: ParamStore,
    shared: Tensor,
    encoder: Stack,
    decoder: Stack,
    /// The output layer: `lm_head.weight`, or the shared embedding when tied.
    output: Projection,
}

impl T5ForConditionalGeneration {
    /// A fresh model of `raw_config` (a T5 `config.json`), weights seeded by `seed` with
    /// transformers' initialisation (which assumes Adafactor-like steps, see
    /// [`crate::train::OptimizerConfig::scale_by_parameter_rms`]).
    pub fn new(raw_config: serde_json::Value, device: &Device, seed: u64) -> Result<Self> {
        Self::build(raw_config, ParamStore::new(device.clone()), seed)
    }

    /// The model's parameters created in `params` (see [`ParamStore::for_checkpoint`]).
    fn build(raw_config: serde_json::Value, params: ParamStore, seed: u64) -> Result<Self> {
        let config: T5Config = serde_json::from_value(raw_config.clone())
            .map_err(|e| Error::config("config", e.to_string()))?;
        config
            .validate()
            .map_err(|message| Error::config("config", message))?;
        let vb = params.builder(seed);
        let shared = shared_embedding(&vb, &config)?;
        let encoder = Stack::new(&vb.pp("encoder"), &config, false)?;
        let decoder = Stack::new(&vb.pp("decoder"), &config, true)?;
        let lm_head = (!config.tie_word_embeddings)
            .then(|| {
                vb.param(
                    "lm_head.weight",
                    &[config.vocab_size, config.d_model],
                    Init::Normal {
                        std: (config.d_model as f64).powf(-0.5),
                    },
                )
            })
            .transpose()?;
        let output = Projection::new(Weight::Dense(lm_head.unwrap_or(shared.clone())), None);
        let generation = GenerationConfig {
            eos_token_ids: config.eos_token_id.into_iter().collect(),
            pad_token_id: config.pad_token_id,
            bos_token_id: Some(config.decoder_start()),
            ..GenerationConfig::default()
        };
        Ok(Self {
            config,
            tokenizer: None,
            generation,
            raw_config,
            params,
            shared,
            encoder,
            decoder,
            output,
        })
    }

    /// Loads a Hugging Face T5 folder: `config.json`, `model.safetensors` (or shards),
    /// `tokenizer.json` when present, `generation_config.json` when present.
    pub fn from_pretrained(dir: &Path, device: &Device) -> Result<Self> {
        let raw: serde_json::Value = folder::read_config(dir)?;
        let model_type = raw.get("model_type").and_then(|v| v.as_str()).unwrap_or("");
        if model_type != MODEL_TYPE {
            return Err(Error::folder(
                dir.join("config.json"),
                format!("model_type \"{model_type}\" is not T5"),
            ));
        }
        T5Config::from_folder(dir)?;
        let mut model = Self::build(raw, ParamStore::for_checkpoint(device.clone()), 0)?;
        let (mut tensors, file) = read_weights(dir)?;
        fill_shared(&mut tensors);
        for name in TIED_COPIES {
            tensors.remove(name);
        }
        if model.config.tie_word_embeddings {
            tensors.remove("lm_head.weight");
        }
        load_checkpoint(&model.params, &tensors, &file, &|_| false)?;
        model.tokenizer = folder_tokenizer(dir)?;
        model.generation = GenerationConfig::from_folder(dir, model.generation.clone())?;
        Ok(model)
    }

    /// Writes a folder transformers loads (`config.json` as read, `model.safetensors`, the
    /// tokenizer when there is one, `generation_config.json`); atomic.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        super::save_hf_folder(
            dir,
            &self.raw_config,
            &self.generation,
            super::SavedTokenizer::Json(self.tokenizer.as_ref()),
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

    /// Embeddings of id rows (batch, seq, d).
    fn embed(&self, ids: &[Vec<u32>]) -> Result<Tensor> {
        crate::nn::embedding::lookup(&self.shared, ids)
    }

    /// The encoder's last hidden states (batch, seq, d) of id rows and their attention mask.
    pub fn encode(
        &self,
        ids: &[Vec<u32>],
        mask: &[Vec<u32>],
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        self.encoder.encode(&self.embed(ids)?, mask, ctx)
    }

    /// Vocabulary logits of decoder states (…, d).
    fn lm_logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let hidden = if self.config.scales_output() {
            (hidden * (self.config.d_model as f64).powf(-0.5))?
        } else {
            hidden.clone()
        };
        self.output.forward(&hidden)
    }

    /// Logits (batch, target, vocab) of teacher-forced `decoder_ids` (with their mask) given the
    /// sources `ids` (with theirs) — transformers' `model(input_ids, attention_mask,
    /// decoder_input_ids, decoder_attention_mask).logits`.
    pub fn forward(
        &self,
        ids: &[Vec<u32>],
        mask: &[Vec<u32>],
        decoder_ids: &[Vec<u32>],
        decoder_mask: &[Vec<u32>],
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        let encoded = self.encode(ids, mask, ctx)?;
        let memories = self.decoder.memories(&encoded, mask)?;
        let y = self.embed(decoder_ids)?;
        let hidden = self
            .decoder
            .decode(&y, decoder_mask, &memories, None, ctx)?;
        self.lm_logits(&hidden)
    }
}

impl Generator for T5ForConditionalGeneration {
    type Cache = DecoderState;

    /// Unused: the cache is made by [`start`](Generator::start), from the sources.
    fn new_cache(&self) -> DecoderState {
        DecoderState::empty()
    }

    /// Encodes the sources once (padded on the right) and starts every row from
    /// `decoder_start_token_id`.
    fn start(&self, inputs: &[Vec<u32>], _g: &GenerationConfig) -> Result<Start<DecoderState>> {
        let pad = self.config.pad_token_id.unwrap_or(0);
        DecoderState::start_from_sources(
            inputs,
            pad,
            self.config.decoder_start(),
            self.decoder.len(),
            |ids, mask| {
                let encoded = self.encode(ids, mask, &mut ForwardCtx::inference())?;
                self.decoder.memories(&encoded, mask)
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
        let y = self.embed(ids)?;
        let mut ctx = ForwardCtx::eval();
        let hidden = self.decoder.decode(
            &y,
            attention_mask,
            &cache.memories,
            Some(&mut cache.self_attention),
            &mut ctx,
        )?;
        let last = hidden.narrow(1, hidden.dim(1)? - 1, 1)?;
        self.lm_logits(&last)
    }

    /// Relative positions have no limit; this bounds the generated length only.
    fn context_size(&self) -> usize {
        1 << 16
    }

    fn tokenizer(&self) -> Result<&SubwordTokenizer> {
        self.tokenizer
            .as_ref()
            .ok_or_else(|| Error::config("tokenizer", "the T5 folder has no tokenizer.json"))
    }
}

/// The shared embedding (`shared.weight`), drawn as transformers draws it.
fn shared_embedding(vb: &crate::nn::ParamBuilder, config: &T5Config) -> Result<Tensor> {
    vb.param(
        "shared.weight",
        &[config.vocab_size, config.d_model],
        Init::Normal { std: 1.0 },
    )
}

/// Checkpoints that hold only a tied copy of the shared embedding give it as `shared.weight`.
fn fill_shared<S: Clone>(tensors: &mut std::collections::HashMap<String, S>) {
    if !tensors.contains_key("shared.weight") {
        if let Some(t) = TIED_COPIES.iter().find_map(|n| tensors.get(*n)).cloned() {
            tensors.insert("shared.weight".into(), t);
        }
    }
}

/// A T5 folder's tokenizer: `tokenizer.json`, else `spiece.model`, else none.
fn folder_tokenizer(dir: &Path) -> Result<Option<SubwordTokenizer>> {
    match folder::load_tokenizer(dir)? {
        Some(t) => Ok(Some(t)),
        None => spm_tokenizer(dir),
    }
}

/// T5's tokenizer from `spiece.model` when the folder has no `tokenizer.json`: `</s>` appended,
/// and the `extra_ids` sentinels of `tokenizer_config.json` (100 when it does not say).
pub(crate) fn spm_tokenizer(dir: &Path) -> Result<Option<SubwordTokenizer>> {
    let path = dir.join("spiece.model");
    if !path.exists() {
        return Ok(None);
    }
    let config_path = dir.join("tokenizer_config.json");
    let extra_ids = if config_path.exists() {
        let v: serde_json::Value = folder::read_json_file(&config_path)?;
        v.get("extra_ids").and_then(|e| e.as_u64()).unwrap_or(100) as usize
    } else {
        100
    };
    let options = crate::text::sentencepiece::SpmOptions {
        eos: Some("</s>"),
        special: &["<pad>", "</s>", "<unk>"],
        added: &[],
        extra_ids,
    };
    Ok(Some(crate::text::sentencepiece::from_spm_file(
        &path, &options,
    )?))
}

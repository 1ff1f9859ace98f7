//! A Transformer translator as the paper builds one (§3.4–3.5): one BPE vocabulary shared by
//! both languages, one embedding matrix shared by the encoder, the decoder and the output layer
//! (scaled by √d_model on the way in), sinusoidal positions, the [`Transformer`] stacks, and a
//! label-smoothed cross-entropy. Sources are `tokens + </s>`; the decoder reads `<s> + tokens`
//! and learns `tokens + </s>`. Saved as a folder: `config.json`, `model.safetensors`,
//! `tokenizer.json`, `generation_config.json`.

use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::transformer::{DecoderState, Transformer, TransformerShape};
use super::{TranslationExample, Translator};
use crate::error::{Error, Result};
use crate::generation::{GenerationCache, GenerationConfig, Generator, Start};
use crate::models::attention_maps::{
    first_row_maps, token_labels, AttentionMaps, EncoderDecoderAttention, LayerMaps,
};
use crate::models::folder;
use crate::nn::loss::smoothed_cross_entropy;
use crate::nn::positional::sinusoidal;
use crate::nn::projection::{Projection, Weight};
use crate::nn::AttentionKind;
use crate::nn::{dropout, ForwardCtx, Init, ParamStore};
use crate::text::SubwordTokenizer;
use crate::train::{StepOutput, Trainable};

/// The `model_type` of a translator folder.
pub const MODEL_TYPE: &str = "prosa-transformer-translator";

/// The special tokens of a translator's vocabulary, in id order.
pub const SPECIAL_TOKENS: [&str; 3] = ["<pad>", "<s>", "</s>"];

/// The hyperparameters (the folder's `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranslatorConfig {
    /// [`MODEL_TYPE`].
    pub model_type: String,
    /// Vocabulary size (shared by both languages).
    pub vocab_size: usize,
    /// Width `d_model`.
    pub d_model: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Encoder layers.
    pub num_encoder_layers: usize,
    /// Decoder layers.
    pub num_decoder_layers: usize,
    /// Feed-forward width.
    pub dim_feedforward: usize,
    /// Dropout.
    pub dropout: f32,
    /// Pre-LN instead of post-LN.
    pub norm_first: bool,
    /// Longest sequence (source or target, special tokens included).
    pub max_positions: usize,
    /// Label smoothing ε of the training loss.
    pub label_smoothing: f32,
    /// `<pad>`.
    pub pad_token_id: u32,
    /// `<s>`, the decoder start token.
    pub bos_token_id: u32,
    /// `</s>`.
    pub eos_token_id: u32,
}

impl TranslatorConfig {
    fn shape(&self) -> TransformerShape {
        TransformerShape {
            d_model: self.d_model,
            num_heads: self.num_heads,
            num_encoder_layers: self.num_encoder_layers,
            num_decoder_layers: self.num_decoder_layers,
            dim_feedforward: self.dim_feedforward,
            dropout: self.dropout,
            norm_first: self.norm_first,
            layer_norm_eps: 1e-5,
        }
    }

    /// Checks the sizes before anything is allocated.
    pub fn validate(&self) -> std::result::Result<(), String> {
        crate::models::limits::check_sizes(&[
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("num_heads", self.num_heads),
            ("num_encoder_layers", self.num_encoder_layers),
            ("num_decoder_layers", self.num_decoder_layers),
            ("dim_feedforward", self.dim_feedforward),
            ("max_positions", self.max_positions),
        ])?;
        if !self.d_model.is_multiple_of(self.num_heads) {
            return Err(format!(
                "d_model {} is not a multiple of num_heads {}",
                self.d_model, self.num_heads
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) || !(0.0..1.0).contains(&self.label_smoothing) {
            return Err("dropout and label_smoothing must be in [0, 1)".into());
        }
        Ok(())
    }
}

/// The Transformer translator.
pub struct TransformerTranslator {
    /// The hyperparameters.
    pub config: TranslatorConfig,
    /// The shared vocabulary.
    pub tokenizer: SubwordTokenizer,
    /// Decoding defaults (`generation_config.json`).
    pub generation: GenerationConfig,
    /// Validation pairs translated (greedily) for the BLEU of each evaluation.
    pub bleu_examples: usize,
    params: ParamStore,
    embedding: Tensor,
    /// The output layer: the shared embedding.
    output: Projection,
    /// The sinusoidal encodings of every position (max_positions, d), computed once.
    position_table: Tensor,
    transformer: Transformer,
}

impl TransformerTranslator {
    /// A fresh model for `tokenizer`'s vocabulary (weights seeded by `seed`).
    pub fn new(
        config: TranslatorConfig,
        tokenizer: SubwordTokenizer,
        device: &Device,
        seed: u64,
    ) -> Result<Self> {
        config
            .validate()
            .map_err(|message| Error::config("model", message))?;
        let params = ParamStore::new(device.clone());
        let vb = params.builder(seed);
        let embedding = vb.param(
            "embedding.weight",
            &[config.vocab_size, config.d_model],
            Init::Normal {
                std: (config.d_model as f64).powf(-0.5),
            },
        )?;
        let transformer = Transformer::new(&vb.pp("transformer"), &config.shape())?;
        let generation = GenerationConfig {
            eos_token_ids: vec![config.eos_token_id],
            pad_token_id: Some(config.pad_token_id),
            bos_token_id: Some(config.bos_token_id),
            ..GenerationConfig::default()
        };
        let all: Vec<u32> = (0..config.max_positions as u32).collect();
        let position_table = sinusoidal(&all, config.d_model, device)?;
        Ok(Self {
            config,
            tokenizer,
            generation,
            bleu_examples: 200,
            params,
            output: Projection::new(Weight::Dense(embedding.clone()), None),
            embedding,
            position_table,
            transformer,
        })
    }

    /// Loads a folder saved by [`save_pretrained`](Self::save_pretrained).
    pub fn from_pretrained(dir: &Path, device: &Device) -> Result<Self> {
        let config: TranslatorConfig = folder::read_config(dir)?;
        if config.model_type != MODEL_TYPE {
            return Err(Error::folder(
                dir.join("config.json"),
                format!(
                    "model_type \"{}\" is not a translator ({MODEL_TYPE})",
                    config.model_type
                ),
            ));
        }
        config
            .validate()
            .map_err(|message| Error::folder(dir.join("config.json"), message))?;
        let mut model = Self::new(config, super::load_tokenizer(dir)?, device, 0)?;
        super::load_weights(dir, &model.params)?;
        model.generation = GenerationConfig::from_folder(dir, model.generation.clone())?;
        Ok(model)
    }

    /// Every layer's and head's attention while translating `text` greedily (at most
    /// `max_new_tokens` tokens): the output is generated, then read again with teacher forcing
    /// (`<s> y_1 … y_{T−1}` writing `y_1 … y_T`) recording each attention call.
    pub fn attention(&self, text: &str, max_new_tokens: usize) -> Result<EncoderDecoderAttention> {
        let c = &self.config;
        let source = self.encode_source(text)?;
        let g = GenerationConfig {
            max_new_tokens: Some(max_new_tokens.max(1)),
            num_beams: 1,
            do_sample: false,
            num_return_sequences: 1,
            ..self.generation.clone()
        };
        let generated = crate::generation::generate(self, std::slice::from_ref(&source), &g, None)?
            .new_tokens
            .remove(0);
        let mut read = vec![c.bos_token_id];
        read.extend(&generated[..generated.len().saturating_sub(1)]);
        let mut ctx = ForwardCtx::recording_attention();
        let positions = |n: usize| vec![(0..n as u32).collect::<Vec<u32>>()];
        let src = self.embed(
            std::slice::from_ref(&source),
            &positions(source.len()),
            &mut ctx,
        )?;
        let tgt = self.embed(&[read.clone()], &positions(read.len()), &mut ctx)?;
        let ones = |n: usize| vec![vec![1u32; n]];
        self.transformer
            .forward(&src, &ones(source.len()), &tgt, &ones(read.len()), &mut ctx)?;
        let selfs = first_row_maps(&ctx.attention_maps(AttentionKind::SelfAttention))?;
        let (encoder, decoder) = selfs.split_at(c.num_encoder_layers.min(selfs.len()));
        let source_labels = token_labels(&self.tokenizer, &source);
        let target_labels = token_labels(&self.tokenizer, &generated);
        let maps = |queries: &[String], keys: &[String], layers: Vec<LayerMaps>| AttentionMaps {
            queries: queries.to_vec(),
            keys: keys.to_vec(),
            layers,
        };
        Ok(EncoderDecoderAttention {
            encoder: maps(&source_labels, &source_labels, encoder.to_vec()),
            decoder: maps(
                &target_labels,
                &token_labels(&self.tokenizer, &read),
                decoder.to_vec(),
            ),
            cross: maps(
                &target_labels,
                &source_labels,
                first_row_maps(&ctx.attention_maps(AttentionKind::Cross))?,
            ),
            generated,
        })
    }

    /// Writes the folder atomically.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        super::save_folder(
            dir,
            &self.config,
            &self.tokenizer,
            &self.generation,
            &self.params,
        )
    }

    /// The trainable parameters.
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// `E[ids]·√d + PE(positions)`, then dropout: (batch, seq, d).
    fn embed(
        &self,
        ids: &[Vec<u32>],
        positions: &[Vec<u32>],
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        let (batch, seq) = (ids.len(), ids.first().map_or(0, Vec::len));
        let d = self.config.d_model;
        let device = self.embedding.device();
        let pos: Vec<u32> = positions.iter().flatten().copied().collect();
        if let Some(&p) = pos
            .iter()
            .max()
            .filter(|&&p| p as usize >= self.config.max_positions)
        {
            return Err(Error::config(
                "max_positions",
                format!(
                    "position {p} is beyond the model's {} positions",
                    self.config.max_positions
                ),
            ));
        }
        let words =
            crate::nn::embedding::lookup(&self.embedding, ids)?.reshape((batch * seq, d))?;
        let encodings = self
            .position_table
            .index_select(&Tensor::from_vec(pos, batch * seq, device)?, 0)?;
        let x = ((words * (d as f64).sqrt())? + encodings)?;
        dropout(&x.reshape((batch, seq, d))?, self.config.dropout, ctx)
    }

    /// Output logits of decoder states (…, d) through the shared embedding: (…, vocab).
    fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.output.forward(hidden)
    }

    /// The loss of a batch of pairs, and the number of predicted tokens.
    fn batch_loss(&self, batch: &[&TranslationExample], ctx: &mut ForwardCtx) -> Result<Tensor> {
        let c = &self.config;
        let limit = c.max_positions - 1;
        let sources: Vec<Vec<u32>> = batch.iter().map(|e| e.source.clone()).collect();
        let (src, src_mask) = super::pad_right(&sources, c.pad_token_id);
        let decoder_rows: Vec<Vec<u32>> = batch
            .iter()
            .map(|e| {
                let mut r = vec![c.bos_token_id];
                r.extend(e.target.iter().take(limit));
                r
            })
            .collect();
        let (tgt, tgt_mask) = super::pad_right(&decoder_rows, c.pad_token_id);
        let positions = |rows: &[Vec<u32>]| -> Vec<Vec<u32>> {
            rows.iter().map(|r| (0..r.len() as u32).collect()).collect()
        };
        let src_x = self.embed(&src, &positions(&src), ctx)?;
        let tgt_x = self.embed(&tgt, &positions(&tgt), ctx)?;
        let hidden = self
            .transformer
            .forward(&src_x, &src_mask, &tgt_x, &tgt_mask, ctx)?;
        let (b, t, _) = hidden.dims3()?;
        let logits = self.logits(&hidden)?.reshape((b * t, c.vocab_size))?;
        // Position i predicts target token i, and the last real position predicts </s>.
        let labels = super::decoder_labels(batch, t, limit, c.eos_token_id);
        smoothed_cross_entropy(&logits, &labels, c.label_smoothing)
    }
}

impl Trainable for TransformerTranslator {
    type Example = TranslationExample;

    fn params(&self) -> &ParamStore {
        &self.params
    }

    fn forward_batch(
        &self,
        batch: &[&TranslationExample],
        ctx: &mut ForwardCtx,
    ) -> Result<StepOutput> {
        Ok(StepOutput {
            loss: self.batch_loss(batch, ctx)?,
            predictions: None,
            targets: None,
        })
    }

    fn reports_perplexity(&self) -> bool {
        true
    }

    fn example_length(&self, e: &TranslationExample) -> Option<usize> {
        Some(e.length())
    }

    fn reports_predictions(&self) -> bool {
        false
    }

    fn extra_metric_names(&self) -> Vec<&'static str> {
        vec!["bleu"]
    }

    /// BLEU of greedy translations of the first `bleu_examples` evaluation pairs.
    fn extra_metrics(
        &self,
        examples: &[TranslationExample],
    ) -> Result<std::collections::BTreeMap<String, f64>> {
        super::validation_bleu(self, examples, self.bleu_examples)
    }
}

impl Translator for TransformerTranslator {
    fn generation(&self) -> &GenerationConfig {
        &self.generation
    }

    fn max_positions(&self) -> usize {
        self.config.max_positions
    }

    fn eos_token_id(&self) -> u32 {
        self.config.eos_token_id
    }

    fn save_pretrained(&self, dir: &Path) -> Result<()> {
        TransformerTranslator::save_pretrained(self, dir)
    }
}

impl GenerationCache for DecoderState {
    fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        DecoderState::select_rows(self, rows)
    }

    /// The encoder's keys and values are the same for every beam of a source: only the
    /// self-attention cache follows the beams.
    fn reorder_beams(&mut self, rows: &[u32]) -> Result<()> {
        self.self_attention.select_rows(rows)
    }
}

impl Generator for TransformerTranslator {
    type Cache = DecoderState;

    /// Unused: a translator's cache is made by [`start`](Generator::start), from the sources.
    fn new_cache(&self) -> DecoderState {
        DecoderState::empty()
    }

    /// Encodes the sources once (padded on the right) and starts every row from `<s>`.
    fn start(&self, inputs: &[Vec<u32>], _g: &GenerationConfig) -> Result<Start<DecoderState>> {
        let c = &self.config;
        let longest = inputs.iter().map(Vec::len).max().unwrap_or(1).max(1);
        if longest > c.max_positions {
            return Err(Error::config(
                "source",
                format!(
                    "{longest} tokens, but the model has {} positions",
                    c.max_positions
                ),
            ));
        }
        let mut ctx = ForwardCtx::eval();
        let (ids, mask) = super::pad_right(inputs, c.pad_token_id);
        let positions: Vec<Vec<u32>> = ids.iter().map(|r| (0..r.len() as u32).collect()).collect();
        let x = self.embed(&ids, &positions, &mut ctx)?;
        let memory = self.transformer.encode(&x, &mask, &mut ctx)?;
        Ok(Start {
            cache: self.transformer.decoder_state(&memory, &mask)?,
            ids: vec![vec![c.bos_token_id]; inputs.len()],
            mask: vec![vec![1]; inputs.len()],
            pad: c.pad_token_id,
        })
    }

    fn next_token_logits(
        &self,
        ids: &[Vec<u32>],
        positions: &[Vec<u32>],
        attention_mask: &[Vec<u32>],
        cache: &mut DecoderState,
    ) -> Result<Tensor> {
        let mut ctx = ForwardCtx::eval();
        let y = self.embed(ids, positions, &mut ctx)?;
        let hidden = self
            .transformer
            .decode(&y, attention_mask, cache, true, &mut ctx)?;
        let last = hidden.narrow(1, hidden.dim(1)? - 1, 1)?;
        self.logits(&last)
    }

    fn context_size(&self) -> usize {
        self.config.max_positions
    }

    fn tokenizer(&self) -> Result<&SubwordTokenizer> {
        Ok(&self.tokenizer)
    }
}

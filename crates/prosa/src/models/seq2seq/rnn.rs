//! The RNN encoder–decoder of the e-book's Unit II, with or without attention:
//!
//! ```text
//! encoder:   h_1 … h_S = GRU(E[x_1] … E[x_S])                the source, read once
//! decoder:   c_t = h_S                                        no attention: one fixed summary
//!            c_t = Σ_j α_tj h_j,  α_t = attention(s_{t−1}, h)  Bahdanau / Luong attention
//!            s_t = GRUCell([E[y_{t−1}]; c_t], s_{t−1}),  s_0 = h_S
//!            p(y_t) = softmax(W_o [s_t; c_t] + b_o)
//! ```
//!
//! Without attention every target word depends on the source only through `h_S` — the
//! bottleneck attention removes. Trained with teacher forcing (the decoder reads the reference
//! `y_{t−1}`); one BPE vocabulary and one embedding matrix serve both languages.

use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{TranslationExample, Translator};
use crate::error::{Error, Result};
use crate::generation::{GenerationCache, GenerationConfig, Generator, Start};
use crate::models::folder;
use crate::nn::additive_attention::{AdditiveAttention, Keys, Score};
use crate::nn::attention::padding_bias;
use crate::nn::gru_cell::GruCell;
use crate::nn::loss::smoothed_cross_entropy;
use crate::nn::projection::Projection;
use crate::nn::recurrent::{CellKind, Recurrent, RecurrentConfig};
use crate::nn::{dropout, ForwardCtx, Init, ParamStore};
use crate::text::SubwordTokenizer;
use crate::train::{StepOutput, Trainable};

/// The `model_type` of an RNN translator folder.
pub const MODEL_TYPE: &str = "prosa-rnn-translator";

/// The hyperparameters (the folder's `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RnnTranslatorConfig {
    /// [`MODEL_TYPE`].
    pub model_type: String,
    /// Vocabulary size (shared by both languages).
    pub vocab_size: usize,
    /// Width of the embeddings.
    pub embedding_dim: usize,
    /// Width of the encoder and decoder states.
    pub hidden_size: usize,
    /// The attention (`None`: the fixed-summary baseline).
    pub attention: Option<Score>,
    /// Dropout on embeddings and decoder outputs.
    pub dropout: f32,
    /// Longest source or target (special tokens included).
    pub max_positions: usize,
    /// Label smoothing ε of the loss.
    pub label_smoothing: f32,
    /// `<pad>`.
    pub pad_token_id: u32,
    /// `<s>`.
    pub bos_token_id: u32,
    /// `</s>`.
    pub eos_token_id: u32,
}

/// The tokens a decoder generated and, for each, its attention weights over the source.
pub type Alignment = (Vec<u32>, Vec<Vec<f32>>);

/// The RNN translator.
pub struct RnnTranslator {
    /// The hyperparameters.
    pub config: RnnTranslatorConfig,
    /// The shared vocabulary.
    pub tokenizer: SubwordTokenizer,
    /// Decoding defaults.
    pub generation: GenerationConfig,
    /// Validation pairs translated (greedily) for the BLEU of each evaluation.
    pub bleu_examples: usize,
    params: ParamStore,
    embedding: Tensor,
    encoder: Recurrent,
    decoder: GruCell,
    attention: Option<AdditiveAttention>,
    output: Projection,
}

/// What decoding keeps between steps, one row per sequence.
pub struct RnnState {
    /// The decoder state `s_t` (rows, hidden).
    pub state: Tensor,
    /// The encoder states for attention, or the fixed summary `h_S` (rows, hidden).
    pub memory: Memory,
}

/// The encoder's output as the decoder reads it.
pub enum Memory {
    /// Every encoder state, for attention.
    Attended(Keys),
    /// The last encoder state only.
    Summary(Tensor),
}

impl GenerationCache for RnnState {
    fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        let index = Tensor::new(rows, self.state.device())?;
        self.state = self.state.contiguous()?.index_select(&index, 0)?;
        match &mut self.memory {
            Memory::Attended(keys) => keys.select_rows(rows)?,
            Memory::Summary(h) => *h = h.contiguous()?.index_select(&index, 0)?,
        }
        Ok(())
    }
}

impl RnnTranslator {
    /// A fresh model for `tokenizer`'s vocabulary (weights seeded by `seed`).
    pub fn new(
        config: RnnTranslatorConfig,
        tokenizer: SubwordTokenizer,
        device: &Device,
        seed: u64,
    ) -> Result<Self> {
        crate::models::limits::check_sizes(&[
            ("vocab_size", config.vocab_size),
            ("embedding_dim", config.embedding_dim),
            ("hidden_size", config.hidden_size),
            ("max_positions", config.max_positions),
        ])
        .map_err(|m| Error::config("model", m))?;
        let params = ParamStore::new(device.clone());
        let vb = params.builder(seed);
        let (e, h) = (config.embedding_dim, config.hidden_size);
        let embedding = vb.param(
            "embedding.weight",
            &[config.vocab_size, e],
            Init::Normal { std: 0.1 },
        )?;
        let encoder = Recurrent::new(
            RecurrentConfig {
                cell: CellKind::Gru,
                input_size: e,
                hidden_size: h,
                num_layers: 1,
                bidirectional: false,
                dropout: 0.0,
            },
            &vb.pp("encoder"),
        )?;
        let decoder = GruCell::new(&vb.pp("decoder"), e + h, h)?;
        let attention = config
            .attention
            .map(|score| AdditiveAttention::new(&vb.pp("attention"), score, h, h, h))
            .transpose()?;
        let b = 1.0 / ((2 * h) as f64).sqrt();
        let output = Projection::dense(
            &vb,
            "output",
            2 * h,
            config.vocab_size,
            Init::Uniform { lo: -b, hi: b },
            true,
        )?;
        let generation = GenerationConfig {
            eos_token_ids: vec![config.eos_token_id],
            pad_token_id: Some(config.pad_token_id),
            bos_token_id: Some(config.bos_token_id),
            ..GenerationConfig::default()
        };
        Ok(Self {
            config,
            tokenizer,
            generation,
            bleu_examples: 200,
            params,
            embedding,
            encoder,
            decoder,
            attention,
            output,
        })
    }

    /// Loads a folder saved by [`Translator::save_pretrained`].
    pub fn from_pretrained(dir: &Path, device: &Device) -> Result<Self> {
        let config: RnnTranslatorConfig = folder::read_config(dir)?;
        let mut model = Self::new(config, super::load_tokenizer(dir)?, device, 0)?;
        super::load_weights(dir, &model.params)?;
        model.generation = GenerationConfig::from_folder(dir, model.generation.clone())?;
        Ok(model)
    }

    /// Embeddings of rows of ids: (rows, len, e).
    fn embed(&self, ids: &[Vec<u32>], ctx: &mut ForwardCtx) -> Result<Tensor> {
        let x = crate::nn::embedding::lookup(&self.embedding, ids)?;
        dropout(&x, self.config.dropout, ctx)
    }

    /// Encodes right-padded sources: the decoder's starting state.
    fn encode(&self, sources: &[Vec<u32>], ctx: &mut ForwardCtx) -> Result<RnnState> {
        let longest = sources.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let mask: Vec<Vec<u32>> = sources
            .iter()
            .map(|r| (0..longest).map(|i| u32::from(i < r.len())).collect())
            .collect();
        let ids: Vec<Vec<u32>> = sources
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.resize(longest, self.config.pad_token_id);
                r
            })
            .collect();
        let x = self.embed(&ids, ctx)?;
        let device = x.device().clone();
        let flat_mask: Vec<f32> = mask.iter().flatten().map(|&m| m as f32).collect();
        let mask_tensor = Tensor::from_vec(flat_mask, (ids.len(), longest), &device)?;
        let out = self.encoder.forward(&x, Some(&mask_tensor), ctx)?;
        let memory = match &self.attention {
            Some(attention) => {
                let bias = padding_bias(&mask, x.dtype(), &device)?.squeeze(1)?;
                Memory::Attended(attention.keys(&out.outputs, &bias)?)
            }
            None => Memory::Summary(out.last.clone()),
        };
        Ok(RnnState {
            state: out.last,
            memory,
        })
    }

    /// One decoder step from the previous tokens `y` (rows,): the new state and the output
    /// features `[s_t; c_t]` (rows, 2h); also the attention weights, when there is attention.
    fn step(
        &self,
        y: &[u32],
        st: &mut RnnState,
        ctx: &mut ForwardCtx,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let rows: Vec<Vec<u32>> = y.iter().map(|&t| vec![t]).collect();
        let e = self.embed(&rows, ctx)?.squeeze(1)?;
        let (context, weights) = match (&st.memory, &self.attention) {
            (Memory::Attended(keys), Some(attention)) => {
                let (c, w) = attention.forward(&st.state, keys)?;
                (c, Some(w))
            }
            (Memory::Summary(h), _) => (h.clone(), None),
            (Memory::Attended(_), None) => {
                return Err(Error::config(
                    "attention",
                    "attended memory without attention",
                ))
            }
        };
        st.state = self
            .decoder
            .step(&Tensor::cat(&[&e, &context], 1)?, &st.state)?;
        let features = Tensor::cat(&[&st.state, &context], 1)?;
        Ok((dropout(&features, self.config.dropout, ctx)?, weights))
    }

    /// The attention weights (target step × source position) of translating `source` greedily,
    /// with the tokens generated; `None` without attention.
    pub fn alignment(&self, source: &[u32], max_new_tokens: usize) -> Result<Option<Alignment>> {
        if self.attention.is_none() {
            return Ok(None);
        }
        let mut ctx = ForwardCtx::eval();
        let mut st = self.encode(&[source.to_vec()], &mut ctx)?;
        let (mut tokens, mut rows) = (Vec::new(), Vec::new());
        let mut previous = self.config.bos_token_id;
        for _ in 0..max_new_tokens {
            let (features, weights) = self.step(&[previous], &mut st, &mut ctx)?;
            let logits = self
                .output
                .forward(&features)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let token = crate::generation::logits::argmax(&logits);
            if let Some(w) = weights {
                rows.push(w.flatten_all()?.to_vec1::<f32>()?);
            }
            tokens.push(token);
            if token == self.config.eos_token_id {
                break;
            }
            previous = token;
        }
        Ok(Some((tokens, rows)))
    }
}

impl Trainable for RnnTranslator {
    type Example = TranslationExample;

    fn params(&self) -> &ParamStore {
        &self.params
    }

    /// Teacher forcing: the decoder reads `<s> y_1 … y_{T−1}` and learns `y_1 … y_T </s>`.
    fn forward_batch(
        &self,
        batch: &[&TranslationExample],
        ctx: &mut ForwardCtx,
    ) -> Result<StepOutput> {
        let c = &self.config;
        let limit = c.max_positions - 1;
        let sources: Vec<Vec<u32>> = batch.iter().map(|e| e.source.clone()).collect();
        let mut st = self.encode(&sources, ctx)?;
        let steps = batch
            .iter()
            .map(|e| e.target.len().min(limit) + 1)
            .max()
            .unwrap_or(1);
        let mut features = Vec::with_capacity(steps);
        for t in 0..steps {
            let previous: Vec<u32> = batch
                .iter()
                .map(|e| match t {
                    0 => c.bos_token_id,
                    _ => e.target.get(t - 1).copied().unwrap_or(c.pad_token_id),
                })
                .collect();
            features.push(self.step(&previous, &mut st, ctx)?.0);
        }
        // (rows, steps, 2h) → logits (rows·steps, vocab), row-major as the labels.
        let features = Tensor::stack(&features, 1)?;
        let (rows, steps, width) = features.dims3()?;
        let logits = self
            .output
            .forward(&features.reshape((rows * steps, width))?)?;
        Ok(StepOutput {
            loss: smoothed_cross_entropy(
                &logits,
                &super::decoder_labels(batch, steps, limit, c.eos_token_id),
                c.label_smoothing,
            )?,
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

    fn extra_metrics(
        &self,
        examples: &[TranslationExample],
    ) -> Result<std::collections::BTreeMap<String, f64>> {
        super::validation_bleu(self, examples, self.bleu_examples)
    }
}

impl Generator for RnnTranslator {
    type Cache = RnnState;

    /// Unused: the state is made by [`start`](Generator::start), from the sources.
    fn new_cache(&self) -> RnnState {
        let empty = Tensor::zeros(
            (0, self.config.hidden_size),
            candle_core::DType::F32,
            self.embedding.device(),
        )
        .expect("an empty tensor");
        RnnState {
            state: empty.clone(),
            memory: Memory::Summary(empty),
        }
    }

    fn start(&self, inputs: &[Vec<u32>], _g: &GenerationConfig) -> Result<Start<RnnState>> {
        let c = &self.config;
        Ok(Start {
            cache: self.encode(inputs, &mut ForwardCtx::eval())?,
            ids: vec![vec![c.bos_token_id]; inputs.len()],
            mask: vec![vec![1]; inputs.len()],
            pad: c.pad_token_id,
        })
    }

    fn next_token_logits(
        &self,
        ids: &[Vec<u32>],
        _positions: &[Vec<u32>],
        _attention_mask: &[Vec<u32>],
        cache: &mut RnnState,
    ) -> Result<Tensor> {
        let previous: Vec<u32> = ids
            .iter()
            .map(|r| r.last().copied().unwrap_or(self.config.bos_token_id))
            .collect();
        let (features, _) = self.step(&previous, cache, &mut ForwardCtx::eval())?;
        Ok(self.output.forward(&features)?.unsqueeze(1)?)
    }

    fn context_size(&self) -> usize {
        self.config.max_positions
    }

    fn tokenizer(&self) -> Result<&SubwordTokenizer> {
        Ok(&self.tokenizer)
    }
}

impl Translator for RnnTranslator {
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
        super::save_folder(
            dir,
            &self.config,
            &self.tokenizer,
            &self.generation,
            &self.params,
        )
    }
}

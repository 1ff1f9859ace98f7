//! The attention lesson's Transformer classifier (Keras' "text classification with
//! Transformer"): word ids → token + position embeddings → Transformer block(s) → global
//! average pooling → dropout → dense (ReLU) → dropout → dense → softmax.
//!
//! The block is `nn.TransformerEncoderLayer` (post-LN: `norm1(x + attention(x))`,
//! `norm2(x + linear2(relu(linear1(x))))`, PyTorch's names, the heads splitting the width as in
//! the paper). Unlike the lesson, which pads every text to `maxlen` and lets attention and the
//! average see the padding, padding is masked in both: a text's prediction does not depend on
//! what it is batched with.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};

use super::attention_maps::{first_row_maps, AttentionMaps};
use super::folder::{self, ModelFolder};
use super::seq2seq::transformer::{EncoderLayer, TransformerShape};
use super::TextClassifier;
use crate::data::LabelMap;
use crate::error::{Error, Result};
use crate::nn::attention::padding_bias;
use crate::nn::loss::class_weight_tensor;
use crate::nn::projection::Projection;
use crate::nn::{dropout, AttentionKind, ForwardCtx, Init, ParamStore};
use crate::text::WordTokenizer;
use crate::train::{StepOutput, Trainable};

/// The `model_type` written in `config.json`.
pub const MODEL_TYPE: &str = "prosa-transformer-classifier";

/// `config.json` of a Transformer classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransformerClassifierConfig {
    /// Always [`MODEL_TYPE`].
    pub model_type: String,
    /// Rows of the token embedding (word ids, padding 0 included).
    pub vocab_size: usize,
    /// Width of the embeddings and the block (the lesson's `embed_dim`).
    pub embedding_dim: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Width of the block's feed-forward layer (the lesson's `ff_dim`).
    pub ff_dim: usize,
    /// Transformer blocks.
    pub num_layers: usize,
    /// Width of the dense layer before the output (the lesson's 20).
    pub dense_size: usize,
    /// Dropout in the block and before each dense layer.
    pub dropout: f32,
    /// Texts are cut to this many words (and positions learned for them).
    pub max_len: usize,
    /// Layer-norm ε (Keras' LayerNormalization(epsilon=1e-6)).
    pub layer_norm_eps: f64,
    /// Number of classes.
    pub num_labels: usize,
    /// Class names by id.
    pub id2label: BTreeMap<String, String>,
    /// Ids by class name.
    #[serde(default)]
    pub label2id: BTreeMap<String, u32>,
    /// Per-class weights of the training loss.
    #[serde(default)]
    pub class_weights: Option<Vec<f32>>,
}

impl TransformerClassifierConfig {
    /// The lesson's sizes (`embed_dim` 32, 2 heads, `ff_dim` 32, one block, dense 20, dropout
    /// 0.1) over `vocab_size` word ids, texts cut to 64 words.
    pub fn new(vocab_size: usize, labels: &LabelMap) -> Self {
        Self {
            model_type: MODEL_TYPE.into(),
            vocab_size,
            embedding_dim: 32,
            num_heads: 2,
            ff_dim: 32,
            num_layers: 1,
            dense_size: 20,
            dropout: 0.1,
            max_len: 64,
            layer_norm_eps: 1e-6,
            num_labels: labels.len(),
            id2label: labels.id2label(),
            label2id: labels.label2id(),
            class_weights: None,
        }
    }

    /// What is wrong with the sizes, if anything.
    fn validate(&self) -> std::result::Result<(), String> {
        if self.num_heads == 0 || !self.embedding_dim.is_multiple_of(self.num_heads) {
            return Err(format!(
                "embedding_dim {} must be a multiple of num_heads {}",
                self.embedding_dim, self.num_heads
            ));
        }
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("ff_dim", self.ff_dim),
            ("num_layers", self.num_layers),
            ("dense_size", self.dense_size),
            ("max_len", self.max_len),
        ] {
            if v == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.num_labels < 2 {
            return Err(format!(
                "a classifier needs at least 2 classes, found {}",
                self.num_labels
            ));
        }
        Ok(())
    }
}

/// One prepared example: word ids (at most `max_len`, no padding) and the class id.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformerExample {
    /// Word ids.
    pub ids: Vec<u32>,
    /// Class id.
    pub label: u32,
}

/// The Transformer text classifier.
pub struct TransformerClassifier {
    config: TransformerClassifierConfig,
    labels: LabelMap,
    tokenizer: WordTokenizer,
    params: ParamStore,
    token_embedding: Tensor,
    position_embedding: Tensor,
    layers: Vec<EncoderLayer>,
    dense: Projection,
    classifier: Projection,
    class_weights: Option<Tensor>,
}

impl TransformerClassifier {
    /// A fresh model over a fitted word tokenizer (weights seeded by `seed`).
    pub fn new(
        config: TransformerClassifierConfig,
        tokenizer: WordTokenizer,
        labels: LabelMap,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        config
            .validate()
            .map_err(|message| Error::config("model", message))?;
        let params = ParamStore::new(device.clone());
        let vb = params.builder(seed);
        let (d, c) = (config.embedding_dim, &config);
        // Keras' Embedding default: U(−0.05, 0.05).
        let uniform = Init::Uniform {
            lo: -0.05,
            hi: 0.05,
        };
        let token_embedding = vb.param("embedding.weight", &[c.vocab_size, d], uniform)?;
        let position_embedding = vb.param("position_embedding.weight", &[c.max_len, d], uniform)?;
        let shape = TransformerShape {
            d_model: d,
            num_heads: c.num_heads,
            num_encoder_layers: c.num_layers,
            num_decoder_layers: 0,
            dim_feedforward: c.ff_dim,
            dropout: c.dropout,
            norm_first: false,
            layer_norm_eps: c.layer_norm_eps,
        };
        let layers = (0..c.num_layers)
            .map(|i| EncoderLayer::new(&vb.pp(&format!("encoder.layers.{i}")), &shape))
            .collect::<Result<Vec<_>>>()?;
        let dense = Projection::dense(&vb, "dense", d, c.dense_size, Init::XavierUniform, true)?;
        let classifier = Projection::dense(
            &vb,
            "classifier",
            c.dense_size,
            c.num_labels,
            Init::XavierUniform,
            true,
        )?;
        let class_weights = class_weight_tensor(c.class_weights.as_deref(), c.num_labels, device)?;
        Ok(Self {
            config,
            labels,
            tokenizer,
            params,
            token_embedding,
            position_embedding,
            layers,
            dense,
            classifier,
            class_weights,
        })
    }

    /// The config written to `config.json`.
    pub fn config(&self) -> &TransformerClassifierConfig {
        &self.config
    }

    /// Word ids of each text, cut to `max_len` (the end is dropped, as TextVectorization does).
    pub fn encode<S: AsRef<str>>(&self, texts: &[S]) -> Vec<Vec<u32>> {
        self.tokenizer
            .texts_to_sequences(texts)
            .into_iter()
            .map(|mut ids| {
                ids.truncate(self.config.max_len);
                ids
            })
            .collect()
    }

    /// Tokenises `texts` with class ids `labels` into training examples.
    pub fn prepare<S: AsRef<str>>(&self, texts: &[S], labels: &[u32]) -> Vec<TransformerExample> {
        self.encode(texts)
            .into_iter()
            .zip(labels)
            .map(|(ids, &label)| TransformerExample { ids, label })
            .collect()
    }

    /// Class logits (batch, classes) of id rows, padded here to the longest row.
    pub fn logits(&self, rows: &[&[u32]], ctx: &mut ForwardCtx) -> Result<Tensor> {
        let c = &self.config;
        let batch = rows.len();
        // An empty text (no known word) still has one (padding) position, fully masked.
        let seq = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0u32; batch * seq];
        let mut mask = vec![vec![0u32; seq]; batch];
        for (b, row) in rows.iter().enumerate() {
            ids[b * seq..b * seq + row.len()].copy_from_slice(row);
            mask[b][..row.len()].fill(1);
        }
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= c.vocab_size) {
            return Err(Error::config(
                "input_ids",
                format!(
                    "id {bad} is outside the embedding matrix ({} rows)",
                    c.vocab_size
                ),
            ));
        }
        if seq > c.max_len {
            return Err(Error::config(
                "input_ids",
                format!("{seq} tokens, but the model has {} positions", c.max_len),
            ));
        }
        let device = self.token_embedding.device();
        let tokens = self
            .token_embedding
            .index_select(&Tensor::from_vec(ids, batch * seq, device)?, 0)?
            .reshape((batch, seq, c.embedding_dim))?;
        let mut x = tokens.broadcast_add(&self.position_embedding.narrow(0, 0, seq)?)?;
        let bias = padding_bias(&mask, DType::F32, device)?;
        for layer in &self.layers {
            x = layer.forward(&x, &bias, ctx)?;
        }
        let pooled = crate::models::encoder::layers::mean_pool(&x, &mask)?;
        let hidden = self
            .dense
            .forward(&dropout(&pooled, c.dropout, ctx)?)?
            .relu()?;
        self.classifier.forward(&dropout(&hidden, c.dropout, ctx)?)
    }

    /// Every block's and head's self-attention over the words of `text` that the model knows.
    pub fn attention(&self, text: &str) -> Result<AttentionMaps> {
        let ids = self.encode(&[text]).remove(0);
        if ids.is_empty() {
            return Err(Error::config(
                "text",
                format!("none of the words of \"{text}\" is in the model's vocabulary"),
            ));
        }
        let mut ctx = ForwardCtx::recording_attention();
        self.logits(&[&ids], &mut ctx)?;
        let words: Vec<String> = ids
            .iter()
            .map(|&i| self.tokenizer.index_word(i).unwrap_or("?").to_string())
            .collect();
        Ok(AttentionMaps {
            queries: words.clone(),
            keys: words,
            layers: first_row_maps(&ctx.attention_maps(AttentionKind::SelfAttention))?,
        })
    }

    fn folder(&self) -> Result<ModelFolder> {
        folder::with_word_tokenizer(&self.config, &self.tokenizer)
    }

    /// Loads a classifier saved by [`TextClassifier::save`].
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config: TransformerClassifierConfig = folder::read_config(dir)?;
        config
            .validate()
            .map_err(|message| Error::folder(dir.join("config.json"), message))?;
        let labels = folder::labels_from_config(dir, &config.id2label, config.num_labels)?;
        let tokenizer = folder::read_word_tokenizer(dir, config.vocab_size)?;
        let model = Self::new(config, tokenizer, labels, 0, device)?;
        model.params.load(&dir.join("model.safetensors"))?;
        Ok(model)
    }
}

impl Trainable for TransformerClassifier {
    type Example = TransformerExample;

    fn params(&self) -> &ParamStore {
        &self.params
    }

    fn example_length(&self, e: &TransformerExample) -> Option<usize> {
        Some(e.ids.len())
    }

    fn forward_batch(
        &self,
        batch: &[&TransformerExample],
        ctx: &mut ForwardCtx,
    ) -> Result<StepOutput> {
        let rows: Vec<&[u32]> = batch.iter().map(|e| e.ids.as_slice()).collect();
        let targets: Vec<u32> = batch.iter().map(|e| e.label).collect();
        let logits = self.logits(&rows, ctx)?;
        super::classification_step(&logits, targets, self.class_weights.as_ref())
    }
}

impl TextClassifier for TransformerClassifier {
    fn labels(&self) -> &LabelMap {
        &self.labels
    }

    fn predict_proba(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(256) {
            let ids = self.encode(chunk);
            let rows: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
            let logits = self.logits(&rows, &mut ForwardCtx::eval())?;
            out.extend(candle_nn::ops::softmax(&logits, D::Minus1)?.to_vec2::<f32>()?);
        }
        Ok(out)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        folder::save(dir, &self.folder()?, &self.params)
    }

    fn num_parameters(&self) -> usize {
        self.params.num_parameters()
    }

    fn model_type(&self) -> &str {
        MODEL_TYPE
    }
}

//! The building blocks of a bidirectional Transformer encoder: linear layers, embeddings,
//! multi-head self-attention with a padding mask, and post-LN layers (BERT's and DistilBERT's
//! compute is the same; only their parameter names differ).

use candle_core::{DType, Tensor, D};

use super::config::{Activation, EncoderConfig, Family};
use crate::error::Result;
use crate::nn::dropout;
use crate::nn::norm::{layer_norm, masked_softmax};
use crate::train::{ForwardCtx, Init, ParamBuilder};

/// `y = x Wᵀ + b` over the last dimension, with PyTorch's `weight` (out, in) and `bias`.
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// Creates `name.weight` and `name.bias` under `vb`.
    pub fn new(
        vb: &ParamBuilder,
        name: &str,
        inputs: usize,
        outputs: usize,
        std: f64,
    ) -> Result<Self> {
        let vb = vb.pp(name);
        Ok(Self {
            weight: vb.param("weight", &[outputs, inputs], Init::Normal { std })?,
            bias: vb.param("bias", &[outputs], Init::Zeros)?,
        })
    }

    /// Applies the layer to `x` (…, inputs).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::nn::linear::linear(x, &self.weight, &self.bias)
    }
}

/// A layer norm's `weight` and `bias`.
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Creates `name.weight` (ones) and `name.bias` (zeros) under `vb`.
    pub fn new(vb: &ParamBuilder, name: &str, size: usize, eps: f64) -> Result<Self> {
        let vb = vb.pp(name);
        Ok(Self {
            weight: vb.param("weight", &[size], Init::Const(1.0))?,
            bias: vb.param("bias", &[size], Init::Zeros)?,
            eps,
        })
    }

    /// Normalises the last dimension.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// Applies a feed-forward activation.
pub fn activate(x: &Tensor, activation: Activation) -> Result<Tensor> {
    Ok(match activation {
        Activation::Gelu => crate::nn::norm::gelu(x)?,
        Activation::GeluTanh => crate::nn::norm::gelu_tanh(x)?,
        Activation::Relu => x.relu()?,
    })
}

/// Token (+ segment) + position embeddings, then layer norm and dropout.
pub struct Embeddings {
    /// The word embedding matrix (vocab, hidden), shared with masked-LM decoders.
    pub word: Tensor,
    position: Tensor,
    token_type: Option<Tensor>,
    norm: LayerNorm,
    family: Family,
    pad_token_id: u32,
    dropout: f32,
}

impl Embeddings {
    /// Creates `embeddings.*` under `vb`.
    pub fn new(c: &EncoderConfig, vb: &ParamBuilder) -> Result<Self> {
        let vb = vb.pp("embeddings");
        let init = Init::Normal {
            std: c.initializer_range,
        };
        let h = c.hidden_size;
        Ok(Self {
            word: vb.param("word_embeddings.weight", &[c.vocab_size, h], init)?,
            position: vb.param(
                "position_embeddings.weight",
                &[c.max_position_embeddings, h],
                init,
            )?,
            token_type: (c.type_vocab_size > 0)
                .then(|| {
                    vb.param(
                        "token_type_embeddings.weight",
                        &[c.type_vocab_size, h],
                        init,
                    )
                })
                .transpose()?,
            norm: LayerNorm::new(&vb, "LayerNorm", h, c.layer_norm_eps)?,
            family: c.family,
            pad_token_id: c.pad_token_id,
            dropout: c.hidden_dropout,
        })
    }

    /// Position ids of each row: 0, 1, … — or, for RoBERTa, counted over non-padding tokens
    /// starting after the padding id (padding itself gets the padding id).
    fn position_ids(&self, ids: &[Vec<u32>]) -> Vec<u32> {
        let mut out = Vec::with_capacity(ids.len() * ids.first().map_or(0, Vec::len));
        for row in ids {
            let mut count = 0;
            for (i, &id) in row.iter().enumerate() {
                out.push(match self.family {
                    Family::Roberta if id == self.pad_token_id => self.pad_token_id,
                    Family::Roberta => {
                        count += 1;
                        self.pad_token_id + count
                    }
                    _ => i as u32,
                });
            }
        }
        out
    }

    /// Embeds a batch of equal-length rows of ids (batch, seq) → (batch, seq, hidden).
    pub fn forward(
        &self,
        ids: &[Vec<u32>],
        token_types: Option<&[Vec<u32>]>,
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        let (batch, seq) = (ids.len(), ids.first().map_or(0, Vec::len));
        let device = self.word.device();
        let flat: Vec<u32> = ids.iter().flatten().copied().collect();
        let word = self
            .word
            .index_select(&Tensor::from_vec(flat, batch * seq, device)?, 0)?;
        let positions = Tensor::from_vec(self.position_ids(ids), batch * seq, device)?;
        let mut x = (word + self.position.index_select(&positions, 0)?)?;
        if let Some(table) = &self.token_type {
            let types: Vec<u32> = match token_types {
                Some(t) => t.iter().flatten().copied().collect(),
                None => vec![0; batch * seq],
            };
            x = (x + table.index_select(&Tensor::from_vec(types, batch * seq, device)?, 0)?)?;
        }
        let x = self.norm.forward(&x.reshape((batch, seq, ()))?)?;
        dropout(&x, self.dropout, ctx)
    }
}

/// One post-LN Transformer layer: self-attention, add & norm, feed-forward, add & norm.
pub struct TransformerLayer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    ffn_in: Linear,
    ffn_out: Linear,
    output_norm: LayerNorm,
    heads: usize,
    activation: Activation,
    dropout: f32,
    attention_dropout: f32,
}

impl TransformerLayer {
    /// Creates layer parameters under `vb` with the family's names.
    pub fn new(c: &EncoderConfig, vb: &ParamBuilder) -> Result<Self> {
        let (h, f, std, eps) = (
            c.hidden_size,
            c.intermediate_size,
            c.initializer_range,
            c.layer_norm_eps,
        );
        let linear = |name: &str, i: usize, o: usize| Linear::new(vb, name, i, o, std);
        let (query, key, value, attention_out, attention_norm, ffn_in, ffn_out, output_norm) =
            match c.family {
                Family::DistilBert => (
                    linear("attention.q_lin", h, h)?,
                    linear("attention.k_lin", h, h)?,
                    linear("attention.v_lin", h, h)?,
                    linear("attention.out_lin", h, h)?,
                    LayerNorm::new(vb, "sa_layer_norm", h, eps)?,
                    linear("ffn.lin1", h, f)?,
                    linear("ffn.lin2", f, h)?,
                    LayerNorm::new(vb, "output_layer_norm", h, eps)?,
                ),
                Family::Bert | Family::Roberta => (
                    linear("attention.self.query", h, h)?,
                    linear("attention.self.key", h, h)?,
                    linear("attention.self.value", h, h)?,
                    linear("attention.output.dense", h, h)?,
                    LayerNorm::new(vb, "attention.output.LayerNorm", h, eps)?,
                    linear("intermediate.dense", h, f)?,
                    linear("output.dense", f, h)?,
                    LayerNorm::new(vb, "output.LayerNorm", h, eps)?,
                ),
            };
        Ok(Self {
            query,
            key,
            value,
            attention_out,
            attention_norm,
            ffn_in,
            ffn_out,
            output_norm,
            heads: c.num_heads,
            activation: c.activation,
            dropout: c.hidden_dropout,
            attention_dropout: c.attention_dropout,
        })
    }

    /// `x` (batch, seq, hidden); `mask_bias` (batch, 1, 1, seq): 0 for tokens, a large negative
    /// number for padding.
    pub fn forward(&self, x: &Tensor, mask_bias: &Tensor, ctx: &mut ForwardCtx) -> Result<Tensor> {
        let (batch, seq, hidden) = x.dims3()?;
        let dh = hidden / self.heads;
        let split = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((batch, seq, self.heads, dh))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = split(self.query.forward(x)?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        let scores = q.matmul(&k.t()?)?;
        let probs = masked_softmax(&scores, mask_bias, 1.0 / (dh as f64).sqrt())?;
        let probs = dropout(&probs, self.attention_dropout, ctx)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch, seq, hidden))?;
        let attended = dropout(&self.attention_out.forward(&context)?, self.dropout, ctx)?;
        let x = self.attention_norm.forward(&(x + attended)?)?;
        let inner = activate(&self.ffn_in.forward(&x)?, self.activation)?;
        let out = dropout(&self.ffn_out.forward(&inner)?, self.dropout, ctx)?;
        self.output_norm.forward(&(x + out)?)
    }
}

/// The additive attention bias of a padding mask (batch, seq) of 1/0: (batch, 1, 1, seq).
pub fn mask_bias(mask: &[Vec<u32>], device: &candle_core::Device, dtype: DType) -> Result<Tensor> {
    let (batch, seq) = (mask.len(), mask.first().map_or(0, Vec::len));
    let values: Vec<f32> = mask
        .iter()
        .flatten()
        .map(|&m| if m == 0 { f32::MIN } else { 0.0 })
        .collect();
    Ok(Tensor::from_vec(values, (batch, 1, 1, seq), device)?.to_dtype(dtype)?)
}

/// Mean of the hidden states (batch, seq, hidden) over the unmasked tokens: (batch, hidden).
pub fn mean_pool(hidden: &Tensor, mask: &[Vec<u32>]) -> Result<Tensor> {
    let (batch, seq) = (mask.len(), mask.first().map_or(0, Vec::len));
    let m: Vec<f32> = mask.iter().flatten().map(|&v| v as f32).collect();
    let m = Tensor::from_vec(m, (batch, seq, 1), hidden.device())?.to_dtype(hidden.dtype())?;
    let count = m.sum(1)?.clamp(1e-9, f64::MAX)?;
    Ok(hidden.broadcast_mul(&m)?.sum(1)?.broadcast_div(&count)?)
}

/// Divides each row by its L2 norm.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    Ok(x.broadcast_div(&norm)?)
}

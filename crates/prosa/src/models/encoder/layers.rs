//! The layers of BERT, DistilBERT and RoBERTa ("BERT", Devlin et al. 2019): embeddings, then
//! post-LN Transformer layers —
//!
//! ```text
//! x = LayerNorm(x + Dropout(SelfAttention(x)))     bidirectional, padding masked
//! x = LayerNorm(x + Dropout(W₂·act(W₁·x)))          feed-forward
//! ```
//!
//! The three families compute the same; only their parameter names differ.

use candle_core::{DType, Tensor, D};

use super::config::{Activation, EncoderConfig, Family};
use crate::error::{Error, Result};
use crate::nn::attention::{Mask, MultiHeadAttention, Qkv};
use crate::nn::gemm::with_f32;
use crate::nn::lanes::vectorized;
use crate::nn::norm::{add_layer_norm_row, Norm};
use crate::nn::projection::Projection;
use crate::nn::{dropout, ForwardCtx, Init, ParamBuilder};

/// A dense layer with PyTorch's `nn.Linear` names, weights drawn from N(0, std²), zero bias.
pub fn linear(
    vb: &ParamBuilder,
    name: &str,
    inputs: usize,
    outputs: usize,
    std: f64,
) -> Result<Projection> {
    Projection::dense(vb, name, inputs, outputs, Init::Normal { std }, true)
}

/// Token (+ segment) + position embeddings, then layer norm and dropout.
pub struct Embeddings {
    /// The word embedding matrix (vocab, hidden), shared with masked-LM decoders.
    pub word: Tensor,
    position: Tensor,
    token_type: Option<Tensor>,
    norm: Norm,
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
            norm: Norm::layer(&vb, "LayerNorm", h, c.layer_norm_eps)?,
            family: c.family,
            pad_token_id: c.pad_token_id,
            dropout: c.hidden_dropout,
        })
    }

    /// Position ids of each row: 0, 1, … — or, for RoBERTa, counted over non-padding tokens
    /// starting after the padding id (padding itself gets the padding id).
    fn position_ids<'a>(&self, rows: impl IntoIterator<Item = &'a [u32]>) -> Vec<u32> {
        let mut out = Vec::new();
        for row in rows {
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
        let types: Option<Vec<u32>> = token_types.map(|t| t.iter().flatten().copied().collect());
        let x = self.summed(ids.iter().map(Vec::as_slice), types)?;
        let x = self.norm.forward(&x.reshape((batch, seq, ()))?)?;
        dropout(&x, self.dropout, ctx)
    }

    /// Embeds rows of ids packed one after another, without padding → (tokens, hidden): each
    /// row's positions count from its first token, and every token type is 0. The same values
    /// as each row's real tokens in a padded batch ([`Embeddings::forward`]).
    pub fn forward_packed(&self, rows: &[&[u32]], ctx: &mut ForwardCtx) -> Result<Tensor> {
        if let Some(x) = self.normed_in_one_pass(rows)? {
            return dropout(&x, self.dropout, ctx);
        }
        let x = self
            .norm
            .forward(&self.summed(rows.iter().copied(), None)?)?;
        dropout(&x, self.dropout, ctx)
    }

    /// [`Embeddings::forward_packed`] in one pass over the rows, each token's word, position and
    /// token-type (0) embeddings added and normed where its row is written: the same arithmetic
    /// as the ops' three gathers, two sums and the norm (so the same bits), with no tensor
    /// between them. `None` unless nothing records a gradient, the tables are f32 on the CPU,
    /// the model has token types and a layer norm.
    fn normed_in_one_pass(&self, rows: &[&[u32]]) -> Result<Option<Tensor>> {
        let (Some(types), Some((gamma, beta, eps))) = (&self.token_type, self.norm.layer_parts())
        else {
            return Ok(None);
        };
        let plain = |t: &Tensor| !t.track_op() && t.device().is_cpu() && t.dtype() == DType::F32;
        if ![&self.word, &self.position, types, gamma, beta]
            .into_iter()
            .all(plain)
        {
            return Ok(None);
        }
        let (vocab, width) = self.word.dims2()?;
        let positions = self.position_ids(rows.iter().copied());
        let ids = rows.iter().flat_map(|r| r.iter().map(|&id| id as usize));
        if let Some(bad) = ids.clone().find(|&id| id >= vocab) {
            return Err(Error::config(
                "input_ids",
                format!("id {bad} is outside the vocabulary ({vocab} ids)"),
            ));
        }
        let limit = self.position.dim(0)?;
        if let Some(&bad) = positions.iter().find(|&&p| p as usize >= limit) {
            return Err(Error::config(
                "input_ids",
                format!("position {bad} is past the model's positions"),
            ));
        }
        let tokens = positions.len();
        let out = with_f32(&self.word, |word| {
            with_f32(&self.position, |position| {
                with_f32(types, |types| {
                    with_f32(gamma, |gamma| {
                        with_f32(beta, |beta| {
                            let mut out = vec![0f32; tokens * width];
                            let rows = out.chunks_exact_mut(width).zip(ids).zip(&positions);
                            for ((row, id), &p) in rows {
                                let w = &word[id * width..(id + 1) * width];
                                let p = &position[p as usize * width..(p as usize + 1) * width];
                                vectorized(
                                    #[inline(always)]
                                    || {
                                        row.iter_mut()
                                            .zip(w)
                                            .zip(p)
                                            .for_each(|((o, a), b)| *o = a + b)
                                    },
                                );
                                add_layer_norm_row(row, &types[..width], (gamma, beta), eps);
                            }
                            out
                        })
                    })
                })
            })
        })?????;
        Ok(Some(Tensor::from_vec(
            out,
            (tokens, width),
            self.word.device(),
        )?))
    }

    /// Word plus position (plus token type: 0 where `types` is `None`) embeddings of the
    /// tokens of `rows`, one after another (tokens, hidden), before the norm.
    fn summed<'a>(
        &self,
        rows: impl Iterator<Item = &'a [u32]> + Clone,
        types: Option<Vec<u32>>,
    ) -> Result<Tensor> {
        let device = self.word.device();
        let flat: Vec<u32> = rows.clone().flatten().copied().collect();
        let tokens = flat.len();
        let word = self
            .word
            .index_select(&Tensor::from_vec(flat, tokens, device)?, 0)?;
        let positions = Tensor::from_vec(self.position_ids(rows), tokens, device)?;
        let mut x = (word + self.position.index_select(&positions, 0)?)?;
        if let Some(table) = &self.token_type {
            let types = types.unwrap_or_else(|| vec![0; tokens]);
            x = (x + table.index_select(&Tensor::from_vec(types, tokens, device)?, 0)?)?;
        }
        Ok(x)
    }
}

/// One post-LN Transformer layer: self-attention, add & norm, feed-forward, add & norm.
pub struct TransformerLayer {
    attention: MultiHeadAttention,
    attention_norm: Norm,
    ffn_in: Projection,
    ffn_out: Projection,
    output_norm: Norm,
    activation: Activation,
    dropout: f32,
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
        let dense = |name: &str, i: usize, o: usize| linear(vb, name, i, o, std);
        let (q, k, v, out, attention_norm, ffn_in, ffn_out, output_norm) = match c.family {
            Family::DistilBert => (
                dense("attention.q_lin", h, h)?,
                dense("attention.k_lin", h, h)?,
                dense("attention.v_lin", h, h)?,
                dense("attention.out_lin", h, h)?,
                Norm::layer(vb, "sa_layer_norm", h, eps)?,
                dense("ffn.lin1", h, f)?,
                dense("ffn.lin2", f, h)?,
                Norm::layer(vb, "output_layer_norm", h, eps)?,
            ),
            Family::Bert | Family::Roberta => (
                dense("attention.self.query", h, h)?,
                dense("attention.self.key", h, h)?,
                dense("attention.self.value", h, h)?,
                dense("attention.output.dense", h, h)?,
                Norm::layer(vb, "attention.output.LayerNorm", h, eps)?,
                dense("intermediate.dense", h, f)?,
                dense("output.dense", f, h)?,
                Norm::layer(vb, "output.LayerNorm", h, eps)?,
            ),
        };
        Ok(Self {
            attention: MultiHeadAttention {
                qkv: Qkv::separate(q, k, v),
                out,
                heads: c.num_heads,
                kv_heads: c.num_heads,
                head_dim: h / c.num_heads,
                attention_dropout: c.attention_dropout,
                output_dropout: c.hidden_dropout,
                scale: None,
            },
            attention_norm,
            ffn_in,
            ffn_out,
            output_norm,
            activation: c.activation,
            dropout: c.hidden_dropout,
        })
    }

    /// `x` (batch, seq, hidden); `pad_bias` (batch, 1, 1, seq) masks padding.
    pub fn forward(&self, x: &Tensor, pad_bias: &Tensor, ctx: &mut ForwardCtx) -> Result<Tensor> {
        let attended = self
            .attention
            .forward(x, Mask::Bidirectional(pad_bias), None, None, ctx)?;
        self.after_attention(x, &attended, ctx)
    }

    /// [`TransformerLayer::forward`]'s output for each sequence's first token only (batch, 1,
    /// hidden): all a sequence-classification head reads of the last layer. The first token's
    /// query attends to the keys and values of every token of `x`, and only its row goes through
    /// the output projection, the norms and the feed-forward — five sixths of the layer's
    /// products spared, the same arithmetic as the first row of the whole layer. `None` while
    /// attention maps are recorded (they hold every query's row).
    pub fn forward_first(
        &self,
        x: &Tensor,
        pad_bias: &Tensor,
        ctx: &mut ForwardCtx,
    ) -> Result<Option<Tensor>> {
        if ctx.attention.is_some() {
            return Ok(None);
        }
        let first = x.narrow(1, 0, 1)?;
        let memory = self.attention.memory(x, pad_bias)?;
        let attended = self.attention.cross(&first, &memory, ctx)?;
        Ok(Some(self.after_attention(&first, &attended, ctx)?))
    }

    /// Add & norm of the attention's output `attended` to the layer's input rows `x`, then the
    /// feed-forward with its add & norm.
    fn after_attention(
        &self,
        x: &Tensor,
        attended: &Tensor,
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        let x = self.attention_norm.forward_residual(x, attended)?;
        let inner = self.ffn_in.forward_activated(&x, self.activation)?;
        if !ctx.train {
            // No dropout: the output rows are added to `x` and normed as the product writes them.
            return self
                .ffn_out
                .forward_residual_norm(&inner, &x, &self.output_norm);
        }
        let out = dropout(&self.ffn_out.forward(&inner)?, self.dropout, ctx)?;
        self.output_norm.forward_residual(&x, &out)
    }

    /// [`TransformerLayer::forward`] of sequences packed without padding: `x` (tokens, hidden)
    /// holds the sequences of `lengths` one after another. Inference only, where the attention
    /// [`MultiHeadAttention::packs`] `x`.
    pub fn forward_packed(
        &self,
        x: &Tensor,
        lengths: &[usize],
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        // Each output projection's rows are added to the residual and normed as it writes them.
        let context = self.attention.context_packed(x, lengths, ctx)?;
        let out = &self.attention.out;
        let x = out.forward_residual_norm(&context, x, &self.attention_norm)?;
        let inner = self.ffn_in.forward_activated(&x, self.activation)?;
        self.ffn_out
            .forward_residual_norm(&inner, &x, &self.output_norm)
    }

    /// Whether [`TransformerLayer::forward_packed`] runs on `x` in `ctx`.
    pub fn packs(&self, x: &Tensor, ctx: &ForwardCtx) -> bool {
        self.attention.packs(x, ctx)
    }
}

/// Mean of the hidden states (batch, seq, hidden) over the unmasked tokens: (batch, hidden).
pub fn mean_pool(hidden: &Tensor, mask: &[Vec<u32>]) -> Result<Tensor> {
    let (batch, seq) = (mask.len(), mask.first().map_or(0, Vec::len));
    let plain = !hidden.track_op() && hidden.device().is_cpu() && hidden.dtype() == DType::F32;
    if plain && hidden.dims().len() == 3 && hidden.dims()[..2] == [batch, seq] {
        return mean_pool_rows(hidden, mask);
    }
    let m: Vec<f32> = mask.iter().flatten().map(|&v| v as f32).collect();
    let m = Tensor::from_vec(m, (batch, seq, 1), hidden.device())?.to_dtype(hidden.dtype())?;
    let count = m.sum(1)?.clamp(1e-9, f64::MAX)?;
    Ok(hidden.broadcast_mul(&m)?.sum(1)?.broadcast_div(&count)?)
}

/// [`mean_pool`] without a gradient: each sequence's unmasked rows added in order, then divided
/// by their count (at least 1e-9), on the calling thread — a few hundred thousand additions
/// per batch, where candle's broadcast product and sum made two passes and a temporary.
fn mean_pool_rows(hidden: &Tensor, mask: &[Vec<u32>]) -> Result<Tensor> {
    let (batch, seq, width) = hidden.dims3()?;
    let pooled = with_f32(hidden, |values| {
        let mut pooled = vec![0f32; batch * width];
        vectorized(
            #[inline(always)]
            || {
                for ((sum, rows), mask) in pooled
                    .chunks_exact_mut(width)
                    .zip(values.chunks_exact(seq * width))
                    .zip(mask)
                {
                    let rows = rows.chunks_exact(width).zip(mask.iter().map(|&m| m as f32));
                    mean_of_rows(sum, rows);
                }
            },
        );
        pooled
    })?;
    Ok(Tensor::from_vec(pooled, (batch, width), hidden.device())?)
}

/// [`mean_pool`] of sequences packed without padding: `hidden` (tokens, hidden) holds the
/// sequences of `lengths` one after another → (sequences, hidden). The same values as
/// [`mean_pool`] of a padded batch's states.
pub fn mean_pool_packed(hidden: &Tensor, lengths: &[usize]) -> Result<Tensor> {
    let width = hidden.dim(1)?;
    if hidden.track_op() || !hidden.device().is_cpu() || hidden.dtype() != DType::F32 {
        let mut start = 0;
        let mut means = Vec::with_capacity(lengths.len());
        for &n in lengths {
            means.push(hidden.narrow(0, start, n)?.mean(0)?);
            start += n;
        }
        return Ok(Tensor::stack(&means, 0)?);
    }
    let pooled = with_f32(hidden, |values| {
        let mut pooled = vec![0f32; lengths.len() * width];
        vectorized(
            #[inline(always)]
            || {
                let mut rows = values.chunks_exact(width);
                for (sum, &n) in pooled.chunks_exact_mut(width).zip(lengths) {
                    mean_of_rows(sum, rows.by_ref().take(n).map(|row| (row, 1.0)));
                }
            },
        );
        pooled
    })?;
    Ok(Tensor::from_vec(
        pooled,
        (lengths.len(), width),
        hidden.device(),
    )?)
}

/// `sum` ← the mean of the `rows` weighted by their mask values (1 or 0), added in order, then
/// divided by the mask's sum (at least 1e-9).
#[inline(always)]
fn mean_of_rows<'a>(sum: &mut [f32], rows: impl Iterator<Item = (&'a [f32], f32)>) {
    let mut count = 0f32;
    for (row, m) in rows {
        count += m;
        sum.iter_mut().zip(row).for_each(|(s, v)| *s += v * m);
    }
    let count = count.max(1e-9);
    sum.iter_mut().for_each(|s| *s /= count);
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

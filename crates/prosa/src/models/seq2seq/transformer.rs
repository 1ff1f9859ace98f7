//! The Transformer encoder–decoder of "Attention is all you need" (Vaswani et al. 2017, §3;
//! the e-book's Figure 23), with the parameter names of PyTorch's `torch.nn.Transformer`, so the
//! same weights give the same outputs:
//!
//! ```text
//! encoder layer (post-LN):  x = norm1(x + SelfAttention(x, padding mask))
//!                           x = norm2(x + linear2(relu(linear1(x))))
//! decoder layer (post-LN):  y = norm1(y + SelfAttention(y, causal + padding mask))
//!                           y = norm2(y + CrossAttention(y, encoder output, source padding mask))
//!                           y = norm3(y + linear2(relu(linear1(y))))
//! stacks:                   encoder.norm after the encoder layers, decoder.norm after the decoder's
//! ```
//!
//! With `norm_first` (pre-LN) each sub-layer reads `norm(x)` and adds to `x` instead. Every
//! attention is `nn::attention::MultiHeadAttention`; PyTorch packs the query, key and value
//! projections into one `in_proj_weight`, which the layers read as three views.

use candle_core::Tensor;

use crate::error::Result;
use crate::nn::attention::{padding_bias, Mask, MultiHeadAttention, Qkv};
use crate::nn::kv_cache::{CrossMemory, KvCache, LayerCache};
use crate::nn::norm::Norm;
use crate::nn::projection::{Projection, Weight};
use crate::nn::{dropout, ForwardCtx, Init, ParamBuilder};

/// The sizes of the two stacks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransformerShape {
    /// Width of the model `d_model`.
    pub d_model: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Encoder layers.
    pub num_encoder_layers: usize,
    /// Decoder layers.
    pub num_decoder_layers: usize,
    /// Width of the feed-forward layers.
    pub dim_feedforward: usize,
    /// Dropout on attention probabilities, sub-layer outputs and the feed-forward layer.
    pub dropout: f32,
    /// Pre-LN (`norm_first`) instead of the paper's post-LN.
    pub norm_first: bool,
    /// Layer-norm ε.
    pub layer_norm_eps: f64,
}

/// `nn.MultiheadAttention`: packed `in_proj_weight` (3d, d) and `in_proj_bias`, `out_proj`.
fn attention(vb: &ParamBuilder, s: &TransformerShape) -> Result<MultiHeadAttention> {
    let d = s.d_model;
    // PyTorch: xavier_uniform_ on the packed projection, zero biases.
    let bound = (6.0 / (d + 3 * d) as f64).sqrt();
    let packed = vb.param(
        "in_proj_weight",
        &[3 * d, d],
        Init::Uniform {
            lo: -bound,
            hi: bound,
        },
    )?;
    let bias = vb.param("in_proj_bias", &[3 * d], Init::Zeros)?;
    let part = |i: usize| -> Result<Projection> {
        Ok(Projection::new(
            Weight::Dense(packed.narrow(0, i * d, d)?),
            Some(bias.narrow(0, i * d, d)?),
        ))
    };
    let linear_bound = 1.0 / (d as f64).sqrt();
    Ok(MultiHeadAttention {
        qkv: Qkv::separate(part(0)?, part(1)?, part(2)?),
        out: Projection::dense(
            vb,
            "out_proj",
            d,
            d,
            Init::Uniform {
                lo: -linear_bound,
                hi: linear_bound,
            },
            true,
        )?,
        heads: s.num_heads,
        kv_heads: s.num_heads,
        head_dim: d / s.num_heads,
        attention_dropout: s.dropout,
        output_dropout: s.dropout,
        scale: None,
    })
}

/// The position-wise feed-forward layer `linear2(dropout(relu(linear1(x))))`, then dropout.
struct FeedForward {
    linear1: Projection,
    linear2: Projection,
    dropout: f32,
}

impl FeedForward {
    fn new(vb: &ParamBuilder, s: &TransformerShape) -> Result<Self> {
        // PyTorch's nn.Linear default: U(±1/√fan_in) for weights (and biases, kept at 0 here).
        let init = |fan_in: usize| {
            let b = 1.0 / (fan_in as f64).sqrt();
            Init::Uniform { lo: -b, hi: b }
        };
        let (d, f) = (s.d_model, s.dim_feedforward);
        Ok(Self {
            linear1: Projection::dense(vb, "linear1", d, f, init(d), true)?,
            linear2: Projection::dense(vb, "linear2", f, d, init(f), true)?,
            dropout: s.dropout,
        })
    }

    fn forward(&self, x: &Tensor, ctx: &mut ForwardCtx) -> Result<Tensor> {
        let inner = dropout(&self.linear1.forward(x)?.relu()?, self.dropout, ctx)?;
        dropout(&self.linear2.forward(&inner)?, self.dropout, ctx)
    }
}

/// A residual sub-layer around `f`, post-LN (`norm(x + f(x))`) or pre-LN (`x + f(norm(x))`).
fn residual(
    x: &Tensor,
    norm: &Norm,
    norm_first: bool,
    f: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    if norm_first {
        Ok((x + f(&norm.forward(x)?)?)?)
    } else {
        norm.forward_residual(x, &f(x)?)
    }
}

/// `nn.TransformerEncoderLayer`: self-attention and feed-forward, each a residual sub-layer.
pub struct EncoderLayer {
    self_attn: MultiHeadAttention,
    ff: FeedForward,
    norm1: Norm,
    norm2: Norm,
    norm_first: bool,
}

impl EncoderLayer {
    /// Creates the layer's parameters under `vb` with PyTorch's names (`self_attn.*`,
    /// `linear1`, `linear2`, `norm1`, `norm2`).
    pub fn new(vb: &ParamBuilder, s: &TransformerShape) -> Result<Self> {
        Ok(Self {
            self_attn: attention(&vb.pp("self_attn"), s)?,
            ff: FeedForward::new(vb, s)?,
            norm1: Norm::layer(vb, "norm1", s.d_model, s.layer_norm_eps)?,
            norm2: Norm::layer(vb, "norm2", s.d_model, s.layer_norm_eps)?,
            norm_first: s.norm_first,
        })
    }

    /// `x` (batch, seq, d_model); `src_bias` (batch, 1, 1, seq) masks padding.
    pub fn forward(&self, x: &Tensor, src_bias: &Tensor, ctx: &mut ForwardCtx) -> Result<Tensor> {
        let x = residual(x, &self.norm1, self.norm_first, |h| {
            self.self_attn
                .forward(h, Mask::Bidirectional(src_bias), None, None, ctx)
        })?;
        residual(&x, &self.norm2, self.norm_first, |h| {
            self.ff.forward(h, ctx)
        })
    }
}

/// `nn.TransformerDecoderLayer`.
struct DecoderLayer {
    self_attn: MultiHeadAttention,
    cross_attn: MultiHeadAttention,
    ff: FeedForward,
    norm1: Norm,
    norm2: Norm,
    norm3: Norm,
    norm_first: bool,
}

impl DecoderLayer {
    fn new(vb: &ParamBuilder, s: &TransformerShape) -> Result<Self> {
        let d = s.d_model;
        Ok(Self {
            self_attn: attention(&vb.pp("self_attn"), s)?,
            cross_attn: attention(&vb.pp("multihead_attn"), s)?,
            ff: FeedForward::new(vb, s)?,
            norm1: Norm::layer(vb, "norm1", d, s.layer_norm_eps)?,
            norm2: Norm::layer(vb, "norm2", d, s.layer_norm_eps)?,
            norm3: Norm::layer(vb, "norm3", d, s.layer_norm_eps)?,
            norm_first: s.norm_first,
        })
    }

    /// `y` (batch, new, d) are the newest target positions; `cache` holds earlier ones.
    fn forward(
        &self,
        y: &Tensor,
        tgt_bias: &Tensor,
        memory: &CrossMemory,
        cache: Option<&mut LayerCache>,
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        let y = residual(y, &self.norm1, self.norm_first, |h| {
            self.self_attn
                .forward(h, Mask::Causal(tgt_bias), None, cache, ctx)
        })?;
        let y = residual(&y, &self.norm2, self.norm_first, |h| {
            self.cross_attn.cross(h, memory, ctx)
        })?;
        residual(&y, &self.norm3, self.norm_first, |h| {
            self.ff.forward(h, ctx)
        })
    }
}

/// Both stacks with their final norms: `torch.nn.Transformer` without embeddings.
pub struct Transformer {
    encoder: Vec<EncoderLayer>,
    encoder_norm: Norm,
    decoder: Vec<DecoderLayer>,
    decoder_norm: Norm,
}

/// What the decoder keeps between generation steps: its self-attention cache and each layer's
/// view of the encoder output.
#[derive(Clone)]
pub struct DecoderState {
    /// Keys and values of the target positions so far.
    pub self_attention: KvCache,
    /// One cross-attention memory per decoder layer.
    pub memories: Vec<CrossMemory>,
}

impl DecoderState {
    /// A state with nothing cached (encoder–decoders make theirs in `Generator::start`).
    pub fn empty() -> Self {
        Self {
            self_attention: KvCache::new(0),
            memories: Vec::new(),
        }
    }

    /// Where encoder–decoder generation starts: the sources padded on the right with `pad`,
    /// encoded once into `memories(ids, mask)` for a decoder of `layers` layers, and every row
    /// beginning with `start`.
    pub fn start_from_sources(
        inputs: &[Vec<u32>],
        pad: u32,
        start: u32,
        layers: usize,
        memories: impl FnOnce(&[Vec<u32>], &[Vec<u32>]) -> Result<Vec<CrossMemory>>,
    ) -> Result<crate::generation::Start<Self>> {
        let (ids, mask) = super::pad_right(inputs, pad);
        Ok(crate::generation::Start {
            cache: Self {
                self_attention: KvCache::new(layers),
                memories: memories(&ids, &mask)?,
            },
            ids: vec![vec![start]; inputs.len()],
            mask: vec![vec![1]; inputs.len()],
            pad,
        })
    }

    /// Keeps rows `rows` (in that order) of every cache and memory.
    pub fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        self.self_attention.select_rows(rows)?;
        for m in &mut self.memories {
            m.select_rows(rows)?;
        }
        Ok(())
    }
}

impl Transformer {
    /// Creates both stacks under `vb` (`encoder.layers.0.self_attn.in_proj_weight`, …).
    pub fn new(vb: &ParamBuilder, s: &TransformerShape) -> Result<Self> {
        let (enc, dec) = (vb.pp("encoder"), vb.pp("decoder"));
        Ok(Self {
            encoder: (0..s.num_encoder_layers)
                .map(|i| EncoderLayer::new(&enc.pp(&format!("layers.{i}")), s))
                .collect::<Result<_>>()?,
            encoder_norm: Norm::layer(&enc, "norm", s.d_model, s.layer_norm_eps)?,
            decoder: (0..s.num_decoder_layers)
                .map(|i| DecoderLayer::new(&dec.pp(&format!("layers.{i}")), s))
                .collect::<Result<_>>()?,
            decoder_norm: Norm::layer(&dec, "norm", s.d_model, s.layer_norm_eps)?,
        })
    }

    /// The encoder output (batch, source, d) of embedded sources `x`; `src_mask` (batch,
    /// source) marks real tokens with 1.
    pub fn encode(
        &self,
        x: &Tensor,
        src_mask: &[Vec<u32>],
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        let bias = padding_bias(src_mask, x.dtype(), x.device())?;
        let mut x = x.clone();
        for layer in &self.encoder {
            x = layer.forward(&x, &bias, ctx)?;
        }
        self.encoder_norm.forward(&x)
    }

    /// A decoder state for `memory` (the encoder output) with its source mask: each layer's
    /// keys and values of the memory, projected once.
    pub fn decoder_state(&self, memory: &Tensor, src_mask: &[Vec<u32>]) -> Result<DecoderState> {
        let bias = padding_bias(src_mask, memory.dtype(), memory.device())?;
        Ok(DecoderState {
            self_attention: KvCache::new(self.decoder.len()),
            memories: self
                .decoder
                .iter()
                .map(|l| l.cross_attn.memory(memory, &bias))
                .collect::<Result<_>>()?,
        })
    }

    /// The decoder output (batch, new, d) of embedded target positions `y`; `tgt_mask`
    /// (batch, cached + new) marks real tokens. With `cache`, earlier positions come from it
    /// and these join it.
    pub fn decode(
        &self,
        y: &Tensor,
        tgt_mask: &[Vec<u32>],
        state: &mut DecoderState,
        use_cache: bool,
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        let bias = padding_bias(tgt_mask, y.dtype(), y.device())?;
        let mut y = y.clone();
        for (i, layer) in self.decoder.iter().enumerate() {
            let cache = use_cache.then(|| state.self_attention.layer(i));
            y = layer.forward(&y, &bias, &state.memories[i], cache, ctx)?;
        }
        self.decoder_norm.forward(&y)
    }

    /// `nn.Transformer.forward` on embedded inputs: the decoder output (batch, target, d).
    pub fn forward(
        &self,
        src: &Tensor,
        src_mask: &[Vec<u32>],
        tgt: &Tensor,
        tgt_mask: &[Vec<u32>],
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        let memory = self.encode(src, src_mask, ctx)?;
        let mut state = self.decoder_state(&memory, src_mask)?;
        self.decode(tgt, tgt_mask, &mut state, false, ctx)
    }
}

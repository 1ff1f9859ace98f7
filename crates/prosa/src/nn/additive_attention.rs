//! Attention for RNN encoder–decoders (the e-book's Unit II): at each decoder step, a score for
//! every encoder state, a softmax over the real source positions, and the context vector — the
//! weighted sum of encoder states — that frees the decoder from one fixed-size summary.
//!
//! ```text
//! Bahdanau (additive): e_tj = vᵀ · tanh(W_s · s_{t−1} + W_h · h_j)
//! Luong dot:           e_tj = s_tᵀ · h_j
//! Luong general:       e_tj = s_tᵀ · W_a · h_j
//! α_t = softmax_j(e_tj),   c_t = Σ_j α_tj · h_j
//! ```

use candle_core::{Tensor, D};

use super::params::{Init, ParamBuilder};
use super::projection::Projection;
use super::softmax::masked_softmax;
use crate::error::Result;

/// The scoring function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Score {
    /// Bahdanau et al. (2015): a one-layer network over the decoder and encoder states.
    Additive,
    /// Luong et al. (2015): the dot product.
    Dot,
    /// Luong et al. (2015): a bilinear form.
    General,
}

impl std::str::FromStr for Score {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "additive" | "bahdanau" | "concat" => Ok(Score::Additive),
            "dot" => Ok(Score::Dot),
            "general" => Ok(Score::General),
            other => Err(format!(
                "unknown attention '{other}' (additive, dot, general)"
            )),
        }
    }
}

/// Attention over encoder states with its parameters.
pub struct AdditiveAttention {
    score: Score,
    /// `W_s` (additive) or `W_a` (general).
    query: Option<Projection>,
    /// `W_h` (additive).
    key: Option<Projection>,
    /// `v` (additive): (1, attention).
    v: Option<Tensor>,
}

/// Encoder states prepared once per source: the states and, for additive scores, `W_h · h_j`.
pub struct Keys {
    /// Encoder states (batch, source, encoder).
    pub states: Tensor,
    /// `W_h · h_j` (batch, source, attention), additive scores only.
    projected: Option<Tensor>,
    /// 0 for source tokens, the padding bias for padding: (batch, 1, source).
    pub pad_bias: Tensor,
}

impl Keys {
    /// Keeps rows `rows` (in that order): beams of one source share its keys.
    pub fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        let index = Tensor::new(rows, self.states.device())?;
        self.states = self.states.contiguous()?.index_select(&index, 0)?;
        self.pad_bias = self.pad_bias.contiguous()?.index_select(&index, 0)?;
        if let Some(p) = &self.projected {
            self.projected = Some(p.contiguous()?.index_select(&index, 0)?);
        }
        Ok(())
    }
}

impl AdditiveAttention {
    /// Creates `W_s`, `W_h` and `v` (additive; `attention` wide), `W_a` (general) or nothing
    /// (dot) under `vb`, for decoder states of width `query` and encoder states of width `key`.
    pub fn new(
        vb: &ParamBuilder,
        score: Score,
        query: usize,
        key: usize,
        attention: usize,
    ) -> Result<Self> {
        let init = |fan_in: usize| {
            let b = 1.0 / (fan_in as f64).sqrt();
            Init::Uniform { lo: -b, hi: b }
        };
        Ok(match score {
            Score::Additive => Self {
                score,
                query: Some(Projection::dense(
                    vb,
                    "query",
                    query,
                    attention,
                    init(query),
                    false,
                )?),
                key: Some(Projection::dense(
                    vb,
                    "key",
                    key,
                    attention,
                    init(key),
                    false,
                )?),
                v: Some(vb.param("v", &[1, attention], init(attention))?),
            },
            Score::General => Self {
                score,
                query: Some(Projection::dense(
                    vb,
                    "query",
                    query,
                    key,
                    init(query),
                    false,
                )?),
                key: None,
                v: None,
            },
            Score::Dot => Self {
                score,
                query: None,
                key: None,
                v: None,
            },
        })
    }

    /// Prepares encoder states (batch, source, encoder) with their padding bias (batch, 1,
    /// source): for additive scores, `W_h · h_j` is computed here once.
    pub fn keys(&self, states: &Tensor, pad_bias: &Tensor) -> Result<Keys> {
        Ok(Keys {
            states: states.clone(),
            projected: self.key.as_ref().map(|k| k.forward(states)).transpose()?,
            pad_bias: pad_bias.clone(),
        })
    }

    /// The context (batch, encoder) and weights (batch, source) for decoder states `s`
    /// (batch, query).
    pub fn forward(&self, s: &Tensor, keys: &Keys) -> Result<(Tensor, Tensor)> {
        let scores = match self.score {
            Score::Additive => {
                let (q, v, projected) = (
                    self.query.as_ref().expect("additive has W_s"),
                    self.v.as_ref().expect("additive has v"),
                    keys.projected
                        .as_ref()
                        .expect("additive keys are projected"),
                );
                // (batch, 1, attention) + (batch, source, attention) → tanh → · v.
                let hidden = projected
                    .broadcast_add(&q.forward(s)?.unsqueeze(1)?)?
                    .tanh()?;
                hidden.broadcast_matmul(&v.t()?)?.squeeze(D::Minus1)?
            }
            Score::Dot | Score::General => {
                let query = match &self.query {
                    Some(q) => q.forward(s)?,
                    None => s.clone(),
                };
                keys.states
                    .matmul(&query.unsqueeze(D::Minus1)?)?
                    .squeeze(D::Minus1)?
            }
        };
        // (batch, source) as (batch, 1, 1, source) for the masked softmax.
        let (batch, source) = scores.dims2()?;
        let weights = masked_softmax(
            &scores.reshape((batch, 1, 1, source))?,
            &keys.pad_bias.reshape((batch, 1, 1, source))?,
            1.0,
        )?
        .reshape((batch, source))?;
        let context = weights.unsqueeze(1)?.matmul(&keys.states)?.squeeze(1)?;
        Ok((context, weights))
    }
}

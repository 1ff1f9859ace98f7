//! The AWD-LSTM (Merity et al. 2017) as ULMFiT uses it (Howard & Ruder 2018; fastai's
//! `AWD_LSTM`): an embedding, three LSTM layers (the last one as wide as the embedding, so the
//! language model's decoder can share the embedding matrix), and its regularisers — embedding
//! dropout (whole words), locked dropout on the embedded input and between layers (one mask per
//! sequence), and DropConnect on every hidden-to-hidden matrix.
//!
//! Names: `encoder.weight` (vocab × emb), `rnns.{l}.weight_ih_l0` … (PyTorch's LSTM names per
//! layer). Probabilities default to fastai's `awd_lstm_lm_config` / `awd_lstm_clas_config`.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::dropout::{embedding_dropout, locked_dropout};
use crate::nn::recurrent::{CellKind, Recurrent, RecurrentConfig};
use crate::nn::{ForwardCtx, Init, ParamBuilder};

/// Dropout probabilities of an AWD-LSTM (fastai's names).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AwdDropouts {
    /// Locked dropout on the last layer's output (before a decoder or a classifier head).
    pub output_p: f32,
    /// Locked dropout between LSTM layers.
    pub hidden_p: f32,
    /// Locked dropout on the embedded input.
    pub input_p: f32,
    /// Embedding dropout: the probability of dropping a word from the whole batch.
    pub embed_p: f32,
    /// DropConnect on the hidden-to-hidden weights.
    pub weight_p: f32,
}

impl AwdDropouts {
    /// fastai's language-model values.
    pub const LANGUAGE_MODEL: Self = Self {
        output_p: 0.1,
        hidden_p: 0.15,
        input_p: 0.25,
        embed_p: 0.02,
        weight_p: 0.2,
    };
    /// fastai's classifier values.
    pub const CLASSIFIER: Self = Self {
        output_p: 0.4,
        hidden_p: 0.3,
        input_p: 0.4,
        embed_p: 0.05,
        weight_p: 0.5,
    };

    /// All five multiplied by `mult` (fastai's `drop_mult`).
    pub fn scaled(self, mult: f32) -> Self {
        Self {
            output_p: self.output_p * mult,
            hidden_p: self.hidden_p * mult,
            input_p: self.input_p * mult,
            embed_p: self.embed_p * mult,
            weight_p: self.weight_p * mult,
        }
    }

    fn check(&self) -> Result<()> {
        let all = [
            self.output_p,
            self.hidden_p,
            self.input_p,
            self.embed_p,
            self.weight_p,
        ];
        if all.iter().any(|p| !(0.0..1.0).contains(p)) {
            return Err(Error::config(
                "dropout",
                "every probability must be in [0, 1)",
            ));
        }
        Ok(())
    }
}

/// Sizes of an AWD-LSTM.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AwdLstmConfig {
    /// Rows of the embedding.
    pub vocab_size: usize,
    /// Width of the embedding (and of the last layer's output).
    pub emb_size: usize,
    /// Width of the inner layers.
    pub hidden_size: usize,
    /// LSTM layers.
    pub num_layers: usize,
    /// The dropouts.
    pub dropouts: AwdDropouts,
}

/// The encoder: embedding and LSTM layers.
pub struct AwdLstm {
    config: AwdLstmConfig,
    embedding: Tensor,
    rnns: Vec<Recurrent>,
}

impl AwdLstm {
    /// Creates the parameters under `vb` (`encoder.weight`, `rnns.{l}.…`).
    pub fn new(config: AwdLstmConfig, vb: &ParamBuilder) -> Result<Self> {
        config.dropouts.check()?;
        if config.num_layers == 0 || config.emb_size == 0 || config.hidden_size == 0 {
            return Err(Error::config(
                "num_layers/emb_size/hidden_size",
                "must be at least 1",
            ));
        }
        let embedding = vb.pp("encoder").param(
            "weight",
            &[config.vocab_size, config.emb_size],
            Init::Uniform { lo: -0.1, hi: 0.1 },
        )?;
        let mut rnns = Vec::with_capacity(config.num_layers);
        for l in 0..config.num_layers {
            let last = l + 1 == config.num_layers;
            let mut rnn = Recurrent::new(
                RecurrentConfig {
                    cell: CellKind::Lstm,
                    input_size: if l == 0 {
                        config.emb_size
                    } else {
                        config.hidden_size
                    },
                    hidden_size: if last {
                        config.emb_size
                    } else {
                        config.hidden_size
                    },
                    num_layers: 1,
                    bidirectional: false,
                    dropout: 0.0,
                },
                &vb.pp(&format!("rnns.{l}")),
            )?;
            rnn.set_weight_drop(config.dropouts.weight_p);
            rnns.push(rnn);
        }
        Ok(Self {
            config,
            embedding,
            rnns,
        })
    }

    /// The sizes.
    pub fn config(&self) -> &AwdLstmConfig {
        &self.config
    }

    /// The embedding matrix (the language model's decoder shares it).
    pub fn embedding(&self) -> &Tensor {
        &self.embedding
    }

    /// The last layer's output (batch, steps, emb_size) for ids (batch, steps), right-padded
    /// where `mask` (batch, steps) is 0. Dropouts apply in training only.
    pub fn forward(
        &self,
        ids: &Tensor,
        mask: Option<&Tensor>,
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        let d = self.config.dropouts;
        let (batch, steps) = ids.dims2()?;
        let table = embedding_dropout(&self.embedding, d.embed_p, ctx)?;
        let embedded =
            table
                .embedding(&ids.flatten_all()?)?
                .reshape((batch, steps, self.config.emb_size))?;
        let mut x = locked_dropout(&embedded, d.input_p, ctx)?;
        for (l, rnn) in self.rnns.iter().enumerate() {
            x = rnn.forward(&x, mask, ctx)?.outputs;
            if l + 1 < self.rnns.len() {
                x = locked_dropout(&x, d.hidden_p, ctx)?;
            }
        }
        Ok(x)
    }

    /// The names of the layer groups ULMFiT trains with their own rates and unfreezes one by
    /// one, bottom first: the embedding, then each LSTM layer (as `*` patterns under `prefix`).
    pub fn layer_groups(&self, prefix: &str) -> Vec<String> {
        std::iter::once(format!("{prefix}encoder.*"))
            .chain((0..self.rnns.len()).map(|l| format!("{prefix}rnns.{l}.*")))
            .collect()
    }
}

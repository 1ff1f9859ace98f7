//! `T5EncoderModel`: T5's shared embedding and encoder stack alone (sentence encoders such as
//! the T5 half of sentence-T5, or the text encoder of image models), from a Hugging Face folder.

use std::path::Path;

use candle_core::{Device, Tensor};

use super::config::T5Config;
use super::layers::Stack;
use crate::error::Result;
use crate::models::checkpoint::{load_checkpoint, read_weights};
use crate::nn::{ForwardCtx, ParamStore};
use crate::text::SubwordTokenizer;

/// T5's encoder with its embedding.
pub struct T5EncoderModel {
    /// The settings of `config.json`.
    pub config: T5Config,
    /// The tokenizer, when the folder has one.
    pub tokenizer: Option<SubwordTokenizer>,
    params: ParamStore,
    shared: Tensor,
    encoder: Stack,
}

impl T5EncoderModel {
    /// Loads the encoder of a T5 folder (`T5EncoderModel` or `T5ForConditionalGeneration`
    /// checkpoints: decoder and output tensors are left out without a warning).
    pub fn from_pretrained(dir: &Path, device: &Device) -> Result<Self> {
        let config = T5Config::from_folder(dir)?;
        let params = ParamStore::for_checkpoint(device.clone());
        let vb = params.builder(0);
        let shared = super::shared_embedding(&vb, &config)?;
        let encoder = Stack::new(&vb.pp("encoder"), &config, false)?;
        let (mut tensors, file) = read_weights(dir)?;
        super::fill_shared(&mut tensors);
        tensors.retain(|name, _| {
            name == "shared.weight"
                || (name.starts_with("encoder.") && name != "encoder.embed_tokens.weight")
        });
        load_checkpoint(&params, &tensors, &file, &|_| false)?;
        let tokenizer = super::folder_tokenizer(dir)?;
        Ok(Self {
            config,
            tokenizer,
            params,
            shared,
            encoder,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// The last hidden states (batch, seq, d) of id rows and their attention mask.
    pub fn forward(
        &self,
        ids: &[Vec<u32>],
        mask: &[Vec<u32>],
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        let x = crate::nn::embedding::lookup(&self.shared, ids)?;
        self.encoder.encode(&x, mask, ctx)
    }
}

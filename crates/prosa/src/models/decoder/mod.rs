//! Decoder-only language models: GPT-2 and Llama (SmolLM2) with Hugging Face names, loaded from
//! folders or GGUF files, generating through [`crate::generation`], with causal-LM training and
//! perplexity.
//!
//! - [`gpt2`] and [`llama`]: each family's parameters, names and initialisation, top to bottom;
//! - [`block`]: the pre-norm block both families stack;
//! - [`model`]: embeddings → blocks → final norm → output layer, folders in and out;
//! - [`gguf`]: llama.cpp files beside the folder loader; [`chat`]: chat templates;
//! - `fused_decode`: one token of a quantized Llama on plain buffers (the decode step);
//! - `token_table`: token embeddings, f32 or a GGUF file's quantized rows;
//! - [`lm`]: `group_texts`, the causal-LM `Trainable`, perplexity, the unigram baseline.

pub mod block;
pub mod chat;
pub mod config;
mod fused_decode;
pub mod gguf;
mod gguf_shapes;
pub mod gpt2;
pub mod llama;
pub mod lm;
pub mod model;
mod parts;
mod token_table;

pub use crate::nn::kv_cache::KvCache;
pub use config::{DecoderConfig, DecoderFamily};
pub use model::DecoderModel;

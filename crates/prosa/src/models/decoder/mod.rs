//! Decoder-only language models: GPT-2 and Llama (SmolLM2) with Hugging Face names, loaded from
//! folders or GGUF files, with `generate()`, causal-LM training and perplexity.

pub mod cache;
pub mod chat;
pub mod config;
pub mod generation;
pub mod gguf;
pub mod layers;
pub mod lm;
pub mod model;

pub use cache::KvCache;
pub use config::{DecoderConfig, DecoderFamily};
pub use generation::{generate, GenerationConfig, GenerationOutput, TextStreamer};
pub use model::DecoderModel;

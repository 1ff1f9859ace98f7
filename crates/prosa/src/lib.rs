//! prosa: the deep-NLP architectures of the course — data, tokenizers, one Trainer, metrics,
//! reports and models — on the candle tensor engine.
//!
//! The path data takes: a [`data::Dataset`] of rows → a tokenizer ([`text`]) → batches → a
//! model ([`models`]) → loss → the [`train::Trainer`] → [`metrics`] and [`report`] plots.
#![warn(missing_docs)]

pub mod causal_lm;
pub mod data;
pub mod error;
pub mod experiment;
pub mod fsio;
pub mod metrics;
pub mod models;
pub mod nn;
pub mod pipelines;
pub mod pretraining;
pub mod report;
pub mod text;
pub mod token_classification;
pub mod train;
pub mod vectors;

pub use error::{Error, Result};

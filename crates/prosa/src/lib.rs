//! prosa: the deep-NLP architectures of the course — data, tokenizers, one Trainer, metrics,
//! reports and models — on the candle tensor engine.
//!
//! The layers, lowest first (a module imports only from layers below it):
//!
//! 1. [`error`], [`fsio`], [`device`]: the one error type, atomic files, the device choice;
//! 2. [`data`], [`text`], [`vectors`], [`metrics`]: rows, tokenizers, word vectors, scores;
//! 3. [`nn`]: ops and layers (attention, norms, recurrent cells, parameters);
//! 4. [`generation`]: `generate()` over the [`generation::Generator`] trait models implement;
//! 5. [`models`]: one file per architecture, Hugging Face folders in and out;
//! 6. [`train`]: the Trainer, optimizers, schedules, history;
//! 7. [`tasks`], [`pipelines`], [`report`]: training tasks, inference pipelines, plots.
#![warn(missing_docs)]

pub mod data;
pub mod device;
pub mod error;
pub mod fsio;
pub mod generation;
pub mod guard;
pub mod metrics;
pub mod models;
pub mod nn;
pub mod pipelines;
pub mod report;
pub mod tasks;
pub mod text;
pub mod train;
pub mod vectors;

pub use error::{Error, Result};

//! BERT-family encoders (BERT, DistilBERT, RoBERTa) with their task heads, Hugging Face
//! checkpoints in and out.

pub mod classifier;
pub mod config;
pub mod layers;
pub mod model;
mod names;
pub mod pretraining;
pub mod token_classifier;

pub use classifier::{EncoderClassifier, EncoderExample};
pub use config::{EncoderConfig, Family, Task};
pub use model::{EncoderInput, EncoderModel, EncoderOutput, PackedStates};
pub use token_classifier::{EncoderTokenClassifier, TokenExample};

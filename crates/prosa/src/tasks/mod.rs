//! The training tasks, one file each, all driven by the [`Trainer`](crate::train::Trainer) and
//! ending the same way ([`ending`]: model folder, training arguments, history, curves, results
//! JSON):
//!
//! - [`text_classification`]: one label per text (bag-of-words, RNN/LSTM/GRU, encoders);
//! - [`token_classification`]: one tag per word (NER) with an encoder;
//! - [`causal_lm`]: next-token prediction (a GPT-2 from scratch, or fine-tuning a decoder);
//! - [`masked_lm`]: BERT pretraining from scratch (MLM + NSP);
//! - [`t5_pretraining`]: T5 pretraining from scratch (span corruption);
//! - [`elmo_pretraining`]: an ELMo biLM from scratch (forward and backward LM);
//! - [`ulmfit_pretraining`]: ULMFiT's general-domain AWD-LSTM language model;
//! - [`translation`]: a Transformer translator from scratch, scored with BLEU and chrF.
//!
//! All but the masked LM read one [`Experiment`] (the TOML file of `prosa train`), whose defaults
//! per task live in [`experiment`]; [`run`] dispatches on its task.

pub mod causal_lm;
pub mod elmo_pretraining;
pub mod ending;
pub mod experiment;
pub mod masked_lm;
mod settings_used;
pub mod t5_pretraining;
pub mod text_classification;
pub mod token_classification;
pub mod translation;
mod ulmfit;
pub mod ulmfit_pretraining;

use serde::Serialize;

pub use experiment::{
    ClassWeight, DataSpec, Experiment, ModelSpec, SampleSpec, TaskKind, UlmfitSpec,
};

use crate::error::Result;

/// What a run of [`run`] produced, by task.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum TaskResult {
    /// Sequence classification.
    TextClassification(Box<text_classification::ExperimentResult>),
    /// Token classification.
    TokenClassification(token_classification::TokenClassificationResult),
    /// Causal language modelling.
    CausalLm(causal_lm::CausalLmResult),
    /// Translation.
    Translation(Box<translation::TranslationResult>),
}

/// Checks the experiment ([`Experiment::check`]) and runs its task; with `resume`, training
/// continues from the last checkpoint.
pub fn run(experiment: &Experiment, resume: bool) -> Result<TaskResult> {
    experiment.check()?;
    Ok(match experiment.task {
        TaskKind::SequenceClassification => {
            TaskResult::TextClassification(Box::new(text_classification::run(experiment, resume)?))
        }
        TaskKind::TokenClassification => {
            TaskResult::TokenClassification(token_classification::run(experiment, resume)?)
        }
        TaskKind::CausalLm => TaskResult::CausalLm(causal_lm::run(experiment, resume)?),
        TaskKind::Translation => {
            TaskResult::Translation(Box::new(translation::run(experiment, resume)?))
        }
    })
}

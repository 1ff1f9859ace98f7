//! Models, one file per architecture, each loadable from and savable to a model folder.

pub mod attention_maps;
pub mod bow;
pub mod checkpoint;
pub mod decoder;
pub mod elmo;
pub mod encoder;
pub mod folder;
pub mod limits;
pub mod rnn;
pub mod seq2seq;
pub mod transformer_classifier;
pub mod ulmfit;

use std::path::Path;

use candle_core::Device;

use crate::data::LabelMap;
use crate::error::{Error, Result};
use crate::train::StepOutput;

/// What every text classifier offers once trained: class probabilities and a folder to save.
pub trait TextClassifier: Send + Sync {
    /// The classes, in id order.
    fn labels(&self) -> &LabelMap;
    /// Class probabilities of each text, in label-map order.
    fn predict_proba(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
    /// Writes the model folder (`config.json`, `model.safetensors`, tokenizer).
    fn save(&self, dir: &Path) -> Result<()>;
    /// Number of scalar parameters.
    fn num_parameters(&self) -> usize;
    /// The `model_type` of `config.json`.
    fn model_type(&self) -> &str;
}

/// A classifier's training step from its logits (batch, classes): the (class-weighted)
/// cross-entropy, and the argmax predictions beside the targets for the metrics.
pub(crate) fn classification_step(
    logits: &candle_core::Tensor,
    targets: Vec<u32>,
    class_weights: Option<&candle_core::Tensor>,
) -> Result<StepOutput> {
    let loss = crate::nn::loss::cross_entropy(logits, &targets, class_weights)?;
    let predictions = logits
        .argmax(candle_core::D::Minus1)?
        .to_dtype(candle_core::DType::U32)?
        .to_vec1::<u32>()?;
    Ok(StepOutput {
        loss,
        predictions: Some(predictions),
        targets: Some(targets),
    })
}

/// The architectures [`load_classifier`] knows.
pub const KNOWN_CLASSIFIERS: &[&str] = &[
    bow::MODEL_TYPE,
    rnn::MODEL_TYPE,
    transformer_classifier::MODEL_TYPE,
    elmo::classifier::CLASSIFIER_TYPE,
    ulmfit::classifier::CLASSIFIER_TYPE,
    "bert",
    "distilbert",
    "roberta",
];

/// Loads any prosa text classifier from its folder, dispatching on `config.json`'s `model_type`.
pub fn load_classifier(dir: &Path, device: &Device) -> Result<Box<dyn TextClassifier>> {
    match folder::model_type(dir)?.as_str() {
        bow::MODEL_TYPE => Ok(Box::new(bow::BowClassifier::load(dir, device)?)),
        rnn::MODEL_TYPE => Ok(Box::new(rnn::RnnClassifier::load(dir, device)?)),
        transformer_classifier::MODEL_TYPE => Ok(Box::new(
            transformer_classifier::TransformerClassifier::load(dir, device)?,
        )),
        "bert" | "distilbert" | "roberta" => {
            Ok(Box::new(encoder::EncoderClassifier::load(dir, device)?))
        }
        elmo::classifier::CLASSIFIER_TYPE => Ok(Box::new(elmo::classifier::ElmoClassifier::load(
            dir, device,
        )?)),
        ulmfit::classifier::CLASSIFIER_TYPE => Ok(Box::new(
            ulmfit::classifier::UlmfitClassifier::load(dir, device)?,
        )),
        other => Err(Error::folder(
            dir.join("config.json"),
            format!(
                "unknown architecture model_type = \"{other}\" (prosa knows: {})",
                KNOWN_CLASSIFIERS.join(", ")
            ),
        )),
    }
}

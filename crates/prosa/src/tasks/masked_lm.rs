//! The masked-LM task: BERT pretraining from scratch on a corpus, the run `prosa pretrain` makes: a WordPiece
//! vocabulary trained on the training documents, segment pairs for next-sentence prediction,
//! MLM + NSP with the Trainer, curves, and fill-mask on held-out sentences.

use std::path::PathBuf;

use rand::SeedableRng;
use serde::Serialize;

use super::ending::{save_run, write_results};
use crate::data::corpus::{read_documents, Document};
use crate::error::{Error, Result};
use crate::fsio;
use crate::models::encoder::pretraining::{nsp_accuracy, BertPretrainer, BertSize};
use crate::pipelines::FillMask;
use crate::text::{SubwordKind, SubwordTokenizer, SubwordTrainConfig};
use crate::train::{Trainer, TrainingArgs};

/// What to pretrain on and how big.
#[derive(Debug, Clone)]
pub struct PretrainSpec {
    /// A text/Markdown file or a folder of them.
    pub corpus: PathBuf,
    /// WordPiece vocabulary size.
    pub vocab_size: usize,
    /// Model size and example length.
    pub size: BertSize,
    /// The last N documents (by path) are held out for validation and the fill-mask samples.
    pub validation_documents: usize,
    /// Trainer settings.
    pub training: TrainingArgs,
}

/// One held-out sentence with a word masked and the model's top guesses.
#[derive(Debug, Clone, Serialize)]
pub struct FillMaskSample {
    /// The sentence with `[MASK]`.
    pub masked: String,
    /// The word that was there.
    pub expected: String,
    /// The model's five guesses, best first.
    pub guesses: Vec<String>,
}

/// What the run produced.
#[derive(Debug, Clone, Serialize)]
pub struct PretrainResult {
    /// The saved `BertForPreTraining` folder.
    pub model_dir: PathBuf,
    /// Segment pairs for training and validation.
    pub pairs: (usize, usize),
    /// Parameters.
    pub num_parameters: usize,
    /// MLM accuracy and loss (MLM + NSP) on the validation pairs at each evaluation.
    pub curve: Vec<(usize, f64, f64)>,
    /// Next-sentence accuracy on the validation pairs at the end.
    pub nsp_accuracy: f64,
    /// Fill-mask on held-out sentences.
    pub samples: Vec<FillMaskSample>,
    /// Seconds of training.
    pub train_seconds: f64,
}

/// Runs the pretraining.
pub fn run(spec: &PretrainSpec, resume: bool) -> Result<PretrainResult> {
    spec.training.check_metric(&["loss", "accuracy"])?;
    let device = spec.training.device.open()?;
    fsio::create_dir(&spec.training.output_dir)?;
    let mut documents = read_documents(&spec.corpus)?;
    if documents.len() <= spec.validation_documents {
        return Err(Error::config(
            "validation_documents",
            format!("the corpus has only {} documents", documents.len()),
        ));
    }
    let held_out: Vec<Document> = documents.split_off(documents.len() - spec.validation_documents);
    let texts = documents
        .iter()
        .flat_map(|d| d.segments.iter().map(String::as_str));
    let tokenizer = SubwordTokenizer::train_from_texts(
        &SubwordTrainConfig::new(SubwordKind::WordPiece, spec.vocab_size),
        texts,
    )?;
    let model = BertPretrainer::new(tokenizer, spec.size, spec.training.seed, &device)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(spec.training.seed);
    let train = model.pairs(&documents, &mut rng)?;
    let validation = model.pairs(&held_out, &mut rng)?;
    let trainer = Trainer::new(spec.training.clone(), Vec::new())?;
    let outcome = trainer.train(&model, &train, Some(&validation), resume)?;
    let saved = save_run(
        &spec.training,
        &outcome,
        "BERT pretraining (MLM + NSP)",
        |dir| model.save(dir),
    )?;
    let model_dir = saved.model_dir;
    let curve = outcome
        .state
        .history
        .metric_pairs("eval_accuracy", "eval_loss");
    let samples = fill_mask_samples(&model_dir, &held_out, &device)?;
    let result = PretrainResult {
        model_dir,
        pairs: (train.len(), validation.len()),
        num_parameters: model.model().params().num_parameters(),
        curve,
        nsp_accuracy: nsp_accuracy(&model, &validation)?,
        samples,
        train_seconds: outcome.train_seconds,
    };
    write_results(&spec.training, result)
}

/// Masks a common word in a few held-out segments and asks the saved model to fill it.
fn fill_mask_samples(
    model_dir: &std::path::Path,
    held_out: &[Document],
    device: &candle_core::Device,
) -> Result<Vec<FillMaskSample>> {
    const WORDS: [&str; 8] = [
        "love", "lord", "king", "heart", "good", "death", "night", "father",
    ];
    let pipeline = FillMask::from_pretrained(model_dir, device)?;
    let mut samples = Vec::new();
    for segment in held_out.iter().flat_map(|d| &d.segments) {
        let words: Vec<&str> = segment.split_whitespace().collect();
        if !(6..=20).contains(&words.len()) {
            continue;
        }
        let Some(i) = words
            .iter()
            .position(|w| WORDS.contains(&w.to_lowercase().as_str()))
        else {
            continue;
        };
        let mut masked = words.clone();
        masked[i] = "[MASK]";
        let masked = masked.join(" ");
        let guesses = pipeline.run(&[masked.as_str()], 5)?.remove(0);
        samples.push(FillMaskSample {
            masked,
            expected: words[i].to_lowercase(),
            guesses: guesses
                .into_iter()
                .map(|g| g.token_str.trim().to_string())
                .collect(),
        });
        if samples.len() == 8 {
            break;
        }
    }
    Ok(samples)
}

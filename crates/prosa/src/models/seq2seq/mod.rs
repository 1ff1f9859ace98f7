//! Encoder–decoder models (the course's Unit II), each a [`Translator`]: the Transformer of
//! "Attention is all you need" with PyTorch's names ([`transformer`]) and a translator built on
//! it ([`translator`]: shared BPE vocabulary, tied embeddings, label smoothing); the RNN
//! encoder–decoder with or without attention ([`rnn`]). Each generates through
//! [`crate::generation::Generator`]: the sources are encoded once, the decoder starts from its
//! start token, and the encoder's states follow the beams.

pub mod bart;
pub mod hf;
pub mod rnn;
pub mod t5;
pub mod transformer;
pub mod translator;

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::Result;
use crate::generation::{generate, GenerationConfig, Generator};
use crate::text::SubwordTokenizer;
use crate::train::Trainable;

/// One training pair as token ids: the source (with `</s>`) and the target tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct TranslationExample {
    /// Source ids, `</s>` at the end.
    pub source: Vec<u32>,
    /// Target ids, without special tokens.
    pub target: Vec<u32>,
}

impl TranslationExample {
    /// The longer side, the length `group_by_length` batches by.
    pub fn length(&self) -> usize {
        self.source.len().max(self.target.len())
    }
}

/// The labels of teacher forcing, row-major (pair, step) for `steps` steps: step `t` learns
/// target token `t`, the step after the last token (targets cut to `limit`) learns `</s>`, and
/// later steps learn nothing.
pub(crate) fn decoder_labels(
    batch: &[&TranslationExample],
    steps: usize,
    limit: usize,
    eos: u32,
) -> Vec<Option<u32>> {
    let mut labels = Vec::with_capacity(batch.len() * steps);
    for e in batch {
        let n = e.target.len().min(limit);
        labels.extend((0..steps).map(|t| match t.cmp(&n) {
            std::cmp::Ordering::Less => Some(e.target[t]),
            std::cmp::Ordering::Equal => Some(eos),
            std::cmp::Ordering::Greater => None,
        }));
    }
    labels
}

/// What every translation model offers: training on [`TranslationExample`]s, generation, and
/// the translation of texts built on them.
pub trait Translator: Trainable<Example = TranslationExample> + Generator + Sized {
    /// Decoding defaults.
    fn generation(&self) -> &GenerationConfig;
    /// Longest source or target (special tokens included).
    fn max_positions(&self) -> usize;
    /// `</s>`.
    fn eos_token_id(&self) -> u32;
    /// Writes the model folder atomically.
    fn save_pretrained(&self, dir: &Path) -> Result<()>;

    /// Source ids of a text: its tokens (cut to leave room for `</s>`) and `</s>`.
    fn encode_source(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Generator::tokenizer(self)?.encode(text, false)?;
        ids.truncate(self.max_positions() - 1);
        ids.push(self.eos_token_id());
        Ok(ids)
    }

    /// Translations of source ids (each ending with `</s>`), 32 at a time, with `g`; without
    /// `max_new_tokens`, twice the longest source of the batch plus 10 tokens at most.
    fn translate_ids(&self, sources: &[Vec<u32>], g: &GenerationConfig) -> Result<Vec<String>> {
        let mut out = Vec::with_capacity(sources.len());
        for chunk in sources.chunks(32) {
            let longest = chunk.iter().map(Vec::len).max().unwrap_or(0);
            let g = GenerationConfig {
                max_new_tokens: Some(g.max_new_tokens.unwrap_or(2 * longest + 10)),
                num_return_sequences: 1,
                ..g.clone()
            };
            let generated = generate(self, chunk, &g, None)?;
            for ids in &generated.new_tokens {
                out.push(Generator::tokenizer(self)?.decode(ids, true)?);
            }
        }
        Ok(out)
    }

    /// Translates texts with `g` (greedy by default, beam search with `num_beams`).
    fn translate(&self, texts: &[&str], g: &GenerationConfig) -> Result<Vec<String>> {
        let sources = texts
            .iter()
            .map(|t| self.encode_source(t))
            .collect::<Result<Vec<_>>>()?;
        self.translate_ids(&sources, g)
    }

    /// Corpus BLEU (sacrebleu's) of greedy translations of `examples` against their targets.
    fn bleu(&self, examples: &[TranslationExample]) -> Result<f64> {
        let sources: Vec<Vec<u32>> = examples.iter().map(|e| e.source.clone()).collect();
        let hyps = self.translate_ids(&sources, self.generation())?;
        let tokenizer = Generator::tokenizer(self)?;
        let refs = examples
            .iter()
            .map(|e| tokenizer.decode(&e.target, true))
            .collect::<Result<Vec<_>>>()?;
        let hyp_refs: Vec<&str> = hyps.iter().map(String::as_str).collect();
        let ref_refs: Vec<&str> = refs.iter().map(String::as_str).collect();
        Ok(crate::metrics::bleu::corpus_bleu(&hyp_refs, &[ref_refs])?.score)
    }
}

/// Writes a translator folder atomically: `config.json`, `model.safetensors`, `tokenizer.json`
/// and `generation_config.json`.
pub(crate) fn save_folder(
    dir: &Path,
    config: &impl serde::Serialize,
    tokenizer: &SubwordTokenizer,
    generation: &GenerationConfig,
    params: &crate::nn::ParamStore,
) -> Result<()> {
    use crate::error::Error;
    let contents = crate::models::folder::ModelFolder {
        config: serde_json::to_value(config).map_err(|e| Error::config("config", e.to_string()))?,
        extra_files: vec![
            ("tokenizer.json", tokenizer.to_json_bytes()?),
            (
                "generation_config.json",
                serde_json::to_vec_pretty(&generation.to_json())
                    .map_err(|e| Error::config("generation", e.to_string()))?,
            ),
        ],
    };
    crate::models::folder::save(dir, &contents, params)
}

/// Rows padded on the right with `pad` to the longest (at least 1), and their masks (1: token).
pub(crate) fn pad_right(rows: &[Vec<u32>], pad: u32) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let longest = rows.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let mask = rows
        .iter()
        .map(|r| (0..longest).map(|i| u32::from(i < r.len())).collect())
        .collect();
    let ids = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.resize(longest, pad);
            r
        })
        .collect();
    (ids, mask)
}

/// The tokenizer files of a saved encoder–decoder folder.
pub(crate) enum SavedTokenizer<'a> {
    /// `tokenizer.json`, when there is a tokenizer.
    Json(Option<&'a SubwordTokenizer>),
    /// Files copied as they were read (Marian's `source.spm`, `target.spm`, `vocab.json`).
    Files(&'a [(&'static str, Vec<u8>)]),
}

/// Writes a Hugging Face encoder–decoder folder atomically: `config.json` as it was read,
/// `model.safetensors`, `generation_config.json`, and the tokenizer's files.
pub(crate) fn save_hf_folder(
    dir: &Path,
    raw_config: &serde_json::Value,
    generation: &GenerationConfig,
    tokenizer: SavedTokenizer,
    params: &crate::nn::ParamStore,
) -> Result<()> {
    let mut extra_files = vec![(
        "generation_config.json",
        serde_json::to_vec_pretty(&generation.to_json())
            .map_err(|e| crate::error::Error::config("generation", e.to_string()))?,
    )];
    match tokenizer {
        SavedTokenizer::Json(Some(t)) => extra_files.push(("tokenizer.json", t.to_json_bytes()?)),
        SavedTokenizer::Json(None) => {}
        SavedTokenizer::Files(files) => extra_files.extend(files.iter().cloned()),
    }
    let contents = crate::models::folder::ModelFolder {
        config: raw_config.clone(),
        extra_files,
    };
    crate::models::folder::save(dir, &contents, params)
}

/// The tokenizer of a translator folder (`tokenizer.json`).
pub(crate) fn load_tokenizer(dir: &Path) -> Result<SubwordTokenizer> {
    crate::models::folder::load_tokenizer(dir)?
        .ok_or_else(|| crate::error::Error::folder(dir.join("tokenizer.json"), "file not found"))
}

/// Loads the weights of a translator folder into `params` under the one checkpoint policy.
pub(crate) fn load_weights(dir: &Path, params: &crate::nn::ParamStore) -> Result<()> {
    let (tensors, file) = crate::models::checkpoint::read_weights(dir)?;
    crate::models::checkpoint::load_checkpoint(params, &tensors, &file, &|_| false)?;
    Ok(())
}

/// Any translator folder, by its `model_type`.
pub enum AnyTranslator {
    /// A [`translator::TransformerTranslator`].
    Transformer(translator::TransformerTranslator),
    /// An [`rnn::RnnTranslator`].
    Rnn(rnn::RnnTranslator),
    /// A T5, BART or Marian folder (T5 gets its `translation_*` prefix).
    EncoderDecoder(hf::HfEncoderDecoder),
}

impl AnyTranslator {
    /// Loads a translator folder, whichever its architecture.
    pub fn from_pretrained(dir: &Path, device: &candle_core::Device) -> Result<Self> {
        match crate::models::folder::model_type(dir)?.as_str() {
            translator::MODEL_TYPE => Ok(Self::Transformer(
                translator::TransformerTranslator::from_pretrained(dir, device)?,
            )),
            rnn::MODEL_TYPE => Ok(Self::Rnn(rnn::RnnTranslator::from_pretrained(dir, device)?)),
            t if hf::MODEL_TYPES.contains(&t) => Ok(Self::EncoderDecoder(
                hf::HfEncoderDecoder::from_pretrained(dir, device)?,
            )),
            other => Err(crate::error::Error::folder(
                dir.join("config.json"),
                format!(
                    "model_type \"{other}\" is not a translator ({}, {}, {})",
                    translator::MODEL_TYPE,
                    rnn::MODEL_TYPE,
                    hf::MODEL_TYPES.join(", ")
                ),
            )),
        }
    }

    /// Decoding defaults.
    pub fn generation(&self) -> &GenerationConfig {
        match self {
            Self::Transformer(m) => m.generation(),
            Self::Rnn(m) => m.generation(),
            Self::EncoderDecoder(m) => m.generation(),
        }
    }

    /// Translates texts with `g`.
    pub fn translate(&self, texts: &[&str], g: &GenerationConfig) -> Result<Vec<String>> {
        match self {
            Self::Transformer(m) => m.translate(texts, g),
            Self::Rnn(m) => m.translate(texts, g),
            Self::EncoderDecoder(m) => {
                let prefix = m.task_prefix("translation").unwrap_or_default();
                Ok(m.generate_texts(texts, &prefix, g)?
                    .into_iter()
                    .map(|t| t.text)
                    .collect())
            }
        }
    }
}

/// The `bleu` metric of an evaluation: greedy BLEU of the first `limit` pairs.
pub(crate) fn validation_bleu<M: Translator>(
    model: &M,
    examples: &[TranslationExample],
    limit: usize,
) -> Result<BTreeMap<String, f64>> {
    let n = examples.len().min(limit);
    let mut out = BTreeMap::new();
    if n > 0 {
        out.insert("bleu".to_string(), model.bleu(&examples[..n])?);
    }
    Ok(out)
}

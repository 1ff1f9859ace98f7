//! SentencePiece model files (`spiece.model`, Marian's `source.spm` / `target.spm`) read into
//! the `tokenizers` crate, as transformers 5 builds T5's tokenizer from them: the unigram pieces
//! and scores, the model's precompiled normalisation map, whitespace split + metaspace (`▁`)
//! pre-tokenization, and `</s>` appended. The protobuf messages below declare only the fields
//! used (numbers from SentencePiece's `sentencepiece_model.proto`); `prost` decodes them.

use std::path::Path;

use tokenizers::decoders::metaspace::Metaspace as MetaspaceDecoder;
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::Precompiled;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use super::piece_vocab::PieceVocab;
use super::SubwordTokenizer;
use crate::error::{Error, Result};

/// `ModelProto`: the pieces and the specs.
#[derive(Clone, PartialEq, prost::Message)]
struct ModelProto {
    #[prost(message, repeated, tag = "1")]
    pieces: Vec<Piece>,
    #[prost(message, optional, tag = "2")]
    trainer_spec: Option<TrainerSpec>,
    #[prost(message, optional, tag = "3")]
    normalizer_spec: Option<NormalizerSpec>,
}

/// `ModelProto.SentencePiece`.
#[derive(Clone, PartialEq, prost::Message)]
struct Piece {
    #[prost(string, optional, tag = "1")]
    piece: Option<String>,
    #[prost(float, optional, tag = "2")]
    score: Option<f32>,
    /// 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
    #[prost(int32, optional, tag = "3")]
    kind: Option<i32>,
}

/// `TrainerSpec` (the fields that shape encoding).
#[derive(Clone, PartialEq, prost::Message)]
struct TrainerSpec {
    /// 1 unigram, 2 BPE, 3 word, 4 char.
    #[prost(int32, optional, tag = "3")]
    model_type: Option<i32>,
    #[prost(bool, optional, tag = "35")]
    byte_fallback: Option<bool>,
    #[prost(int32, optional, tag = "40")]
    unk_id: Option<i32>,
}

/// `NormalizerSpec`.
#[derive(Clone, PartialEq, prost::Message)]
struct NormalizerSpec {
    #[prost(bytes = "vec", optional, tag = "2")]
    precompiled_charsmap: Option<Vec<u8>>,
}

/// What to append to every encoded text.
pub struct SpmOptions<'a> {
    /// The end token appended (`</s>` for T5 and Marian), if any.
    pub eos: Option<&'a str>,
    /// Tokens that are special (skipped when decoding): pad, eos, unk.
    pub special: &'a [&'a str],
    /// Tokens matched whole but decoded as text (Marian's `>>xx<<` language codes).
    pub added: &'a [&'a str],
    /// T5's sentinels `<extra_id_{n-1}>` … `<extra_id_0>`, appended after the pieces.
    pub extra_ids: usize,
}

/// A tokenizer from a SentencePiece unigram model file; errors name the file.
pub fn from_spm_file(path: &Path, options: &SpmOptions) -> Result<SubwordTokenizer> {
    let model = read_model(path)?;
    let (vocab, unk) = pieces_and_unk(&model);
    build(path, &model, vocab, unk, options)
}

/// The model's pieces with their scores, by id, and the id of its unknown piece.
fn pieces_and_unk(model: &ModelProto) -> (Vec<(String, f64)>, usize) {
    let vocab = model
        .pieces
        .iter()
        .map(|p| {
            (
                p.piece.clone().unwrap_or_default(),
                p.score.unwrap_or(0.0) as f64,
            )
        })
        .collect();
    let unk = model
        .trainer_spec
        .as_ref()
        .and_then(|t| t.unk_id)
        .unwrap_or(0)
        .max(0) as usize;
    (vocab, unk)
}

/// Marian's tokenizer as opus-mt folders ship it (`source.spm`, `target.spm`, `vocab.json`;
/// transformers' `MarianTokenizer`): texts are cut into the source model's pieces, which get
/// their `vocab.json` ids (`<unk>`'s when absent); decoding maps ids back to the pieces of
/// `vocab.json` (the target's included). `>>xx<<` language codes of the vocabulary are matched
/// whole; `</s>` is appended. The target model is read to check it. Errors name the file.
pub fn from_marian_files(dir: &Path) -> Result<SubwordTokenizer> {
    let source_path = dir.join("source.spm");
    let source = read_model(&source_path)?;
    read_model(&dir.join("target.spm"))?;
    let vocab_path = dir.join("vocab.json");
    let ids: std::collections::HashMap<String, u32> =
        serde_json::from_str(&crate::fsio::read_text(&vocab_path)?)
            .map_err(|e| Error::folder(&vocab_path, format!("not a piece → id map: {e}")))?;
    let mut pieces = vec![None; ids.len()];
    for (piece, &id) in &ids {
        match pieces.get_mut(id as usize) {
            Some(slot @ None) => *slot = Some(piece.clone()),
            _ => {
                return Err(Error::folder(
                    &vocab_path,
                    format!(
                        "id {id} of \"{piece}\" is repeated or past the {} entries",
                        ids.len()
                    ),
                ))
            }
        }
    }
    let id = |token: &str| {
        ids.get(token)
            .copied()
            .ok_or_else(|| Error::folder(&vocab_path, format!("{token} must be in the vocabulary")))
    };
    let (unk, eos, pad) = (id("<unk>")?, id("</s>")?, id("<pad>")?);
    let codes: Vec<&str> = ids
        .keys()
        .map(String::as_str)
        .filter(|k| k.starts_with(">>") && k.ends_with("<<"))
        .collect();
    let (source_vocab, source_unk) = pieces_and_unk(&source);
    let options = SpmOptions {
        eos: None,
        special: &["</s>", "<unk>", "<pad>"],
        added: &codes,
        extra_ids: 0,
    };
    let tokenizer = build(&source_path, &source, source_vocab, source_unk, &options)?;
    let vocab = PieceVocab::new(
        pieces.into_iter().flatten().collect(),
        unk,
        eos,
        [unk, eos, pad].into_iter().collect(),
    );
    Ok(tokenizer.with_piece_vocab(vocab))
}

/// The model of a `.spm` / `.model` file, checked to be a unigram model with pieces.
fn read_model(path: &Path) -> Result<ModelProto> {
    use prost::Message;
    let bytes = crate::fsio::read_bytes(path)?;
    let model = ModelProto::decode(bytes.as_slice())
        .map_err(|e| Error::folder(path, format!("not a SentencePiece model: {e}")))?;
    let trainer = model.trainer_spec.clone().unwrap_or_default();
    if trainer.model_type.unwrap_or(1) != 1 {
        return Err(Error::folder(
            path,
            format!(
                "SentencePiece model type {} is not unigram (the type T5 and Marian use)",
                trainer.model_type.unwrap_or(1)
            ),
        ));
    }
    if model.pieces.is_empty() {
        return Err(Error::folder(path, "the model has no pieces"));
    }
    Ok(model)
}

/// The tokenizer of `vocab` (pieces by id, with scores) with `model`'s normalisation and
/// byte fallback; `path` names the file in errors.
fn build(
    path: &Path,
    model: &ModelProto,
    vocab: Vec<(String, f64)>,
    unk: usize,
    options: &SpmOptions,
) -> Result<SubwordTokenizer> {
    let trainer = model.trainer_spec.clone().unwrap_or_default();
    let unigram = Unigram::from(vocab, Some(unk), trainer.byte_fallback.unwrap_or(false))
        .map_err(|e| Error::folder(path, e.to_string()))?;
    let mut tokenizer = Tokenizer::new(unigram);
    let charsmap = model
        .normalizer_spec
        .as_ref()
        .and_then(|n| n.precompiled_charsmap.clone())
        .unwrap_or_default();
    if !charsmap.is_empty() {
        let precompiled = Precompiled::from(&charsmap)
            .map_err(|e| Error::folder(path, format!("precompiled_charsmap: {e}")))?;
        tokenizer.with_normalizer(Some(precompiled));
    }
    tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
        WhitespaceSplit.into(),
        Metaspace::new('▁', PrependScheme::Always, true).into(),
    ])));
    tokenizer.with_decoder(Some(MetaspaceDecoder::new(
        '▁',
        PrependScheme::Always,
        true,
    )));
    let sentinels = (0..options.extra_ids)
        .rev()
        .map(|i| format!("<extra_id_{i}>"));
    let special: Vec<AddedToken> = options
        .special
        .iter()
        .map(|t| t.to_string())
        .chain(sentinels)
        .map(|t| AddedToken::from(t, true))
        .collect();
    tokenizer.add_special_tokens(&special);
    let added: Vec<AddedToken> = options
        .added
        .iter()
        .map(|t| AddedToken::from(t.to_string(), false))
        .collect();
    tokenizer.add_tokens(&added);
    if let Some(eos) = options.eos {
        let id = tokenizer
            .token_to_id(eos)
            .ok_or_else(|| Error::folder(path, format!("no {eos} piece")))?;
        let template = TemplateProcessing::builder()
            .try_single(format!("$A {eos}"))
            .and_then(|b| b.try_pair(format!("$A {eos} $B {eos}")))
            .map_err(|e| Error::folder(path, e.to_string()))?
            .special_tokens(vec![(eos.to_string(), id)])
            .build()
            .map_err(|e| Error::folder(path, e.to_string()))?;
        tokenizer.with_post_processor(Some(template));
    }
    Ok(SubwordTokenizer::from_tokenizer(tokenizer))
}

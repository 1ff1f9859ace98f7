//! Training subword tokenizers (BPE, WordPiece, Unigram) with the `tokenizers` crate's
//! trainers, with the normalisers, pre-tokenizers and templates each kind uses.

use std::collections::HashSet;
use std::path::Path;

use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::unigram::{Unigram, UnigramTrainerBuilder};
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainerBuilder};
use tokenizers::models::TrainerWrapper;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use super::subword::tk_err;
use super::{SubwordKind, SubwordTokenizer, SubwordTrainConfig};
use crate::error::{Error, Result};

impl SubwordTokenizer {
    fn untrained(config: &SubwordTrainConfig) -> Result<(Tokenizer, TrainerWrapper)> {
        let specials: Vec<AddedToken> = config
            .special_tokens
            .iter()
            .map(|t| AddedToken::from(t.clone(), true))
            .collect();
        let unk = config
            .special_tokens
            .iter()
            .find(|t| t.to_ascii_lowercase().contains("unk"))
            .cloned();
        match config.kind {
            SubwordKind::Bpe => {
                let mut tk = Tokenizer::new(BPE::default());
                tk.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
                tk.with_decoder(Some(ByteLevel::default()));
                tk.with_post_processor(Some(ByteLevel::new(false, true, true)));
                let alphabet: HashSet<char> = ByteLevel::alphabet().into_iter().collect();
                let trainer = BpeTrainerBuilder::new()
                    .vocab_size(config.vocab_size)
                    .min_frequency(config.min_frequency)
                    .special_tokens(specials)
                    .initial_alphabet(alphabet)
                    .show_progress(false)
                    .build();
                Ok((tk, trainer.into()))
            }
            SubwordKind::WordPiece => {
                let unk = unk.unwrap_or_else(|| "[UNK]".into());
                let model = WordPiece::builder()
                    .unk_token(unk)
                    .build()
                    .map_err(tk_err)?;
                let mut tk = Tokenizer::new(model);
                tk.with_normalizer(Some(BertNormalizer::new(
                    true,
                    true,
                    None,
                    config.lowercase,
                )));
                tk.with_pre_tokenizer(Some(BertPreTokenizer));
                tk.with_decoder(Some(tokenizers::decoders::wordpiece::WordPiece::default()));
                let trainer = WordPieceTrainerBuilder::new()
                    .vocab_size(config.vocab_size)
                    .min_frequency(config.min_frequency)
                    .special_tokens(specials)
                    .show_progress(false)
                    .build();
                Ok((tk, trainer.into()))
            }
            SubwordKind::Unigram => {
                let mut tk = Tokenizer::new(Unigram::default());
                tk.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::Always, true)));
                tk.with_decoder(Some(Metaspace::new('▁', PrependScheme::Always, true)));
                let trainer = UnigramTrainerBuilder::default()
                    .vocab_size(config.vocab_size as u32)
                    .special_tokens(specials)
                    .unk_token(unk)
                    .show_progress(false)
                    .build()
                    .map_err(tk_err)?;
                Ok((tk, trainer.into()))
            }
        }
    }

    pub(super) fn finish(mut tk: Tokenizer, config: &SubwordTrainConfig) -> Result<Self> {
        if config.kind == SubwordKind::WordPiece {
            let id = |t: &str| {
                tk.token_to_id(t).ok_or_else(|| {
                    Error::Tokenizer(format!("special token {t} missing after training"))
                })
            };
            let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
            let template = TemplateProcessing::builder()
                .try_single("[CLS] $A [SEP]")
                .map_err(tk_err)?
                .try_pair("[CLS] $A [SEP] $B:1 [SEP]:1")
                .map_err(tk_err)?
                .special_tokens(vec![("[CLS]", cls), ("[SEP]", sep)])
                .build()
                .map_err(tk_err)?;
            tk.with_post_processor(Some(template));
        }
        Ok(Self::wrap(tk))
    }

    /// Trains a tokenizer on an iterator of texts.
    pub fn train_from_texts<I, S>(config: &SubwordTrainConfig, texts: I) -> Result<Self>
    where
        I: Iterator<Item = S> + Send,
        S: AsRef<str> + Send,
    {
        let (mut tk, mut trainer) = Self::untrained(config)?;
        tk.train(&mut trainer, texts).map_err(tk_err)?;
        Self::finish(tk, config)
    }

    /// Trains a tokenizer on text files (one or more texts per line).
    pub fn train_from_files(config: &SubwordTrainConfig, files: &[&Path]) -> Result<Self> {
        for f in files {
            if !f.is_file() {
                return Err(Error::io(
                    f,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "training file not found"),
                ));
            }
        }
        let (mut tk, mut trainer) = Self::untrained(config)?;
        let names = files.iter().map(|f| f.display().to_string()).collect();
        tk.train_from_files(&mut trainer, names).map_err(tk_err)?;
        Self::finish(tk, config)
    }
}

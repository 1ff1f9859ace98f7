//! Subword tokenizers through Hugging Face's `tokenizers` crate: train BPE (byte-level, as
//! GPT-2), WordPiece (as BERT) or Unigram (as T5/SentencePiece) on files or texts, load and save
//! `tokenizer.json`, and encode batches with attention masks, token type ids, truncation and
//! padding (to the longest or to `max_length`).

use std::path::Path;

use serde::{Deserialize, Serialize};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, EncodeInput, PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer,
    TruncationDirection, TruncationParams, TruncationStrategy,
};

use super::piece_vocab::PieceVocab;
use crate::error::{Error, Result};

pub(super) fn tk_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

/// The subword algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubwordKind {
    /// Byte-level BPE, as GPT-2 (no unknown tokens).
    Bpe,
    /// WordPiece with BERT's normaliser, pre-tokeniser and `[CLS] … [SEP]` template.
    WordPiece,
    /// Unigram with SentencePiece's `▁` word boundaries, as T5.
    Unigram,
}

impl std::str::FromStr for SubwordKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "bpe" => Ok(Self::Bpe),
            "wordpiece" => Ok(Self::WordPiece),
            "unigram" => Ok(Self::Unigram),
            other => Err(format!(
                "unknown tokenizer '{other}' (use bpe, wordpiece or unigram)"
            )),
        }
    }
}

/// Settings for training a subword tokenizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubwordTrainConfig {
    /// The algorithm.
    pub kind: SubwordKind,
    /// Target vocabulary size (special tokens included).
    pub vocab_size: usize,
    /// Minimum pair frequency for a merge (BPE, WordPiece).
    pub min_frequency: u64,
    /// Special tokens, added first so they get the lowest ids.
    pub special_tokens: Vec<String>,
    /// Lower-case the text first (WordPiece's `BertNormalizer`).
    pub lowercase: bool,
}

impl SubwordTrainConfig {
    /// The usual settings of `kind`: BERT's special tokens for WordPiece, `<|endoftext|>` for
    /// BPE, `<pad>`, `</s>`, `<unk>` for Unigram.
    pub fn new(kind: SubwordKind, vocab_size: usize) -> Self {
        let special: &[&str] = match kind {
            SubwordKind::WordPiece => &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
            SubwordKind::Bpe => &["<|endoftext|>"],
            SubwordKind::Unigram => &["<pad>", "</s>", "<unk>"],
        };
        Self {
            kind,
            vocab_size,
            min_frequency: 2,
            special_tokens: special.iter().map(|s| s.to_string()).collect(),
            lowercase: true,
        }
    }
}

/// Cut to `max_length` tokens at the end (the longest of a pair first), as transformers'
/// `truncation=True`.
fn right_truncation(max_length: usize) -> TruncationParams {
    TruncationParams {
        max_length,
        strategy: TruncationStrategy::LongestFirst,
        stride: 0,
        direction: TruncationDirection::Right,
    }
}

/// How [`SubwordTokenizer::encode_batch`] pads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// No padding: sequences keep their own lengths.
    None,
    /// Pad to the longest sequence of the batch.
    Longest,
    /// Pad to `max_length`.
    MaxLength,
}

/// Options of [`SubwordTokenizer::encode_batch`], named as in transformers' `tokenizer(...)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncodeOptions {
    /// Add the template's special tokens (`[CLS]`, `[SEP]`, …).
    pub add_special_tokens: bool,
    /// Padding strategy.
    pub padding: Padding,
    /// Cut sequences longer than `max_length`.
    pub truncation: bool,
    /// Length limit for truncation and for `Padding::MaxLength`.
    pub max_length: Option<usize>,
    /// Pad on the left (decoder-only generation) instead of the right.
    pub pad_left: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            add_special_tokens: true,
            padding: Padding::Longest,
            truncation: false,
            max_length: None,
            pad_left: false,
        }
    }
}

/// A batch of encoded texts, one row per text, all rows of equal length when padded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchEncoding {
    /// Token ids.
    pub input_ids: Vec<Vec<u32>>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<Vec<u32>>,
    /// Segment ids (0 for the first text, 1 for the second of a pair).
    pub token_type_ids: Vec<Vec<u32>>,
    /// The tokens as strings.
    pub tokens: Vec<Vec<String>>,
    /// The word each token came from (`None` for special and padding tokens).
    pub word_ids: Vec<Vec<Option<u32>>>,
    /// Each token's character span `(start, end)` in its text (in its word, for pre-split input).
    pub offsets: Vec<Vec<(usize, usize)>>,
}

/// A subword tokenizer (a `tokenizers::Tokenizer`), saved as `tokenizer.json`.
///
/// Truncation is a setting of the wrapped tokenizer (it must happen before the special tokens
/// are added), so it sits behind a mutex and is set per call; padding is applied afterwards.
pub struct SubwordTokenizer {
    inner: std::sync::Mutex<Tokenizer>,
    /// Ids from a vocabulary of their own for the tokenizer's pieces (Marian's `vocab.json`).
    pieces: Option<std::sync::Arc<PieceVocab>>,
}

impl Clone for SubwordTokenizer {
    fn clone(&self) -> Self {
        let mut copy = Self::wrap(self.lock().clone());
        copy.pieces = self.pieces.clone();
        copy
    }
}

impl std::fmt::Debug for SubwordTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubwordTokenizer")
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

impl SubwordTokenizer {
    /// Loads a `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::folder(path, "tokenizer file not found"));
        }
        let inner = crate::guard::decode(path, "tokenizer.json", || {
            Tokenizer::from_file(path)
                .map_err(|e| Error::folder(path, format!("invalid tokenizer: {e}")))
        })?;
        Ok(Self::wrap(inner))
    }

    /// A BERT WordPiece tokenizer from a `vocab.txt` (one token per line, as in older Hugging
    /// Face folders): BERT normalizer (lowercasing when `lowercase`), BERT pre-tokenizer,
    /// `[CLS] … [SEP]` template.
    pub fn from_bert_vocab(path: &Path, lowercase: bool) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::folder(path, "vocabulary file not found"));
        }
        let file = path.to_string_lossy().to_string();
        let model = WordPiece::from_file(&file)
            .unk_token("[UNK]".into())
            .build()
            .map_err(|e| Error::folder(path, format!("invalid vocabulary: {e}")))?;
        let mut tk = Tokenizer::new(model);
        tk.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)));
        tk.with_pre_tokenizer(Some(BertPreTokenizer));
        tk.with_decoder(Some(tokenizers::decoders::wordpiece::WordPiece::default()));
        // Special tokens match before normalisation, so "[MASK]" is not lowercased away.
        let specials: Vec<AddedToken> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
            .iter()
            .filter(|t| tk.token_to_id(t).is_some())
            .map(|t| AddedToken::from(t.to_string(), true))
            .collect();
        tk.add_special_tokens(&specials);
        let config = SubwordTrainConfig::new(SubwordKind::WordPiece, 0);
        Self::finish(tk, &config).map_err(|e| Error::folder(path, e.to_string()))
    }

    /// The `tokenizer.json` text, as bytes.
    pub fn to_json_bytes(&self) -> Result<Vec<u8>> {
        self.whole_pipeline("tokenizer.json")?;
        Ok(self.lock().to_string(true).map_err(tk_err)?.into_bytes())
    }

    /// Saves as `tokenizer.json` (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::fsio::write_atomic(path, &self.to_json_bytes()?)
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        match &self.pieces {
            Some(p) => p.entries(),
            None => self.lock().get_vocab_size(true),
        }
    }

    /// The id of `token`.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        match &self.pieces {
            Some(p) => p.token_to_id(token),
            None => self.lock().token_to_id(token),
        }
    }

    /// Gives the pieces of the wrapped tokenizer the ids of `vocab` (Marian's `vocab.json`).
    pub(crate) fn with_piece_vocab(mut self, vocab: PieceVocab) -> Self {
        self.pieces = Some(std::sync::Arc::new(vocab));
        self
    }

    /// An error for what a tokenizer with a piece vocabulary cannot do as one `tokenizers`
    /// pipeline (batches with offsets, `tokenizer.json`).
    fn whole_pipeline(&self, what: &str) -> Result<()> {
        match self.pieces {
            Some(_) => Err(Error::Tokenizer(format!(
                "{what} is not available for a SentencePiece tokenizer with its own vocabulary (Marian's source.spm + vocab.json)"
            ))),
            None => Ok(()),
        }
    }

    pub(super) fn wrap(mut tokenizer: Tokenizer) -> Self {
        // Padding is applied by encode_batch itself; a file's own padding setting is dropped.
        tokenizer.with_padding(None);
        Self {
            inner: std::sync::Mutex::new(tokenizer),
            pieces: None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tokenizer> {
        // A panic elsewhere while encoding leaves the tokenizer itself intact.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Encodes texts (or text pairs when `pairs` is given) as a batch.
    pub fn encode_batch(
        &self,
        texts: &[&str],
        pairs: Option<&[&str]>,
        options: &EncodeOptions,
    ) -> Result<BatchEncoding> {
        if let Some(p) = pairs {
            if p.len() != texts.len() {
                return Err(Error::config(
                    "pairs",
                    format!("{} texts but {} second texts", texts.len(), p.len()),
                ));
            }
        }
        let truncation = match (options.truncation, options.max_length) {
            (true, Some(max_length)) => Some(right_truncation(max_length)),
            (true, None) => return Err(Error::config("max_length", "truncation needs max_length")),
            _ => None,
        };
        let strategy = match (options.padding, options.max_length) {
            (Padding::None, _) => None,
            (Padding::Longest, _) => Some(PaddingStrategy::BatchLongest),
            (Padding::MaxLength, Some(n)) => Some(PaddingStrategy::Fixed(n)),
            (Padding::MaxLength, None) => {
                return Err(Error::config(
                    "max_length",
                    "padding to max_length needs max_length",
                ))
            }
        };
        let padding = match strategy {
            None => None,
            Some(strategy) => {
                let pad_token = ["[PAD]", "<pad>", "<|endoftext|>"]
                    .into_iter()
                    .find(|t| self.token_to_id(t).is_some())
                    .ok_or_else(|| Error::Tokenizer("padding needs a pad token ([PAD], <pad> or <|endoftext|>) in the vocabulary".into()))?;
                Some(PaddingParams {
                    strategy,
                    direction: if options.pad_left {
                        PaddingDirection::Left
                    } else {
                        PaddingDirection::Right
                    },
                    pad_to_multiple_of: None,
                    pad_id: self.token_to_id(pad_token).unwrap_or(0),
                    pad_type_id: 0,
                    pad_token: pad_token.to_string(),
                })
            }
        };
        let inputs: Vec<EncodeInput<'_>> = match pairs {
            None => texts
                .iter()
                .map(|t| EncodeInput::Single((*t).into()))
                .collect(),
            Some(p) => texts
                .iter()
                .zip(p)
                .map(|(a, b)| EncodeInput::Dual((*a).into(), (*b).into()))
                .collect(),
        };
        self.encode_inputs(inputs, truncation, padding, options.add_special_tokens)
    }

    /// The ids of each text, special tokens added, cut to `max_length` tokens when given, not
    /// padded: [`SubwordTokenizer::encode_batch`]'s `input_ids` without the offsets, tokens and
    /// masks it makes beside them (`tokenizers`' `encode_batch_fast`), for callers that read only
    /// the ids (sentence embeddings, feature extraction).
    pub fn encode_ids(&self, texts: &[&str], max_length: Option<usize>) -> Result<Vec<Vec<u32>>> {
        self.whole_pipeline("batch encoding")?;
        let truncation = max_length.map(right_truncation);
        let inputs: Vec<EncodeInput<'_>> = texts
            .iter()
            .map(|t| EncodeInput::Single((*t).into()))
            .collect();
        let encodings = {
            let mut tk = self.lock();
            tk.with_truncation(truncation).map_err(tk_err)?;
            tk.encode_batch_fast(inputs, true).map_err(tk_err)?
        };
        Ok(encodings.iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// Encodes sentences already split into words (as in CoNLL files), keeping which word each
    /// token came from; truncated to `max_length` tokens when given, not padded.
    pub fn encode_words(
        &self,
        sentences: &[Vec<String>],
        max_length: Option<usize>,
    ) -> Result<BatchEncoding> {
        let truncation = max_length.map(right_truncation);
        let inputs: Vec<EncodeInput<'_>> = sentences
            .iter()
            .map(|words| EncodeInput::Single(words.as_slice().into()))
            .collect();
        self.encode_inputs(inputs, truncation, None, true)
    }

    fn encode_inputs(
        &self,
        inputs: Vec<EncodeInput<'_>>,
        truncation: Option<TruncationParams>,
        padding: Option<PaddingParams>,
        add_special_tokens: bool,
    ) -> Result<BatchEncoding> {
        self.whole_pipeline("batch encoding")?;
        let mut encodings = {
            let mut tk = self.lock();
            tk.with_truncation(truncation).map_err(tk_err)?;
            tk.encode_batch_char_offsets(inputs, add_special_tokens)
                .map_err(tk_err)?
        };
        if let Some(padding) = padding {
            tokenizers::pad_encodings(&mut encodings, &padding).map_err(tk_err)?;
        }
        Ok(BatchEncoding {
            word_ids: encodings
                .iter()
                .map(|e| e.get_word_ids().to_vec())
                .collect(),
            offsets: encodings.iter().map(|e| e.get_offsets().to_vec()).collect(),
            input_ids: encodings.iter().map(|e| e.get_ids().to_vec()).collect(),
            attention_mask: encodings
                .iter()
                .map(|e| e.get_attention_mask().to_vec())
                .collect(),
            token_type_ids: encodings
                .iter()
                .map(|e| e.get_type_ids().to_vec())
                .collect(),
            tokens: encodings.iter().map(|e| e.get_tokens().to_vec()).collect(),
        })
    }

    /// Turns ids back into text.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        if let Some(p) = &self.pieces {
            return Ok(p.decode(ids, skip_special_tokens));
        }
        self.lock().decode(ids, skip_special_tokens).map_err(tk_err)
    }

    /// Appends special tokens (new ids after the vocabulary, in the order given; ones already
    /// present keep their ids).
    pub fn add_special_tokens(&self, tokens: &[String]) {
        let added: Vec<AddedToken> = tokens
            .iter()
            .map(|t| AddedToken::from(t.clone(), true))
            .collect();
        self.lock().add_special_tokens(&added);
    }

    /// Makes `encode(text, true)` end every sequence with `eos` (T5's `$A </s>` template).
    pub fn append_eos(&self, eos: &str) -> Result<()> {
        let id = self
            .token_to_id(eos)
            .ok_or_else(|| Error::Tokenizer(format!("no {eos} token to append")))?;
        let template = TemplateProcessing::builder()
            .try_single(format!("$A {eos}"))
            .and_then(|b| b.try_pair(format!("$A {eos} $B {eos}")))
            .map_err(tk_err)?
            .special_tokens(vec![(eos.to_string(), id)])
            .build()
            .map_err(tk_err)?;
        self.lock().with_post_processor(Some(template));
        Ok(())
    }

    /// Wraps a tokenizer built with the `tokenizers` crate (for example from GGUF metadata).
    pub fn from_tokenizer(tokenizer: Tokenizer) -> Self {
        Self::wrap(tokenizer)
    }

    /// The ids of one text, without padding or truncation.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        if let Some(p) = &self.pieces {
            let encoding = self.lock().encode(text, false).map_err(tk_err)?;
            return Ok(p.ids_of(encoding.get_tokens(), add_special_tokens));
        }
        let encoding = self
            .lock()
            .encode(text, add_special_tokens)
            .map_err(tk_err)?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The token string of an id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        if let Some(p) = &self.pieces {
            return p.id_to_token(id);
        }
        self.lock().id_to_token(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<String> {
        let base = [
            "the quick brown fox jumps over the lazy dog",
            "a tokenizer splits words into subword units",
            "transformers read tokens and predict the next token",
            "the dog sleeps while the fox runs",
        ];
        (0..50).map(|i| base[i % base.len()].to_string()).collect()
    }

    #[test]
    fn wordpiece_adds_cls_sep_and_pads_pairs() {
        let config = SubwordTrainConfig::new(SubwordKind::WordPiece, 200);
        let tk = SubwordTokenizer::train_from_texts(&config, corpus().into_iter()).unwrap();
        let enc = tk
            .encode_batch(
                &["The fox", "the lazy dog sleeps"],
                Some(&["runs", "x"]),
                &EncodeOptions::default(),
            )
            .unwrap();
        assert_eq!(enc.tokens[0][0], "[CLS]");
        assert_eq!(enc.input_ids[0].len(), enc.input_ids[1].len());
        let pad = tk.token_to_id("[PAD]").unwrap();
        assert_eq!(*enc.input_ids[0].last().unwrap(), pad);
        assert_eq!(*enc.attention_mask[0].last().unwrap(), 0);
        // Second segment gets type id 1.
        let sep = enc.tokens[1].iter().position(|t| t == "[SEP]").unwrap();
        assert_eq!(enc.token_type_ids[1][sep + 1], 1);
        assert_eq!(
            tk.decode(&enc.input_ids[1], true).unwrap(),
            "the lazy dog sleeps x"
        );
    }

    #[test]
    fn bpe_round_trips_text_and_file() {
        let config = SubwordTrainConfig::new(SubwordKind::Bpe, 300);
        let tk = SubwordTokenizer::train_from_texts(&config, corpus().into_iter()).unwrap();
        let options = EncodeOptions {
            padding: Padding::MaxLength,
            truncation: true,
            max_length: Some(4),
            ..Default::default()
        };
        let enc = tk
            .encode_batch(&["the quick brown fox jumps"], None, &options)
            .unwrap();
        assert_eq!(enc.input_ids[0].len(), 4);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        tk.save(&path).unwrap();
        let back = SubwordTokenizer::from_file(&path).unwrap();
        let ids = back
            .encode_batch(&["the lazy dog"], None, &EncodeOptions::default())
            .unwrap()
            .input_ids;
        assert_eq!(back.decode(&ids[0], true).unwrap(), "the lazy dog");
    }

    #[test]
    fn ids_alone_equal_the_batch_encodings_ids() {
        let config = SubwordTrainConfig::new(SubwordKind::WordPiece, 200);
        let tk = SubwordTokenizer::train_from_texts(&config, corpus().into_iter()).unwrap();
        let texts = ["The fox", "the lazy dog sleeps while the fox runs", "x"];
        for max_length in [None, Some(4)] {
            let options = EncodeOptions {
                padding: Padding::None,
                truncation: max_length.is_some(),
                max_length,
                ..Default::default()
            };
            let full = tk.encode_batch(&texts, None, &options).unwrap().input_ids;
            assert_eq!(
                tk.encode_ids(&texts, max_length).unwrap(),
                full,
                "{max_length:?}"
            );
        }
    }

    #[test]
    fn unigram_trains_with_specials_first() {
        let config = SubwordTrainConfig::new(SubwordKind::Unigram, 100);
        let tk = SubwordTokenizer::train_from_texts(&config, corpus().into_iter()).unwrap();
        assert_eq!(tk.token_to_id("<pad>"), Some(0));
        let ids = tk
            .encode_batch(&["the dog"], None, &EncodeOptions::default())
            .unwrap()
            .input_ids;
        assert_eq!(tk.decode(&ids[0], true).unwrap(), "the dog");
    }

    #[test]
    fn missing_tokenizer_file_is_named() {
        let err =
            SubwordTokenizer::from_file(Path::new("/nonexistent/tokenizer.json")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/tokenizer.json"),
            "{err}"
        );
    }
}

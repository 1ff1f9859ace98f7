//! Text to ids: the Keras-style word tokenizer, `pad_sequences`, and subword tokenizers through
//! the `tokenizers` crate.
//!
//! The notebook's steps, as in Keras:
//!
//! ```
//! use prosa::text::{pad_sequences, PadOptions, WordTokenizer, WordTokenizerConfig};
//!
//! let mut tokenizer = WordTokenizer::new(WordTokenizerConfig::default());
//! tokenizer.fit_on_texts(&["O carro é bom.", "O carro é muito ruim!"]);
//! let sequences = tokenizer.texts_to_sequences(&["o carro ruim"]);
//! assert_eq!(sequences, vec![vec![1, 2, 6]]); // o=1, carro=2, é=3, bom=4, muito=5, ruim=6
//! let padded = pad_sequences(&sequences, PadOptions { maxlen: Some(5), ..Default::default() });
//! assert_eq!(padded, vec![vec![0, 0, 1, 2, 6]]);
//! ```

mod padding;
pub mod sentencepiece;
mod word;

pub use padding::{pad_sequences, PadOptions, Side};
pub use word::{WordTokenizer, WordTokenizerConfig, KERAS_FILTERS};
mod vectorizer;
pub use vectorizer::{SparseRow, Vectorizer, VectorizerConfig, Weighting};
mod piece_vocab;
mod subword;
mod subword_train;
pub use subword::{
    BatchEncoding, EncodeOptions, Padding, SubwordKind, SubwordTokenizer, SubwordTrainConfig,
};

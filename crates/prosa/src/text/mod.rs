//! Text to ids: the Keras-style word tokenizer, `pad_sequences`, and subword tokenizers through
//! the `tokenizers` crate.

mod padding;
mod word;

pub use padding::{pad_sequences, PadOptions, Side};
pub use word::{WordTokenizer, WordTokenizerConfig, KERAS_FILTERS};
mod vectorizer;
pub use vectorizer::{SparseRow, Vectorizer, VectorizerConfig, Weighting};
mod subword;
pub use subword::{
    BatchEncoding, EncodeOptions, Padding, SubwordKind, SubwordTokenizer, SubwordTrainConfig,
};

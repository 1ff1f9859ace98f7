//! Printing generated text as it is made: tokens are decoded together (a character may span
//! several byte-level tokens), and only text that is complete is handed on.

use crate::error::Result;
use crate::text::SubwordTokenizer;

/// Turns a stream of token ids into a stream of text pieces, as transformers' `TextStreamer`.
pub struct TextStreamer<'a> {
    tokenizer: &'a SubwordTokenizer,
    tokens: Vec<u32>,
    printed: usize,
    skip_special_tokens: bool,
}

impl<'a> TextStreamer<'a> {
    /// A streamer decoding with `tokenizer`.
    pub fn new(tokenizer: &'a SubwordTokenizer, skip_special_tokens: bool) -> Self {
        Self {
            tokenizer,
            tokens: Vec::new(),
            printed: 0,
            skip_special_tokens,
        }
    }

    /// Adds a token; returns the text that became complete with it (possibly empty).
    pub fn push(&mut self, token: u32) -> Result<String> {
        self.tokens.push(token);
        let text = self
            .tokenizer
            .decode(&self.tokens, self.skip_special_tokens)?;
        // A trailing U+FFFD is a character whose remaining bytes are still to come.
        if text.ends_with('\u{FFFD}') || text.len() < self.printed {
            return Ok(String::new());
        }
        let piece = text.get(self.printed..).unwrap_or("").to_string();
        self.printed = text.len();
        Ok(piece)
    }
}

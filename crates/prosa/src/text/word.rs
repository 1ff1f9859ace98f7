//! A word-level tokenizer that behaves like Keras' `keras.preprocessing.text.Tokenizer`:
//! lower-casing, punctuation filtering, a word index ordered by frequency (ties keep first
//! appearance), `num_words`, an optional OOV token, `texts_to_sequences` and
//! `sequences_to_texts`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Keras' default `filters`: punctuation, tab and newline.
pub const KERAS_FILTERS: &str = "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n";

/// Settings of a [`WordTokenizer`], named as in Keras.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WordTokenizerConfig {
    /// Keep only the `num_words - 1` most frequent words when turning texts into sequences.
    pub num_words: Option<usize>,
    /// Characters replaced by the split character before splitting.
    pub filters: String,
    /// Lower-case the text first.
    pub lower: bool,
    /// The separator between words.
    pub split: char,
    /// A token that stands for words outside the vocabulary; it gets index 1.
    pub oov_token: Option<String>,
}

impl Default for WordTokenizerConfig {
    fn default() -> Self {
        Self {
            num_words: None,
            filters: KERAS_FILTERS.to_string(),
            lower: true,
            split: ' ',
            oov_token: None,
        }
    }
}

/// A fitted word-level tokenizer. Index 0 is reserved for padding, as in Keras.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WordTokenizer {
    /// The settings it was built with.
    pub config: WordTokenizerConfig,
    /// Words by index: `index_word[i - 1]` is the word with index `i`.
    index_word: Vec<String>,
    /// How often each word (in `index_word` order) was seen while fitting.
    counts: Vec<u64>,
    #[serde(skip)]
    word_index: HashMap<String, u32>,
}

impl WordTokenizer {
    /// An empty tokenizer with the given settings; call [`WordTokenizer::fit_on_texts`].
    pub fn new(config: WordTokenizerConfig) -> Self {
        Self {
            config,
            index_word: Vec::new(),
            counts: Vec::new(),
            word_index: HashMap::new(),
        }
    }

    /// Splits one text into words: lower-case, replace filtered characters, split.
    pub fn text_to_words(&self, text: &str) -> Vec<String> {
        let text = if self.config.lower {
            text.to_lowercase()
        } else {
            text.to_string()
        };
        let split = self.config.split;
        let cleaned: String = text
            .chars()
            .map(|c| {
                if self.config.filters.contains(c) {
                    split
                } else {
                    c
                }
            })
            .collect();
        cleaned
            .split(split)
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Builds the word index from `texts` (replacing any earlier fit).
    pub fn fit_on_texts<S: AsRef<str>>(&mut self, texts: &[S]) {
        let mut order: Vec<String> = Vec::new();
        let mut counts: HashMap<String, u64> = HashMap::new();
        for text in texts {
            for word in self.text_to_words(text.as_ref()) {
                let count = counts.entry(word.clone()).or_insert(0);
                if *count == 0 {
                    order.push(word);
                }
                *count += 1;
            }
        }
        // A stable sort keeps first appearance among equal counts, as Python's sort does.
        let mut ranked: Vec<(String, u64)> = order
            .into_iter()
            .map(|w| {
                let c = counts[&w];
                (w, c)
            })
            .collect();
        ranked.sort_by_key(|r| std::cmp::Reverse(r.1));
        let mut index_word = Vec::with_capacity(ranked.len() + 1);
        let mut word_counts = Vec::with_capacity(ranked.len() + 1);
        if let Some(oov) = &self.config.oov_token {
            index_word.push(oov.clone());
            word_counts.push(0);
        }
        for (w, c) in ranked {
            if Some(&w) != self.config.oov_token.as_ref() {
                index_word.push(w);
                word_counts.push(c);
            }
        }
        self.index_word = index_word;
        self.counts = word_counts;
        self.rebuild_index();
    }

    fn rebuild_index(&mut self) {
        self.word_index = self
            .index_word
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32 + 1))
            .collect();
    }

    /// Restores the lookup table after deserialisation.
    pub fn after_load(mut self) -> Self {
        self.rebuild_index();
        self
    }

    /// The index of `word`, if it was seen while fitting (ignores `num_words`).
    pub fn word_index(&self, word: &str) -> Option<u32> {
        self.word_index.get(word).copied()
    }

    /// The word with index `index` (1-based; 0 is padding).
    pub fn index_word(&self, index: u32) -> Option<&str> {
        let i = index.checked_sub(1)? as usize;
        self.index_word.get(i).map(String::as_str)
    }

    /// Number of distinct words seen (plus the OOV token, if any).
    pub fn vocab_len(&self) -> usize {
        self.index_word.len()
    }

    /// How many ids sequences can contain, padding included: `min(num_words, vocab_len + 1)`.
    pub fn num_ids(&self) -> usize {
        let all = self.index_word.len() + 1;
        self.config.num_words.map_or(all, |n| n.min(all))
    }

    /// The count of the word with index `index` while fitting.
    pub fn word_count(&self, index: u32) -> Option<u64> {
        let i = index.checked_sub(1)? as usize;
        self.counts.get(i).copied()
    }

    fn oov_index(&self) -> Option<u32> {
        self.config
            .oov_token
            .as_ref()
            .and_then(|t| self.word_index(t))
    }

    fn keeps(&self, index: u32) -> bool {
        self.config.num_words.is_none_or(|n| (index as usize) < n)
    }

    /// Turns each text into word indices; unknown or rare words become the OOV index, or are
    /// dropped when there is no OOV token.
    pub fn texts_to_sequences<S: AsRef<str>>(&self, texts: &[S]) -> Vec<Vec<u32>> {
        let oov = self.oov_index();
        texts
            .iter()
            .map(|text| {
                self.text_to_words(text.as_ref())
                    .iter()
                    .filter_map(|w| match self.word_index(w) {
                        Some(i) if self.keeps(i) => Some(i),
                        _ => oov,
                    })
                    .collect()
            })
            .collect()
    }

    /// Turns index sequences back into space-joined texts (padding and dropped ids vanish).
    pub fn sequences_to_texts(&self, sequences: &[Vec<u32>]) -> Vec<String> {
        let oov = self.oov_index();
        sequences
            .iter()
            .map(|seq| {
                seq.iter()
                    .filter_map(|&i| {
                        let i = if self.keeps(i) { i } else { oov? };
                        self.index_word(i)
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fitted(config: WordTokenizerConfig) -> WordTokenizer {
        let mut t = WordTokenizer::new(config);
        t.fit_on_texts(&["The cat sat on the mat.", "The dog ate my homework!"]);
        t
    }

    #[test]
    fn word_index_is_ordered_by_frequency_then_first_appearance() {
        let t = fitted(WordTokenizerConfig::default());
        // Keras: {'the': 1, 'cat': 2, 'sat': 3, 'on': 4, 'mat': 5, 'dog': 6, ...}
        assert_eq!(t.word_index("the"), Some(1));
        assert_eq!(t.word_index("cat"), Some(2));
        assert_eq!(t.word_index("mat"), Some(5));
        assert_eq!(t.word_index("homework"), Some(9));
        assert_eq!(t.word_count(1), Some(3));
    }

    #[test]
    fn num_words_drops_rare_words_and_oov_replaces_them() {
        let t = fitted(WordTokenizerConfig {
            num_words: Some(4),
            ..Default::default()
        });
        assert_eq!(t.texts_to_sequences(&["the cat ate"]), vec![vec![1, 2]]);
        let t = fitted(WordTokenizerConfig {
            num_words: Some(4),
            oov_token: Some("<OOV>".into()),
            ..Default::default()
        });
        // OOV takes index 1, so 'the' is 2 and 'cat' is 3.
        assert_eq!(
            t.texts_to_sequences(&["The cat ate zebras"]),
            vec![vec![2, 3, 1, 1]]
        );
        assert_eq!(
            t.sequences_to_texts(&[vec![2, 3, 1, 7]]),
            vec!["the cat <OOV> <OOV>".to_string()]
        );
    }

    #[test]
    fn filters_and_case_are_configurable() {
        let t = WordTokenizer::new(WordTokenizerConfig {
            lower: false,
            filters: "!".into(),
            ..Default::default()
        });
        assert_eq!(t.text_to_words("Olá, Mundo!"), vec!["Olá,", "Mundo"]);
    }

    #[test]
    fn round_trips_through_json() {
        let t = fitted(WordTokenizerConfig::default());
        let json = serde_json::to_string(&t).unwrap();
        let back: WordTokenizer = serde_json::from_str::<WordTokenizer>(&json)
            .unwrap()
            .after_load();
        assert_eq!(back, t);
    }
}

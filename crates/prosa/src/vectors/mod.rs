//! Pretrained word vectors: word2vec text and binary files, headerless GloVe text, and the
//! GloVe `.npy` matrix with its word index. Cosine nearest neighbours and analogies with
//! gensim's `most_similar` semantics, and the embedding matrix of a tokenizer's vocabulary
//! (random vectors for words not found, reported as the course notebook prints them).

mod evaluate;
mod parquet_index;
mod pca;
mod read;
pub mod word2vec;

use std::collections::HashMap;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

pub use evaluate::{
    evaluate_analogies, evaluate_word_pairs, AnalogyReport, PairsReport, SectionAccuracy,
};
pub use pca::MapPoint;
pub use read::{VectorsFormat, EMBEDDED_GLOVE};

use crate::error::{Error, Result};
use crate::text::WordTokenizer;

/// A table of word vectors, one row per word.
#[derive(Debug, Clone)]
pub struct WordVectors {
    words: Vec<String>,
    index: HashMap<String, usize>,
    dim: usize,
    values: Vec<f32>,
    unit: Vec<f32>,
}

/// A word and its cosine similarity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Similar {
    /// The word.
    pub word: String,
    /// Cosine similarity in [-1, 1].
    pub similarity: f32,
}

/// The embedding matrix of a vocabulary, with the words that had no pretrained vector.
#[derive(Debug, Clone, Serialize)]
pub struct EmbeddingMatrix {
    /// Rows: ids `0..num_ids` (row 0, padding, is zeros), each `dim` wide.
    pub values: Vec<f32>,
    /// Number of rows.
    pub num_ids: usize,
    /// Vector width.
    pub dim: usize,
    /// Words found in the pretrained vectors.
    pub found: usize,
    /// Words not found (given random vectors), in id order.
    pub missing: Vec<String>,
}

impl WordVectors {
    /// Builds a table from words and row-major values (`words.len() × dim`).
    pub fn from_parts(
        words: Vec<String>,
        dim: usize,
        values: Vec<f32>,
        source: &Path,
    ) -> Result<Self> {
        if words.is_empty() || dim == 0 {
            return Err(Error::folder(
                source,
                "no word vectors in the file (empty vocabulary)",
            ));
        }
        if values.len() != words.len() * dim {
            return Err(Error::folder(
                source,
                format!(
                    "{} values for {} words of dimension {dim}",
                    values.len(),
                    words.len()
                ),
            ));
        }
        let mut index = HashMap::with_capacity(words.len());
        for (i, w) in words.iter().enumerate() {
            // Keep the first occurrence, as gensim does.
            index.entry(w.clone()).or_insert(i);
        }
        let mut unit = values.clone();
        for row in unit.chunks_mut(dim) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        Ok(Self {
            words,
            index,
            dim,
            values,
            unit,
        })
    }

    /// Loads vectors from `path` (`index` names the word list of a `.npy` matrix).
    pub fn load(path: &Path, format: VectorsFormat, index: Option<&Path>) -> Result<Self> {
        read::load(path, format, index)
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// True when there are no words (never, for a loaded table).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Vector width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The words, in file order.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The vector of `word`.
    pub fn get(&self, word: &str) -> Option<&[f32]> {
        self.index
            .get(word)
            .map(|&i| &self.values[i * self.dim..(i + 1) * self.dim])
    }

    /// Keeps the first `n` words (files are ordered by frequency, so the most frequent).
    pub fn truncate(&mut self, n: usize) {
        if n < self.words.len() {
            self.words.truncate(n);
            self.values.truncate(n * self.dim);
            self.unit.truncate(n * self.dim);
            self.index.retain(|_, i| *i < n);
        }
    }

    fn unknown(&self, word: &str) -> Error {
        Error::config(
            "word",
            format!(
                "'{word}' is not in the vocabulary of these vectors ({} words)",
                self.len()
            ),
        )
    }

    /// gensim's `most_similar(positive, negative, topn)`: the words whose unit vectors are
    /// closest to the mean of the unit vectors of `positive` minus those of `negative`, the
    /// query words themselves excluded.
    pub fn most_similar(
        &self,
        positive: &[&str],
        negative: &[&str],
        topn: usize,
    ) -> Result<Vec<Similar>> {
        if positive.is_empty() && negative.is_empty() {
            return Err(Error::config("words", "give at least one word"));
        }
        let mut query = vec![0f32; self.dim];
        let mut exclude = Vec::new();
        for (words, sign) in [(positive, 1.0f32), (negative, -1.0)] {
            for w in words {
                let i = *self.index.get(*w).ok_or_else(|| self.unknown(w))?;
                exclude.push(i);
                for (q, u) in query
                    .iter_mut()
                    .zip(&self.unit[i * self.dim..(i + 1) * self.dim])
                {
                    *q += sign * u;
                }
            }
        }
        let norm = query.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        query.iter_mut().for_each(|v| *v /= norm);
        let mut scored: Vec<(usize, f32)> = self
            .unit
            .chunks(self.dim)
            .enumerate()
            .filter(|(i, _)| !exclude.contains(i))
            .map(|(i, row)| (i, row.iter().zip(&query).map(|(a, b)| a * b).sum()))
            .collect();
        let k = topn.min(scored.len());
        if k == 0 {
            return Ok(Vec::new());
        }
        scored.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
        scored.truncate(k);
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(scored
            .into_iter()
            .map(|(i, s)| Similar {
                word: self.words[i].clone(),
                similarity: s,
            })
            .collect())
    }

    /// The `k` nearest words to `word` by cosine similarity.
    pub fn neighbors(&self, word: &str, k: usize) -> Result<Vec<Similar>> {
        self.most_similar(&[word], &[], k)
    }

    /// Cosine similarity of two words.
    pub fn similarity(&self, a: &str, b: &str) -> Result<f32> {
        let ia = *self.index.get(a).ok_or_else(|| self.unknown(a))?;
        let ib = *self.index.get(b).ok_or_else(|| self.unknown(b))?;
        Ok(self.cosine_of_rows(ia, ib))
    }

    /// Cosine similarity of rows `a` and `b`.
    fn cosine_of_rows(&self, a: usize, b: usize) -> f32 {
        let (ra, rb) = (
            &self.unit[a * self.dim..(a + 1) * self.dim],
            &self.unit[b * self.dim..(b + 1) * self.dim],
        );
        ra.iter().zip(rb).map(|(x, y)| x * y).sum()
    }

    /// The embedding matrix of `tokenizer`'s ids: the pretrained vector of each word, or a
    /// seeded random vector (uniform in [0, 1), as the notebook's `np.random.rand`) for words not
    /// found; row 0 (padding) stays zero. Rows past `num_words` are left out, as Keras drops them.
    pub fn embedding_matrix(&self, tokenizer: &WordTokenizer, seed: u64) -> EmbeddingMatrix {
        let num_ids = tokenizer.num_ids();
        let mut values = vec![0f32; num_ids * self.dim];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut missing = Vec::new();
        let mut found = 0;
        for id in 1..num_ids as u32 {
            let Some(word) = tokenizer.index_word(id) else {
                continue;
            };
            let row = &mut values[id as usize * self.dim..(id as usize + 1) * self.dim];
            match self.get(word) {
                Some(v) => {
                    row.copy_from_slice(v);
                    found += 1;
                }
                None => {
                    row.iter_mut().for_each(|x| *x = rng.random::<f32>());
                    missing.push(word.to_string());
                }
            }
        }
        EmbeddingMatrix {
            values,
            num_ids,
            dim: self.dim,
            found,
            missing,
        }
    }

    /// Writes the table in word2vec's text format (header `count dim`, then a word and its
    /// values per line), which gensim's `load_word2vec_format` reads.
    pub fn save_word2vec_text(&self, path: &Path) -> Result<()> {
        let mut text = format!("{} {}\n", self.len(), self.dim);
        for (i, w) in self.words.iter().enumerate() {
            text.push_str(w);
            for v in &self.values[i * self.dim..(i + 1) * self.dim] {
                text.push(' ');
                text.push_str(&v.to_string());
            }
            text.push('\n');
        }
        crate::fsio::write_atomic(path, text.as_bytes())
    }

    /// Writes the table in word2vec's binary format (header `count dim`, then each word, a
    /// space and `dim` little-endian f32).
    pub fn save_word2vec_binary(&self, path: &Path) -> Result<()> {
        let mut bytes = format!("{} {}\n", self.len(), self.dim).into_bytes();
        for (i, w) in self.words.iter().enumerate() {
            bytes.extend_from_slice(w.as_bytes());
            bytes.push(b' ');
            for v in &self.values[i * self.dim..(i + 1) * self.dim] {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            bytes.push(b'\n');
        }
        crate::fsio::write_atomic(path, &bytes)
    }
}

//! One word, different vectors: ELMo's representation of a word in each sentence it appears
//! in, how similar those occurrences are to each other, and which words of the sentences (in
//! their contexts) lie nearest to each occurrence — the word-sense demonstration of the ELMo
//! paper (its Table 4: "play" in sports vs theatre sentences).

use serde::Serialize;

use super::ElmoBiLm;
use crate::error::{Error, Result};
use crate::nn::ForwardCtx;

/// A word of a sentence, in context, and its cosine similarity to an occurrence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Neighbour {
    /// The word.
    pub word: String,
    /// The sentence it is in (index into the input).
    pub sentence: usize,
    /// Cosine similarity.
    pub similarity: f32,
}

/// One occurrence of the word.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Occurrence {
    /// Its sentence (index into the input).
    pub sentence: usize,
    /// Its position in the sentence's words.
    pub position: usize,
    /// The nearest other words of all sentences, most similar first.
    pub neighbours: Vec<Neighbour>,
}

/// What [`ElmoBiLm::word_in_contexts`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WordInContexts {
    /// The word.
    pub word: String,
    /// The layer compared (0: the context-free token vectors).
    pub layer: usize,
    /// Each occurrence, in sentence order.
    pub occurrences: Vec<Occurrence>,
    /// Cosine similarity of each pair of occurrences at `layer`.
    pub similarities: Vec<Vec<f32>>,
    /// The same at layer 0, where every occurrence has the same vector (all 1).
    pub token_layer_similarities: Vec<Vec<f32>>,
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}

impl ElmoBiLm {
    /// The vectors of `word` (compared as written) in each of `sentences` (lists of words) at
    /// `layer`, their pairwise similarities, and the `k` nearest other words of the sentences
    /// to each occurrence.
    pub fn word_in_contexts(
        &self,
        sentences: &[Vec<String>],
        word: &str,
        layer: usize,
        k: usize,
    ) -> Result<WordInContexts> {
        if layer > self.config.num_layers {
            return Err(Error::config(
                "layer",
                format!(
                    "{layer}: the model has layers 0 (tokens) to {}",
                    self.config.num_layers
                ),
            ));
        }
        let rows: Vec<&[String]> = sentences.iter().map(Vec::as_slice).collect();
        let out = self.layers(&rows, &mut ForwardCtx::eval())?;
        let table = |l: usize| -> Result<Vec<Vec<Vec<f32>>>> { Ok(out.layers[l].to_vec3()?) };
        let (chosen, tokens) = (table(layer)?, table(0)?);
        let places: Vec<(usize, usize)> = sentences
            .iter()
            .enumerate()
            .flat_map(|(s, words)| {
                words
                    .iter()
                    .enumerate()
                    .filter(|(_, w)| w.as_str() == word)
                    .map(move |(p, _)| (s, p))
            })
            .collect();
        if places.is_empty() {
            return Err(Error::config(
                "word",
                format!("'{word}' is in none of the {} sentences", sentences.len()),
            ));
        }
        let pairwise = |t: &[Vec<Vec<f32>>]| -> Vec<Vec<f32>> {
            places
                .iter()
                .map(|&(s, p)| {
                    places
                        .iter()
                        .map(|&(s2, p2)| cosine(&t[s][p], &t[s2][p2]))
                        .collect()
                })
                .collect()
        };
        let occurrences = places
            .iter()
            .map(|&(s, p)| {
                let mut all: Vec<Neighbour> = sentences
                    .iter()
                    .enumerate()
                    .flat_map(|(s2, words)| {
                        let chosen = &chosen;
                        words
                            .iter()
                            .enumerate()
                            .filter(|(_, w)| w.as_str() != word)
                            .map(move |(p2, w)| Neighbour {
                                word: w.clone(),
                                sentence: s2,
                                similarity: cosine(&chosen[s][p], &chosen[s2][p2]),
                            })
                    })
                    .collect();
                all.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
                all.truncate(k);
                Occurrence {
                    sentence: s,
                    position: p,
                    neighbours: all,
                }
            })
            .collect();
        Ok(WordInContexts {
            word: word.to_string(),
            layer,
            occurrences,
            similarities: pairwise(&chosen),
            token_layer_similarities: pairwise(&tokens),
        })
    }
}

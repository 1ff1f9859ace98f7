//! Ids of pieces from a vocabulary of their own, as Marian's `vocab.json` gives them: the text
//! is cut into a SentencePiece model's pieces (an unknown stretch stays as its surface text),
//! then each piece gets its vocabulary id, or `<unk>`'s — transformers' `MarianTokenizer`.

use std::collections::{HashMap, HashSet};

/// A piece → id vocabulary with its special tokens.
#[derive(Debug, Clone)]
pub struct PieceVocab {
    ids: HashMap<String, u32>,
    pieces: Vec<String>,
    unk: u32,
    eos: u32,
    special: HashSet<u32>,
}

impl PieceVocab {
    /// A vocabulary of `pieces` (indexed by id) with the ids of `<unk>` and `</s>` and the ids
    /// of every special token (skipped when decoding).
    pub fn new(pieces: Vec<String>, unk: u32, eos: u32, special: HashSet<u32>) -> Self {
        let ids = pieces
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), i as u32))
            .collect();
        Self {
            ids,
            pieces,
            unk,
            eos,
            special,
        }
    }

    /// The ids of pieces (the unknown id for pieces outside the vocabulary), `</s>` appended
    /// when asked.
    pub fn ids_of(&self, pieces: &[String], append_eos: bool) -> Vec<u32> {
        let mut ids: Vec<u32> = pieces
            .iter()
            .map(|p| self.ids.get(p).copied().unwrap_or(self.unk))
            .collect();
        if append_eos {
            ids.push(self.eos);
        }
        ids
    }

    /// The text of ids as transformers decodes them: pieces joined, `▁` read as a space, special
    /// tokens (kept unless skipped) set apart by a space, the ends trimmed.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> String {
        let mut out = String::new();
        let mut run = String::new();
        for &id in ids {
            let special = self.special.contains(&id);
            if special && skip_special_tokens {
                continue;
            }
            let piece = self.id_to_token(id).unwrap_or_else(|| "<unk>".to_string());
            if special {
                out.push_str(run.strip_prefix('▁').unwrap_or(&run));
                out.push_str(&piece);
                out.push(' ');
                run.clear();
            } else {
                run.push_str(&piece);
            }
        }
        out.push_str(run.strip_prefix('▁').unwrap_or(&run));
        out.replace('▁', " ").trim().to_string()
    }

    /// Entries of the vocabulary.
    pub fn entries(&self) -> usize {
        self.pieces.len()
    }

    /// The id of a piece.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// The piece of an id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.pieces.get(id as usize).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> PieceVocab {
        let pieces = ["</s>", "<unk>", "▁the", "▁house", "s", "<pad>", ">>por<<"];
        PieceVocab::new(
            pieces.iter().map(|p| p.to_string()).collect(),
            1,
            0,
            [0, 1, 5].into_iter().collect(),
        )
    }

    #[test]
    fn unknown_pieces_get_the_unknown_id_and_eos_is_appended() {
        let pieces: Vec<String> = ["▁the", "▁house", "çã"]
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(vocab().ids_of(&pieces, true), vec![2, 3, 1, 0]);
        assert_eq!(vocab().ids_of(&pieces, false), vec![2, 3, 1]);
    }

    #[test]
    fn decoding_joins_pieces_and_sets_special_tokens_apart() {
        let v = vocab();
        assert_eq!(v.decode(&[6, 2, 3, 4, 0, 5], true), ">>por<< the houses");
        assert_eq!(v.decode(&[2, 1, 3, 0], false), "the<unk> house</s>");
    }
}

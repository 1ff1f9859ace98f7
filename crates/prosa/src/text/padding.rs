//! `pad_sequences` as in Keras: pad or cut every sequence to one length, at the front
//! (`pre`, the Keras default) or at the back (`post`).

use serde::{Deserialize, Serialize};

/// Which end of a sequence is padded or cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The front (Keras' default for both padding and truncating).
    #[default]
    Pre,
    /// The back.
    Post,
}

impl std::str::FromStr for Side {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pre" => Ok(Side::Pre),
            "post" => Ok(Side::Post),
            other => Err(format!("expected 'pre' or 'post', got '{other}'")),
        }
    }
}

/// Options of [`pad_sequences`], named as in Keras.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PadOptions {
    /// Target length; `None` pads to the longest sequence.
    pub maxlen: Option<usize>,
    /// Where padding goes.
    pub padding: Side,
    /// Where long sequences are cut.
    pub truncating: Side,
    /// The padding value.
    pub value: u32,
}

impl Default for PadOptions {
    fn default() -> Self {
        Self {
            maxlen: None,
            padding: Side::Pre,
            truncating: Side::Pre,
            value: 0,
        }
    }
}

/// Pads or truncates every sequence to the same length and returns them as rows.
pub fn pad_sequences(sequences: &[Vec<u32>], options: PadOptions) -> Vec<Vec<u32>> {
    let len = options
        .maxlen
        .unwrap_or_else(|| sequences.iter().map(Vec::len).max().unwrap_or(0));
    sequences
        .iter()
        .map(|seq| {
            let kept: &[u32] = if seq.len() > len {
                match options.truncating {
                    Side::Pre => &seq[seq.len() - len..],
                    Side::Post => &seq[..len],
                }
            } else {
                seq
            };
            let fill = std::iter::repeat_n(options.value, len - kept.len());
            match options.padding {
                Side::Pre => fill.chain(kept.iter().copied()).collect(),
                Side::Post => kept.iter().copied().chain(fill).collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_and_truncates_like_keras() {
        let seqs = vec![vec![1, 2, 3, 4], vec![5]];
        let opts = PadOptions {
            maxlen: Some(3),
            ..Default::default()
        };
        assert_eq!(
            pad_sequences(&seqs, opts),
            vec![vec![2, 3, 4], vec![0, 0, 5]]
        );
        let opts = PadOptions {
            maxlen: Some(3),
            padding: Side::Post,
            truncating: Side::Post,
            value: 9,
        };
        assert_eq!(
            pad_sequences(&seqs, opts),
            vec![vec![1, 2, 3], vec![5, 9, 9]]
        );
        assert_eq!(
            pad_sequences(&seqs, PadOptions::default()),
            vec![vec![1, 2, 3, 4], vec![0, 0, 0, 5]]
        );
    }
}

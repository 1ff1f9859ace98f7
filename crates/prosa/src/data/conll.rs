//! CoNLL files for token classification: one `token … TAG` line per token (the first column is
//! the token, the last the tag), a blank line between sentences, `-DOCSTART-` lines ignored.

use std::path::Path;

use crate::error::{Error, Result};

/// One sentence with a tag per token.
#[derive(Debug, Clone, PartialEq)]
pub struct TaggedSentence {
    /// The words.
    pub tokens: Vec<String>,
    /// One tag per word (IOB2: `B-PER`, `I-PER`, `O`, …).
    pub tags: Vec<String>,
    /// 1-based line of the sentence's first token.
    pub line: usize,
}

/// Reads a CoNLL file; a line with a single column, a token line with another column count than
/// the first, or a file without sentences is an error naming the file and line.
pub fn read_conll(path: &Path) -> Result<Vec<TaggedSentence>> {
    let text = crate::fsio::read_text(path)?;
    let mut sentences = Vec::new();
    let mut current = TaggedSentence {
        tokens: Vec::new(),
        tags: Vec::new(),
        line: 1,
    };
    // The column count of the first token line, and that line.
    let mut width: Option<(usize, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let columns: Vec<&str> = line.split_whitespace().collect();
        if columns.is_empty() {
            if !current.tokens.is_empty() {
                sentences.push(std::mem::replace(
                    &mut current,
                    TaggedSentence {
                        tokens: Vec::new(),
                        tags: Vec::new(),
                        line: i + 2,
                    },
                ));
            } else {
                current.line = i + 2;
            }
            continue;
        }
        if columns[0] == "-DOCSTART-" {
            continue;
        }
        if columns.len() < 2 {
            return Err(Error::BadRow {
                path: path.to_path_buf(),
                line: i + 1,
                message: format!("'{line}' has no tag column (expected 'token TAG')"),
            });
        }
        match width {
            None => width = Some((columns.len(), i + 1)),
            Some((n, first)) if n != columns.len() => {
                return Err(Error::BadRow {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: format!(
                        "{} columns, but line {first} has {n} (every token line needs the same \
                         columns)",
                        columns.len()
                    ),
                })
            }
            Some(_) => {}
        }
        if current.tokens.is_empty() {
            current.line = i + 1;
        }
        current.tokens.push(columns[0].to_string());
        current.tags.push(columns[columns.len() - 1].to_string());
    }
    if !current.tokens.is_empty() {
        sentences.push(current);
    }
    if sentences.is_empty() {
        return Err(Error::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    Ok(sentences)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_tags_and_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.conll");
        std::fs::write(&path, "-DOCSTART- O\n\nAna B-PER\nfoi O\n\n\nRio B-LOC\n").unwrap();
        let s = read_conll(&path).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].tokens, ["Ana", "foi"]);
        assert_eq!(s[0].tags, ["B-PER", "O"]);
        assert_eq!((s[0].line, s[1].line), (3, 7));
        std::fs::write(&path, "Ana B-PER\nfoi\n").unwrap();
        let e = read_conll(&path).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("no tag column"), "{e}");
    }
}

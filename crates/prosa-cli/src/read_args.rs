//! The flags that say how to read a data file, shared by every command that reads one.

use std::path::PathBuf;

use clap::Args;
use prosa::data::{self, Dataset, Encoding, Format, ReadOptions};

/// Where the data is and how to read it.
#[derive(Args, Debug, Clone)]
pub struct ReadArgs {
    /// Data file (CSV, TSV, JSONL or plain text). Without it: the embedded tweet-sentiment corpus.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// File layout: auto (from the extension), csv, tsv, jsonl or text.
    #[arg(long, default_value = "auto")]
    pub format: Format,
    /// Text encoding: utf-8 or latin-1.
    #[arg(long, default_value = "utf-8")]
    pub encoding: Encoding,
    /// Column (or JSON field) holding the text.
    #[arg(long, default_value = "text")]
    pub text_column: String,
    /// Column (or JSON field) holding the label.
    #[arg(long, default_value = "label")]
    pub label_column: String,
}

impl ReadArgs {
    /// The library's read options.
    pub fn options(&self) -> ReadOptions {
        ReadOptions {
            format: self.format,
            encoding: self.encoding,
            text_column: self.text_column.clone(),
            label_column: Some(self.label_column.clone()),
        }
    }

    /// Reads the file, or the embedded tweets when no file is given.
    pub fn load(&self) -> prosa::Result<Dataset> {
        match &self.data {
            Some(path) => data::read_file(path, &self.options()),
            None => data::embedded_tweets(),
        }
    }
}

/// The texts of a command: those given as arguments, then the non-empty lines of `input`.
pub fn texts_and_lines(
    texts: &[String],
    input: Option<&std::path::Path>,
) -> anyhow::Result<Vec<String>> {
    use anyhow::Context;
    let mut all = texts.to_vec();
    if let Some(path) = input {
        let content =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        all.extend(
            content
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string),
        );
    }
    if all.is_empty() {
        anyhow::bail!("no texts: give them as arguments or with --input FILE");
    }
    Ok(all)
}

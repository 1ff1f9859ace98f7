//! Readers of the word-vector file formats. Every malformed input is an error naming the file
//! and the line (text formats) or entry (binary formats).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::WordVectors;
use crate::error::{Error, Result};

/// The layout of a word-vector file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VectorsFormat {
    /// Decide from the extension and the first line.
    #[default]
    Auto,
    /// word2vec text: a `count dim` header, then `word v1 … vdim` per line.
    Word2vecText,
    /// word2vec binary: a `count dim` header, then `word` + space + `dim` little-endian f32.
    Word2vecBinary,
    /// GloVe text: `word v1 … vdim` per line, no header.
    GloveText,
    /// A `(words, dim)` float32 `.npy` matrix with a separate word index (parquet column
    /// `index`, or a text file with one word per line).
    Npy,
}

impl std::str::FromStr for VectorsFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "auto" => Ok(Self::Auto),
            "word2vec-text" | "w2v-text" | "text" => Ok(Self::Word2vecText),
            "word2vec-binary" | "w2v-binary" | "binary" | "bin" => Ok(Self::Word2vecBinary),
            "glove" | "glove-text" => Ok(Self::GloveText),
            "npy" => Ok(Self::Npy),
            other => Err(format!("unknown vectors format '{other}' (use auto, word2vec-text, word2vec-binary, glove or npy)")),
        }
    }
}

fn bad(path: &Path, line: usize, message: impl Into<String>) -> Error {
    Error::BadRow {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

/// The vendored vectors compiled into prosa (the 20,000 most frequent words of GloVe 6B 50d,
/// word2vec binary; see `data/vectors/ATTRIBUTION.md`): give this name as the path to use
/// them, so an installed binary needs no file beside it.
pub const EMBEDDED_GLOVE: &str = "<embedded>/data/vectors/glove.6B.50d.top20k.bin";

/// Reads `path` in `format` (`index`: the word list of an `.npy` matrix); [`EMBEDDED_GLOVE`]
/// reads the vectors compiled into prosa.
pub fn load(path: &Path, format: VectorsFormat, index: Option<&Path>) -> Result<WordVectors> {
    if path == Path::new(EMBEDDED_GLOVE) {
        static BYTES: &[u8] = include_bytes!("../../../../data/vectors/glove.6B.50d.top20k.bin");
        return read_binary(BYTES, path);
    }
    if !path.is_file() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "word-vector file not found"),
        ));
    }
    let is_npy = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    if format == VectorsFormat::Npy || (format == VectorsFormat::Auto && is_npy) {
        let index = index.ok_or_else(|| {
            Error::config(
                "vectors_index",
                format!(
                    "{} is a .npy matrix: give its word index (parquet or one word per line)",
                    path.display()
                ),
            )
        })?;
        return read_npy(path, index);
    }
    // Text and binary formats: read the file once, for detection and parsing alike.
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let format = match format {
        VectorsFormat::Auto => detect(&bytes, path),
        f => f,
    };
    match format {
        VectorsFormat::Word2vecBinary => read_binary(&bytes, path),
        _ => {
            let text = String::from_utf8_lossy(&bytes);
            read_text(&text, path, format == VectorsFormat::Word2vecText)
        }
    }
}

/// Parses a `count dim` header line.
fn header(line: &str) -> Option<(usize, usize)> {
    let mut parts = line.split_whitespace();
    let count = parts.next()?.parse().ok()?;
    let dim = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((count, dim))
}

/// The format of a text or binary vectors file, from its first line (and `.bin` extension).
fn detect(bytes: &[u8], path: &Path) -> VectorsFormat {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let first_end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let first = String::from_utf8_lossy(&bytes[..first_end]);
    if header(&first).is_none() {
        VectorsFormat::GloveText
    } else if ext == "bin" || std::str::from_utf8(&bytes[first_end..]).is_err() {
        VectorsFormat::Word2vecBinary
    } else {
        VectorsFormat::Word2vecText
    }
}

fn read_text(text: &str, path: &Path, has_header: bool) -> Result<WordVectors> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let mut expected = None;
    let mut dim = None;
    if has_header {
        let (i, line) = lines
            .next()
            .ok_or_else(|| Error::folder(path, "no word vectors in the file (empty vocabulary)"))?;
        let (count, d) = header(line).ok_or_else(|| {
            bad(
                path,
                i + 1,
                "expected a 'count dim' header (is this a GloVe file without header?)",
            )
        })?;
        expected = Some(count);
        dim = Some(d);
    }
    let mut words = Vec::new();
    let mut values = Vec::new();
    for (i, line) in lines {
        let mut parts = line.split_whitespace();
        let word = parts.next().unwrap_or_default();
        let row: Vec<&str> = parts.collect();
        let d = *dim.get_or_insert(row.len());
        if row.len() != d {
            return Err(bad(
                path,
                i + 1,
                format!(
                    "'{word}' has {} values, expected {d} (wrong dimension)",
                    row.len()
                ),
            ));
        }
        for token in row {
            let v: f32 = token
                .parse()
                .map_err(|_| bad(path, i + 1, format!("'{token}' is not a number")))?;
            values.push(v);
        }
        words.push(word.to_string());
    }
    if let Some(count) = expected {
        if count != words.len() {
            return Err(bad(
                path,
                1,
                format!(
                    "the header promises {count} vectors, the file has {}",
                    words.len()
                ),
            ));
        }
    }
    WordVectors::from_parts(words, dim.unwrap_or(0), values, path)
}

fn read_binary(bytes: &[u8], path: &Path) -> Result<WordVectors> {
    let first_end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| bad(path, 1, "no header line"))?;
    let (count, dim) = header(&String::from_utf8_lossy(&bytes[..first_end]))
        .ok_or_else(|| bad(path, 1, "expected a 'count dim' header"))?;
    let mut pos = first_end + 1;
    // Each entry takes at least a one-byte word, a space and `dim` f32s: a header promising more
    // than the file can hold is an error before anything is allocated for it.
    let room = bytes.len() - pos;
    let least = dim
        .checked_mul(4)
        .and_then(|d| d.checked_add(2))
        .and_then(|e| e.checked_mul(count));
    if count == 0 || dim == 0 {
        return Err(bad(
            path,
            1,
            format!("the header promises {count} vectors of {dim} values: nothing to read"),
        ));
    }
    if least.is_none_or(|need| need > room) {
        return Err(bad(
            path,
            1,
            format!(
                "the header promises {count} vectors of {dim} values, more than the file's \
                 {} bytes can hold",
                bytes.len()
            ),
        ));
    }
    let mut words = Vec::with_capacity(count);
    let mut values = Vec::with_capacity(count * dim);
    for entry in 0..count {
        while pos < bytes.len() && (bytes[pos] == b'\n' || bytes[pos] == b'\r') {
            pos += 1;
        }
        let truncated = || {
            Error::folder(path, format!("truncated: the header promises {count} vectors, entry {} of {count} is incomplete", entry + 1))
        };
        let space = bytes[pos..]
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(truncated)?;
        let word = String::from_utf8_lossy(&bytes[pos..pos + space]).into_owned();
        pos += space + 1;
        let end = pos + dim * 4;
        if end > bytes.len() {
            return Err(truncated());
        }
        values.extend(
            bytes[pos..end]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        pos = end;
        words.push(word);
    }
    WordVectors::from_parts(words, dim, values, path)
}

/// The `.npy` preamble (magic, version, header length) checked against the file's size: the
/// header length is read from the file, and a reader that trusts it allocates that much.
fn check_npy_preamble(path: &Path) -> Result<()> {
    use std::io::Read;
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    let mut preamble = [0u8; 12];
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let got = file.read(&mut preamble).map_err(|e| Error::io(path, e))?;
    let bad = |message: String| Error::folder(path, format!("not a .npy matrix: {message}"));
    if got < 10 || &preamble[..6] != b"\x93NUMPY" {
        return Err(bad("the file does not start with the .npy magic".into()));
    }
    let (header_start, header_len) = match preamble[6] {
        1 => (10, u16::from_le_bytes([preamble[8], preamble[9]]) as u64),
        2 | 3 if got == 12 => (
            12,
            u32::from_le_bytes([preamble[8], preamble[9], preamble[10], preamble[11]]) as u64,
        ),
        v => return Err(bad(format!("format version {v} (prosa reads 1, 2 and 3)"))),
    };
    if header_start + header_len > size {
        return Err(bad(format!(
            "the header claims {header_len} bytes, more than the file's {size}"
        )));
    }
    Ok(())
}

fn read_npy(path: &Path, index: &Path) -> Result<WordVectors> {
    let fail = |e: std::io::Error| Error::folder(path, format!("cannot read the .npy matrix: {e}"));
    check_npy_preamble(path)?;
    let file = std::io::BufReader::new(std::fs::File::open(path).map_err(|e| Error::io(path, e))?);
    let npy = npyz::NpyFile::new(file).map_err(fail)?;
    let (rows, dim) = match npy.shape() {
        &[r, d] => (r as usize, d as usize),
        other => {
            return Err(Error::folder(
                path,
                format!("expected a 2-D matrix, found shape {other:?}"),
            ))
        }
    };
    // The shape comes from the file's header: check it against the file's size first.
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    let need = rows.checked_mul(dim).and_then(|n| n.checked_mul(4));
    if rows == 0 || dim == 0 || need.is_none_or(|n| n as u64 > size) {
        return Err(Error::folder(
            path,
            format!("the header's shape ({rows}, {dim}) does not fit the file's {size} bytes"),
        ));
    }
    let order = npy.order();
    let stored: Vec<f32> = npy.into_vec().map_err(fail)?;
    let values = match order {
        npyz::Order::C => stored,
        // Column-major (as numpy writes a transposed array): gather it into rows.
        npyz::Order::Fortran => {
            let mut rows_major = vec![0f32; stored.len()];
            for (c, column) in stored.chunks_exact(rows).enumerate() {
                for (r, &v) in column.iter().enumerate() {
                    rows_major[r * dim + c] = v;
                }
            }
            rows_major
        }
    };
    let words = read_index(index)?;
    if words.len() != rows {
        return Err(Error::folder(
            index,
            format!(
                "{} words for the {rows} rows of {}",
                words.len(),
                path.display()
            ),
        ));
    }
    WordVectors::from_parts(words, dim, values, path)
}

/// The word list of an `.npy` matrix: the first column of a parquet file, or one word per line.
fn read_index(index: &Path) -> Result<Vec<String>> {
    if !index.is_file() {
        return Err(Error::io(
            index,
            std::io::Error::new(std::io::ErrorKind::NotFound, "word index not found"),
        ));
    }
    if index.extension().and_then(|e| e.to_str()) == Some("parquet") {
        return crate::guard::decode(index, "parquet file", || {
            super::parquet_index::first_string_column(index)
        });
    }
    let text = crate::fsio::read_text(index)?;
    Ok(text.lines().map(str::to_string).collect())
}

//! gettext catalogues (`.mo` files) as parallel text: each translated message is a real
//! English → target-language pair (msgid → msgstr), written by the software's translators.
//!
//! The format (GNU gettext manual, "The Format of GNU MO Files"): a magic number that also gives
//! the byte order, a revision, the number of strings N, and the offsets of two tables of N
//! (length, offset) pairs — originals and translations. An original may carry a context
//! (`context \x04 msgid`) and a plural (`msgid \0 msgid_plural`); a translation then holds one
//! form per plural, separated by `\0`. The entry with an empty msgid is the header.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The magic number, as read in the file's own byte order.
const MAGIC: u32 = 0x9504_12de;

/// One message of a catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoEntry {
    /// The disambiguating context (`msgctxt`), if any.
    pub context: Option<String>,
    /// The original (English) text.
    pub msgid: String,
    /// The original plural, if the message has plural forms.
    pub msgid_plural: Option<String>,
    /// The translations: one, or one per plural form.
    pub msgstr: Vec<String>,
}

/// A catalogue: its path and its messages (the header excluded).
#[derive(Debug, Clone)]
pub struct Catalogue {
    /// The `.mo` file.
    pub path: PathBuf,
    /// Its messages, in file order.
    pub entries: Vec<MoEntry>,
}

fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads a `.mo` file: either byte order, contexts, plural forms, UTF-8 or Latin-1 text (as
/// the header's charset says). A truncated file, a wrong magic number or offsets past the end
/// are errors naming the file.
pub fn read_mo(path: &Path) -> Result<Catalogue> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_mo(&bytes, path)
}

/// [`read_mo`] on bytes already in memory; `path` names them in errors.
pub fn parse_mo(bytes: &[u8], path: &Path) -> Result<Catalogue> {
    let word = |at: usize, big: bool| -> Result<u32> {
        let b: [u8; 4] = bytes
            .get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| {
                bad(
                    path,
                    format!("truncated .mo file (ends before byte {})", at + 4),
                )
            })?;
        Ok(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let big = match word(0, false)? {
        MAGIC => false,
        m if m.swap_bytes() == MAGIC => true,
        m => {
            return Err(bad(
                path,
                format!("not a .mo file (magic number {m:#010x}, expected 0x950412de)"),
            ))
        }
    };
    let revision = word(4, big)? >> 16;
    if revision > 1 {
        return Err(bad(path, format!("unknown .mo major revision {revision}")));
    }
    let count = word(8, big)? as usize;
    let (originals, translations) = (word(12, big)? as usize, word(16, big)? as usize);
    // Each message takes two 8-byte table slots: a count the file cannot hold is an error
    // before anything is allocated.
    if count > bytes.len() / 16 {
        return Err(bad(
            path,
            format!(
                "the header claims {count} messages, more than a {}-byte file holds",
                bytes.len()
            ),
        ));
    }
    let string = |table: usize, i: usize| -> Result<&[u8]> {
        let slot = table + 8 * i;
        let (len, at) = (word(slot, big)? as usize, word(slot + 4, big)? as usize);
        bytes.get(at..at.saturating_add(len)).ok_or_else(|| {
            bad(
                path,
                format!(
                    "message {i}: string at bytes {at}..{} is past the end of the file",
                    at + len
                ),
            )
        })
    };
    let mut raw = Vec::with_capacity(count);
    for i in 0..count {
        raw.push((string(originals, i)?, string(translations, i)?));
    }
    let latin1 = raw
        .iter()
        .find(|(id, _)| id.is_empty())
        .map(|(_, header)| charset(header))
        .transpose()
        .map_err(|c| {
            bad(
                path,
                format!("charset {c} is not supported (UTF-8, ISO-8859-1)"),
            )
        })?
        .unwrap_or(false);
    let text = |b: &[u8], i: usize| -> Result<String> {
        if latin1 {
            return Ok(b.iter().map(|&c| c as char).collect());
        }
        String::from_utf8(b.to_vec()).map_err(|_| {
            bad(
                path,
                format!("message {i}: not valid UTF-8 (the header says UTF-8)"),
            )
        })
    };
    let mut entries = Vec::with_capacity(count);
    for (i, (id, translation)) in raw.into_iter().enumerate() {
        if id.is_empty() {
            continue;
        }
        let id = text(id, i)?;
        let (context, id) = match id.split_once('\u{4}') {
            Some((c, rest)) => (Some(c.to_string()), rest.to_string()),
            None => (None, id),
        };
        let (msgid, msgid_plural) = match id.split_once('\0') {
            Some((one, many)) => (one.to_string(), Some(many.to_string())),
            None => (id, None),
        };
        let msgstr = text(translation, i)?
            .split('\0')
            .map(str::to_string)
            .collect();
        entries.push(MoEntry {
            context,
            msgid,
            msgid_plural,
            msgstr,
        });
    }
    Ok(Catalogue {
        path: path.to_path_buf(),
        entries,
    })
}

/// Whether the header's charset is Latin-1 (`Ok(true)`) or UTF-8/ASCII (`Ok(false)`); another
/// charset is `Err(name)`.
fn charset(header: &[u8]) -> std::result::Result<bool, String> {
    let header = String::from_utf8_lossy(header);
    let Some(name) = header.lines().find_map(|l| {
        l.split_once("charset=")
            .map(|(_, c)| c.trim().to_ascii_lowercase())
    }) else {
        return Ok(false);
    };
    match name.as_str() {
        "utf-8" | "utf8" | "ascii" | "us-ascii" | "charset" | "" => Ok(false),
        "iso-8859-1" | "iso8859-1" | "latin1" | "latin-1" => Ok(true),
        other => Err(other.to_string()),
    }
}

/// Removes a keyboard accelerator marker: GTK's `_` or Qt/KDE's `&` before a letter or digit,
/// when the text has exactly one (`_Open` → `Open`, `A&brir` → `Abrir`; `&&` stays `&`).
pub fn strip_accelerator(text: &str) -> String {
    let mut text = text.to_string();
    for marker in ['_', '&'] {
        let positions: Vec<usize> = text.match_indices(marker).map(|(i, _)| i).collect();
        if let [at] = positions[..] {
            let next = text[at + 1..].chars().next();
            if next.is_some_and(char::is_alphanumeric) && !text[at..].starts_with("&amp;") {
                text.remove(at);
            }
        }
    }
    text.replace("&&", "&")
}

/// The translation pairs of a catalogue: (msgid, msgstr) and, for plural messages,
/// (msgid_plural, second form); accelerators stripped; untranslated, empty, multi-line and
/// unchanged messages left out.
pub fn pairs(catalogue: &Catalogue) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in &catalogue.entries {
        let mut candidates = vec![(e.msgid.as_str(), e.msgstr.first())];
        if let Some(plural) = &e.msgid_plural {
            candidates.push((plural.as_str(), e.msgstr.get(1)));
        }
        for (source, target) in candidates {
            let Some(target) = target else { continue };
            let (source, target) = (strip_accelerator(source), strip_accelerator(target));
            let (source, target) = (source.trim(), target.trim());
            if source.is_empty()
                || target.is_empty()
                || source == target
                || source.contains('\n')
                || target.contains('\n')
            {
                continue;
            }
            out.push((source.to_string(), target.to_string()));
        }
    }
    out
}

/// Every `.mo` file under `root` for `locale` (`…/<locale>/LC_MESSAGES/*.mo`), sorted by path.
pub fn find_catalogues(root: &Path, locale: &str) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| Error::io(&dir, e))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "mo")
                && path.parent().is_some_and(|p| p.ends_with("LC_MESSAGES"))
                && path
                    .parent()
                    .and_then(Path::parent)
                    .is_some_and(|p| p.file_name().is_some_and(|n| n == locale))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A .mo file of `messages` (original, translation) in either byte order, sorted as
    /// msgfmt sorts them.
    pub(crate) fn mo_bytes(messages: &[(&str, &str)], big: bool) -> Vec<u8> {
        let mut messages = messages.to_vec();
        messages.sort();
        let n = messages.len();
        let word = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let (originals, translations) = (28, 28 + 8 * n);
        let mut strings = Vec::new();
        let mut tables = (Vec::new(), Vec::new());
        let base = 28 + 16 * n;
        for (id, _) in &messages {
            tables.0.extend(word(id.len() as u32));
            tables.0.extend(word((base + strings.len()) as u32));
            strings.extend(id.as_bytes());
            strings.push(0);
        }
        for (_, tr) in &messages {
            tables.1.extend(word(tr.len() as u32));
            tables.1.extend(word((base + strings.len()) as u32));
            strings.extend(tr.as_bytes());
            strings.push(0);
        }
        let mut out = Vec::new();
        for v in [
            MAGIC,
            0,
            n as u32,
            originals as u32,
            translations as u32,
            0,
            0,
        ] {
            out.extend(word(v));
        }
        out.extend(tables.0);
        out.extend(tables.1);
        out.extend(strings);
        out
    }

    const MESSAGES: &[(&str, &str)] = &[
        ("", "Content-Type: text/plain; charset=UTF-8\n"),
        ("_Open", "_Abrir"),
        ("menu\u{4}File", "Arquivo"),
        ("%d file\0%d files", "%d arquivo\0%d arquivos"),
        ("Untranslated", ""),
        ("Cancel", "Cancelar"),
    ];

    #[test]
    fn both_byte_orders_give_contexts_plurals_and_pairs() {
        for big in [false, true] {
            let c = parse_mo(&mo_bytes(MESSAGES, big), Path::new("t.mo")).unwrap();
            assert_eq!(c.entries.len(), 5, "the header is left out");
            let file = c.entries.iter().find(|e| e.msgid == "File").unwrap();
            assert_eq!(file.context.as_deref(), Some("menu"));
            let plural = c.entries.iter().find(|e| e.msgid == "%d file").unwrap();
            assert_eq!(plural.msgid_plural.as_deref(), Some("%d files"));
            assert_eq!(plural.msgstr, ["%d arquivo", "%d arquivos"]);
            let mut p = pairs(&c);
            p.sort();
            let want: Vec<(String, String)> = [
                ("%d file", "%d arquivo"),
                ("%d files", "%d arquivos"),
                ("Cancel", "Cancelar"),
                ("File", "Arquivo"),
                ("Open", "Abrir"),
            ]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
            assert_eq!(p, want);
        }
    }

    #[test]
    fn truncated_and_foreign_files_are_errors_naming_the_file() {
        let bytes = mo_bytes(MESSAGES, false);
        let err = parse_mo(&bytes[..bytes.len() - 20], Path::new("cut.mo"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cut.mo") && err.contains("past the end"),
            "{err}"
        );
        let err = parse_mo(&bytes[..10], Path::new("cut.mo"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated"), "{err}");
        let err = parse_mo(b"PK\x03\x04 not a catalogue at all", Path::new("x.mo"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.mo") && err.contains("magic number"),
            "{err}"
        );
        let mut huge = bytes.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = parse_mo(&huge, Path::new("h.mo")).unwrap_err().to_string();
        assert!(err.contains("claims 4294967295 messages"), "{err}");
    }

    #[test]
    fn accelerators_are_stripped_once() {
        assert_eq!(strip_accelerator("_Open"), "Open");
        assert_eq!(strip_accelerator("A&brir"), "Abrir");
        assert_eq!(strip_accelerator("Salt && Pepper"), "Salt & Pepper");
        assert_eq!(
            strip_accelerator("file_name and other_name"),
            "file_name and other_name"
        );
        assert_eq!(strip_accelerator("Tom &amp; Jerry"), "Tom &amp; Jerry");
    }
}

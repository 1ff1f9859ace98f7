//! What BLEU and chrF share: Python's notion of whitespace (sacrebleu splits and strips with
//! `str.split()` / `str.rstrip()`), and the check that every reference stream has one line per
//! hypothesis.

use crate::error::{Error, Result};

/// Python's `str.isspace()` for one character: Unicode whitespace, and the file, group, record
/// and unit separators (U+001C–U+001F) that Rust's `char::is_whitespace` leaves out.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()`: the words between runs of whitespace.
pub fn python_split(s: &str) -> Vec<&str> {
    s.split(is_python_space).filter(|w| !w.is_empty()).collect()
}

/// Python's `str.rstrip()`.
pub fn python_rstrip(s: &str) -> &str {
    s.trim_end_matches(is_python_space)
}

/// An error unless there is at least one reference stream and every stream has one line per
/// hypothesis.
pub(crate) fn check_streams(hypotheses: &[&str], references: &[Vec<&str>]) -> Result<()> {
    if references.is_empty() {
        return Err(Error::config(
            "references",
            "give at least one reference stream",
        ));
    }
    for (k, stream) in references.iter().enumerate() {
        if stream.len() != hypotheses.len() {
            return Err(Error::config(
                "references",
                format!(
                    "reference stream {} has {} lines, but there are {} hypotheses",
                    k + 1,
                    stream.len(),
                    hypotheses.len()
                ),
            ));
        }
    }
    Ok(())
}

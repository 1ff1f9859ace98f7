//! A fence around third-party decoders that panic on hostile input (the `parquet` crate's
//! metadata reader, `tokenizers`' deserialisers): a panic inside becomes an error naming the
//! file. Found by the fuzzer (`fuzz/`); each such input is kept as a regression seed.
//!
//! While a guarded decoder runs, [`active`] is true, so a program's panic hook can stay quiet
//! about a panic that is about to become an ordinary error (the CLI's hook does).

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};

thread_local! {
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Panics turned into errors so far (the fuzzer keeps the inputs that caused them).
static CAUGHT: AtomicUsize = AtomicUsize::new(0);

/// How many panics [`decode`] has turned into errors in this process.
pub fn caught() -> usize {
    CAUGHT.load(Ordering::Relaxed)
}

/// True while this thread runs a guarded decoder.
pub fn active() -> bool {
    DEPTH.with(|d| d.get() > 0)
}

/// Runs `decode` (reading `path`); a panic inside is an error saying the file is malformed.
pub fn decode<T>(path: &Path, what: &str, decode: impl FnOnce() -> Result<T>) -> Result<T> {
    DEPTH.with(|d| d.set(d.get() + 1));
    let outcome = catch_unwind(AssertUnwindSafe(decode));
    DEPTH.with(|d| d.set(d.get() - 1));
    outcome.unwrap_or_else(|panic| {
        CAUGHT.fetch_add(1, Ordering::Relaxed);
        let detail = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no detail");
        Err(Error::folder(
            path,
            format!("malformed {what}: its decoder failed ({detail})"),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_naming_the_file() {
        assert!(!active());
        let err = decode(Path::new("x.parquet"), "parquet file", || -> Result<()> {
            assert!(active());
            panic!("index out of bounds")
        })
        .unwrap_err()
        .to_string();
        assert!(!active());
        assert!(
            err.starts_with("x.parquet: malformed parquet file"),
            "{err}"
        );
        assert!(err.contains("index out of bounds"), "{err}");
        assert_eq!(decode(Path::new("y"), "file", || Ok(3)).unwrap(), 3);
    }
}

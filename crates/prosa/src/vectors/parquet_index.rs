//! The word index of an `.npy` matrix stored as parquet: the first column, as strings.
//!
//! The `parquet` crate is patched (`vendor/parquet`, see `vendor/README.md`) where a hostile
//! file made it spin or allocate by the file's claims; its remaining panics on corrupt files are
//! caught by the caller's [`crate::guard::decode`].

use std::path::Path;

use bytes::Bytes;
use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::{Error, Result};

/// Reads the first column of the parquet file at `path` as strings, one per row.
pub(super) fn first_string_column(path: &Path) -> Result<Vec<String>> {
    let fail =
        |e: parquet::errors::ParquetError| Error::folder(path, format!("cannot read parquet: {e}"));
    // An index is small: read it whole, so the decoder's reads are memory reads.
    let bytes = Bytes::from(std::fs::read(path).map_err(|e| Error::io(path, e))?);
    let size = bytes.len() as u64;
    let reader = SerializedFileReader::new(bytes).map_err(fail)?;
    // The row count is the file's claim: reserve no more than the file's size could hold.
    let claimed = reader.metadata().file_metadata().num_rows().max(0) as u64;
    let mut words = Vec::with_capacity(claimed.min(size) as usize);
    for row in reader.get_row_iter(None).map_err(fail)? {
        let row = row.map_err(fail)?;
        let word = parquet::record::RowAccessor::get_string(&row, 0).map_err(|e| {
            Error::folder(
                path,
                format!(
                    "row {}: the first column is not a string: {e}",
                    words.len() + 1
                ),
            )
        })?;
        words.push(word.clone());
    }
    Ok(words)
}

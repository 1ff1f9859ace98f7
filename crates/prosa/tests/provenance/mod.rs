//! Provenance of the "loads back in transformers" records: each `saved_by_prosa_check.json`
//! stores the checksum of the model sources it was made with (`sources_fnv1a64`, computed by
//! `fixtures/sources_checksum.py`); a record older than the sources fails its test, naming the
//! command that re-makes it.

use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// FNV-1a (64-bit) over the sorted relative paths and contents of `family`'s sources
/// (`crates/prosa/src/<family_dir>/**.rs`) and `nn/params.rs`, as `sources_checksum.py`.
pub fn sources_checksum(family_dir: &str) -> String {
    let root = root();
    let src = root.join("crates/prosa/src");
    let mut files = vec![src.join("nn/params.rs")];
    rust_files(&src.join(family_dir), &mut files);
    let mut relative: Vec<String> = files
        .iter()
        .map(|p| {
            p.strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    relative.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for rel in relative {
        let content = std::fs::read(root.join(&rel)).unwrap();
        for &b in rel
            .as_bytes()
            .iter()
            .chain(b"\0")
            .chain(&content)
            .chain(b"\0")
        {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// Asserts that `record` (a `saved_by_prosa_check.json`) was made with the current sources of
/// `family_dir`; `remake` is the command that re-makes it.
pub fn assert_current(record: &Value, family_dir: &str, remake: &str) {
    let now = sources_checksum(family_dir);
    let then = record["sources_fnv1a64"].as_str().unwrap_or("none");
    assert_eq!(
        then, now,
        "the sources under crates/prosa/src/{family_dir} (or nn/params.rs) changed since the \
         transformers load-back record was made: re-make it with {remake}"
    );
}

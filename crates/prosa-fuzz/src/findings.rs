//! Findings: inputs that crashed a target, saved under `fuzz/findings/<target>/` with a note
//! (what happened) beside them, named by a hash of their bytes so a crash found twice is one
//! file.

use std::path::{Path, PathBuf};

use crate::targets::{Input, Target};

/// FNV-1a of `bytes` (a stable name for a finding).
fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Saves `bytes`, mutated from seed `seed`, as a finding of `target` (`kind`: panic, abort,
/// hang) with `note` beside it (`.note`); returns its path. The name starts with the seed's
/// stem, which picks the fixture when the finding is replayed.
pub fn save(
    findings: &Path,
    target: &Target,
    seed: &str,
    bytes: &[u8],
    kind: &str,
    note: &str,
) -> anyhow::Result<PathBuf> {
    let dir = findings.join(target.name);
    std::fs::create_dir_all(&dir)?;
    let file = (target.file)(&Input {
        path: Path::new(""),
        seed: "x",
    });
    let extension = Path::new(&file)
        .extension()
        .map(|e| e.to_string_lossy().to_string())
        .unwrap_or_else(|| "bin".into());
    // One file per crash site: a panic's location, else the note without its numbers.
    let site = note
        .split_once("panicked at ")
        .map(|(_, rest)| rest.split(':').take(2).collect::<Vec<_>>().join(":"))
        .unwrap_or_else(|| {
            note.chars()
                .filter(|c| !c.is_ascii_digit())
                .take(120)
                .collect()
        });
    let mut name = format!(
        "{seed}.{kind}-{:016x}",
        hash(format!("{kind}{site}").as_bytes())
    );
    let mut path = dir.join(format!("{name}.{extension}"));
    if path.exists() {
        // A panic's site (guarded or not) is its location: the same bug. An abort's or a
        // hang's "site" is only its message ("memory allocation of N bytes failed"), which
        // different bugs share, so another input there is kept beside the first.
        let located = !matches!(kind, "abort" | "hang");
        if located || std::fs::read(&path).is_ok_and(|b| b == bytes) {
            return Ok(path);
        }
        name = format!("{name}-{:016x}", hash(bytes));
        path = dir.join(format!("{name}.{extension}"));
        if path.exists() {
            return Ok(path);
        }
    }
    std::fs::write(&path, bytes)?;
    std::fs::write(
        dir.join(format!("{name}.note")),
        format!("{kind}: {note}\n"),
    )?;
    eprintln!("finding: {} ({kind})", path.display());
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One file per panic site, however many inputs reach it; every distinct input of an abort
    /// (whose only "site" is its message) is kept.
    #[test]
    fn panics_keep_one_input_per_site_and_aborts_every_input() {
        let dir = tempfile::tempdir().unwrap();
        let target = crate::targets::TARGETS
            .iter()
            .find(|t| t.name == "parquet")
            .unwrap();
        let files = || {
            std::fs::read_dir(dir.path().join("parquet"))
                .unwrap()
                .count()
        };
        let guarded = "panicked at src/x.rs:10:5:\nboom";
        save(dir.path(), target, "index", b"one", "guarded", guarded).unwrap();
        save(dir.path(), target, "index", b"two", "guarded", guarded).unwrap();
        assert_eq!(files(), 2, "one input and its note");
        let abort = "memory allocation of 123 bytes failed";
        save(dir.path(), target, "x", b"three", "abort", abort).unwrap();
        save(dir.path(), target, "x", b"four", "abort", abort).unwrap();
        save(dir.path(), target, "x", b"four", "abort", abort).unwrap();
        assert_eq!(files(), 6, "both abort inputs, once each, with their notes");
    }
}

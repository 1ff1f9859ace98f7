//! The worker: loads the seeds of one target, mutates them in a seeded loop and runs the
//! target on each input inside `catch_unwind`. Panics are findings it saves itself; an abort,
//! a signal or a hang kills it, and the supervisor saves the input it left behind.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::mutate::mutate;
use crate::targets::{prepare, Input, Target, Workspace};

/// Counts a worker writes to `stats.json` (about once a second, and at the end).
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
pub struct Stats {
    /// Inputs run.
    pub executions: u64,
    /// Inputs the loader accepted.
    pub accepted: u64,
    /// Inputs that panicked.
    pub panics: u64,
    /// Inputs on which a third-party decoder panicked inside `prosa::guard` (an error, not a
    /// crash).
    #[serde(default)]
    pub guarded: u64,
}

/// The seed files of `target` and its past findings: (stem, bytes). With `mutable_only`, the
/// findings that killed a worker (aborts, hangs) are left out: mutating them would restart the
/// worker again and again while they are unfixed (`replay` runs them all).
pub fn seeds(root: &Path, target: &Target, mutable_only: bool) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for kind in ["seeds", "findings"] {
        let dir = root.join("fuzz").join(kind).join(target.name);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.is_file()) {
            if path.extension().is_some_and(|e| e == "note") {
                continue; // a finding's note
            }
            let name = path.file_name().map(|n| n.to_string_lossy().to_string());
            let kills = name.is_some_and(|n| n.contains(".abort-") || n.contains(".hang-"));
            if mutable_only && kills {
                continue;
            }
            let stem = path
                .file_stem()
                .map(|s| {
                    s.to_string_lossy()
                        .split('.')
                        .next()
                        .unwrap_or("")
                        .to_string()
                })
                .unwrap_or_default();
            if let Ok(bytes) = std::fs::read(&path) {
                files.push((stem, bytes));
            }
        }
    }
    files
}

/// The last panic's message (the hook records it instead of printing it).
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

/// Replaces the panic hook: messages are kept for the finding's note, not printed each time.
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let message = format!("{info}");
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = message;
        }
    }));
}

/// Runs `target` once on `bytes` (written where the target reads); `Err` holds a panic's
/// message.
pub fn run_once(target: &Target, w: &Workspace, seed: &str, bytes: &[u8]) -> Result<bool, String> {
    let path = input_path(target, w, seed);
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    let input = Input { path: &path, seed };
    catch_unwind(AssertUnwindSafe(|| (target.run)(w, &input)))
        .map_err(|_| LAST_PANIC.lock().map(|m| m.clone()).unwrap_or_default())
}

/// Where `target` reads its input for a seed called `seed`.
pub fn input_path(target: &Target, w: &Workspace, seed: &str) -> PathBuf {
    w.dir.join((target.file)(&Input {
        path: Path::new(""),
        seed,
    }))
}

/// Fuzzes `target` for `seconds`, saving panicking inputs under `findings`.
pub fn work(
    target: &Target,
    w: &Workspace,
    seconds: f64,
    seed: u64,
    findings: &Path,
) -> anyhow::Result<Stats> {
    prepare(target, w)?;
    let corpus = seeds(&w.root, target, true);
    anyhow::ensure!(!corpus.is_empty(), "no seeds for target {}", target.name);
    let splice_from: Vec<Vec<u8>> = corpus.iter().map(|(_, b)| b.clone()).collect();
    quiet_panics();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stats = Stats::default();
    let start = Instant::now();
    let mut last_write = Instant::now();
    let deadline = Duration::from_secs_f64(seconds);
    let stats_path = w.dir.join("stats.json");
    while start.elapsed() < deadline {
        let (stem, original) = &corpus[rng.random_range(0..corpus.len())];
        let mut bytes = original.clone();
        // Each seed runs as it is once, then only mutated.
        if stats.executions >= corpus.len() as u64 {
            mutate(&mut bytes, &splice_from, target.text, &mut rng);
        }
        let guarded_before = prosa::guard::caught();
        match run_once(target, w, stem, &bytes) {
            Ok(accepted) => {
                stats.accepted += accepted as u64;
                // A third-party decoder panicked and prosa's guard made it an error: not a
                // crash, but an input worth keeping as a regression seed.
                if prosa::guard::caught() > guarded_before {
                    stats.guarded += 1;
                    let message = LAST_PANIC.lock().map(|m| m.clone()).unwrap_or_default();
                    crate::findings::save(findings, target, stem, &bytes, "guarded", &message)?;
                }
            }
            Err(message) => {
                stats.panics += 1;
                crate::findings::save(findings, target, stem, &bytes, "panic", &message)?;
            }
        }
        stats.executions += 1;
        if last_write.elapsed() > Duration::from_secs(1) {
            std::fs::write(&stats_path, serde_json::to_vec(&stats)?)?;
            last_write = Instant::now();
        }
    }
    std::fs::write(&stats_path, serde_json::to_vec(&stats)?)?;
    Ok(stats)
}

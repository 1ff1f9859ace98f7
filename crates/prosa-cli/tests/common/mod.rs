//! What the program's test files share: the program, and the fetched assets.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The `prosa` program under test.
pub fn prosa() -> Command {
    Command::new(env!("CARGO_BIN_EXE_prosa"))
}

#[allow(dead_code)] // not every test file reads assets
/// A fetched asset, or `None` (with a note) when `scripts/setup-assets.sh` has not run — an
/// error under `PROSA_REQUIRE_ASSETS=1`, as `scripts/test.sh` sets it.
pub fn asset(relative: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets")
        .join(relative);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("PROSA_REQUIRE_ASSETS").map_or(true, |v| v != "1"),
        "{} is missing: run scripts/setup-assets.sh",
        path.display()
    );
    eprintln!("skipped: {} is missing", path.display());
    None
}

#[allow(dead_code)] // not every test file reads JSON
/// The JSON a successful run printed (a failed run fails the test with its stderr).
pub fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "prosa failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[allow(dead_code)] // not every test file trains language models
/// Sentences of a small grammar (subject, verb, object, full stop): the next word depends on
/// the last, which a language model learns and a unigram model cannot.
pub fn grammar_text() -> String {
    let subjects = ["o gato", "a menina", "o menino", "a vaca"];
    let verbs = [
        ("come", ["peixe", "pão"]),
        ("lê", ["livros", "jornais"]),
        ("bebe", ["leite", "água"]),
    ];
    let mut text = String::new();
    for i in 0..900usize {
        let (verb, objects) = verbs[(i / 4) % 3];
        text.push_str(&format!(
            "{} {} {} .\n\n",
            subjects[i % 4],
            verb,
            objects[(i / 12) % 2]
        ));
    }
    text
}

#[allow(dead_code)] // not every test file trains classifiers
/// What always answering the majority class of a test split scores, from its classification
/// report (`test_report` in a run's JSON): (accuracy, macro-F1). The baseline a classifier's
/// test must beat by a margin.
pub fn majority_baseline(report: &Value) -> (f64, f64) {
    let supports: Vec<f64> = report["per_class"]
        .as_array()
        .expect("a classification report")
        .iter()
        .map(|c| c["support"].as_f64().unwrap())
        .collect();
    let total: f64 = supports.iter().sum();
    let share = supports.iter().cloned().fold(0.0, f64::max) / total;
    // The majority class: precision = share, recall = 1; every other class scores 0.
    let f1 = 2.0 * share / (share + 1.0);
    (share, f1 / supports.len() as f64)
}

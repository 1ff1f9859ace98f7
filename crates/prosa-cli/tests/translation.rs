//! Unit II from the command line: translation metrics of files, equal to sacrebleu's CLI.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn prosa() -> Command {
    Command::new(env!("CARGO_BIN_EXE_prosa"))
}

fn fixture() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../prosa/tests/fixtures/translation/sacrebleu.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn write_lines(path: &Path, lines: &Value) {
    let text: Vec<&str> = lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    std::fs::write(path, text.join("\n") + "\n").unwrap();
}

#[test]
fn metrics_of_files_equal_sacrebleu_and_a_short_reference_file_is_named() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (hyp, r1, r2) = (
        dir.path().join("hyp.txt"),
        dir.path().join("ref1.txt"),
        dir.path().join("ref2.txt"),
    );
    write_lines(&hyp, &f["hypotheses"]);
    write_lines(&r1, &f["references"][0]);
    write_lines(&r2, &f["references"][1]);
    for (metric, key) in [("bleu", "bleu"), ("chrf", "chrf")] {
        let out = prosa()
            .args(["metrics", metric, "--hyp", hyp.to_str().unwrap()])
            .args([
                "--ref",
                r1.to_str().unwrap(),
                "--ref",
                r2.to_str().unwrap(),
                "--json",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        let want = f["two_references"][key].as_f64().unwrap();
        assert!(
            (got[key].as_f64().unwrap() - want).abs() < 0.01,
            "{metric}: {got}"
        );
        assert_eq!(
            got["signature"],
            f["two_references"][format!("{key}_signature")]
        );
    }
    std::fs::write(&r2, "only one line\n").unwrap();
    let out = prosa()
        .args(["metrics", "bleu", "--hyp", hyp.to_str().unwrap()])
        .args(["--ref", r1.to_str().unwrap(), "--ref", r2.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("ref2.txt: 1 lines") && err.contains("hyp.txt has 10"),
        "{err}"
    );
}

/// A fetched asset, or `None` (with a note) when `scripts/setup-assets.sh` has not run — an
/// error under `PROSA_REQUIRE_ASSETS=1`, as `scripts/test.sh` sets it.
fn asset(relative: &str) -> Option<std::path::PathBuf> {
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

#[test]
fn the_pinned_catalogues_give_over_30000_pairs_split_by_catalogue() {
    let Some(root) = asset("gettext-pt_BR") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = prosa()
        .args([
            "data",
            "gettext",
            "--root",
            root.to_str().unwrap(),
            "--split",
            "--json",
        ])
        .args(["--out", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let unique = report["report"]["unique"].as_u64().unwrap();
    assert!(unique >= 30_000, "{unique} pairs");
    let groups = |name: &str| -> std::collections::BTreeSet<String> {
        let pairs =
            prosa::data::parallel::read_pairs(&dir.path().join(format!("{name}.tsv"))).unwrap();
        assert_eq!(
            pairs.len() as u64,
            report["files"][name]["pairs"].as_u64().unwrap()
        );
        pairs.into_iter().map(|p| p.group).collect()
    };
    let (train, validation, test) = (groups("train"), groups("validation"), groups("test"));
    assert!(test.len() >= 3, "the test split mixes catalogues: {test:?}");
    assert!(
        train.is_disjoint(&test) && train.is_disjoint(&validation) && validation.is_disjoint(&test)
    );
}

#[test]
fn a_truncated_or_foreign_catalogue_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let messages = dir.path().join("pkg/pt_BR/LC_MESSAGES");
    std::fs::create_dir_all(&messages).unwrap();
    std::fs::write(messages.join("broken.mo"), b"\x95\x04\x12\xde\x00\x00").unwrap();
    let out = prosa()
        .args(["data", "gettext", "--root", dir.path().to_str().unwrap()])
        .args(["--out", dir.path().join("p.tsv").to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("broken.mo") && err.contains("truncated"),
        "{err}"
    );
    std::fs::write(
        messages.join("broken.mo"),
        b"GIF89a: this is a picture, not a catalogue",
    )
    .unwrap();
    let out = prosa()
        .args(["data", "gettext", "--root", dir.path().to_str().unwrap()])
        .args(["--out", dir.path().join("p.tsv").to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.mo") && err.contains("magic number"),
        "{err}"
    );
}

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

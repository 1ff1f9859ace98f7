//! The fuzzer's own checks, run by CI: every committed seed and finding loads without a panic
//! (the regression tests of the findings), every target's seeds are valid inputs, and a short
//! seeded run of every target finds nothing.

use std::process::Command;

fn fuzz() -> Command {
    Command::new(env!("CARGO_BIN_EXE_prosa-fuzz"))
}

#[test]
fn every_seed_and_finding_replays_and_each_target_has_a_valid_seed() {
    let out = fuzz().arg("replay").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = fuzz().arg("list").output().unwrap();
    let targets: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert!(targets.len() >= 18, "{targets:?}");
    for target in &targets {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(target.as_str()))
            .unwrap_or_else(|| panic!("{target} not replayed:\n{stdout}"));
        let accepted: usize = line.split_whitespace().nth(3).unwrap().parse().unwrap();
        assert!(accepted >= 1, "{target}: no seed is a valid input: {line}");
    }
}

#[test]
fn a_short_seeded_run_of_every_target_finds_nothing() {
    let findings = tempfile::tempdir().unwrap();
    let out = fuzz()
        .arg("--findings")
        .arg(findings.path())
        .args(["run", "--seconds", "1.5", "--jobs", "2", "--seed", "7"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every target ran inputs.
    let rows = stdout.lines().skip(1).filter(|l| !l.starts_with("finding"));
    for row in rows {
        let executions: u64 = row.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert!(executions > 0, "{row}");
    }
}

//! Every training task survives SIGKILL: a run killed after its first checkpoint and started
//! again with `--resume` ends with the same history — every evaluation at the same step with
//! the same losses and metrics — as a run never interrupted (issue 15, item 6). And `--resume`
//! refuses what it cannot continue: no checkpoint, or one written by a run of other settings.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{grammar_text, json_of, prosa};
use serde_json::Value;

/// One training command: its arguments without `--output-dir`, and the checkpoint (relative to
/// the output folder) whose appearance means the run may be killed.
struct Run {
    args: Vec<String>,
    checkpoint: &'static str,
}

impl Run {
    fn new(args: &[&str]) -> Self {
        Run {
            args: args.iter().map(|a| a.to_string()).collect(),
            checkpoint: "checkpoint-last",
        }
    }

    fn with_args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// The same run with `flag`'s value replaced.
    fn set(mut self, flag: &str, value: &str) -> Self {
        let at = self.args.iter().position(|a| a == flag).unwrap();
        self.args[at + 1] = value.to_string();
        self
    }

    fn path(mut self, flag: &str, path: &Path) -> Self {
        self.args.push(flag.into());
        self.args.push(path.to_str().unwrap().into());
        self
    }

    fn command(&self, out: &Path) -> std::process::Command {
        let mut c = prosa();
        c.args(&self.args)
            .arg("--output-dir")
            .arg(out)
            .args(["--json"]);
        c
    }
}

/// The history's entries without their wall times (which differ between runs).
fn history(dir: &Path) -> Vec<Value> {
    let path = dir.join("history.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let history: Value = serde_json::from_str(&text).unwrap();
    history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.as_object_mut().unwrap().remove("wall_time_s");
            e
        })
        .collect()
}

/// Runs `run` to the end in one folder; in another, kills it (SIGKILL) once its checkpoint
/// appears and resumes it. Asserts both histories are equal and returns the resumed run's JSON
/// and folder.
fn killed_and_resumed_equals_uninterrupted(run: &Run, scratch: &Path) -> (Value, PathBuf) {
    let whole = scratch.join("whole");
    let _ = json_of(&run.command(&whole).output().unwrap());

    let killed = scratch.join("killed");
    let mut child = run
        .command(&killed)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state = killed.join(run.checkpoint).join("trainer_state.json");
    let start = Instant::now();
    while !state.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no checkpoint appeared at {}",
            state.display()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before writing {}",
            state.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the run finished before it could be killed"
    );
    let resumed = json_of(&run.command(&killed).arg("--resume").output().unwrap());
    let (a, b) = (history(&whole), history(&killed));
    assert!(a.len() >= 2, "too few evaluations to test resuming: {a:?}");
    assert_eq!(a, b, "the resumed run's history differs");
    (resumed, killed)
}

fn corpus_file(dir: &Path) -> PathBuf {
    let corpus = dir.join("corpus.txt");
    std::fs::write(&corpus, grammar_text()).unwrap();
    corpus
}

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative)
}

#[test]
fn text_classification_with_a_transformer_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let run = Run::new(&["train", "--arch", "transformer", "--max-rows", "2000"])
        .with_args(&["--hidden", "32", "--heads", "2", "--layers", "1"])
        .with_args(&["--epochs", "2", "--eval-steps", "10", "--patience", "0"]);
    let (out, _) = killed_and_resumed_equals_uninterrupted(&run, dir.path());
    assert!(out["test_report"]["accuracy"].as_f64().is_some(), "{out}");
}

#[test]
fn token_classification_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let run = Run::new(&["train", "--task", "token-classification", "--arch", "elmo"])
        .path("--pretrained", &repo("crates/prosa/tests/fixtures/elmo"))
        .path("--data", &repo("data/ner/train.conll"))
        .path("--test-data", &repo("data/ner/test.conll"))
        .with_args(&["--epochs", "1", "--eval-steps", "20"]);
    killed_and_resumed_equals_uninterrupted(&run, dir.path());
}

#[test]
fn causal_lm_training_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus_file(dir.path());
    let run = Run::new(&["train", "--task", "causal-lm"])
        .path("--data", &corpus)
        .with_args(&["--vocab-size", "100", "--layers", "1", "--hidden", "32"])
        .with_args(&["--heads", "2", "--block-size", "16", "--epochs", "2"])
        .with_args(&["--batch-size", "8", "--eval-steps", "20"]);
    killed_and_resumed_equals_uninterrupted(&run, dir.path());
}

#[test]
fn translation_training_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // English → Portuguese pairs of the small grammar.
    let words = [("cat", "gato"), ("girl", "menina"), ("cow", "vaca")];
    let mut pairs = String::from("source\ttarget\n");
    for i in 0..300usize {
        let (en, pt) = words[i % 3];
        let (en2, pt2) = words[(i / 3) % 3];
        pairs.push_str(&format!("the {en} sees the {en2}\to {pt} vê o {pt2}\n"));
    }
    let data = dir.path().join("pairs.tsv");
    std::fs::write(&data, pairs).unwrap();
    let run = Run::new(&["train", "--task", "translation"])
        .path("--data", &data)
        .with_args(&["--hidden", "16", "--layers", "1", "--heads", "2"])
        .with_args(&["--vocab-size", "60", "--batch-size", "16", "--epochs", "3"])
        .with_args(&["--eval-steps", "10"]);
    killed_and_resumed_equals_uninterrupted(&run, dir.path());
}

/// `prosa pretrain --arch A` on the small grammar with settings small enough for a test.
fn pretrain(arch: &str, corpus: &Path) -> Run {
    let run = Run::new(&["pretrain", "--arch", arch])
        .path("--corpus", corpus)
        .with_args(&["--vocab-size", "100", "--hidden", "16", "--epochs", "2"])
        .with_args(&["--batch-size", "16", "--eval-steps", "10"]);
    match arch {
        "bert" | "t5" => run.with_args(&[
            "--layers",
            "1",
            "--heads",
            "2",
            "--intermediate",
            "32",
            "--max-length",
            "16",
            "--validation-documents",
            "1",
        ]),
        "elmo" => run.with_args(&["--layers", "2", "--max-length", "12"]),
        _ => run.with_args(&["--intermediate", "24", "--max-length", "20"]),
    }
}

#[test]
fn every_pretraining_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let corpus_dir = dir.path().join("corpus");
    std::fs::create_dir(&corpus_dir).unwrap();
    // BERT holds out whole documents: two of them.
    let text = grammar_text();
    let (a, b) = text.split_at(text.len() * 3 / 4);
    let b = &b[b.find("\n\n").unwrap() + 2..];
    std::fs::write(corpus_dir.join("a.txt"), a).unwrap();
    std::fs::write(corpus_dir.join("b.txt"), b).unwrap();
    for arch in ["bert", "t5", "elmo", "awd-lstm"] {
        let scratch = dir.path().join(arch);
        killed_and_resumed_equals_uninterrupted(&pretrain(arch, &corpus_dir), &scratch);
    }
}

#[test]
fn a_ulmfit_classifier_resumes_exactly_across_its_stages() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus_file(dir.path());
    let lm = dir.path().join("lm");
    let _ = json_of(
        &pretrain("awd-lstm", &corpus)
            .command(&lm)
            .args(["--drop-mult", "0"])
            .output()
            .unwrap(),
    );
    let run = Run {
        checkpoint: "stage-2/checkpoint-last",
        ..Run::new(&["train", "--arch", "ulmfit"])
    }
    .path("--pretrained", &lm.join("model"))
    .with_args(&["--max-rows", "600", "--epochs", "4", "--batch-size", "16"])
    .with_args(&["--lm-epochs", "1", "--eval-steps", "5", "--patience", "0"]);
    let (_, out) = killed_and_resumed_equals_uninterrupted(&run, dir.path());
    for stage in ["lm", "stage-1", "stage-2", "stage-3", "stage-4"] {
        assert!(
            out.join(stage).join("stage_done.json").exists(),
            "{stage} not marked done"
        );
    }
}

#[test]
fn resume_refuses_a_missing_checkpoint_and_one_of_other_settings() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus_file(dir.path());
    let out = dir.path().join("run");
    let run = pretrain("awd-lstm", &corpus);
    let missing = run.command(&out).arg("--resume").output().unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("checkpoint-last") && err.contains("no checkpoint to resume from"),
        "{err}"
    );
    let _ = json_of(&run.command(&out).output().unwrap());
    let other = run
        .set("--batch-size", "8")
        .command(&out)
        .arg("--resume")
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(1));
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(
        err.contains("per_device_train_batch_size: 16 in the checkpoint, 8 now"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

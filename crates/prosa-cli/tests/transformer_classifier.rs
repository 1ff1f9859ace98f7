//! The attention lesson's Transformer classifier from the command line: it learns the tweets,
//! saves a folder the classification pipeline and `prosa explain attention` read, and refuses
//! settings it would ignore.

mod common;

use common::prosa;
use serde_json::Value;

#[test]
fn the_lessons_transformer_classifier_learns_the_tweets_and_its_folder_serves() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("transformer");
    let out = prosa()
        .args(["train", "--arch", "transformer", "--embedding-dim", "32"])
        .args([
            "--heads",
            "2",
            "--hidden",
            "32",
            "--dropout",
            "0.1",
            "--max-len",
            "64",
        ])
        .args([
            "--epochs",
            "3",
            "--max-rows",
            "3000",
            "--json",
            "--output-dir",
        ])
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Always answering the majority class scores 0.424 on the tweets.
    let accuracy = result["accuracy"].as_f64().unwrap();
    assert!(
        accuracy > 0.55,
        "accuracy {accuracy} (majority class: 0.424)"
    );

    let model = run_dir.join("model");
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model_type"], "prosa-transformer-classifier");
    assert_eq!(
        (config["num_heads"].as_u64(), config["ff_dim"].as_u64()),
        (Some(2), Some(32))
    );

    let out = prosa()
        .args(["pipeline", "text-classification", "--model"])
        .arg(&model)
        .args(["--json", "what a wonderful flight, thank you"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let label = answer.to_string();
    assert!(
        ["positive", "neutral", "negative"]
            .iter()
            .any(|l| label.contains(l)),
        "{answer}"
    );

    let figure = dir.path().join("attention.png");
    let out = prosa()
        .args(["explain", "attention", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(&figure)
        .args(["--json", "what a wonderful flight"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let maps: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        maps["queries"],
        serde_json::json!(["what", "a", "wonderful", "flight"])
    );
    assert_eq!(maps["layers"][0].as_array().unwrap().len(), 2, "two heads");
    assert!(std::fs::read(&figure).unwrap().starts_with(b"\x89PNG"));

    let out = prosa()
        .args([
            "train",
            "--arch",
            "transformer",
            "--bidirectional",
            "--max-rows",
            "200",
        ])
        .arg("--output-dir")
        .arg(dir.path().join("bad"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("bidirectional"),
        "{err}"
    );
}

#[test]
fn group_by_length_batches_the_transformer_and_is_refused_where_examples_have_no_length() {
    let dir = tempfile::tempdir().unwrap();
    let train = |arch: &str| {
        prosa()
            .args([
                "train",
                "--arch",
                arch,
                "--group-by-length",
                "--max-rows",
                "400",
            ])
            .args(["--epochs", "1", "--json", "--output-dir"])
            .arg(dir.path().join(arch))
            .output()
            .unwrap()
    };
    let out = train("transformer");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let args: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("transformer/training_args.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(args["group_by_length"], true);
    let out = train("bow");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("group_by_length"),
        "{err}"
    );
}

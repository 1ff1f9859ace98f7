//! The house rules the program keeps: every training flag reaches every task (or is refused),
//! unknown metrics are errors, a checkpoint tensor the model does not have is a warning that
//! names it, and a binary copied anywhere runs the quickstart from an empty folder.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::prosa;

use serde_json::Value;

fn run(args: &[&str]) -> Output {
    prosa().args(args).output().expect("prosa runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A small corpus of numbered Portuguese lines, one paragraph each.
fn write_corpus(dir: &Path) -> std::path::PathBuf {
    let words = [
        "o", "gato", "come", "peixe", "a", "menina", "lê", "um", "livro", "no", "jardim", "e", "o",
        "cão", "dorme", "na", "casa",
    ];
    let text: Vec<String> = (0..120)
        .map(|i| {
            let line: Vec<&str> = (0..12)
                .map(|j| words[(i * 7 + j * 3) % words.len()])
                .collect();
            line.join(" ") + "."
        })
        .collect();
    let path = dir.join("corpus.txt");
    std::fs::write(&path, text.join("\n\n")).unwrap();
    path
}

#[test]
fn causal_lm_training_uses_the_config_file_and_every_training_flag() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = write_corpus(dir.path());
    let config = dir.path().join("exp.toml");
    std::fs::write(
        &config,
        "task = \"causal-lm\"\n[model]\nhidden_size = 32\nnum_layers = 1\nnum_heads = 2\nvocab_size = 300\nblock_size = 16\n[training]\nnum_train_epochs = 1\nper_device_train_batch_size = 8\nlearning_rate = 0.002\n[samples]\ntemperatures = [0.9]\nmax_new_tokens = 5\n",
    )
    .unwrap();
    let out_dir = dir.path().join("run");
    let out = run(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--data",
        corpus.to_str().unwrap(),
        "--dropout",
        "0.2",
        "--weight-decay",
        "0.1",
        "--optimizer",
        "adam",
        "--max-rows",
        "80",
        "--output-dir",
        out_dir.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let args = read_json(&out_dir.join("model/training_args.json"));
    assert_eq!(args["optimizer"]["weight_decay"], 0.1);
    assert_eq!(args["optimizer"]["kind"], "adam");
    assert_eq!(args["learning_rate"], 0.002);
    let model = read_json(&out_dir.join("model/config.json"));
    assert_eq!(model["resid_pdrop"], 0.2);
    assert_eq!(
        (model["n_embd"].as_u64(), model["n_layer"].as_u64()),
        (Some(32), Some(1))
    );
    let results = read_json(&out_dir.join("results.json"));
    // 80 of the 120 paragraphs, 10% held out for validation.
    let blocks = results["blocks"].as_array().unwrap();
    assert!(blocks[0].as_u64().unwrap() > 0 && blocks[1].as_u64().unwrap() > 0);
    assert_eq!(results["samples"].as_array().unwrap().len(), 1);
    let experiment = results["model_dir"].as_str().unwrap();
    assert!(experiment.ends_with("model"), "{experiment}");
}

#[test]
fn flags_a_task_cannot_use_and_unknown_metrics_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = write_corpus(dir.path());
    let out_dir = dir.path().join("run");
    let out = run(&[
        "train",
        "--task",
        "causal-lm",
        "--data",
        corpus.to_str().unwrap(),
        "--vectors",
        "glove.txt",
        "--output-dir",
        out_dir.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("model.vectors") && err.contains("does not apply to task causal-lm"),
        "{err}"
    );
    let out = run(&[
        "train",
        "--task",
        "causal-lm",
        "--data",
        corpus.to_str().unwrap(),
        "--metric",
        "bogus",
        "--output-dir",
        out_dir.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("unknown metric 'bogus'") && err.contains("loss, perplexity"),
        "{err}"
    );
    // Probabilities out of range name their flag's setting; nothing is trained.
    for (flag, value, field) in [
        ("--dropout", "1.5", "model.dropout"),
        ("--test-size", "1.5", "test_size"),
        ("--batch-size", "0", "per_device_train_batch_size"),
    ] {
        let out = run(&["train", flag, value, "--max-rows", "50"]);
        let err = stderr(&out);
        assert!(!out.status.success());
        assert!(err.contains(&format!("setting '{field}'")), "{flag}: {err}");
    }
    // Classification lists its own metrics; nothing was trained.
    let out = run(&["train", "--metric", "bogus", "--max-rows", "50"]);
    let err = stderr(&out);
    assert!(err.contains("accuracy, macro_f1, weighted_f1"), "{err}");
    assert!(!out_dir.join("model").exists());
    // A recurrent flag on the bag-of-words model is refused, not ignored.
    let out = run(&[
        "train",
        "--arch",
        "bow",
        "--bidirectional",
        "--max-rows",
        "50",
    ]);
    let err = stderr(&out);
    assert!(
        err.contains("model.bidirectional") && err.contains("arch bow"),
        "{err}"
    );
}

#[test]
fn a_checkpoint_tensor_the_model_does_not_have_is_a_warning_naming_it() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../prosa/tests/fixtures/pipelines/bert-tiny");
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("bert");
    std::fs::create_dir(&model).unwrap();
    for file in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture.join(file), model.join(file)).unwrap();
    }
    let device = candle_core::Device::Cpu;
    let mut tensors =
        candle_core::safetensors::load(fixture.join("model.safetensors"), &device).unwrap();
    tensors.insert(
        "cls.extra_head.weight".into(),
        candle_core::Tensor::zeros(3, candle_core::DType::F32, &device).unwrap(),
    );
    candle_core::safetensors::save(&tensors, model.join("model.safetensors")).unwrap();
    let out = run(&[
        "pipeline",
        "feature-extraction",
        "--model",
        model.to_str().unwrap(),
        "--json",
        "the cat sat",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("warning") && err.contains("cls.extra_head.weight"),
        "{err}"
    );
    let states: Value = serde_json::from_slice(&out.stdout).unwrap();
    // [CLS] the cat sat [SEP]: five tokens of 32 values, in transformers' [1][tokens][hidden].
    assert_eq!(states[0][0].as_array().unwrap().len(), 5);
    assert_eq!(states[0][0][0].as_array().unwrap().len(), 32);
}

#[test]
fn a_binary_copied_elsewhere_runs_the_quickstart_from_an_empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let installed = bin.join("prosa");
    std::fs::copy(env!("CARGO_BIN_EXE_prosa"), &installed).unwrap();
    // Another test of this binary may fork while the copy's write handle is open; the child
    // holds it until its exec, and running the copy meanwhile fails with "text file busy".
    let mut attempts = 0;
    let out = loop {
        let run = Command::new(&installed)
            .current_dir(&work)
            .args(["quickstart", "--max-rows", "400", "--epochs", "1", "--json"])
            .output();
        match run {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            other => break other.unwrap(),
        }
    };
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rows.as_array().unwrap().len(),
        5,
        "four Unit I models and the Transformer"
    );
    assert!(work.join("runs/quickstart/hidden_states_lstm.png").exists());
    assert!(work.join("runs/quickstart/comparison.md").exists());
}

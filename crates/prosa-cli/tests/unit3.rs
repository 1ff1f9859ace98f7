//! Unit III's transfer models from the command line. ELMo: pretraining on a small corpus beats
//! a unigram model's perplexity, the folder loads, `prosa explain elmo` compares a word's
//! occurrences, its features train a classifier and a tagger. ULMFiT: the AWD-LSTM language
//! model beats the unigram model, and the classifier on it learns.

mod common;

use common::{grammar_text, json_of, prosa};
use serde_json::Value;

#[test]
fn pretraining_beats_the_unigram_model_and_explain_reads_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.txt");
    std::fs::write(&corpus, grammar_text()).unwrap();
    let out = prosa()
        .args(["pretrain", "--arch", "elmo", "--corpus"])
        .arg(&corpus)
        .arg("--output-dir")
        .arg(dir.path().join("run"))
        .args([
            "--hidden",
            "16",
            "--layers",
            "2",
            "--vocab-size",
            "100",
            "--max-length",
            "12",
        ])
        .args([
            "--validation-every",
            "10",
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--lr",
            "1e-2",
        ])
        .args(["--dropout", "0", "--json"])
        .output()
        .unwrap();
    let result = json_of(&out);
    assert_eq!(result["sentences"][1], 90);
    let unigram = result["unigram_perplexity"].as_f64().unwrap();
    let last = result["curve"].as_array().unwrap().last().unwrap()[1]
        .as_f64()
        .unwrap();
    // Unigram: ~11 over this vocabulary; knowing the previous word leaves ~2–3 choices.
    assert!(last < 0.6 * unigram, "biLM {last} vs unigram {unigram}");

    let model = dir.path().join("run/model");
    let explained = prosa()
        .args(["explain", "elmo", "--model"])
        .arg(&model)
        .args([
            "--word",
            "come",
            "--sentence",
            "o gato come peixe .",
            "--sentence",
        ])
        .args([
            "a vaca come pão .",
            "--sentence",
            "a menina lê livros .",
            "--layer",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        explained.status.success(),
        "{}",
        String::from_utf8_lossy(&explained.stderr)
    );
    let report: Value = serde_json::from_slice(&explained.stdout).unwrap();
    assert_eq!(report["occurrences"].as_array().unwrap().len(), 2);
    // Context-free, both occurrences are the same vector; in context they differ.
    let token = report["token_layer_similarities"][0][1].as_f64().unwrap();
    let contextual = report["similarities"][0][1].as_f64().unwrap();
    assert!(
        (token - 1.0).abs() < 1e-5 && contextual < token - 1e-5,
        "{report}"
    );

    let missing = prosa()
        .args(["explain", "elmo", "--model"])
        .arg(&model)
        .args(["--word", "zebra", "--sentence", "o gato come peixe ."])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&missing.stderr).contains("'zebra' is in none"));
}

#[test]
fn elmo_features_train_a_classifier_that_loads_back() {
    // The biLM of the parity fixture (random weights) is enough to check the plumbing: the
    // classifier trains on its frozen features, saves a folder with the biLM inside, and
    // `prosa predict` loads it.
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../prosa/tests/fixtures/elmo");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.csv");
    let mut rows = String::from("text,label\n");
    for i in 0..120 {
        let (text, label) = if i % 2 == 0 {
            ("the cat sat", "cats")
        } else {
            ("a dog ran far away", "dogs")
        };
        rows.push_str(&format!("{text},{label}\n"));
    }
    std::fs::write(&data, rows).unwrap();
    let run = dir.path().join("run");
    let out = prosa()
        .args(["train", "--arch", "elmo", "--pretrained"])
        .arg(&fixture)
        .arg("--data")
        .arg(&data)
        .arg("--output-dir")
        .arg(&run)
        .args([
            "--epochs",
            "15",
            "--lr",
            "3e-2",
            "--hidden",
            "32",
            "--batch-size",
            "8",
        ])
        .args(["--patience", "0", "--json"])
        .output()
        .unwrap();
    let result = json_of(&out);
    // Two texts, two classes: separable by their features; the majority class scores 0.5.
    let accuracy = result["test_report"]["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.99, "{accuracy}");
    let predicted = prosa()
        .args(["predict", "--model"])
        .arg(run.join("model"))
        .args(["a dog ran far away", "--json"])
        .output()
        .unwrap();
    assert!(
        predicted.status.success(),
        "{}",
        String::from_utf8_lossy(&predicted.stderr)
    );
    assert!(String::from_utf8_lossy(&predicted.stdout).contains("dogs"));
}

#[test]
fn an_elmo_tagger_trains_on_conll_and_is_scored_by_entities() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let out = prosa()
        .args([
            "train",
            "--task",
            "token-classification",
            "--arch",
            "elmo",
            "--pretrained",
        ])
        .arg(root.join("crates/prosa/tests/fixtures/elmo"))
        .arg("--data")
        .arg(root.join("data/ner/train.conll"))
        .arg("--test-data")
        .arg(root.join("data/ner/test.conll"))
        .arg("--output-dir")
        .arg(dir.path())
        .args(["--epochs", "1", "--json"])
        .output()
        .unwrap();
    let result = json_of(&out);
    assert_eq!(result["split_sizes"], serde_json::json!([1800, 200, 400]));
    let config = std::fs::read_to_string(dir.path().join("model/config.json")).unwrap();
    assert!(config.contains("prosa-elmo-tagger"));
    assert!(dir.path().join("model/vocab.txt").exists());
}

/// ULMFiT's first stage from the command line: the AWD-LSTM language model on the same small
/// grammar beats the unigram model's perplexity.
#[test]
fn an_awd_lstm_language_model_beats_the_unigram_model() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.txt");
    std::fs::write(&corpus, grammar_text()).unwrap();
    let out = prosa()
        .args(["pretrain", "--arch", "awd-lstm", "--corpus"])
        .arg(&corpus)
        .arg("--output-dir")
        .arg(dir.path().join("run"))
        .args([
            "--hidden",
            "16",
            "--intermediate",
            "24",
            "--layers",
            "3",
            "--vocab-size",
            "100",
        ])
        .args([
            "--max-length",
            "20",
            "--validation-every",
            "10",
            "--epochs",
            "6",
        ])
        .args([
            "--batch-size",
            "8",
            "--lr",
            "3e-2",
            "--drop-mult",
            "0.2",
            "--json",
        ])
        .output()
        .unwrap();
    let result = json_of(&out);
    let unigram = result["unigram_perplexity"].as_f64().unwrap();
    let last = result["curve"].as_array().unwrap().last().unwrap()[1]
        .as_f64()
        .unwrap();
    // Unigram ~13.8; the next word given the sentence so far has ~2 choices (measured 2.4).
    assert!(last < 0.4 * unigram, "AWD-LSTM {last} vs unigram {unigram}");
    let config = std::fs::read_to_string(dir.path().join("run/model/config.json")).unwrap();
    assert!(config.contains("prosa-awd-lstm-lm"), "{config}");
}

/// ULMFiT's stages 2 and 3 on the small grammar: LM fine-tuning on the texts, then the
/// classifier with gradual unfreezing separates "come" sentences from "lê" sentences (the
/// majority class scores 0.5). Dropout is off: this tiny model does not learn with fastai's.
#[test]
fn a_ulmfit_classifier_learns_on_its_language_model() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.txt");
    std::fs::write(&corpus, grammar_text()).unwrap();
    let lm = prosa()
        .args(["pretrain", "--arch", "awd-lstm", "--corpus"])
        .arg(&corpus)
        .arg("--output-dir")
        .arg(dir.path().join("lm"))
        .args([
            "--hidden",
            "16",
            "--intermediate",
            "24",
            "--vocab-size",
            "100",
        ])
        .args([
            "--max-length",
            "20",
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--lr",
            "3e-2",
        ])
        .args(["--drop-mult", "0", "--json"])
        .output()
        .unwrap();
    assert!(
        lm.status.success(),
        "{}",
        String::from_utf8_lossy(&lm.stderr)
    );
    let data = dir.path().join("data.csv");
    let mut rows = String::from("text,label\n");
    let subjects = ["o gato", "a menina", "o menino", "a vaca"];
    for i in 0..200usize {
        let s = subjects[(i / 2) % 4];
        if i % 2 == 0 {
            rows.push_str(&format!("{s} come peixe .,comida\n"));
        } else {
            rows.push_str(&format!("{s} lê livros .,leitura\n"));
        }
    }
    std::fs::write(&data, rows).unwrap();
    let out = prosa()
        .args(["train", "--arch", "ulmfit", "--pretrained"])
        .arg(dir.path().join("lm/model"))
        .arg("--data")
        .arg(&data)
        .arg("--output-dir")
        .arg(dir.path().join("clf"))
        .args([
            "--epochs",
            "8",
            "--lr",
            "3e-3",
            "--batch-size",
            "8",
            "--drop-mult",
            "0",
        ])
        .args(["--patience", "0", "--json"])
        .output()
        .unwrap();
    let result = json_of(&out);
    let accuracy = result["test_report"]["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.95, "{accuracy}");
    assert!(dir.path().join("clf/lm/model/vocab.txt").exists());
    // The target LM stage's record: its perplexity beside the unigram model's.
    let lm: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("clf/lm/results.json")).unwrap())
            .unwrap();
    let (ppl, unigram) = (
        lm["validation_perplexity"].as_f64().unwrap(),
        lm["unigram_perplexity"].as_f64().unwrap(),
    );
    assert!(ppl.is_finite() && unigram > 1.0, "{lm}");
    let predicted = prosa()
        .args(["predict", "--model"])
        .arg(dir.path().join("clf/model"))
        .args(["a vaca lê livros .", "--json"])
        .output()
        .unwrap();
    assert!(
        predicted.status.success(),
        "{}",
        String::from_utf8_lossy(&predicted.stderr)
    );
    assert!(String::from_utf8_lossy(&predicted.stdout).contains("leitura"));
}

//! T5 from the command line: span-corruption pretraining on a corpus (`prosa pretrain --arch
//! t5`), then translation fine-tuning of the pretrained folder (`prosa train --task translation
//! --arch t5 --pretrained`), on a small slice of the gettext pairs.

mod common;

use std::path::Path;

use common::{asset, prosa};
use serde_json::Value;

fn run_json(args: &[&str]) -> Value {
    let out = prosa().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A corpus of 600 English and 600 Portuguese messages, one paragraph each.
fn corpus(pairs: &Path, dir: &Path) {
    let pairs = prosa::data::parallel::read_pairs(pairs).unwrap();
    let side = |f: fn(&prosa::data::parallel::Pair) -> &str| {
        pairs
            .iter()
            .take(600)
            .map(f)
            .collect::<Vec<_>>()
            .join("\n\n")
    };
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("en.txt"), side(|p| p.source.as_str())).unwrap();
    std::fs::write(dir.join("pt_BR.txt"), side(|p| p.target.as_str())).unwrap();
}

#[test]
fn a_t5_pretrained_with_span_corruption_fine_tunes_for_translation() {
    let Some(root) = asset("gettext-pt_BR") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pairs = dir.path().join("pairs.tsv");
    run_json(&[
        "data",
        "gettext",
        "--root",
        root.to_str().unwrap(),
        "--out",
        pairs.to_str().unwrap(),
        "--json",
    ]);
    let corpus_dir = dir.path().join("corpus");
    corpus(&pairs, &corpus_dir);
    let pre = dir.path().join("pre");
    let vocab = 300;
    let result = run_json(&[
        "pretrain",
        "--arch",
        "t5",
        "--corpus",
        corpus_dir.to_str().unwrap(),
        "--output-dir",
        pre.to_str().unwrap(),
        "--vocab-size",
        &vocab.to_string(),
        "--layers",
        "1",
        "--hidden",
        "32",
        "--heads",
        "2",
        "--intermediate",
        "64",
        "--max-length",
        "32",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--lr",
        "3e-3",
        "--corruptions",
        "2",
        "--json",
    ]);
    let (train, validation) = (
        result["chunks"][0].as_u64().unwrap(),
        result["chunks"][1].as_u64().unwrap(),
    );
    assert!(train > 100 && validation > 2, "{result}");
    assert_eq!(
        train % 2,
        0,
        "two corruptions of each training chunk: {result}"
    );
    // Better than guessing uniformly among the pieces.
    let last_loss = result["curve"].as_array().unwrap().last().unwrap()[1]
        .as_f64()
        .unwrap();
    assert!(last_loss < (vocab as f64).ln(), "{last_loss}");
    let sample = &result["samples"][0];
    assert!(sample["input"].as_str().unwrap().contains("<extra_id_0>"));
    assert!(sample["expected"]
        .as_str()
        .unwrap()
        .starts_with("<extra_id_0>"));
    let model_dir = result["model_dir"].as_str().unwrap();
    let tokenizer =
        prosa::text::SubwordTokenizer::from_file(&Path::new(model_dir).join("tokenizer.json"))
            .unwrap();
    let sentinel = tokenizer.encode("<extra_id_0>", true).unwrap();
    assert_eq!(sentinel.len(), 2, "one sentinel and </s>: {sentinel:?}");

    let translated = run_json(&[
        "train",
        "--task",
        "translation",
        "--arch",
        "t5",
        "--pretrained",
        model_dir,
        "--data",
        pairs.to_str().unwrap(),
        "--max-rows",
        "300",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--output-dir",
        dir.path().join("ft").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(translated["model"], "T5 fine-tuned for translation");
    assert!(
        translated["greedy"]["bleu"].as_f64().is_some(),
        "{translated}"
    );
    let out = prosa()
        .args([
            "train",
            "--task",
            "translation",
            "--arch",
            "t5",
            "--reinitialize",
        ])
        .args(["--data", pairs.to_str().unwrap(), "--max-rows", "50"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("pretrained"), "{err}");
}

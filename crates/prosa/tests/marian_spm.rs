//! A Marian folder as opus-mt ships it (`source.spm`, `target.spm`, `vocab.json`, no
//! `tokenizer.json`) against transformers' `MarianTokenizer` and `generate()`
//! (tests/fixtures/make_marian_spm_fixture.py): the same ids for texts with accents, repeated
//! spaces, an unknown character and a language code; the same decoded text for rows of source
//! and target pieces; the same generated ids and texts; a saved folder that keeps the files; and
//! errors that name the missing or broken file.

use std::path::{Path, PathBuf};

use candle_core::Device;
use prosa::generation::GenerationConfig;
use prosa::models::seq2seq::hf::HfEncoderDecoder;
use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seq2seq/marian-spm")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture().join("expected.json")).unwrap())
        .unwrap()
}

fn rows(v: &Value) -> Vec<Vec<u32>> {
    serde_json::from_value(v.clone()).unwrap()
}

/// transformers' padded `generate()` rows cut after the first `</s>` (id 0).
fn unpadded(rows: Vec<Vec<u32>>) -> Vec<Vec<u32>> {
    rows.into_iter()
        .map(|r| match r.iter().position(|&t| t == 0) {
            Some(end) => r[..=end].to_vec(),
            None => r,
        })
        .collect()
}

fn load(dir: &Path) -> HfEncoderDecoder {
    HfEncoderDecoder::from_pretrained(dir, &Device::Cpu).unwrap()
}

fn check_tokenizer(model: &HfEncoderDecoder, e: &Value) {
    let tokenizer = model.tokenizer().unwrap();
    let texts: Vec<String> = serde_json::from_value(e["texts"].clone()).unwrap();
    for (text, ids) in texts.iter().zip(rows(&e["tokenized"])) {
        assert_eq!(tokenizer.encode(text, true).unwrap(), ids, "{text:?}");
    }
    for case in e["decoded"].as_array().unwrap() {
        let ids: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        assert_eq!(
            tokenizer.decode(&ids, true).unwrap(),
            case["text"].as_str().unwrap(),
            "{ids:?}"
        );
    }
}

fn check_generation(model: &HfEncoderDecoder, e: &Value) {
    let texts: Vec<String> = serde_json::from_value(e["texts"].clone()).unwrap();
    let sources: Vec<&str> = texts[..2].iter().map(String::as_str).collect();
    let greedy = model
        .generate_texts(&sources, "", &model.generation().clone())
        .unwrap();
    let ids: Vec<Vec<u32>> = greedy.iter().map(|g| g.token_ids.clone()).collect();
    assert_eq!(ids, unpadded(rows(&e["greedy"])));
    let texts: Vec<String> = greedy.into_iter().map(|g| g.text).collect();
    let expected_texts: Vec<String> = serde_json::from_value(e["greedy_text"].clone()).unwrap();
    assert_eq!(texts, expected_texts);
    let beam = GenerationConfig {
        num_beams: 4,
        ..model.generation().clone()
    };
    let ids: Vec<Vec<u32>> = model
        .generate_texts(&sources, "", &beam)
        .unwrap()
        .into_iter()
        .map(|g| g.token_ids)
        .collect();
    assert_eq!(ids, unpadded(rows(&e["beam4"])));
}

#[test]
fn marian_spm_folder_tokenizes_and_generates_as_transformers() {
    let e = expected();
    let model = load(&fixture());
    let g = GenerationConfig {
        max_new_tokens: Some(8),
        ..model.generation().clone()
    };
    check_tokenizer(&model, &e);
    // generate_texts takes the folder's defaults; the fixture generated 8 new tokens at most.
    let mut bounded = model;
    if let HfEncoderDecoder::Bart(m) = &mut bounded {
        m.generation = g;
    }
    check_generation(&bounded, &e);
}

#[test]
fn a_saved_marian_folder_keeps_its_sentencepiece_files() {
    let e = expected();
    let out = tempfile::tempdir().unwrap();
    let saved = out.path().join("marian");
    let HfEncoderDecoder::Bart(model) = load(&fixture()) else {
        panic!("a Marian folder loads as BART/Marian");
    };
    model.save_pretrained(&saved).unwrap();
    // For tests/fixtures/check_saved_encoder_decoders.py, which loads it in transformers.
    if let Some(keep) = std::env::var_os("PROSA_WRITE_SAVED") {
        model
            .save_pretrained(&Path::new(&keep).join("marian-spm"))
            .unwrap();
    }
    for name in ["source.spm", "target.spm", "vocab.json"] {
        assert_eq!(
            std::fs::read(saved.join(name)).unwrap(),
            std::fs::read(fixture().join(name)).unwrap(),
            "{name}"
        );
    }
    assert!(!saved.join("tokenizer.json").exists());
    check_tokenizer(&load(&saved), &e);
}

fn copy_fixture(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(fixture()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn error_of(dir: &Path) -> String {
    match HfEncoderDecoder::from_pretrained(dir, &Device::Cpu) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn broken_marian_tokenizer_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-target");
    copy_fixture(&missing);
    std::fs::remove_file(missing.join("target.spm")).unwrap();
    let message = error_of(&missing);
    assert!(message.contains("target.spm"), "{message}");

    let garbage = dir.path().join("garbage-source");
    copy_fixture(&garbage);
    std::fs::write(garbage.join("source.spm"), b"\xff\xff not a model").unwrap();
    let message = error_of(&garbage);
    assert!(
        message.contains("source.spm") && message.contains("SentencePiece"),
        "{message}"
    );

    let no_unk = dir.path().join("no-unk");
    copy_fixture(&no_unk);
    let mut vocab: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(no_unk.join("vocab.json")).unwrap()).unwrap();
    let unk = vocab.remove("<unk>").unwrap();
    vocab.insert("<unknown>".into(), unk);
    std::fs::write(
        no_unk.join("vocab.json"),
        serde_json::to_string(&vocab).unwrap(),
    )
    .unwrap();
    let message = error_of(&no_unk);
    assert!(
        message.contains("vocab.json") && message.contains("<unk>"),
        "{message}"
    );

    let repeated = dir.path().join("repeated-id");
    copy_fixture(&repeated);
    std::fs::write(
        repeated.join("vocab.json"),
        r#"{"</s>": 0, "<unk>": 1, "a": 1}"#,
    )
    .unwrap();
    let message = error_of(&repeated);
    assert!(
        message.contains("vocab.json") && message.contains("repeated"),
        "{message}"
    );
}

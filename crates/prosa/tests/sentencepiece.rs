//! SentencePiece model files read into the `tokenizers` crate give the ids and texts
//! transformers' T5 tokenizer gives (tests/fixtures/make_spm_fixture.py): accents, repeated
//! spaces, characters the model does not know, NFKC forms (the model's precompiled map).

use std::path::Path;

use prosa::text::sentencepiece::{from_spm_file, SpmOptions};
use serde_json::Value;

#[test]
fn a_t5_spiece_model_tokenizes_as_transformers_does() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seq2seq/t5-spm");
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let options = SpmOptions {
        eos: Some("</s>"),
        special: &["<pad>", "</s>", "<unk>"],
        added: &[],
        extra_ids: 0,
    };
    let tokenizer = from_spm_file(&dir.join("spiece.model"), &options).unwrap();
    for case in cases.as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ids = tokenizer.encode(text, true).unwrap();
        let wanted: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        assert_eq!(ids, wanted, "{text}");
        assert_eq!(
            tokenizer.decode(&ids, true).unwrap(),
            case["decoded"].as_str().unwrap(),
            "{text}"
        );
    }
}

#[test]
fn a_file_that_is_not_a_sentencepiece_model_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("target.spm");
    std::fs::write(&path, b"\xff\xff\xff\xff not protobuf").unwrap();
    let options = SpmOptions {
        eos: Some("</s>"),
        special: &[],
        added: &[],
        extra_ids: 0,
    };
    let Err(err) = from_spm_file(&path, &options) else {
        panic!("a file that is not a model was accepted")
    };
    let err = err.to_string();
    assert!(
        err.contains("target.spm") && err.contains("SentencePiece"),
        "{err}"
    );
}

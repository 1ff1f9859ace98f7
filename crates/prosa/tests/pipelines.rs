//! Pipelines behind the one JSON trait: the registry, transformers' shapes and values
//! (`feature-extraction` against `pipeline("feature-extraction")` on a tiny BERT made by
//! tests/fixtures/make_pipeline_fixtures.py), and parameters a task does not take.

use std::path::{Path, PathBuf};

use candle_core::Device;
use prosa::pipelines::{pipeline, tasks};
use serde_json::{json, Value};

fn tiny_bert() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pipelines/bert-tiny")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(tiny_bert().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        other => panic!("not a number: {other}"),
    }
}

#[test]
fn feature_extraction_equals_transformers_last_hidden_state_per_token() {
    let want = expected();
    let extract = pipeline("feature-extraction", &tiny_bert(), &Device::Cpu).unwrap();
    let got = extract.run(&want["texts"], &Value::Null).unwrap();
    let (got_rows, want_rows) = (
        got.as_array().unwrap(),
        want["feature_extraction"].as_array().unwrap(),
    );
    assert_eq!(got_rows.len(), 3);
    for (i, (g, w)) in got_rows.iter().zip(want_rows).enumerate() {
        // transformers' shape: [1][tokens][hidden], special tokens included.
        let shape = |v: &Value| {
            (
                v.as_array().unwrap().len(),
                v[0].as_array().unwrap().len(),
                v[0][0].as_array().unwrap().len(),
            )
        };
        assert_eq!(shape(g), shape(w), "text {i}");
        let worst = floats(g)
            .iter()
            .zip(floats(w))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-4, "text {i}: max |difference| {worst}");
    }
    // One text in, its result out (not wrapped in a list), as transformers does.
    let one = extract.run(&want["texts"][0], &Value::Null).unwrap();
    assert_eq!(one, got_rows[0]);
}

#[test]
fn sentence_embedding_pools_what_feature_extraction_returns() {
    let text = json!(["The cat sat on the mat."]);
    let states = pipeline("feature-extraction", &tiny_bert(), &Device::Cpu)
        .unwrap()
        .run(&text, &Value::Null)
        .unwrap();
    let pooled = pipeline("sentence-embedding", &tiny_bert(), &Device::Cpu)
        .unwrap()
        .run(&text, &Value::Null)
        .unwrap();
    let tokens = states[0][0].as_array().unwrap();
    let width = tokens[0].as_array().unwrap().len();
    for d in 0..width {
        let mean: f64 =
            tokens.iter().map(|t| t[d].as_f64().unwrap()).sum::<f64>() / tokens.len() as f64;
        assert!((mean - pooled[0][d].as_f64().unwrap()).abs() < 1e-5);
    }
}

#[test]
fn the_registry_names_every_task_and_refuses_unknown_tasks_and_parameters() {
    let names: Vec<&str> = tasks().iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "text-classification",
            "token-classification",
            "question-answering",
            "fill-mask",
            "feature-extraction",
            "sentence-embedding",
            "translation",
            "text2text-generation",
            "summarization",
            "text-generation"
        ]
    );
    let err = pipeline("summarise", &tiny_bert(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("unknown pipeline 'summarise'") && err.contains("fill-mask"),
        "{err}"
    );
    let extract = pipeline("feature-extraction", &tiny_bert(), &Device::Cpu).unwrap();
    let err = extract
        .run(&json!("a text"), &json!({"top_k": 3}))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("parameters.top_k") && err.contains("does not take it"),
        "{err}"
    );
    let err = extract
        .run(&json!([1, 2]), &Value::Null)
        .unwrap_err()
        .to_string();
    assert!(err.contains("inputs[0]"), "{err}");
}

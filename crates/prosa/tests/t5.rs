//! T5 against transformers (tests/fixtures/make_t5_fixtures.py): tiny random v1.0 (ReLU, tied
//! embeddings) and v1.1 (gated GELU, no output rescale) checkpoints — encoder states within
//! 1e-4 and logits within 1e-4 of the largest logit, for a padded batch; the same token ids as `generate()` for greedy search, beam
//! search with 4 beams and no repeated 2-grams, and a saved folder that loads back the same.

use std::path::{Path, PathBuf};

use candle_core::Device;
use prosa::generation::{generate, GenerationConfig};
use prosa::models::seq2seq::t5::T5ForConditionalGeneration;
use prosa::nn::ForwardCtx;
use serde_json::Value;

fn folder(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/seq2seq")
        .join(name)
}

fn rows(v: &Value) -> Vec<Vec<u32>> {
    serde_json::from_value(v.clone()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    serde_json::from_value(v.clone()).unwrap()
}

fn worst(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The largest |value|, at least 1: logits are compared within 1e-4 of it (a random T5
/// without the output rescale has logits near 60, where float32 rounding alone reaches 1e-3).
fn largest(values: &[f32]) -> f32 {
    values.iter().fold(1f32, |m, v| m.max(v.abs()))
}

/// transformers' sequences without the decoder start token, cut after the end token.
fn new_tokens(sequences: &[Vec<u32>], eos: u32) -> Vec<Vec<u32>> {
    sequences
        .iter()
        .map(|s| {
            let mut out = Vec::new();
            for &t in &s[1..] {
                out.push(t);
                if t == eos {
                    break;
                }
            }
            out
        })
        .collect()
}

fn check(name: &str) {
    let dir = folder(name);
    let f: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let model = T5ForConditionalGeneration::from_pretrained(&dir, &Device::Cpu).unwrap();
    let (sources, mask) = (rows(&f["sources"]), rows(&f["source_mask"]));
    let encoded = model
        .encode(&sources, &mask, &mut ForwardCtx::eval())
        .unwrap();
    let w = worst(
        &encoded.flatten_all().unwrap().to_vec1().unwrap(),
        &floats(&f["encoder"]),
    );
    assert!(w < 1e-4, "{name} encoder: max |difference| {w}");
    let logits = model
        .forward(
            &sources,
            &mask,
            &rows(&f["decoder"]),
            &rows(&f["decoder_mask"]),
            &mut ForwardCtx::eval(),
        )
        .unwrap();
    let theirs = floats(&f["logits"]);
    let w = worst(&logits.flatten_all().unwrap().to_vec1().unwrap(), &theirs);
    assert!(
        w < 1e-4 * largest(&theirs),
        "{name} logits: max |difference| {w}"
    );

    let inputs: Vec<Vec<u32>> = sources
        .iter()
        .zip(&mask)
        .map(|(s, m)| {
            s.iter()
                .zip(m)
                .filter(|(_, &m)| m == 1)
                .map(|(&t, _)| t)
                .collect()
        })
        .collect();
    let base = GenerationConfig {
        max_new_tokens: Some(12),
        ..model.generation.clone()
    };
    for (key, g) in [
        ("greedy", base.clone()),
        (
            "beam4",
            GenerationConfig {
                num_beams: 4,
                ..base.clone()
            },
        ),
        (
            "no_repeat2",
            GenerationConfig {
                no_repeat_ngram_size: 2,
                ..base.clone()
            },
        ),
    ] {
        let out = generate(&model, &inputs, &g, None).unwrap();
        assert_eq!(
            out.new_tokens,
            new_tokens(&rows(&f[key]), 1),
            "{name} {key}"
        );
    }

    let saved = tempfile::tempdir().unwrap();
    model.save_pretrained(saved.path()).unwrap();
    let again = T5ForConditionalGeneration::from_pretrained(saved.path(), &Device::Cpu).unwrap();
    let relogits = again
        .forward(
            &sources,
            &mask,
            &rows(&f["decoder"]),
            &rows(&f["decoder_mask"]),
            &mut ForwardCtx::eval(),
        )
        .unwrap();
    let w = worst(
        &relogits.flatten_all().unwrap().to_vec1().unwrap(),
        &floats(&f["logits"]),
    );
    assert!(
        w < 1e-4 * largest(&theirs),
        "{name} after save and load: {w}"
    );
}

#[test]
fn t5_v1_0_relu_tied_equals_transformers() {
    check("t5-v1_0");
}

#[test]
fn t5_v1_1_gated_gelu_untied_equals_transformers() {
    check("t5-v1_1");
}

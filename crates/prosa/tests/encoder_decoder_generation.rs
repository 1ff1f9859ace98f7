//! generate() settings of encoder–decoders against transformers
//! (tests/fixtures/make_encoder_decoder_generation_fixture.py): beam search returning several
//! sequences, length penalties, early stopping true and "never", repetition penalty, minimum
//! lengths (new tokens, and total as `min_length`), `max_length` — the same token ids for the
//! padded batch of the tiny T5 v1.1 and BART folders. Sampling with a seed is reproducible.

use std::path::{Path, PathBuf};

use candle_core::Device;
use prosa::generation::{generate, GenerationConfig, Generator};
use prosa::models::seq2seq::bart::BartForConditionalGeneration;
use prosa::models::seq2seq::t5::T5ForConditionalGeneration;
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seq2seq")
}

fn json(path: PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The fixture's sources without their padding.
fn sources(name: &str) -> Vec<Vec<u32>> {
    let e = json(dir().join(name).join("expected.json"));
    let rows: Vec<Vec<u32>> = serde_json::from_value(e["sources"].clone()).unwrap();
    let mask: Vec<Vec<u32>> = serde_json::from_value(e["source_mask"].clone()).unwrap();
    rows.iter()
        .zip(&mask)
        .map(|(r, m)| {
            r.iter()
                .zip(m)
                .filter(|(_, &m)| m == 1)
                .map(|(&t, _)| t)
                .collect()
        })
        .collect()
}

/// transformers' rows without the decoder start, cut after the end token.
fn new_tokens(rows: &[Vec<u32>], eos: u32) -> Vec<Vec<u32>> {
    rows.iter()
        .map(|r| {
            let mut out = Vec::new();
            for &t in &r[1..] {
                out.push(t);
                if t == eos {
                    break;
                }
            }
            out
        })
        .collect()
}

fn check<M: Generator>(name: &str, model: &M, defaults: &GenerationConfig, eos: u32) {
    let cases = json(dir().join("generation_settings.json"));
    let inputs = sources(name);
    for case in cases[name].as_array().unwrap() {
        let mut g = GenerationConfig {
            max_new_tokens: None,
            forced_bos_token_id: None,
            forced_eos_token_id: None,
            ..defaults.clone()
        };
        g.apply_json(&case["setting"], Path::new("generation_settings.json"))
            .unwrap();
        let rows: Vec<Vec<u32>> = serde_json::from_value(case["sequences"].clone()).unwrap();
        let out = generate(model, &inputs, &g, None).unwrap();
        assert_eq!(
            out.new_tokens,
            new_tokens(&rows, eos),
            "{name} {}",
            case["setting"]
        );
    }
}

#[test]
fn t5_generation_settings_equal_transformers() {
    let model =
        T5ForConditionalGeneration::from_pretrained(&dir().join("t5-v1_1"), &Device::Cpu).unwrap();
    let defaults = model.generation.clone();
    check("t5-v1_1", &model, &defaults, 1);
}

#[test]
fn bart_generation_settings_equal_transformers() {
    let model =
        BartForConditionalGeneration::from_pretrained(&dir().join("bart-tiny"), &Device::Cpu)
            .unwrap();
    let defaults = model.generation.clone();
    check("bart-tiny", &model, &defaults, 2);
}

#[test]
fn seeded_sampling_is_reproducible_and_follows_top_k() {
    let model =
        T5ForConditionalGeneration::from_pretrained(&dir().join("t5-v1_1"), &Device::Cpu).unwrap();
    let inputs = sources("t5-v1_1");
    let sample = |seed: u64, top_k: usize| {
        let g = GenerationConfig {
            do_sample: true,
            temperature: 1.5,
            top_k,
            max_new_tokens: Some(10),
            num_return_sequences: 2,
            seed,
            ..model.generation.clone()
        };
        generate(&model, &inputs, &g, None).unwrap().new_tokens
    };
    let a = sample(7, 50);
    assert_eq!(a, sample(7, 50));
    assert_eq!(a.len(), 4, "two sequences per source");
    assert_ne!(a, sample(8, 50), "another seed draws other tokens");
    // top_k = 1 leaves one candidate: sampling is greedy search.
    let greedy = GenerationConfig {
        max_new_tokens: Some(10),
        ..model.generation.clone()
    };
    let greedy = generate(&model, &inputs, &greedy, None).unwrap().new_tokens;
    let top1 = sample(3, 1);
    assert_eq!(vec![top1[0].clone(), top1[2].clone()], greedy);
}

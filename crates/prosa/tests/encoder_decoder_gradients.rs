//! Training gradients of encoder–decoders against transformers
//! (tests/fixtures/make_seq2seq_gradient_fixture.py): one batch of two pairs of different
//! lengths through the Trainer's text-to-text loss (padded sources, labels with `</s>` and
//! ignored padding, decoder inputs shifted right) — the loss within 1e-5 and every parameter's
//! gradient (its norm within 1e-3 of it, its projection on a fixed vector within 1e-2 of the
//! norm: float32 rounding of the random T5 v1.1, whose loss is 56, reaches 1e-4).

use std::path::{Path, PathBuf};

use candle_core::Device;
use prosa::models::seq2seq::bart::BartForConditionalGeneration;
use prosa::models::seq2seq::t5::T5ForConditionalGeneration;
use prosa::models::seq2seq::TranslationExample;
use prosa::nn::ForwardCtx;
use prosa::train::Trainable;
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seq2seq")
}

/// Norm and projection on sin(1 + index) of a flattened gradient.
fn summary(g: &candle_core::Tensor) -> (f64, f64) {
    let v: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
    let norm = v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let probe = v
        .iter()
        .enumerate()
        .map(|(i, &x)| x as f64 * (1.0 + i as f64).sin())
        .sum::<f64>();
    (norm, probe)
}

/// transformers' parameter name of one of ours (tied copies are listed once, by their first name).
fn their_name(ours: &str) -> String {
    match ours {
        "model.shared.weight" | "model.encoder.embed_tokens.weight" => "model.shared.weight".into(),
        _ => ours.to_string(),
    }
}

fn check<M: Trainable<Example = TranslationExample>>(name: &str, model: &M) {
    let f: Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("gradients.json")).unwrap())
            .unwrap();
    let case = &f[name];
    let sources: Vec<Vec<u32>> = serde_json::from_value(case["sources"].clone()).unwrap();
    let targets: Vec<Vec<u32>> = serde_json::from_value(case["targets"].clone()).unwrap();
    let examples: Vec<TranslationExample> = sources
        .into_iter()
        .zip(targets)
        .map(|(source, target)| TranslationExample { source, target })
        .collect();
    let batch: Vec<&TranslationExample> = examples.iter().collect();
    let out = model
        .forward_batch(&batch, &mut ForwardCtx::eval())
        .unwrap();
    let loss = out.loss.to_scalar::<f32>().unwrap() as f64;
    let want = case["loss"].as_f64().unwrap();
    assert!(
        (loss - want).abs() < 1e-5 * want.max(1.0),
        "{name} loss {loss} vs {want}"
    );
    let grads = out.loss.backward().unwrap();
    let theirs = case["gradients"].as_object().unwrap();
    let mut checked = 0;
    for (param, var) in model.params().vars() {
        if model.buffers().contains(&param.as_str()) {
            assert!(
                grads.get(var.as_tensor()).is_none(),
                "{name}: {param} is trained"
            );
            continue;
        }
        let Some(expected) = theirs.get(&their_name(&param)) else {
            panic!("{name}: transformers has no gradient for {param}");
        };
        let (norm, probe) = match grads.get(var.as_tensor()) {
            Some(g) => summary(g),
            None => (0.0, 0.0),
        };
        let (want_norm, want_probe) =
            (expected[0].as_f64().unwrap(), expected[1].as_f64().unwrap());
        let scale = want_norm.max(1e-6);
        assert!(
            (norm - want_norm).abs() <= 1e-3 * scale + 1e-7
                && (probe - want_probe).abs() <= 1e-2 * scale + 1e-7,
            "{name} {param}: norm {norm} vs {want_norm}, projection {probe} vs {want_probe}"
        );
        checked += 1;
    }
    assert!(checked >= 60, "{name}: {checked} parameters");
}

#[test]
fn t5_gradients_equal_transformers() {
    for name in ["t5-v1_0", "t5-v1_1"] {
        let model =
            T5ForConditionalGeneration::from_pretrained(&dir().join(name), &Device::Cpu).unwrap();
        check(name, &model);
    }
}

#[test]
fn bart_and_marian_gradients_equal_transformers() {
    for name in ["bart-tiny", "marian-tiny"] {
        let model =
            BartForConditionalGeneration::from_pretrained(&dir().join(name), &Device::Cpu).unwrap();
        check(name, &model);
    }
}

//! ELMo against a PyTorch reference (fixtures/make_elmo_fixture.py, torch 2.15): the character
//! CNN, both LSTM directions with the residual layer, the language-model loss and its gradients,
//! the scalar mix, and the character ids — on a padded batch of three sentences.

use std::path::Path;

use candle_core::{Device, Tensor};
use prosa::models::elmo::char_cnn::char_ids;
use prosa::models::elmo::ElmoBiLm;
use prosa::nn::scalar_mix::ScalarMix;
use prosa::nn::{ForwardCtx, ParamStore};
use prosa::train::Trainable;
use serde_json::Value;

fn fixture() -> (ElmoBiLm, Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/elmo");
    let expected =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    (
        ElmoBiLm::from_pretrained(&dir, &Device::Cpu).unwrap(),
        expected,
    )
}

fn sentences(expected: &Value) -> Vec<Vec<String>> {
    expected["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s.as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

/// Largest difference between `got` (batch, words, features) at each sentence's real words and
/// `want` (per sentence, per word, per feature).
fn max_diff(got: &Tensor, want: &Value, lengths: &[usize]) -> f32 {
    let got = got.to_vec3::<f32>().unwrap();
    let mut worst = 0f32;
    for (b, &n) in lengths.iter().enumerate() {
        for t in 0..n {
            for (j, v) in want[b][t].as_array().unwrap().iter().enumerate() {
                worst = worst.max((got[b][t][j] - v.as_f64().unwrap() as f32).abs());
            }
        }
    }
    worst
}

#[test]
fn the_bilm_layers_loss_and_mix_equal_pytorch() {
    let (model, expected) = fixture();
    let sentences = sentences(&expected);
    let rows: Vec<&[String]> = sentences.iter().map(Vec::as_slice).collect();
    let out = model.layers(&rows, &mut ForwardCtx::eval()).unwrap();
    assert_eq!(out.lengths, [3, 5, 2]);
    assert_eq!(out.layers.len(), 3);
    for (l, layer) in out.layers.iter().enumerate() {
        let d = max_diff(layer, &expected["layers"][l], &out.lengths);
        assert!(d < 1e-5, "layer {l}: {d}");
    }
    let loss = model.lm_loss(&rows, &mut ForwardCtx::eval()).unwrap();
    let loss = loss.to_scalar::<f32>().unwrap() as f64;
    assert!(
        (loss - expected["loss"].as_f64().unwrap()).abs() < 1e-5,
        "{loss}"
    );

    let store = ParamStore::new(Device::Cpu);
    let mix = ScalarMix::new(3, &store.builder(0)).unwrap();
    for (j, w) in expected["mix"]["scalar_parameters"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let value = Tensor::new(&[w.as_f64().unwrap() as f32], &Device::Cpu).unwrap();
        store
            .get(&format!("scalar_parameters.{j}"))
            .unwrap()
            .set(&value)
            .unwrap();
    }
    let gamma = expected["mix"]["gamma"].as_f64().unwrap() as f32;
    store
        .get("gamma")
        .unwrap()
        .set(&Tensor::new(&[gamma], &Device::Cpu).unwrap())
        .unwrap();
    let mixed = mix.forward(&out.layers).unwrap();
    let d = max_diff(&mixed, &expected["mix"]["output"], &out.lengths);
    assert!(d < 1e-5, "mix: {d}");
}

#[test]
fn the_language_model_gradients_equal_pytorch() {
    let (model, expected) = fixture();
    let sentences = sentences(&expected);
    let batch: Vec<&Vec<String>> = sentences.iter().collect();
    let out = model
        .forward_batch(&batch, &mut ForwardCtx::eval())
        .unwrap();
    let grads = out.loss.backward().unwrap();
    for (name, want) in expected["gradients"].as_object().unwrap() {
        // The fixture names the character CNN's parameters without the `char_cnn.` prefix.
        let full = if model.params().get(name).is_some() {
            name.clone()
        } else {
            format!("char_cnn.{name}")
        };
        let var = model
            .params()
            .get(&full)
            .unwrap_or_else(|| panic!("{full}"));
        let got = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {full}"))
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let want: Vec<f32> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(got.len(), want.len(), "{full}");
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
        let worst = got
            .iter()
            .zip(&want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(worst / scale < 1e-4, "{full}: {worst} (largest {scale})");
    }
}

#[test]
fn characters_are_bytes_between_marks() {
    let (_, expected) = fixture();
    for (word, ids) in expected["char_ids"].as_object().unwrap() {
        let want: Vec<u32> = ids
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(char_ids(word, 8), want, "{word}");
    }
}

//! The recurrent layers: equality with PyTorch's nn.RNN/LSTM/GRU on the same weights (fixture
//! made by tests/fixtures/make_recurrent_fixture.py), gradients against finite differences, and
//! masking of padded steps.

use candle_core::{DType, Device, Tensor};
use prosa::nn::recurrent::{CellKind, Recurrent, RecurrentConfig};
use prosa::train::{ForwardCtx, ParamStore};
use serde_json::Value;

fn tensor(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let values: Vec<f32> = v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn outputs_equal_pytorch_within_1e5() {
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/recurrent_torch.json")).unwrap();
    for case in fixture["cases"].as_array().unwrap() {
        let config = RecurrentConfig {
            cell: case["cell"].as_str().unwrap().parse().unwrap(),
            input_size: case["input_size"].as_u64().unwrap() as usize,
            hidden_size: case["hidden_size"].as_u64().unwrap() as usize,
            num_layers: case["num_layers"].as_u64().unwrap() as usize,
            bidirectional: case["bidirectional"].as_bool().unwrap(),
            dropout: 0.0,
        };
        let store = ParamStore::new(Device::Cpu);
        let layer = Recurrent::new(config, &store.builder(0)).unwrap();
        let params = case["params"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), tensor(v)))
            .collect();
        store
            .assign(&params, std::path::Path::new("recurrent_torch.json"))
            .unwrap();
        let out = layer
            .forward(&tensor(&case["x"]), None, &mut ForwardCtx::eval())
            .unwrap();
        let (d_out, d_last) = (
            max_diff(&out.outputs, &tensor(&case["output"])),
            max_diff(&out.last, &tensor(&case["last"])),
        );
        assert!(
            d_out < 1e-5 && d_last < 1e-5,
            "{config:?}: outputs differ by {d_out}, last state by {d_last}"
        );
    }
}

fn small(cell: CellKind, bidirectional: bool, dtype: DType) -> (ParamStore, Recurrent) {
    let store = ParamStore::new(Device::Cpu);
    let config = RecurrentConfig {
        cell,
        input_size: 3,
        hidden_size: 2,
        num_layers: 2,
        bidirectional,
        dropout: 0.0,
    };
    let layer = Recurrent::new(config, &store.builder(7).with_dtype(dtype)).unwrap();
    (store, layer)
}

/// A scalar that depends on every output and the final state, for gradient checks (in the
/// layer's dtype).
fn objective(layer: &Recurrent, x: &Tensor, mask: &Tensor) -> Tensor {
    let out = layer
        .forward(x, Some(mask), &mut ForwardCtx::eval())
        .unwrap();
    let w = Tensor::arange(0.0, out.outputs.elem_count() as f64, &Device::Cpu)
        .unwrap()
        .reshape(out.outputs.shape())
        .unwrap();
    let w = (w * 0.37)
        .unwrap()
        .sin()
        .unwrap()
        .to_dtype(out.outputs.dtype())
        .unwrap();
    ((out.outputs * w).unwrap().sum_all().unwrap() + out.last.sqr().unwrap().sum_all().unwrap())
        .unwrap()
}

#[test]
fn gradients_match_finite_differences() {
    for cell in [CellKind::Rnn, CellKind::Lstm, CellKind::Gru] {
        let (store, layer) = small(cell, true, DType::F64);
        let x = Tensor::arange(0.0, 18.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3, 3))
            .unwrap();
        let x = (x * 0.7).unwrap().cos().unwrap();
        let mask = Tensor::new(&[[0.0f64, 1.0, 1.0], [1.0, 1.0, 1.0]], &Device::Cpu).unwrap();
        let grads = objective(&layer, &x, &mask).backward().unwrap();
        let eps = 1e-6;
        let mut worst = 0f64;
        for (name, var) in store.vars() {
            let analytic: Vec<f64> = grads
                .get(var.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let original = var.as_tensor().copy().unwrap();
            let flat: Vec<f64> = original.flatten_all().unwrap().to_vec1().unwrap();
            for (i, a) in analytic.iter().enumerate() {
                let at = |delta: f64| {
                    let mut v = flat.clone();
                    v[i] += delta;
                    var.set(&Tensor::from_vec(v, original.shape(), &Device::Cpu).unwrap())
                        .unwrap();
                    objective(&layer, &x, &mask).to_scalar::<f64>().unwrap()
                };
                let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
                let err = (numeric - a).abs() / (1.0 + numeric.abs());
                worst = worst.max(err);
                assert!(
                    err < 1e-6,
                    "{cell:?} {name}[{i}]: analytic {a}, numeric {numeric}"
                );
            }
            var.set(&original).unwrap();
        }
        assert!(worst < 1e-6);
    }
}

#[test]
fn pre_padding_with_a_mask_leaves_the_final_state_unchanged() {
    for cell in [CellKind::Rnn, CellKind::Lstm, CellKind::Gru] {
        for bidirectional in [false, true] {
            let (_, layer) = small(cell, bidirectional, DType::F32);
            let words =
                Tensor::new(&[[[0.5f32, -0.2, 0.1], [0.3, 0.9, -0.4]]], &Device::Cpu).unwrap();
            let alone = layer
                .forward(&words, None, &mut ForwardCtx::eval())
                .unwrap()
                .last;
            let padded = Tensor::cat(
                &[
                    Tensor::zeros((1, 3, 3), DType::F32, &Device::Cpu).unwrap(),
                    words,
                ],
                1,
            )
            .unwrap();
            let mask = Tensor::new(&[[0u32, 0, 0, 1, 1]], &Device::Cpu).unwrap();
            let with_mask = layer
                .forward(&padded, Some(&mask), &mut ForwardCtx::eval())
                .unwrap()
                .last;
            assert!(
                max_diff(&alone, &with_mask) < 1e-6,
                "{cell:?} bidirectional={bidirectional}"
            );
            let without_mask = layer
                .forward(&padded, None, &mut ForwardCtx::eval())
                .unwrap()
                .last;
            assert!(
                max_diff(&alone, &without_mask) > 1e-4,
                "without the mask padding changes the state"
            );
        }
    }
}

/// The fused time loop (forward and backpropagation through time) gives the reference
/// implementation's outputs and gradients — the reference being checked against finite
/// differences above.
#[test]
fn the_fused_loop_matches_the_reference_in_values_and_gradients() {
    for cell in [CellKind::Rnn, CellKind::Lstm, CellKind::Gru] {
        let (store, mut layer) = small(cell, true, DType::F32);
        // Three rows: with a thread pool of two the fused op splits them into uneven chunks.
        let x = Tensor::arange(0.0f32, 45.0, &Device::Cpu)
            .unwrap()
            .reshape((3, 5, 3))
            .unwrap();
        let x = (x * 0.7).unwrap().cos().unwrap();
        let mask = Tensor::new(
            &[
                [0.0f32, 0.0, 1.0, 1.0, 1.0],
                [1.0, 1.0, 1.0, 1.0, 1.0],
                [0.0, 1.0, 1.0, 1.0, 1.0],
            ],
            &Device::Cpu,
        )
        .unwrap();
        let run = |layer: &Recurrent| {
            let x = prosa::train::ParamStore::new(Device::Cpu)
                .insert("x", &x)
                .unwrap();
            let loss = objective(layer, &x, &mask);
            let grads = loss.backward().unwrap();
            let mut all: Vec<(String, Tensor)> = store
                .vars()
                .into_iter()
                .map(|(n, v)| (n, grads.get(v.as_tensor()).unwrap().clone()))
                .collect();
            all.push(("x".into(), grads.get(&x).unwrap().clone()));
            (loss.to_scalar::<f32>().unwrap(), all)
        };
        let (fused_loss, fused) = run(&layer);
        layer.set_fused(false);
        let (reference_loss, reference) = run(&layer);
        assert!(
            (fused_loss - reference_loss).abs() < 1e-5,
            "{cell:?}: loss {fused_loss} vs {reference_loss}"
        );
        for ((name, a), (_, b)) in fused.iter().zip(&reference) {
            assert!(
                max_diff(a, b) < 1e-5,
                "{cell:?} gradient of {name} differs by {}",
                max_diff(a, b)
            );
        }
    }
}

//! Encoder–decoders against PyTorch: the Transformer's stacks equal `torch.nn.Transformer` with
//! the same weights, post-LN and pre-LN, padding and causal masks
//! (tests/fixtures/make_seq2seq_fixtures.py), within 1e-5.

use std::path::Path;

use candle_core::{Device, Tensor};
use prosa::models::seq2seq::transformer::{Transformer, TransformerShape};
use prosa::nn::{ForwardCtx, ParamStore};
use serde_json::Value;

fn masks(v: &Value) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn the_transformer_equals_torch_nn_transformer_post_and_pre_ln() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seq2seq");
    for name in ["transformer-post-ln", "transformer-pre-ln"] {
        let f: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        let shape = TransformerShape {
            d_model: 16,
            num_heads: 4,
            num_encoder_layers: 2,
            num_decoder_layers: 2,
            dim_feedforward: 24,
            dropout: 0.0,
            norm_first: f["norm_first"].as_bool().unwrap(),
            layer_norm_eps: 1e-5,
        };
        let store = ParamStore::new(Device::Cpu);
        let model = Transformer::new(&store.builder(0), &shape).unwrap();
        let report = store
            .load(&dir.join(format!("{name}.safetensors")))
            .unwrap();
        assert!(report.unexpected.is_empty(), "{:?}", report.unexpected);
        let src = Tensor::from_vec(floats(&f["src"]), (2, 5, 16), &Device::Cpu).unwrap();
        let tgt = Tensor::from_vec(floats(&f["tgt"]), (2, 4, 16), &Device::Cpu).unwrap();
        let out = model
            .forward(
                &src,
                &masks(&f["src_mask"]),
                &tgt,
                &masks(&f["tgt_mask"]),
                &mut ForwardCtx::eval(),
            )
            .unwrap();
        let ours = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let worst = ours
            .iter()
            .zip(floats(&f["output"]))
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "{name}: max |difference| {worst}");
    }
}

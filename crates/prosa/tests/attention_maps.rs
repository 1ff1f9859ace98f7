//! The attention weights `prosa explain attention` draws equal what PyTorch computes on the same
//! weights (tests/fixtures/make_attention_maps_fixture.py), every layer and head, within 1e-5:
//! a BERT encoder (transformers' `output_attentions`), a GPT-2 decoder (causal), and
//! `torch.nn.Transformer`'s encoder, decoder and cross-attention on a padded pair.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use prosa::models::attention_maps::{encoder_attention, first_row_maps, LayerMaps};
use prosa::models::decoder::DecoderModel;
use prosa::models::encoder::EncoderModel;
use prosa::models::seq2seq::transformer::{Transformer, TransformerShape};
use prosa::nn::{AttentionKind, ForwardCtx, ParamStore};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read(path: PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn maps(v: &Value) -> Vec<LayerMaps> {
    serde_json::from_value(v.clone()).unwrap()
}

/// The largest |difference| between two sets of maps of the same shape (asserted).
fn worst(ours: &[LayerMaps], theirs: &[LayerMaps]) -> f32 {
    assert_eq!(ours.len(), theirs.len(), "layers");
    let mut worst = 0f32;
    for (a, b) in ours.iter().zip(theirs) {
        assert_eq!(a.len(), b.len(), "heads");
        for (ha, hb) in a.iter().zip(b) {
            assert_eq!(ha.len(), hb.len(), "queries");
            for (qa, qb) in ha.iter().zip(hb) {
                assert_eq!(qa.len(), qb.len(), "keys");
                for (x, y) in qa.iter().zip(qb) {
                    worst = worst.max((x - y).abs());
                }
            }
        }
    }
    worst
}

#[test]
fn bert_attention_maps_equal_transformers_output_attentions() {
    let dir = fixtures().join("pipelines/bert-tiny");
    let expected = read(dir.join("attentions.json"));
    let model = EncoderModel::from_pretrained(&dir, None, None, &Device::Cpu).unwrap();
    let ours = encoder_attention(&model, expected["text"].as_str().unwrap()).unwrap();
    let tokens: Vec<String> = serde_json::from_value(expected["tokens"].clone()).unwrap();
    // Labels are the decoded pieces; the special tokens keep their names.
    assert_eq!(ours.queries.first().map(String::as_str), Some("[CLS]"));
    assert_eq!(ours.queries.len(), tokens.len());
    assert_eq!(ours.queries[2], tokens[2]);
    let w = worst(&ours.layers, &maps(&expected["layers"]));
    assert!(w < 1e-5, "max |difference| {w}");
    // A map's rows are distributions.
    for row in &ours.layers[1][3] {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn gpt2_causal_attention_maps_equal_transformers() {
    let dir = fixtures().join("decoders/gpt2");
    let expected = read(dir.join("attentions.json"));
    let ids: Vec<u32> = serde_json::from_value(expected["ids"].clone()).unwrap();
    let model = DecoderModel::from_pretrained(&dir, &Device::Cpu).unwrap();
    let mask = vec![vec![1u32; ids.len()]];
    let positions = vec![(0..ids.len() as u32).collect::<Vec<_>>()];
    let mut ctx = ForwardCtx::recording_attention();
    model
        .hidden_states(&[ids], &positions, &mask, None, &mut ctx)
        .unwrap();
    let ours = first_row_maps(&ctx.attention_maps(AttentionKind::SelfAttention)).unwrap();
    let w = worst(&ours, &maps(&expected["layers"]));
    assert!(w < 1e-5, "max |difference| {w}");
    // Causal: nothing on later tokens.
    assert_eq!(ours[0][0][0][1], 0.0);
}

#[test]
fn transformer_attention_maps_equal_torch_multihead_attention_weights() {
    let dir = fixtures().join("seq2seq");
    let case = read(dir.join("transformer-post-ln.json"));
    let expected = read(dir.join("transformer-post-ln-attention.json"));
    let shape = TransformerShape {
        d_model: 16,
        num_heads: 4,
        num_encoder_layers: 2,
        num_decoder_layers: 2,
        dim_feedforward: 24,
        dropout: 0.0,
        norm_first: false,
        layer_norm_eps: 1e-5,
    };
    let store = ParamStore::new(Device::Cpu);
    let model = Transformer::new(&store.builder(0), &shape).unwrap();
    store
        .load(&dir.join("transformer-post-ln.safetensors"))
        .unwrap();
    let tensor = |v: &Value, shape: (usize, usize, usize)| {
        let values: Vec<f32> = serde_json::from_value(v.clone()).unwrap();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    };
    let mask = |v: &Value| -> Vec<Vec<u32>> { serde_json::from_value(v.clone()).unwrap() };
    let mut ctx = ForwardCtx::recording_attention();
    model
        .forward(
            &tensor(&case["src"], (2, 5, 16)),
            &mask(&case["src_mask"]),
            &tensor(&case["tgt"], (2, 4, 16)),
            &mask(&case["tgt_mask"]),
            &mut ctx,
        )
        .unwrap();
    // The second pair (with padding on both sides), as the fixture keeps it.
    let second = |kind| -> Vec<LayerMaps> {
        ctx.attention_maps(kind)
            .iter()
            .map(|m| m.get(1).unwrap().to_vec3::<f32>().unwrap())
            .collect()
    };
    let selfs = second(AttentionKind::SelfAttention);
    let (encoder, decoder) = selfs.split_at(2);
    for (name, ours) in [
        ("encoder", encoder.to_vec()),
        ("decoder", decoder.to_vec()),
        ("cross", second(AttentionKind::Cross)),
    ] {
        let w = worst(&ours, &maps(&expected[name]));
        assert!(w < 1e-5, "{name}: max |difference| {w}");
    }
    // Padding keys get nothing.
    assert_eq!(encoder[0][0][0][4], 0.0);
}

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

/// A small translator memorises a handful of pairs, decodes them greedily and with beams, and
/// its saved folder translates the same after loading.
#[test]
fn a_small_translator_learns_pairs_and_its_folder_translates_the_same() {
    use prosa::generation::GenerationConfig;
    use prosa::models::seq2seq::translator::{
        TransformerTranslator, TranslationExample, TranslatorConfig, MODEL_TYPE, SPECIAL_TOKENS,
    };
    use prosa::text::{SubwordKind, SubwordTokenizer, SubwordTrainConfig};
    use prosa::train::{ScheduleKind, Trainer, TrainingArgs};

    let pairs = [
        ("Open the file", "Abrir o arquivo"),
        ("Save the file", "Salvar o arquivo"),
        ("Close the window", "Fechar a janela"),
        ("Open the window", "Abrir a janela"),
        ("Print the page", "Imprimir a página"),
        ("Save the page", "Salvar a página"),
    ];
    let mut config = SubwordTrainConfig::new(SubwordKind::Bpe, 300);
    config.special_tokens = SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect();
    config.min_frequency = 1;
    let texts = pairs.iter().flat_map(|(a, b)| [*a, *b]);
    let tokenizer = SubwordTokenizer::train_from_texts(&config, texts).unwrap();
    let id = |t: &str| tokenizer.token_to_id(t).unwrap();
    let model_config = TranslatorConfig {
        model_type: MODEL_TYPE.into(),
        vocab_size: tokenizer.vocab_size(),
        d_model: 32,
        num_heads: 4,
        num_encoder_layers: 1,
        num_decoder_layers: 1,
        dim_feedforward: 64,
        dropout: 0.0,
        norm_first: false,
        max_positions: 32,
        label_smoothing: 0.0,
        pad_token_id: id("<pad>"),
        bos_token_id: id("<s>"),
        eos_token_id: id("</s>"),
    };
    let model =
        TransformerTranslator::new(model_config, tokenizer.clone(), &Device::Cpu, 3).unwrap();
    let examples: Vec<TranslationExample> = pairs
        .iter()
        .map(|(s, t)| TranslationExample {
            source: model.encode_source(s).unwrap(),
            target: tokenizer.encode(t, false).unwrap(),
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let args = TrainingArgs {
        output_dir: dir.path().join("run"),
        num_train_epochs: 150,
        per_device_train_batch_size: 6,
        learning_rate: 3e-3,
        lr_scheduler_type: ScheduleKind::InverseSqrt,
        warmup_steps: 20,
        metric_for_best_model: "eval_loss".into(),
        load_best_model_at_end: false,
        save_best: false,
        save_last: false,
        logging_steps: 0,
        progress: false,
        ..TrainingArgs::default()
    };
    let trainer = Trainer::new(args, Vec::new()).unwrap();
    trainer.train(&model, &examples, None, false).unwrap();
    let sources: Vec<&str> = pairs.iter().map(|p| p.0).collect();
    let greedy = model.translate(&sources, &model.generation).unwrap();
    let wanted: Vec<&str> = pairs.iter().map(|p| p.1).collect();
    assert_eq!(greedy, wanted);
    let beams = GenerationConfig {
        num_beams: 3,
        ..model.generation.clone()
    };
    assert_eq!(model.translate(&sources, &beams).unwrap(), wanted);
    let saved = dir.path().join("translator");
    model.save_pretrained(&saved).unwrap();
    let loaded = TransformerTranslator::from_pretrained(&saved, &Device::Cpu).unwrap();
    assert_eq!(
        loaded.translate(&sources, &loaded.generation).unwrap(),
        wanted
    );
}

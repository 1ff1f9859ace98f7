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
        TransformerTranslator, TranslatorConfig, MODEL_TYPE, SPECIAL_TOKENS,
    };
    use prosa::models::seq2seq::{TranslationExample, Translator};
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
    // Its attention, for `prosa explain attention`: rows the translation (</s> included),
    // columns the source (</s> included), one map per layer and head, rows summing to 1.
    let maps = loaded.attention("Save the page", 10).unwrap();
    assert_eq!(
        loaded.tokenizer.decode(&maps.generated, true).unwrap(),
        "Salvar a página"
    );
    let source_len = loaded.encode_source("Save the page").unwrap().len();
    assert_eq!(maps.cross.keys.len(), source_len);
    assert_eq!(maps.cross.queries.len(), maps.generated.len());
    assert_eq!(maps.cross.queries.last().map(String::as_str), Some("</s>"));
    assert_eq!(
        (maps.cross.layers.len(), maps.cross.layers[0].len()),
        (1, 4)
    );
    assert_eq!(maps.encoder.layers[0][0].len(), source_len);
    assert_eq!(maps.decoder.layers[0][0].len(), maps.generated.len());
    for row in &maps.cross.layers[0][2] {
        assert_eq!(row.len(), source_len);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    // The decoder's first row reads only <s>.
    assert_eq!(maps.decoder.layers[0][0][0][0], 1.0);
}

/// Bahdanau's additive attention and Luong's dot and general attention against the PyTorch
/// formulas (tests/fixtures/make_attention_fixture.py): weights and contexts within 1e-5, padding
/// never attended.
#[test]
fn bahdanau_and_luong_attention_equal_the_reference_formulas() {
    use prosa::nn::additive_attention::{AdditiveAttention, Score};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seq2seq");
    let f: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("attention.json")).unwrap())
            .unwrap();
    let store = ParamStore::new(Device::Cpu);
    let vb = store.builder(0);
    let additive = AdditiveAttention::new(&vb.pp("additive"), Score::Additive, 6, 6, 6).unwrap();
    let general = AdditiveAttention::new(&vb.pp("general"), Score::General, 6, 6, 6).unwrap();
    let dot = AdditiveAttention::new(&vb.pp("dot"), Score::Dot, 6, 6, 6).unwrap();
    store.load(&dir.join("attention.safetensors")).unwrap();
    let s = Tensor::from_vec(floats(&f["s"]), (2, 6), &Device::Cpu).unwrap();
    let h = Tensor::from_vec(floats(&f["h"]), (2, 5, 6), &Device::Cpu).unwrap();
    let mask = masks(&f["mask"]);
    let bias = prosa::nn::attention::padding_bias(&mask, candle_core::DType::F32, &Device::Cpu)
        .unwrap()
        .squeeze(1)
        .unwrap();
    for (name, attention) in [
        ("additive", &additive),
        ("dot", &dot),
        ("general", &general),
    ] {
        let keys = attention.keys(&h, &bias).unwrap();
        let (context, weights) = attention.forward(&s, &keys).unwrap();
        for (ours, key) in [(weights, "weights"), (context, "context")] {
            let ours = ours.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let worst = ours
                .iter()
                .zip(floats(&f[name][key]))
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-5, "{name} {key}: max |difference| {worst}");
            if key == "weights" {
                assert_eq!(&ours[8..10], &[0.0, 0.0], "{name}: padding gets no weight");
            }
        }
    }
}

/// The RNN encoder–decoder, with and without attention, memorises a handful of pairs and
/// decodes them greedily and with beams; its folder loads back.
#[test]
fn small_rnn_translators_learn_pairs_with_and_without_attention() {
    use prosa::generation::GenerationConfig;
    use prosa::models::seq2seq::rnn::{RnnTranslator, RnnTranslatorConfig, MODEL_TYPE};
    use prosa::models::seq2seq::translator::SPECIAL_TOKENS;
    use prosa::models::seq2seq::{AnyTranslator, TranslationExample, Translator};
    use prosa::nn::additive_attention::Score;
    use prosa::text::{SubwordKind, SubwordTokenizer, SubwordTrainConfig};
    use prosa::train::{Trainer, TrainingArgs};

    let pairs = [
        ("Open the file", "Abrir o arquivo"),
        ("Save the file", "Salvar o arquivo"),
        ("Close the window", "Fechar a janela"),
        ("Print the page", "Imprimir a página"),
    ];
    let mut config = SubwordTrainConfig::new(SubwordKind::Bpe, 300);
    config.special_tokens = SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect();
    config.min_frequency = 1;
    let tokenizer =
        SubwordTokenizer::train_from_texts(&config, pairs.iter().flat_map(|(a, b)| [*a, *b]))
            .unwrap();
    let id = |t: &str| tokenizer.token_to_id(t).unwrap();
    for attention in [None, Some(Score::Additive), Some(Score::General)] {
        let model = RnnTranslator::new(
            RnnTranslatorConfig {
                model_type: MODEL_TYPE.into(),
                vocab_size: tokenizer.vocab_size(),
                embedding_dim: 24,
                hidden_size: 32,
                attention,
                dropout: 0.0,
                max_positions: 32,
                label_smoothing: 0.0,
                pad_token_id: id("<pad>"),
                bos_token_id: id("<s>"),
                eos_token_id: id("</s>"),
            },
            tokenizer.clone(),
            &Device::Cpu,
            5,
        )
        .unwrap();
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
            num_train_epochs: 300,
            per_device_train_batch_size: 4,
            learning_rate: 1e-2,
            metric_for_best_model: "eval_loss".into(),
            load_best_model_at_end: false,
            save_best: false,
            save_last: false,
            logging_steps: 0,
            progress: false,
            ..TrainingArgs::default()
        };
        Trainer::new(args, Vec::new())
            .unwrap()
            .train(&model, &examples, None, false)
            .unwrap();
        let sources: Vec<&str> = pairs.iter().map(|p| p.0).collect();
        let wanted: Vec<&str> = pairs.iter().map(|p| p.1).collect();
        assert_eq!(
            model.translate(&sources, &model.generation).unwrap(),
            wanted,
            "{attention:?}"
        );
        let beams = GenerationConfig {
            num_beams: 3,
            ..model.generation.clone()
        };
        assert_eq!(
            model.translate(&sources, &beams).unwrap(),
            wanted,
            "{attention:?} beams"
        );
        let saved = dir.path().join("rnn");
        Translator::save_pretrained(&model, &saved).unwrap();
        let loaded = AnyTranslator::from_pretrained(&saved, &Device::Cpu).unwrap();
        assert_eq!(
            loaded.translate(&sources, loaded.generation()).unwrap(),
            wanted
        );
        // The alignment of an attention model: one row of source weights per generated token.
        if attention.is_some() {
            let source = model.encode_source(sources[0]).unwrap();
            let (tokens, rows) = model.alignment(&source, 10).unwrap().unwrap();
            assert_eq!(rows.len(), tokens.len());
            assert!(rows
                .iter()
                .all(|r| r.len() == source.len() && (r.iter().sum::<f32>() - 1.0).abs() < 1e-4));
        }
    }
}

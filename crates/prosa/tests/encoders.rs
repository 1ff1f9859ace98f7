//! BERT, DistilBERT and RoBERTa against Hugging Face transformers: every head of every family
//! on small random checkpoints (made by tests/fixtures/make_encoder_fixtures.py), a padded batch
//! equal to one-by-one runs, folders saved and loaded back, and checkpoint errors.

mod provenance;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use prosa::models::encoder::{EncoderInput, EncoderModel, Task};
use prosa::train::ForwardCtx;
use serde_json::Value;

const CASES: &[&str] = &[
    "bert-base",
    "bert-pretraining",
    "bert-mlm",
    "bert-seqcls",
    "bert-regression",
    "bert-tokcls",
    "bert-qa",
    "distilbert-mlm",
    "distilbert-seqcls",
    "distilbert-tokcls",
    "distilbert-qa",
    "roberta-mlm",
    "roberta-seqcls",
    "roberta-tokcls",
    "roberta-qa",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/encoders")
        .join(name)
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name).join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn rows(v: &Value) -> Vec<Vec<u32>> {
    serde_json::from_value(v.clone()).unwrap()
}

fn input(e: &Value) -> EncoderInput {
    EncoderInput {
        input_ids: rows(&e["input_ids"]),
        attention_mask: rows(&e["attention_mask"]),
        token_type_ids: e.get("token_type_ids").map(rows),
    }
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn max_diff(ours: &[f32], theirs: &Value) -> f32 {
    let theirs: Vec<f32> = serde_json::from_value(theirs.clone()).unwrap();
    assert_eq!(ours.len(), theirs.len(), "lengths differ");
    ours.iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

/// Every output the fixture recorded, as (name, our values).
fn outputs(model: &EncoderModel, input: &EncoderInput) -> Vec<(&'static str, Vec<f32>)> {
    let out = model.forward(input, &mut ForwardCtx::eval()).unwrap();
    let mut all = vec![("last_hidden_state", flat(&out.last_hidden_state))];
    let task = model.config.task;
    let logits_name = match task {
        Task::PreTraining => "prediction_logits",
        _ => "logits",
    };
    let optional = [
        (logits_name, out.logits),
        ("seq_relationship_logits", out.seq_relationship_logits),
        ("start_logits", out.start_logits),
        ("end_logits", out.end_logits),
        ("pooler_output", out.pooler_output),
    ];
    all.extend(
        optional
            .into_iter()
            .filter_map(|(n, t)| t.map(|t| (n, flat(&t)))),
    );
    all
}

fn check_against_fixture(model: &EncoderModel, name: &str) {
    let e = expected(name);
    let ours = outputs(model, &input(&e));
    for (key, values) in &ours {
        // Task models' outputs carry no pooler output in transformers; ours does where it is used.
        let Some(theirs) = e.get(*key) else {
            assert_eq!(
                *key, "pooler_output",
                "{name}: transformers recorded no {key}"
            );
            continue;
        };
        let d = max_diff(values, theirs);
        assert!(d < 1e-4, "{name}: {key} differs from transformers by {d}");
    }
    let recorded = [
        "logits",
        "prediction_logits",
        "seq_relationship_logits",
        "start_logits",
        "pooler_output",
    ];
    for key in recorded.iter().filter(|k| e.get(**k).is_some()) {
        assert!(
            ours.iter().any(|(k, _)| k == key),
            "{name}: we made no {key}"
        );
    }
}

#[test]
fn every_family_and_head_matches_transformers_within_1e4() {
    for name in CASES {
        let model = EncoderModel::from_pretrained(&fixture(name), None, None, &Device::Cpu)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(model.newly_initialized.is_empty(), "{name}");
        check_against_fixture(&model, name);
    }
}

#[test]
fn a_padded_batch_equals_one_by_one() {
    for name in ["bert-seqcls", "distilbert-tokcls", "roberta-mlm"] {
        let model =
            EncoderModel::from_pretrained(&fixture(name), None, None, &Device::Cpu).unwrap();
        let batch = input(&expected(name));
        let together = model.forward(&batch, &mut ForwardCtx::eval()).unwrap();
        for (row, mask) in batch.attention_mask.iter().enumerate() {
            let len = mask.iter().filter(|&&m| m == 1).count();
            let single = EncoderInput {
                input_ids: vec![batch.input_ids[row][..len].to_vec()],
                attention_mask: vec![vec![1; len]],
                token_type_ids: batch
                    .token_type_ids
                    .as_ref()
                    .map(|t| vec![t[row][..len].to_vec()]),
            };
            let alone = model.forward(&single, &mut ForwardCtx::eval()).unwrap();
            let a = flat(&alone.last_hidden_state);
            let b = flat(
                &together
                    .last_hidden_state
                    .narrow(0, row, 1)
                    .unwrap()
                    .narrow(1, 0, len)
                    .unwrap(),
            );
            let d = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(d < 1e-5, "{name} row {row}: batch and single differ by {d}");
        }
    }
}

#[test]
fn packed_sequences_match_transformers_on_the_real_tokens() {
    // Families without token types (the packed path gives every token type 0).
    for name in ["distilbert-tokcls", "roberta-mlm"] {
        let model =
            EncoderModel::from_pretrained(&fixture(name), None, None, &Device::Cpu).unwrap();
        let e = expected(name);
        let batch = input(&e);
        let lengths: Vec<usize> = (batch.attention_mask.iter())
            .map(|mask| mask.iter().filter(|&&m| m == 1).count())
            .collect();
        let rows: Vec<&[u32]> = (batch.input_ids.iter().zip(&lengths))
            .map(|(ids, &n)| &ids[..n])
            .collect();
        let packed = model
            .forward_packed(&rows, &mut ForwardCtx::inference())
            .unwrap();
        assert_eq!(packed.lengths, lengths);
        // (batch, seq, hidden), flat.
        let theirs: Vec<f32> = serde_json::from_value(e["last_hidden_state"].clone()).unwrap();
        let seq = batch.input_ids[0].len();
        let hidden = model.config.hidden_size;
        for (b, &n) in lengths.iter().enumerate() {
            let ours = packed.sequence(b).unwrap().to_vec2::<f32>().unwrap();
            let d = (ours.iter().flatten())
                .zip(&theirs[b * seq * hidden..][..n * hidden])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(d < 1e-4, "{name} sequence {b}: {d} from transformers");
        }
    }
}

#[test]
fn saved_folders_load_back_with_equal_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    // PROSA_WRITE_SAVED=DIR keeps the folders for the transformers check of the fixture script.
    let root = std::env::var_os("PROSA_WRITE_SAVED")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    for name in CASES {
        let model =
            EncoderModel::from_pretrained(&fixture(name), None, None, &Device::Cpu).unwrap();
        let dir = root.join(name);
        model.save_pretrained(&dir).unwrap();
        let back = EncoderModel::from_pretrained(&dir, None, None, &Device::Cpu).unwrap();
        check_against_fixture(&back, name);
        let config: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap();
        let original: Value = serde_json::from_str(
            &std::fs::read_to_string(fixture(name).join("config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(config["architectures"], original["architectures"], "{name}");
    }
}

#[test]
fn transformers_loaded_the_folders_prosa_saved() {
    // Recorded by `make_encoder_fixtures.py --check-saved DIR` on folders written by the test
    // above with PROSA_WRITE_SAVED=DIR.
    let text = std::fs::read_to_string(fixture("saved_by_prosa_check.json")).unwrap();
    let record: serde_json::Value = serde_json::from_str(&text).unwrap();
    provenance::assert_current(
        &record,
        "models/encoder",
        "PROSA_WRITE_SAVED=/tmp/saved cargo test -p prosa --test encoders, then \
         python3 crates/prosa/tests/fixtures/make_encoder_fixtures.py --check-saved /tmp/saved",
    );
    let report: Vec<(&String, f64)> = record
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(name, diff)| Some((name, diff.as_f64()?)))
        .collect();
    assert_eq!(report.len(), CASES.len(), "every case checked");
    for (name, diff) in report {
        assert!(
            diff < 1e-4,
            "{name}: transformers' outputs differ by {diff}"
        );
    }
}

#[test]
fn a_base_checkpoint_gets_a_fresh_classification_head() {
    let labels = prosa::data::LabelMap::fit(["a", "b"]);
    let model = EncoderModel::from_pretrained(
        &fixture("bert-base"),
        Some(Task::SequenceClassification),
        Some(labels),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(
        model.newly_initialized,
        vec!["classifier.weight", "classifier.bias"]
    );
    // The encoder is the checkpoint's: hidden states still match transformers.
    let e = expected("bert-base");
    let out = model.forward(&input(&e), &mut ForwardCtx::eval()).unwrap();
    assert!(max_diff(&flat(&out.last_hidden_state), &e["last_hidden_state"]) < 1e-4);
    assert_eq!(out.logits.unwrap().dims(), &[2, 2]);
    // The head's draws were made after the checkpoint loaded, from the stream a fresh model of
    // the same config (seed 0) draws them from: the same values, not zeros.
    let fresh = EncoderModel::new(model.config.clone(), &Device::Cpu, 0).unwrap();
    let head = |m: &EncoderModel| flat(m.params().get("classifier.weight").unwrap().as_tensor());
    assert_eq!(head(&model), head(&fresh));
    assert!(head(&model).iter().any(|v| *v != 0.0));
}

fn copy_fixture(name: &str, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture(name).join(f), to.join(f)).unwrap();
    }
}

fn load_error(dir: &Path) -> String {
    match EncoderModel::from_pretrained(dir, None, None, &Device::Cpu) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn broken_checkpoints_give_errors_naming_the_tensor_or_file() {
    let tmp = tempfile::tempdir().unwrap();
    // A missing tensor.
    let dir = tmp.path().join("missing");
    copy_fixture("bert-seqcls", &dir);
    let tensors =
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut fewer = tensors.clone();
    fewer.remove("bert.encoder.layer.1.output.dense.weight");
    candle_core::safetensors::save(&fewer, dir.join("model.safetensors")).unwrap();
    let msg = load_error(&dir);
    assert!(
        msg.contains("bert.encoder.layer.1.output.dense.weight") && msg.contains("missing"),
        "{msg}"
    );
    // A wrong shape.
    let mut wrong = tensors.clone();
    wrong.insert(
        "bert.pooler.dense.weight".into(),
        Tensor::zeros((32, 31), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&wrong, dir.join("model.safetensors")).unwrap();
    let msg = load_error(&dir);
    assert!(
        msg.contains("bert.pooler.dense.weight") && msg.contains("[32, 31]"),
        "{msg}"
    );
    // An unknown architecture.
    let dir = tmp.path().join("arch");
    copy_fixture("bert-seqcls", &dir);
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        config.replace("BertForSequenceClassification", "BertForMultipleChoice"),
    )
    .unwrap();
    let msg = load_error(&dir);
    assert!(
        msg.contains("BertForMultipleChoice") && msg.contains("config.json"),
        "{msg}"
    );
    std::fs::write(
        dir.join("config.json"),
        config.replace("\"bert\"", "\"electra\""),
    )
    .unwrap();
    let msg = load_error(&dir);
    assert!(msg.contains("electra"), "{msg}");
    // A truncated safetensors file.
    let dir = tmp.path().join("truncated");
    copy_fixture("bert-seqcls", &dir);
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let msg = load_error(&dir);
    assert!(
        msg.contains("model.safetensors") && msg.contains("truncated"),
        "{msg}"
    );
}

/// A copy of a fixture with a 99-token vocabulary (`[PAD] [UNK] [CLS] [SEP] [MASK] w5 … w98`).
fn copy_with_vocab(name: &str, dir: &Path) {
    copy_fixture(name, dir);
    let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    vocab.extend((vocab.len()..99).map(|i| format!("w{i}")));
    std::fs::write(dir.join("vocab.txt"), vocab.join("\n")).unwrap();
}

#[test]
fn fill_mask_ranks_the_masked_lm_predictions() {
    // The bert-mlm fixture with a 99-token vocabulary written for it.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mlm");
    copy_with_vocab("bert-mlm", &dir);
    let pipeline = prosa::pipelines::FillMask::from_pretrained(&dir, &Device::Cpu).unwrap();
    assert_eq!(pipeline.mask_token(), "[MASK]");
    let results = pipeline
        .run(&["w10 w11 [MASK] w12", "[MASK] w40"], 5)
        .unwrap();
    assert_eq!(results.len(), 2);
    // The top filling is the argmax of the model's logits at the mask position.
    let model = EncoderModel::from_pretrained(&dir, None, None, &Device::Cpu).unwrap();
    let input = EncoderInput {
        input_ids: vec![vec![2, 10, 11, 4, 12, 3]],
        attention_mask: vec![vec![1; 6]],
        token_type_ids: None,
    };
    let logits = model
        .forward(&input, &mut ForwardCtx::eval())
        .unwrap()
        .logits
        .unwrap();
    let at_mask: Vec<f32> = logits.get(0).unwrap().get(3).unwrap().to_vec1().unwrap();
    let best = (0..at_mask.len())
        .max_by(|&a, &b| at_mask[a].total_cmp(&at_mask[b]))
        .unwrap();
    let first = &results[0];
    assert_eq!(first.len(), 5);
    assert_eq!(first[0].token as usize, best);
    assert!(first.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(first.iter().map(|r| r.score).sum::<f32>() <= 1.0 + 1e-6);
    for r in first {
        assert!(r.sequence.contains(r.token_str.trim()), "{r:?}");
        assert!(!r.sequence.contains("[MASK]"));
    }
    assert!(pipeline.run(&["no mask here"], 5).is_err());
}

#[test]
fn question_answering_picks_the_best_span_in_every_window() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("qa");
    copy_with_vocab("bert-qa", &dir);
    let mut qa = prosa::pipelines::QuestionAnswering::from_pretrained(&dir, &Device::Cpu).unwrap();
    let question = "w20 w21";
    let context = "w30 w31 w32 w33 w34 w35 w36 w37 w38 w39";
    // The whole context in one window: the answer is the best start ≤ end pair over the
    // context tokens, which we recompute here from the logits.
    let answer = qa.answer(question, context).unwrap();
    let model = EncoderModel::from_pretrained(&dir, None, None, &Device::Cpu).unwrap();
    let mut ids = vec![2, 20, 21, 3];
    ids.extend(30..40);
    ids.push(3);
    let types: Vec<u32> = (0..ids.len()).map(|i| u32::from(i >= 4)).collect();
    let out = model
        .forward(
            &EncoderInput {
                attention_mask: vec![vec![1; ids.len()]],
                input_ids: vec![ids],
                token_type_ids: Some(vec![types]),
            },
            &mut ForwardCtx::eval(),
        )
        .unwrap();
    let probs = |t: Tensor| {
        let v: Vec<f32> = t.get(0).unwrap().to_vec1::<f32>().unwrap()[4..14].to_vec();
        let m = v.iter().copied().fold(f32::MIN, f32::max);
        let e: Vec<f32> = v.iter().map(|x| (x - m).exp()).collect();
        let s: f32 = e.iter().sum();
        e.into_iter().map(|x| x / s).collect::<Vec<f32>>()
    };
    let (ps, pe) = (
        probs(out.start_logits.unwrap()),
        probs(out.end_logits.unwrap()),
    );
    let mut best = (0.0f32, 0, 0);
    for (i, a) in ps.iter().enumerate() {
        for (j, b) in pe.iter().enumerate().skip(i) {
            if a * b > best.0 {
                best = (a * b, i, j);
            }
        }
    }
    assert!(
        (answer.score - best.0).abs() < 1e-6,
        "{answer:?} vs {best:?}"
    );
    assert_eq!((answer.start, answer.end), (best.1 * 4, best.2 * 4 + 3));
    assert_eq!(answer.answer, context[answer.start..answer.end]);
    // Small windows: still a span of the context, within the length limit.
    qa.max_length = 9;
    qa.stride = 1;
    qa.max_answer_len = 2;
    let windowed = qa.answer(question, context).unwrap();
    assert_eq!(windowed.answer, context[windowed.start..windowed.end]);
    assert!(windowed.answer.split(' ').count() <= 2 && windowed.score > 0.0);
    qa.max_length = 5;
    assert!(
        qa.answer(question, context).is_err(),
        "no room for the context"
    );
}

#[test]
fn bert_masking_follows_the_15_80_10_10_recipe_and_spares_special_tokens() {
    use prosa::models::encoder::pretraining::{BertPretrainer, BertSize};
    use prosa::text::{SubwordKind, SubwordTokenizer, SubwordTrainConfig};
    use rand::SeedableRng;
    let texts = ["the king and the queen walk in the garden at night"; 20];
    let tokenizer = SubwordTokenizer::train_from_texts(
        &SubwordTrainConfig::new(SubwordKind::WordPiece, 200),
        texts.iter().copied(),
    )
    .unwrap();
    let size = BertSize {
        layers: 1,
        hidden: 16,
        heads: 2,
        intermediate: 32,
        max_length: 32,
    };
    let model = BertPretrainer::new(tokenizer.clone(), size, 0, &Device::Cpu).unwrap();
    let (cls, sep, mask) = (
        tokenizer.token_to_id("[CLS]").unwrap(),
        tokenizer.token_to_id("[SEP]").unwrap(),
        tokenizer.token_to_id("[MASK]").unwrap(),
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let original: Vec<u32> = std::iter::once(cls)
        .chain((0..1000).map(|i| 10 + (i % 20) as u32))
        .chain(std::iter::once(sep))
        .collect();
    let (mut chosen, mut masked, mut kept) = (0usize, 0usize, 0usize);
    for _ in 0..40 {
        let mut ids = original.clone();
        let picks = model.mask_tokens(&mut ids, &mut rng);
        assert_eq!(
            (ids[0], ids[ids.len() - 1]),
            (cls, sep),
            "special tokens are never masked"
        );
        for (i, was) in picks {
            assert_eq!(original[i], was);
            chosen += 1;
            masked += usize::from(ids[i] == mask);
            kept += usize::from(ids[i] == was);
        }
    }
    let rate = chosen as f64 / 40_000.0;
    let (m, k) = (masked as f64 / chosen as f64, kept as f64 / chosen as f64);
    assert!((rate - 0.15).abs() < 0.01, "chosen {rate}");
    assert!((m - 0.8).abs() < 0.02, "[MASK] {m}");
    // Unchanged: the 10% left alone plus random replacements that drew the same id.
    assert!((k - 0.1).abs() < 0.02, "kept {k}");
}

#[test]
fn pipelines_refuse_a_checkpoint_without_their_head() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("base");
    copy_with_vocab("bert-base", &dir);
    let err = |r: prosa::Result<()>| r.unwrap_err().to_string();
    let fill = err(prosa::pipelines::FillMask::from_pretrained(&dir, &Device::Cpu).map(|_| ()));
    assert!(
        fill.contains("BertForMaskedLM") && fill.contains("config.json"),
        "{fill}"
    );
    let qa =
        err(prosa::pipelines::QuestionAnswering::from_pretrained(&dir, &Device::Cpu).map(|_| ()));
    assert!(qa.contains("BertForQuestionAnswering"), "{qa}");
    let ner =
        err(prosa::pipelines::TokenClassification::from_pretrained(&dir, &Device::Cpu).map(|_| ()));
    // A base model names no tags, which stops the tagger first.
    assert!(
        ner.contains("config.json") && ner.contains("id2label"),
        "{ner}"
    );
}

/// The largest difference between two gradients of every parameter, and the largest gradient.
fn gradient_gap(
    model: &EncoderModel,
    a: &candle_core::backprop::GradStore,
    b: &candle_core::backprop::GradStore,
) -> (f32, f32) {
    let (mut gap, mut largest) = (0f32, 0f32);
    for (name, var) in model.params().vars() {
        let (Some(ga), Some(gb)) = (a.get(var.as_tensor()), b.get(var.as_tensor())) else {
            assert!(
                a.get(var.as_tensor()).is_none() && b.get(var.as_tensor()).is_none(),
                "{name}: a gradient on one side only"
            );
            continue;
        };
        let (ga, gb) = (flat(ga), flat(gb));
        largest = ga.iter().fold(largest, |m, v| m.max(v.abs()));
        gap = ga
            .iter()
            .zip(&gb)
            .fold(gap, |m, (x, y)| m.max((x - y).abs()));
    }
    (gap, largest)
}

#[test]
fn sequence_logits_run_the_last_layer_for_the_first_token_with_the_same_values_and_gradients() {
    for name in ["bert-seqcls", "distilbert-seqcls", "roberta-seqcls"] {
        let model =
            EncoderModel::from_pretrained(&fixture(name), None, None, &Device::Cpu).unwrap();
        let e = expected(name);
        let input = input(&e);
        // Inference: transformers' logits, and the full forward's.
        let ours = flat(
            &model
                .sequence_logits(&input, &mut ForwardCtx::inference())
                .unwrap(),
        );
        let d = max_diff(&ours, &e["logits"]);
        assert!(d < 1e-4, "{name}: logits differ from transformers by {d}");
        let full = model
            .forward(&input, &mut ForwardCtx::inference())
            .unwrap()
            .logits
            .unwrap();
        let gap = flat(&full)
            .iter()
            .zip(&ours)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(gap < 1e-5, "{name}: {gap} from the full forward's logits");
        // With a backward pass (no dropout): every parameter's gradient, the last layer's
        // included, as through the whole last layer.
        let weights = Tensor::arange(1f32, 1.0 + ours.len() as f32, &Device::Cpu).unwrap();
        let loss = |logits: Tensor| {
            (logits.flatten_all().unwrap() * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let first = loss(
            model
                .sequence_logits(&input, &mut ForwardCtx::eval())
                .unwrap(),
        );
        let whole = loss(
            model
                .forward(&input, &mut ForwardCtx::eval())
                .unwrap()
                .logits
                .unwrap(),
        );
        let (gap, largest) = gradient_gap(
            &model,
            &first.backward().unwrap(),
            &whole.backward().unwrap(),
        );
        assert!(
            largest > 1e-3,
            "{name}: gradients too small to compare ({largest})"
        );
        assert!(
            gap < 1e-5 * largest.max(1.0),
            "{name}: gradients differ by {gap} (largest {largest})"
        );
    }
}

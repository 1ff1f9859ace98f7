//! GPT-2 and Llama against Hugging Face transformers on small random checkpoints (made by
//! tests/fixtures/make_decoder_fixtures.py): logits of a left-padded batch, the causal-LM loss,
//! sliding-window perplexity, and `generate()` token ids for greedy, no-repeat-n-gram,
//! repetition-penalty, min-new-tokens and beam search; the sampling warpers; saving and loading.

mod provenance;

use std::path::{Path, PathBuf};

use candle_core::Device;
use prosa::generation::logits;
use prosa::generation::{generate, GenerationConfig};
use prosa::models::decoder::DecoderModel;
use prosa::nn::attention::position_ids;
use prosa::nn::kv_cache::KvCache;
use prosa::train::ForwardCtx;
use serde_json::Value;

const MODELS: &[&str] = &["gpt2", "llama"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/decoders")
        .join(name)
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name).join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn rows(v: &Value) -> Vec<Vec<u32>> {
    serde_json::from_value(v.clone()).unwrap()
}

fn flat(v: &Value) -> Vec<f32> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap() as f32],
        other => panic!("not a number: {other}"),
    }
}

fn load(name: &str) -> DecoderModel {
    DecoderModel::from_pretrained(&fixture(name), &Device::Cpu).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn padded_logits(model: &DecoderModel, e: &Value) -> Vec<f32> {
    let (ids, mask) = (rows(&e["ids"]), rows(&e["attention_mask"]));
    let positions = position_ids(&mask);
    let logits = model
        .forward(
            &ids,
            &positions,
            &mask,
            None,
            &mut ForwardCtx::eval(),
            false,
        )
        .unwrap();
    // Padding positions are not compared: their values are arbitrary in both libraries.
    let vocab = logits.dim(2).unwrap();
    let all = logits.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let want = flat(&e["logits"]);
    mask.iter()
        .flatten()
        .enumerate()
        .filter(|(_, &m)| m == 1)
        .flat_map(|(i, _)| {
            all[i * vocab..(i + 1) * vocab]
                .iter()
                .zip(&want[i * vocab..(i + 1) * vocab])
                .map(|(a, b)| a - b)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn logits_of_a_left_padded_batch_match_transformers() {
    for name in MODELS {
        let model = load(name);
        let diffs = padded_logits(&model, &expected(name));
        let worst = diffs.iter().map(|d| d.abs()).fold(0.0, f32::max);
        assert!(worst < 1e-4, "{name}: max logit difference {worst}");
    }
}

#[test]
fn last_position_logits_skip_the_last_blocks_other_rows_with_transformers_values() {
    for name in MODELS {
        let model = load(name);
        let e = expected(name);
        let (ids, mask) = (rows(&e["ids"]), rows(&e["attention_mask"]));
        let positions = position_ids(&mask);
        let mut ctx = ForwardCtx::inference();
        let last = model
            .forward(&ids, &positions, &mask, None, &mut ctx, true)
            .unwrap();
        let (batch, seq) = (ids.len(), ids[0].len());
        assert_eq!(last.dims()[..2], [batch, 1], "{name}");
        let last = last.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // Left padding: every row's last position is a real token; transformers' logits there.
        let want = flat(&e["logits"]);
        let vocab = last.len() / batch;
        for b in 0..batch {
            let at = (b * seq + seq - 1) * vocab;
            let d = max_diff(&last[b * vocab..(b + 1) * vocab], &want[at..at + vocab]);
            assert!(d < 1e-4, "{name}: row {b}'s last logits differ by {d}");
        }
    }
}

#[test]
fn causal_lm_loss_matches_transformers() {
    for name in MODELS {
        let model = load(name);
        let e = expected(name);
        let ids: Vec<u32> = serde_json::from_value(e["loss_ids"].clone()).unwrap();
        let mask = vec![vec![1; ids.len()]];
        let (loss, count) = model
            .causal_lm_loss(std::slice::from_ref(&ids), &mask, &mut ForwardCtx::eval())
            .unwrap();
        let loss = loss.to_scalar::<f32>().unwrap() as f64;
        let want = e["loss"].as_f64().unwrap();
        assert_eq!(count, ids.len() - 1);
        assert!((loss - want).abs() < 1e-4, "{name}: loss {loss} vs {want}");
    }
}

/// A generation case of the fixtures, run through prosa's `generate()`.
fn run_case(model: &DecoderModel, case: &Value) -> Vec<Vec<u32>> {
    let kwargs = &case["kwargs"];
    let mut g = GenerationConfig {
        pad_token_id: Some(0),
        eos_token_ids: Vec::new(),
        ..GenerationConfig::default()
    };
    if let Some(e) = kwargs.get("eos_token_id") {
        g.eos_token_ids = vec![e.as_u64().unwrap() as u32];
    }
    let uint = |k: &str| kwargs.get(k).and_then(Value::as_u64).map(|v| v as usize);
    g.max_new_tokens = uint("max_new_tokens");
    g.max_length = uint("max_length").unwrap_or(20);
    g.min_new_tokens = uint("min_new_tokens").unwrap_or(0);
    g.num_beams = uint("num_beams").unwrap_or(1);
    g.num_return_sequences = uint("num_return_sequences").unwrap_or(1);
    g.no_repeat_ngram_size = uint("no_repeat_ngram_size").unwrap_or(0);
    if let Some(p) = kwargs.get("repetition_penalty").and_then(Value::as_f64) {
        g.repetition_penalty = p as f32;
    }
    if let Some(p) = kwargs.get("length_penalty").and_then(Value::as_f64) {
        g.length_penalty = p as f32;
    }
    if kwargs.get("early_stopping") == Some(&Value::Bool(true)) {
        g.early_stopping = prosa::generation::EarlyStopping::Immediately;
    }
    // Unpad the prompts: generate() pads them on the left itself.
    let prompt = rows(&case["prompt"]);
    let prompts: Vec<Vec<u32>> = match case["attention_mask"].is_null() {
        true => prompt,
        false => prompt
            .iter()
            .zip(rows(&case["attention_mask"]))
            .map(|(p, m)| {
                p.iter()
                    .zip(m)
                    .filter(|(_, m)| *m == 1)
                    .map(|(t, _)| *t)
                    .collect()
            })
            .collect(),
    };
    generate(model, &prompts, &g, None).unwrap().sequences
}

#[test]
fn generated_token_ids_equal_transformers() {
    let mut compared = 0;
    for name in MODELS {
        let model = load(name);
        let e = expected(name);
        for case in e["generations"].as_array().unwrap() {
            let ours = run_case(&model, case);
            let theirs = rows(&case["output"]);
            assert_eq!(
                ours, theirs,
                "{name} / {}: prosa's ids differ from transformers'",
                case["name"]
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 20);
}

#[test]
fn sampling_warpers_match_transformers_in_order_and_thresholds() {
    let text = std::fs::read_to_string(fixture("warpers.json")).unwrap();
    let w: Value = serde_json::from_str(&text).unwrap();
    let row = flat(&w["logits"]);
    let check = |ours: &[f32], theirs: &Value| {
        let theirs: Vec<Option<f64>> = serde_json::from_value(theirs.clone()).unwrap();
        let kept = theirs.iter().filter(|v| v.is_some()).count();
        assert!(kept > 1 && kept < ours.len(), "the case filters something");
        for (o, t) in ours.iter().zip(&theirs) {
            match t {
                None => assert!(o.is_infinite(), "prosa kept a token transformers removed"),
                Some(t) => assert!((*o as f64 - t).abs() < 1e-5, "{o} vs {t}"),
            }
        }
    };
    let g = GenerationConfig {
        do_sample: true,
        temperature: w["temperature"].as_f64().unwrap() as f32,
        top_k: w["top_k"].as_u64().unwrap() as usize,
        top_p: w["top_p"].as_f64().unwrap() as f32,
        ..GenerationConfig::default()
    };
    let mut scores = row.clone();
    logits::warp(&mut scores, &g);
    check(&scores, &w["processed"]);
    let mut scores = row.clone();
    logits::top_p(&mut scores, w["top_p_only"].as_f64().unwrap() as f32, 1);
    check(&scores, &w["processed_top_p_only"]);
}

#[test]
fn sampling_is_reproducible_from_the_seed_and_varies_with_it() {
    let model = load("llama");
    let g = |seed| GenerationConfig {
        do_sample: true,
        max_new_tokens: Some(12),
        temperature: 1.5,
        top_k: 0,
        seed,
        ..GenerationConfig::default()
    };
    let prompt = vec![vec![5, 17, 88]];
    let a = generate(&model, &prompt, &g(1), None).unwrap().new_tokens;
    let b = generate(&model, &prompt, &g(1), None).unwrap().new_tokens;
    let c = generate(&model, &prompt, &g(2), None).unwrap().new_tokens;
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a[0].len(), 12);
}

#[test]
fn streaming_sees_every_token_in_order() {
    let model = load("gpt2");
    let g = GenerationConfig {
        max_new_tokens: Some(8),
        ..GenerationConfig::default()
    };
    let mut seen = Vec::new();
    let mut callback = |row: usize, token: u32| seen.push((row, token));
    let out = generate(&model, &[vec![5, 17, 88]], &g, Some(&mut callback)).unwrap();
    let streamed: Vec<u32> = seen.iter().map(|s| s.1).collect();
    assert_eq!(streamed, out.new_tokens[0]);
}

/// Logits (1, vocab) of one sequence's next step alone, its cache extended.
fn step_alone(model: &DecoderModel, token: u32, position: u32, cache: &mut KvCache) -> Vec<f32> {
    let mask = vec![vec![1; position as usize + 1]];
    let mut ctx = ForwardCtx::eval();
    let logits = model
        .forward(
            &[vec![token]],
            &[vec![position]],
            &mask,
            Some(cache),
            &mut ctx,
            true,
        )
        .unwrap();
    logits.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn sequences_with_their_own_caches_decode_together_as_each_alone() {
    // Continuous batching (prosa serve): rows of different lengths, no padding, one step each.
    let prompts: [&[u32]; 3] = [&[5, 17, 88], &[3, 9, 41, 7, 60, 2], &[11]];
    for name in MODELS {
        let model = load(name);
        let mut alone: Vec<KvCache> = prompts.iter().map(|_| model.new_cache()).collect();
        let mut together: Vec<KvCache> = prompts.iter().map(|_| model.new_cache()).collect();
        let mut tokens = Vec::new();
        for (i, p) in prompts.iter().enumerate() {
            let positions: Vec<u32> = (0..p.len() as u32).collect();
            let mask = vec![vec![1; p.len()]];
            for cache in [&mut alone[i], &mut together[i]] {
                let mut ctx = ForwardCtx::eval();
                let logits = model
                    .forward(
                        &[p.to_vec()],
                        std::slice::from_ref(&positions),
                        &mask,
                        Some(cache),
                        &mut ctx,
                        true,
                    )
                    .unwrap();
                if tokens.len() == i {
                    tokens.push(logits::argmax(
                        &logits.flatten_all().unwrap().to_vec1().unwrap(),
                    ));
                }
            }
        }
        let mut positions: Vec<u32> = prompts.iter().map(|p| p.len() as u32).collect();
        for _step in 0..3 {
            let batched = model
                .decode_rows(&tokens, &positions, &mut together)
                .unwrap();
            let batched = batched.to_vec2::<f32>().unwrap();
            for i in 0..prompts.len() {
                let expected = step_alone(&model, tokens[i], positions[i], &mut alone[i]);
                let diff = max_diff(&batched[i], &expected);
                assert!(diff < 1e-4, "{name} row {i}: max difference {diff}");
                tokens[i] = logits::argmax(&expected);
                positions[i] += 1;
            }
        }
        assert_eq!(
            together[1].len(),
            9,
            "{name}: the longest row's cache grew by 3"
        );
    }
}

#[test]
fn saved_folders_load_back_with_equal_logits() {
    let root = tempfile::tempdir().unwrap();
    let keep = std::env::var("PROSA_WRITE_SAVED").ok().map(PathBuf::from);
    for name in MODELS {
        let model = load(name);
        let dir = match &keep {
            Some(k) => k.join(name),
            None => root.path().join(name),
        };
        model.save_pretrained(&dir).unwrap();
        let again = DecoderModel::from_pretrained(&dir, &Device::Cpu).unwrap();
        let e = expected(name);
        let before = padded_logits(&model, &e);
        let after = padded_logits(&again, &e);
        assert!(
            max_diff(&before, &after) == 0.0,
            "{name}: saved folder differs"
        );
        assert_eq!(
            again.generation.eos_token_ids,
            model.generation.eos_token_ids
        );
    }
}

#[test]
fn saved_folders_load_in_transformers() {
    // Recorded by `make_decoder_fixtures.py --check-saved DIR` after running the test above
    // with PROSA_WRITE_SAVED=DIR.
    let text = std::fs::read_to_string(fixture("saved_by_prosa_check.json")).unwrap();
    let report: Value = serde_json::from_str(&text).unwrap();
    provenance::assert_current(
        &report,
        "models/decoder",
        "PROSA_WRITE_SAVED=/tmp/saved cargo test -p prosa --test decoders, then \
         python3 crates/prosa/tests/fixtures/make_decoder_fixtures.py --check-saved /tmp/saved",
    );
    for name in MODELS {
        let diff = report[name].as_f64().unwrap();
        assert!(diff < 1e-5, "{name}: transformers' logits differ by {diff}");
    }
}

#[test]
fn errors_are_clear() {
    let model = load("gpt2");
    // A prompt longer than the context.
    let long = vec![vec![5u32; 80]];
    let err = generate(&model, &long, &GenerationConfig::default(), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("80 tokens") && err.contains("context is 64"),
        "{err}"
    );
    // top_p outside (0, 1].
    for bad in [0.0, 1.5] {
        let g = GenerationConfig {
            do_sample: true,
            top_p: bad,
            ..GenerationConfig::default()
        };
        let err = generate(&model, &[vec![5]], &g, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("top_p") && err.contains("(0, 1]"), "{err}");
    }
    // No tokenizer in the folder.
    let err = model.tokenizer().unwrap_err().to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
    // A GGUF file with a tensor type that does not exist.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.gguf");
    std::fs::write(&path, bad_gguf()).unwrap();
    let err = DecoderModel::from_pretrained(&path, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.gguf") && err.contains("GGUF type 99"),
        "{err}"
    );
}

/// A GGUF v3 header with no metadata and one tensor of type 99.
fn bad_gguf() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes()); // tensors
    b.extend_from_slice(&0u64.to_le_bytes()); // metadata entries
    let name = b"token_embd.weight";
    b.extend_from_slice(&(name.len() as u64).to_le_bytes());
    b.extend_from_slice(name);
    b.extend_from_slice(&2u32.to_le_bytes()); // dimensions
    b.extend_from_slice(&32u64.to_le_bytes());
    b.extend_from_slice(&4u64.to_le_bytes());
    b.extend_from_slice(&99u32.to_le_bytes()); // type
    b.extend_from_slice(&0u64.to_le_bytes()); // offset
    b.resize(b.len() + 64, 0);
    b
}

#[test]
fn sliding_window_perplexity_matches_the_transformers_guide() {
    use prosa::models::decoder::lm::perplexity;
    for name in MODELS {
        let model = load(name);
        let e = expected(name);
        let ids: Vec<u32> = serde_json::from_value(e["ppl_ids"].clone()).unwrap();
        let max_length = e["ppl_max_length"].as_u64().unwrap() as usize;
        let stride = e["ppl_stride"].as_u64().unwrap() as usize;
        let ours = perplexity(&model, &ids, max_length, stride, None).unwrap();
        let want = e["ppl"].as_f64().unwrap();
        assert!(
            (ours.perplexity - want).abs() / want < 1e-4,
            "{name}: perplexity {} vs {want}",
            ours.perplexity
        );
        assert_eq!(ours.tokens, ids.len() - 1);
    }
}

#[test]
fn a_small_gpt_learns_a_repeating_text() {
    use prosa::models::decoder::lm::{group_texts, CausalLm};
    use prosa::models::decoder::DecoderConfig;
    use prosa::train::{Trainer, TrainingArgs};
    // "0 1 2 … 9" repeated: after training, greedy decoding continues the count.
    let texts: Vec<Vec<u32>> = (0..60).map(|_| (0..10).collect()).collect();
    let blocks = group_texts(&texts, 16, None);
    let mut config = DecoderConfig::gpt2(12, 32, 2, 4, 32);
    config.dropout = 0.0;
    let lm = CausalLm {
        model: prosa::models::decoder::DecoderModel::new(config, &Device::Cpu, 7).unwrap(),
    };
    let dir = tempfile::tempdir().unwrap();
    let args = TrainingArgs {
        output_dir: dir.path().to_path_buf(),
        num_train_epochs: 30,
        per_device_train_batch_size: 8,
        learning_rate: 3e-3,
        progress: false,
        save_best: false,
        save_last: false,
        ..TrainingArgs::default()
    };
    let trainer = Trainer::new(args, Vec::new()).unwrap();
    let before = trainer.evaluate(&lm, &blocks).unwrap();
    trainer.train(&lm, &blocks, None, false).unwrap();
    let after = trainer.evaluate(&lm, &blocks).unwrap();
    assert!(
        after["eval_perplexity"] < 1.5,
        "{after:?} (before {before:?})"
    );
    assert!(before["eval_perplexity"] > 5.0);
    let out = generate(
        &lm.model,
        &[vec![3, 4, 5]],
        &GenerationConfig {
            max_new_tokens: Some(6),
            ..GenerationConfig::default()
        },
        None,
    )
    .unwrap();
    assert_eq!(out.new_tokens[0], vec![6, 7, 8, 9, 0, 1]);
}

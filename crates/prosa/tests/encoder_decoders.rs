//! Hugging Face encoder–decoders against transformers on tiny random checkpoints: T5 v1.0
//! (ReLU, tied embeddings) and v1.1 (gated GELU, no output rescale)
//! (tests/fixtures/make_t5_fixtures.py), BART and Marian
//! (tests/fixtures/make_bart_marian_fixtures.py) — encoder states within 1e-4 and logits within
//! 1e-4 of the largest logit, for a padded batch; the same token ids as `generate()` for greedy search, beam
//! search with 4 beams and no repeated 2-grams, and a saved folder that loads back the same.

mod provenance;

use std::path::{Path, PathBuf};

use candle_core::Device;
use prosa::generation::{generate, GenerationConfig, Generator};
use prosa::models::seq2seq::bart::BartForConditionalGeneration;
use prosa::models::seq2seq::t5::T5ForConditionalGeneration;
use prosa::nn::ForwardCtx;
use serde_json::Value;

fn folder(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/seq2seq")
        .join(name)
}

fn rows(v: &Value) -> Vec<Vec<u32>> {
    serde_json::from_value(v.clone()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    serde_json::from_value(v.clone()).unwrap()
}

fn worst(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The largest |value|, at least 1: logits are compared within 1e-4 of it (a random T5
/// without the output rescale has logits near 60, where float32 rounding alone reaches 1e-3).
fn largest(values: &[f32]) -> f32 {
    values.iter().fold(1f32, |m, v| m.max(v.abs()))
}

/// transformers' sequences without the decoder start token, cut after the end token.
fn new_tokens(sequences: &[Vec<u32>], eos: u32) -> Vec<Vec<u32>> {
    sequences
        .iter()
        .map(|s| {
            let mut out = Vec::new();
            for &t in &s[1..] {
                out.push(t);
                if t == eos {
                    break;
                }
            }
            out
        })
        .collect()
}

/// What the checks need of a model.
trait UnderTest: Generator + Sized {
    fn load(dir: &Path) -> Self;
    fn save(&self, dir: &Path);
    fn generation(&self) -> &GenerationConfig;
    fn encode(&self, ids: &[Vec<u32>], mask: &[Vec<u32>]) -> Vec<f32>;
    fn logits(
        &self,
        ids: &[Vec<u32>],
        mask: &[Vec<u32>],
        dec: &[Vec<u32>],
        dec_mask: &[Vec<u32>],
    ) -> Vec<f32>;
}

macro_rules! under_test {
    ($model:ty) => {
        impl UnderTest for $model {
            fn load(dir: &Path) -> Self {
                <$model>::from_pretrained(dir, &Device::Cpu).unwrap()
            }
            fn save(&self, dir: &Path) {
                self.save_pretrained(dir).unwrap()
            }
            fn generation(&self) -> &GenerationConfig {
                &self.generation
            }
            fn encode(&self, ids: &[Vec<u32>], mask: &[Vec<u32>]) -> Vec<f32> {
                let t = <$model>::encode(self, ids, mask, &mut ForwardCtx::eval()).unwrap();
                t.flatten_all().unwrap().to_vec1().unwrap()
            }
            fn logits(
                &self,
                ids: &[Vec<u32>],
                mask: &[Vec<u32>],
                dec: &[Vec<u32>],
                dec_mask: &[Vec<u32>],
            ) -> Vec<f32> {
                let t = self
                    .forward(ids, mask, dec, dec_mask, &mut ForwardCtx::eval())
                    .unwrap();
                t.flatten_all().unwrap().to_vec1().unwrap()
            }
        }
    };
}
under_test!(T5ForConditionalGeneration);
under_test!(BartForConditionalGeneration);

fn check<M: UnderTest>(name: &str, eos: u32) {
    let dir = folder(name);
    let f: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let model = M::load(&dir);
    let (sources, mask) = (rows(&f["sources"]), rows(&f["source_mask"]));
    let (decoder, decoder_mask) = (rows(&f["decoder"]), rows(&f["decoder_mask"]));
    let w = worst(&model.encode(&sources, &mask), &floats(&f["encoder"]));
    assert!(w < 1e-4, "{name} encoder: max |difference| {w}");
    let theirs = floats(&f["logits"]);
    let w = worst(
        &model.logits(&sources, &mask, &decoder, &decoder_mask),
        &theirs,
    );
    assert!(
        w < 1e-4 * largest(&theirs),
        "{name} logits: max |difference| {w}"
    );

    let inputs: Vec<Vec<u32>> = sources
        .iter()
        .zip(&mask)
        .map(|(s, m)| {
            s.iter()
                .zip(m)
                .filter(|(_, &m)| m == 1)
                .map(|(&t, _)| t)
                .collect()
        })
        .collect();
    let base = GenerationConfig {
        max_new_tokens: Some(12),
        ..model.generation().clone()
    };
    let beam4 = GenerationConfig {
        num_beams: 4,
        ..base.clone()
    };
    let no_repeat2 = GenerationConfig {
        no_repeat_ngram_size: 2,
        ..base.clone()
    };
    for (key, g) in [
        ("greedy", base),
        ("beam4", beam4),
        ("no_repeat2", no_repeat2),
    ] {
        let out = generate(&model, &inputs, &g, None).unwrap();
        assert_eq!(
            out.new_tokens,
            new_tokens(&rows(&f[key]), eos),
            "{name} {key}"
        );
    }

    if f.get("forced_greedy").is_some() {
        // transformers' forced first token and forced end token at the maximum length.
        let forced = GenerationConfig {
            max_new_tokens: Some(6),
            forced_bos_token_id: Some(5),
            forced_eos_token_id: Some(eos),
            ..model.generation().clone()
        };
        let beams = GenerationConfig {
            num_beams: 4,
            ..forced.clone()
        };
        for (key, g) in [("forced_greedy", forced), ("forced_beam4", beams)] {
            let out = generate(&model, &inputs, &g, None).unwrap();
            assert_eq!(
                out.new_tokens,
                new_tokens(&rows(&f[key]), eos),
                "{name} {key}"
            );
        }
    }

    let saved = tempfile::tempdir().unwrap();
    model.save(saved.path());
    // For tests/fixtures/check_saved_encoder_decoders.py, which loads them in transformers.
    if let Some(keep) = std::env::var_os("PROSA_WRITE_SAVED") {
        model.save(&Path::new(&keep).join(name));
    }
    let again = M::load(saved.path());
    let w = worst(
        &again.logits(&sources, &mask, &decoder, &decoder_mask),
        &theirs,
    );
    assert!(
        w < 1e-4 * largest(&theirs),
        "{name} after save and load: {w}"
    );
}

#[test]
fn saved_folders_load_in_transformers_with_equal_logits() {
    // Recorded by tests/fixtures/check_saved_encoder_decoders.py DIR after running this file's
    // and marian_spm.rs's tests with PROSA_WRITE_SAVED=DIR.
    let text = std::fs::read_to_string(folder("saved_by_prosa_check.json")).unwrap();
    let report: Value = serde_json::from_str(&text).unwrap();
    provenance::assert_current(
        &report,
        "models/seq2seq",
        "PROSA_WRITE_SAVED=/tmp/saved cargo test -p prosa --test encoder_decoders --test \
         marian_spm, then python3 crates/prosa/tests/fixtures/check_saved_encoder_decoders.py \
         /tmp/saved",
    );
    for name in [
        "t5-v1_0",
        "t5-v1_1",
        "bart-tiny",
        "marian-tiny",
        "marian-spm",
    ] {
        let relative = report[name]["relative_logit_difference"].as_f64().unwrap();
        assert!(
            relative < 1e-5,
            "{name}: transformers' logits differ by {relative}"
        );
    }
    assert_eq!(report["marian-spm"]["tokenizer_ids_equal"], true);
}

#[test]
fn t5_v1_0_relu_tied_equals_transformers() {
    check::<T5ForConditionalGeneration>("t5-v1_0", 1);
}

#[test]
fn t5_v1_1_gated_gelu_untied_equals_transformers() {
    check::<T5ForConditionalGeneration>("t5-v1_1", 1);
}

#[test]
fn bart_equals_transformers() {
    check::<BartForConditionalGeneration>("bart-tiny", 2);
}

#[test]
fn marian_equals_transformers() {
    check::<BartForConditionalGeneration>("marian-tiny", 0);
}

/// The text-to-text pipelines on T5 with a tokenizer and T5's `task_specific_params`: the same
/// ids and decoded texts as transformers' `generate()` on the prefixed inputs.
#[test]
fn t5_pipelines_prefix_their_task_and_generate_what_transformers_generates() {
    use prosa::models::seq2seq::hf::HfEncoderDecoder;
    let dir = folder("t5-v1_1");
    let f: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("pipelines.json")).unwrap())
            .unwrap();
    let model = HfEncoderDecoder::from_pretrained(&dir, &Device::Cpu).unwrap();
    assert_eq!(
        model.task_prefix("summarization").as_deref(),
        Some("summarize: ")
    );
    assert_eq!(
        model.task_prefix("translation").as_deref(),
        Some("translate English to German: ")
    );
    let params = serde_json::json!({ "max_new_tokens": 6 });
    for (task, key, prefix) in [
        ("text2text-generation", "generated_text", ""),
        ("summarization", "summary_text", "summarize: "),
        (
            "translation",
            "translation_text",
            "translate English to German: ",
        ),
    ] {
        let case = &f[task];
        let text = case["text"].as_str().unwrap();
        let g = GenerationConfig {
            max_new_tokens: Some(6),
            ..model.generation().clone()
        };
        let ids = model.generate_texts(&[text], prefix, &g).unwrap();
        assert_eq!(
            ids[0].token_ids,
            rows(&serde_json::json!([case["sequence"]]))[0],
            "{task}"
        );
        let pipe = prosa::pipelines::pipeline(task, &dir, &Device::Cpu).unwrap();
        let out = pipe.run(&Value::from(text), &params).unwrap();
        assert_eq!(out[key], case["generated"], "{task}: {out}");
    }
}

#[test]
fn bad_encoder_decoder_configs_name_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string(folder("t5-v1_1").join("config.json")).unwrap();
    std::fs::copy(
        folder("t5-v1_1").join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    for (from, to, wanted) in [
        (
            "\"gated-gelu\"",
            "\"gated-swoosh\"",
            "feed_forward_proj \"gated-swoosh\"",
        ),
        (
            "\"decoder_start_token_id\": 0,",
            "",
            "no decoder_start_token_id",
        ),
    ] {
        let mut config: Value = serde_json::from_str(&original).unwrap();
        if to.is_empty() {
            config
                .as_object_mut()
                .unwrap()
                .remove("decoder_start_token_id");
            config.as_object_mut().unwrap().remove("pad_token_id");
        } else {
            config = serde_json::from_str(&original.replace(from, to)).unwrap();
        }
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        let err = T5ForConditionalGeneration::from_pretrained(dir.path(), &Device::Cpu)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("config.json") && err.contains(wanted), "{err}");
    }
}

/// Text-to-text training with the Trainer (decoder start + labels shifted right, the end token
/// learned): a T5 and a Marian model from the fixtures' configs learn to reverse id sequences
/// and then generate the reversals greedily.
#[test]
fn t5_and_marian_learn_to_reverse_sequences_with_the_trainer() {
    use prosa::models::seq2seq::TranslationExample;
    use prosa::train::{Trainer, TrainingArgs};
    fn learn<M: UnderTest + prosa::train::Trainable<Example = TranslationExample>>(
        model: M,
        eos: u32,
    ) {
        let examples: Vec<TranslationExample> = (0..6u32)
            .map(|i| {
                let ids: Vec<u32> = (0..5).map(|j| 10 + (i * 7 + j * 13) % 80).collect();
                let mut source = ids.clone();
                source.push(eos);
                TranslationExample {
                    source,
                    target: ids.into_iter().rev().collect(),
                }
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let args = TrainingArgs {
            output_dir: dir.path().join("run"),
            num_train_epochs: 120,
            per_device_train_batch_size: 6,
            learning_rate: 3e-3,
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
        let g = GenerationConfig {
            max_new_tokens: Some(8),
            ..model.generation().clone()
        };
        let sources: Vec<Vec<u32>> = examples.iter().map(|e| e.source.clone()).collect();
        let out = generate(&model, &sources, &g, None).unwrap();
        for (e, got) in examples.iter().zip(&out.new_tokens) {
            let mut wanted = e.target.clone();
            wanted.push(eos);
            assert_eq!(got, &wanted);
        }
    }
    let fresh = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(folder(name).join("config.json")).unwrap())
            .unwrap()
    };
    learn(
        T5ForConditionalGeneration::new(fresh("t5-v1_1"), &Device::Cpu, 1).unwrap(),
        1,
    );
    learn(
        BartForConditionalGeneration::new(fresh("marian-tiny"), &Device::Cpu, 1).unwrap(),
        0,
    );
}

#[test]
fn t5_encoder_model_equals_transformers() {
    use prosa::models::seq2seq::t5::encoder::T5EncoderModel;
    let dir = folder("t5-encoder");
    let f: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let model = T5EncoderModel::from_pretrained(&dir, &Device::Cpu).unwrap();
    let states = model
        .forward(
            &rows(&f["sources"]),
            &rows(&f["source_mask"]),
            &mut ForwardCtx::eval(),
        )
        .unwrap();
    let w = worst(
        &states.flatten_all().unwrap().to_vec1().unwrap(),
        &floats(&f["encoder"]),
    );
    assert!(w < 1e-4, "max |difference| {w}");
    // The full model's folder gives the same encoder.
    let full = T5EncoderModel::from_pretrained(&folder("t5-v1_1"), &Device::Cpu).unwrap();
    let again = full
        .forward(
            &rows(&f["sources"]),
            &rows(&f["source_mask"]),
            &mut ForwardCtx::eval(),
        )
        .unwrap();
    let w = worst(
        &again.flatten_all().unwrap().to_vec1().unwrap(),
        &floats(&f["encoder"]),
    );
    assert!(w < 1e-4, "from the full checkpoint: {w}");
}

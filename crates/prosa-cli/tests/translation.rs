//! Unit II from the command line: translation metrics of files, equal to sacrebleu's CLI.

mod common;

use std::path::Path;

use common::{asset, prosa};
use serde_json::Value;

fn fixture() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../prosa/tests/fixtures/translation/sacrebleu.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn write_lines(path: &Path, lines: &Value) {
    let text: Vec<&str> = lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    std::fs::write(path, text.join("\n") + "\n").unwrap();
}

/// `prosa metrics rouge` on one-line pairs of the rouge-score fixture
/// (crates/prosa/tests/fixtures/make_rouge_fixture.py): the mean F-measures of its per-pair
/// scores, with and without stemming; an unknown type is named.
#[test]
fn rouge_of_files_averages_rouge_scores_pairs() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../prosa/tests/fixtures/translation/rouge.json");
    let f: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let pairs: Vec<&Value> = f["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            let one_line = |k: &str| {
                let t = c[k].as_str().unwrap();
                !t.is_empty() && !t.contains('\n')
            };
            one_line("reference") && one_line("hypothesis")
        })
        .take(50)
        .collect();
    assert_eq!(pairs.len(), 50);
    let dir = tempfile::tempdir().unwrap();
    let (hyp, reference) = (dir.path().join("hyp.txt"), dir.path().join("ref.txt"));
    let column = |k: &str| Value::from(pairs.iter().map(|c| c[k].clone()).collect::<Vec<_>>());
    write_lines(&hyp, &column("hypothesis"));
    write_lines(&reference, &column("reference"));
    for (flag, key) in [(None, "plain"), (Some("--use-stemmer"), "stemmed")] {
        let out = prosa()
            .args(["metrics", "rouge", "--hyp", hyp.to_str().unwrap()])
            .args(["--ref", reference.to_str().unwrap(), "--json"])
            .args(flag)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        for t in ["rouge1", "rouge2", "rougeL", "rougeLsum"] {
            let mean = pairs
                .iter()
                .map(|c| c[key][t][2].as_f64().unwrap())
                .sum::<f64>()
                / pairs.len() as f64;
            let ours = got["rouge"][t]["fmeasure"].as_f64().unwrap();
            assert!((ours - mean).abs() < 1e-9, "{t} {key}: {ours} vs {mean}");
        }
    }
    let out = prosa()
        .args(["metrics", "rouge", "--hyp", hyp.to_str().unwrap()])
        .args([
            "--ref",
            reference.to_str().unwrap(),
            "--rouge-types",
            "rouge1,rougeW",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("rougeW"), "{err}");
}

#[test]
fn metrics_of_files_equal_sacrebleu_and_a_short_reference_file_is_named() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (hyp, r1, r2) = (
        dir.path().join("hyp.txt"),
        dir.path().join("ref1.txt"),
        dir.path().join("ref2.txt"),
    );
    write_lines(&hyp, &f["hypotheses"]);
    write_lines(&r1, &f["references"][0]);
    write_lines(&r2, &f["references"][1]);
    for (metric, key) in [("bleu", "bleu"), ("chrf", "chrf")] {
        let out = prosa()
            .args(["metrics", metric, "--hyp", hyp.to_str().unwrap()])
            .args([
                "--ref",
                r1.to_str().unwrap(),
                "--ref",
                r2.to_str().unwrap(),
                "--json",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        let want = f["two_references"][key].as_f64().unwrap();
        assert!(
            (got[key].as_f64().unwrap() - want).abs() < 0.01,
            "{metric}: {got}"
        );
        assert_eq!(
            got["signature"],
            f["two_references"][format!("{key}_signature")]
        );
    }
    std::fs::write(&r2, "only one line\n").unwrap();
    let out = prosa()
        .args(["metrics", "bleu", "--hyp", hyp.to_str().unwrap()])
        .args(["--ref", r1.to_str().unwrap(), "--ref", r2.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("ref2.txt: 1 lines") && err.contains("hyp.txt has 10"),
        "{err}"
    );
}

#[test]
fn the_pinned_catalogues_give_over_30000_pairs_split_by_catalogue() {
    let Some(root) = asset("gettext-pt_BR") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = prosa()
        .args([
            "data",
            "gettext",
            "--root",
            root.to_str().unwrap(),
            "--split",
            "--json",
        ])
        .args(["--out", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let unique = report["report"]["unique"].as_u64().unwrap();
    assert!(unique >= 30_000, "{unique} pairs");
    let groups = |name: &str| -> std::collections::BTreeSet<String> {
        let pairs =
            prosa::data::parallel::read_pairs(&dir.path().join(format!("{name}.tsv"))).unwrap();
        assert_eq!(
            pairs.len() as u64,
            report["files"][name]["pairs"].as_u64().unwrap()
        );
        pairs.into_iter().map(|p| p.group).collect()
    };
    let (train, validation, test) = (groups("train"), groups("validation"), groups("test"));
    assert!(test.len() >= 3, "the test split mixes catalogues: {test:?}");
    assert!(
        train.is_disjoint(&test) && train.is_disjoint(&validation) && validation.is_disjoint(&test)
    );
}

#[test]
fn a_truncated_or_foreign_catalogue_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let messages = dir.path().join("pkg/pt_BR/LC_MESSAGES");
    std::fs::create_dir_all(&messages).unwrap();
    std::fs::write(messages.join("broken.mo"), b"\x95\x04\x12\xde\x00\x00").unwrap();
    let out = prosa()
        .args(["data", "gettext", "--root", dir.path().to_str().unwrap()])
        .args(["--out", dir.path().join("p.tsv").to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("broken.mo") && err.contains("truncated"),
        "{err}"
    );
    std::fs::write(
        messages.join("broken.mo"),
        b"GIF89a: this is a picture, not a catalogue",
    )
    .unwrap();
    let out = prosa()
        .args(["data", "gettext", "--root", dir.path().to_str().unwrap()])
        .args(["--out", dir.path().join("p.tsv").to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.mo") && err.contains("magic number"),
        "{err}"
    );
}

#[test]
fn a_quick_translation_run_scores_the_held_out_catalogues_and_its_folder_translates() {
    let Some(root) = asset("gettext-pt_BR") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pairs = dir.path().join("pairs.tsv");
    let out = prosa()
        .args(["data", "gettext", "--root", root.to_str().unwrap()])
        .args(["--out", pairs.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_dir = dir.path().join("run");
    let out = prosa()
        .args([
            "train",
            "--task",
            "translation",
            "--data",
            pairs.to_str().unwrap(),
        ])
        .args([
            "--max-rows",
            "400",
            "--epochs",
            "1",
            "--hidden",
            "32",
            "--layers",
            "1",
        ])
        .args(["--heads", "2", "--vocab-size", "400", "--batch-size", "16"])
        .args(["--output-dir", run_dir.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    // 400 training pairs at most; a quarter as many held-out pairs, from other catalogues.
    assert!(result["split_sizes"][0].as_u64().unwrap() <= 400);
    assert_eq!(result["split_sizes"][2].as_u64(), Some(100));
    assert!(!result["test_groups"].as_array().unwrap().is_empty());
    for key in ["copy_baseline", "greedy", "beam"] {
        let bleu = result[key]["bleu"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&bleu), "{key}: {bleu}");
    }
    // The copy baseline is what sacrebleu gives the sources themselves: well above 0 on
    // software messages full of options and placeholders.
    assert!(result["copy_baseline"]["bleu"].as_f64().unwrap() > 5.0);
    assert_eq!(result["bleu_curve"].as_array().unwrap().len(), 1);
    let model = run_dir.join("model");
    let history = std::fs::read_to_string(model.join("history.csv")).unwrap();
    assert!(
        history.lines().next().unwrap().contains("eval_bleu"),
        "{history}"
    );
    let translate = |extra: &[&str]| {
        let out = prosa()
            .args(["translate", "--model", model.to_str().unwrap(), "--json"])
            .args(extra)
            .args(["Open the file", "Save changes?"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let greedy = translate(&[]);
    assert_eq!(greedy.as_array().unwrap().len(), 2);
    assert!(greedy[0]["translation_text"].is_string());
    assert_eq!(
        translate(&["--num-beams", "1"]),
        greedy,
        "greedy is deterministic"
    );
    let out = prosa()
        .args([
            "pipeline",
            "translation",
            "--model",
            model.to_str().unwrap(),
            "--json",
        ])
        .args(["Open the file", "Save changes?"])
        .output()
        .unwrap();
    let piped: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(piped, greedy, "the pipeline and the command agree");
}

#[test]
fn a_pairs_file_with_a_missing_column_or_an_empty_side_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = dir.path().join("pairs.tsv");
    for (content, wanted) in [
        ("en\tpt\nOpen\tAbrir\n", "no column named 'source'"),
        (
            "source\ttarget\nOpen\tAbrir\nSave\t\n",
            "line 3: the target side is empty",
        ),
    ] {
        std::fs::write(&pairs, content).unwrap();
        let out = prosa()
            .args([
                "train",
                "--task",
                "translation",
                "--data",
                pairs.to_str().unwrap(),
            ])
            .args(["--output-dir", dir.path().join("run").to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains("pairs.tsv") && err.contains(wanted), "{err}");
    }
}

#[test]
fn an_attention_translator_trains_and_draws_its_alignment() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = dir.path().join("pairs.tsv");
    let mut lines = vec!["source\ttarget\tgroup".to_string()];
    let words = [
        ("file", "arquivo"),
        ("window", "janela"),
        ("page", "página"),
        ("folder", "pasta"),
    ];
    let verbs = [("Open", "Abrir"), ("Close", "Fechar"), ("Save", "Salvar")];
    for (i, (v, vt)) in verbs.iter().enumerate() {
        for (j, (w, wt)) in words.iter().enumerate() {
            lines.push(format!("{v} the {w}\t{vt} o {wt}\tg{}", i * 4 + j));
        }
    }
    std::fs::write(&pairs, lines.join("\n") + "\n").unwrap();
    let run_dir = dir.path().join("run");
    let out = prosa()
        .args(["train", "--task", "translation", "--arch", "rnn-attention"])
        .args([
            "--data",
            pairs.to_str().unwrap(),
            "--validation-split",
            "0.2",
        ])
        .args(["--test-size", "0.2", "--epochs", "2", "--hidden", "16"])
        .args(["--embedding-dim", "8", "--vocab-size", "120"])
        .args(["--output-dir", run_dir.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let figure = dir.path().join("alignment.png");
    let out = prosa()
        .args([
            "explain",
            "attention",
            "--model",
            run_dir.join("model").to_str().unwrap(),
        ])
        .args([
            "--out",
            figure.to_str().unwrap(),
            "--max-new-tokens",
            "6",
            "--json",
        ])
        .arg("Open the file")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alignment: Value = serde_json::from_slice(&out.stdout).unwrap();
    let weights = alignment["weights"].as_array().unwrap();
    assert_eq!(weights.len(), alignment["target"].as_array().unwrap().len());
    for row in weights {
        let total: f64 = row
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_f64().unwrap())
            .sum();
        assert!(
            (total - 1.0).abs() < 1e-4,
            "each row of weights sums to 1: {total}"
        );
    }
    assert!(std::fs::read(&figure).unwrap().starts_with(b"\x89PNG"));
}

#[test]
fn explain_attention_draws_every_head_of_a_bert_folder_or_one_head_and_names_bad_choices() {
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../prosa/tests/fixtures/pipelines/bert-tiny");
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("grid.png");
    let run = |extra: &[&str], out: &Path| {
        prosa()
            .args(["explain", "attention", "--model", model.to_str().unwrap()])
            .args(["--out", out.to_str().unwrap(), "--json"])
            .args(extra)
            .arg("The cat sat on the mat.")
            .output()
            .unwrap()
    };
    let out = run(&[], &grid);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tokens = all["queries"].as_array().unwrap().len();
    assert_eq!(tokens, 9, "[CLS] the cat sat on the mat . [SEP]");
    let layers = all["layers"].as_array().unwrap();
    assert_eq!((layers.len(), layers[0].as_array().unwrap().len()), (2, 4));
    assert!(std::fs::read(&grid).unwrap().starts_with(b"\x89PNG"));

    let one = dir.path().join("one.png");
    let out = run(&["--layer", "1", "--head", "3"], &one);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(head["weights"], layers[1][3]);
    assert!(std::fs::read(&one).unwrap().starts_with(b"\x89PNG"));

    for (extra, wanted) in [
        (&["--layer", "2"][..], "layers 0 to 1"),
        (&["--layer", "0", "--head", "4"][..], "heads 0 to 3"),
        (&["--attention", "cross"][..], "Transformer translator"),
    ] {
        let out = run(extra, &dir.path().join("bad.png"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(wanted),
            "{extra:?}: {err}"
        );
    }
}

#[test]
fn generate_and_the_text_to_text_pipelines_run_a_t5_folder() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../prosa/tests/fixtures/seq2seq/t5-v1_1");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("pipelines.json")).unwrap())
            .unwrap();
    let case = &expected["text2text-generation"];
    let out = prosa()
        .args([
            "generate",
            "--model",
            dir.to_str().unwrap(),
            "--max-new-tokens",
            "6",
            "--json",
        ])
        .args(["--prompt", case["text"].as_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        generated[0]["token_ids"], case["sequence"],
        "as transformers' generate()"
    );
    assert_eq!(generated[0]["text"], case["generated"]);

    let summary = &expected["summarization"];
    let out = prosa()
        .args([
            "pipeline",
            "summarization",
            "--model",
            dir.to_str().unwrap(),
        ])
        .args([
            "--max-new-tokens",
            "6",
            "--json",
            summary["text"].as_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got[0]["summary_text"], summary["generated"], "{got}");
}

#[test]
fn the_translation_pipeline_runs_an_opus_mt_style_marian_folder() {
    // source.spm + target.spm + vocab.json, no tokenizer.json
    // (crates/prosa/tests/fixtures/make_marian_spm_fixture.py).
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../prosa/tests/fixtures/seq2seq/marian-spm");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let out = prosa()
        .args(["pipeline", "translation", "--model", dir.to_str().unwrap()])
        .args(["--max-new-tokens", "8", "--json"])
        .args([
            expected["texts"][0].as_str().unwrap(),
            expected["texts"][1].as_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    for i in 0..2 {
        assert_eq!(
            got[i]["translation_text"], expected["greedy_text"][i],
            "{got}"
        );
    }
    let broken = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "target.spm" {
            std::fs::copy(entry.path(), broken.path().join(entry.file_name())).unwrap();
        }
    }
    let out = prosa()
        .args(["pipeline", "translation", "--model"])
        .arg(broken.path())
        .arg("open the file")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("target.spm"), "{err}");
}

//! Unit III's word2vec from the command line: train, evaluate, map; and the errors of bad
//! corpora and settings.

mod common;

use std::path::Path;

use common::prosa;
use serde_json::Value;

/// Two topics that never share a line, written with capitals and punctuation so that
/// `--simple-preprocess` has work to do.
fn write_corpus(path: &Path) {
    let animals = ["Gato", "cão", "cavalo", "vaca", "ovelha", "cabra"];
    let tools = [
        "martelo", "serrote", "chave", "alicate", "prego", "parafuso",
    ];
    let mut lines = Vec::new();
    for i in 0..1500usize {
        let topic = if i % 2 == 0 { &animals } else { &tools };
        let words: Vec<&str> = (0..8)
            .map(|k| topic[(i / 2 + k * (1 + i % 5)) % 6])
            .collect();
        lines.push(format!("{}.", words.join(", ")));
    }
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn train_then_evaluate_and_map_the_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let (corpus, vectors) = (dir.path().join("corpus.txt"), dir.path().join("v.bin"));
    write_corpus(&corpus);
    let trained = json(
        &prosa()
            .args(["vectors", "train", "--corpus"])
            .arg(&corpus)
            .arg("--out")
            .arg(&vectors)
            .args(["--simple-preprocess", "--arch", "skipgram", "--dim", "16"])
            .args([
                "--min-count",
                "1",
                "--epochs",
                "3",
                "--threads",
                "1",
                "--json",
            ])
            .output()
            .unwrap(),
    );
    // Lower-cased: "Gato" became "gato"; 12 words in all.
    assert_eq!(trained["report"]["vocabulary"], 12);
    assert_eq!(trained["report"]["corpus_words"], 12_000);

    // Analogies within a topic and pairs whose similarity follows the topics.
    let analogies = dir.path().join("questions.txt");
    std::fs::write(
        &analogies,
        ": animals\ngato cão vaca ovelha\ncão gato ovelha vaca\n: unknown\ngato cão zebra leão\n",
    )
    .unwrap();
    let pairs = dir.path().join("pairs.tsv");
    std::fs::write(
        &pairs,
        "# w1\tw2\tscore\ngato\tcão\t9\nmartelo\tprego\t9\ngato\tmartelo\t1\ncão\tserrote\t1\nzebra\tgato\t3\n",
    )
    .unwrap();
    let report = json(
        &prosa()
            .args(["vectors", "evaluate", "--vectors"])
            .arg(&vectors)
            .arg("--analogies")
            .arg(&analogies)
            .arg("--similarity")
            .arg(&pairs)
            .arg("--json")
            .output()
            .unwrap(),
    );
    let sections = report["analogies"]["sections"].as_array().unwrap();
    assert_eq!(sections[0]["section"], "animals");
    assert_eq!(sections[0]["total"], 2);
    assert_eq!(sections[1]["total"], 0);
    assert_eq!(report["analogies"]["oov_questions"], 1);
    assert_eq!(report["similarity"]["pairs"], 4);
    assert_eq!(report["similarity"]["oov_pairs"], 1);
    // Human ranks (3.5, 3.5, 1.5, 1.5) against the model's: with both same-topic pairs above
    // both cross-topic ones, Spearman's ρ is 2/√5 whatever the order inside each group.
    let rho = report["similarity"]["spearman"].as_f64().unwrap();
    assert!((rho - 2.0 / 5f64.sqrt()).abs() < 1e-9, "{report}");

    let map = dir.path().join("map.png");
    let points = json(
        &prosa()
            .args(["vectors", "plot", "--vectors"])
            .arg(&vectors)
            .args(["--words", "gato,cão,vaca", "martelo", "prego", "--out"])
            .arg(&map)
            .arg("--json")
            .output()
            .unwrap(),
    );
    assert_eq!(points.as_array().unwrap().len(), 5);
    // The first component separates the topics.
    let x = |i: usize| points[i]["x"].as_f64().unwrap();
    assert!(
        x(0).signum() == x(1).signum() && x(0).signum() != x(3).signum(),
        "{points}"
    );
    assert_eq!(&std::fs::read(&map).unwrap()[1..4], b"PNG");
}

#[test]
fn bad_corpora_and_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (empty, corpus) = (dir.path().join("empty.txt"), dir.path().join("c.txt"));
    std::fs::write(&empty, "\n  \n").unwrap();
    write_corpus(&corpus);
    let out = dir.path().join("v.bin");
    let fails = |extra: &[&str], file: &Path, needle: &str| {
        let o = prosa()
            .args(["vectors", "train", "--corpus"])
            .arg(file)
            .arg("--out")
            .arg(&out)
            .args(extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && stderr.contains(needle),
            "{needle}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    };
    fails(&[], &empty, "no words");
    fails(&["--min-count", "100000"], &corpus, "min_count");
    fails(&["--dim", "0"], &corpus, "dim");
    fails(&["--negative", "0"], &corpus, "--hs");
    fails(&[], &dir.path().join("missing.txt"), "missing.txt");
    let o = prosa()
        .args(["vectors", "evaluate", "--vectors", "nowhere.bin"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("--analogies"));
}

//! ROUGE against Google's rouge-score and the Porter stemmer against NLTK's
//! (tests/fixtures/make_rouge_fixture.py): every stem equal, and precision, recall and
//! F-measure of rouge1/2/L/Lsum within 1e-6 for 240 pairs with and without stemming, and for
//! several references.

use prosa::metrics::porter;
use prosa::metrics::rouge::{self, RougeScore, DEFAULT_TYPES};
use serde_json::Value;

fn fixture() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/translation/rouge.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn assert_close(ours: &RougeScore, theirs: &Value, what: &str) {
    let theirs: Vec<f64> = serde_json::from_value(theirs.clone()).unwrap();
    for (a, b) in [ours.precision, ours.recall, ours.fmeasure]
        .iter()
        .zip(&theirs)
    {
        assert!((a - b).abs() < 1e-6, "{what}: {ours:?} vs {theirs:?}");
    }
}

#[test]
fn porter_stems_equal_nltks() {
    let f = fixture();
    let stems = f["stems"].as_object().unwrap();
    assert!(stems.len() > 3000);
    let wrong: Vec<String> = stems
        .iter()
        .filter(|(w, s)| porter::stem(w) != s.as_str().unwrap())
        .map(|(w, s)| format!("{w}: {} (NLTK {s})", porter::stem(w)))
        .collect();
    assert!(wrong.is_empty(), "{wrong:?}");
}

#[test]
fn rouge_equals_rouge_score_with_and_without_stemming() {
    let f = fixture();
    for case in f["pairs"].as_array().unwrap() {
        let (r, h) = (
            case["reference"].as_str().unwrap(),
            case["hypothesis"].as_str().unwrap(),
        );
        for (key, stem) in [("plain", false), ("stemmed", true)] {
            let ours = rouge::score(r, h, &DEFAULT_TYPES, stem).unwrap();
            for t in DEFAULT_TYPES {
                assert_close(&ours[t], &case[key][t], &format!("{t} {key} {r:?} / {h:?}"));
            }
        }
    }
}

#[test]
fn several_references_keep_the_best_and_corpus_scores_average_pairs() {
    let f = fixture();
    let m = &f["multi"];
    let refs: Vec<&str> = m["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let hyp = m["hypothesis"].as_str().unwrap();
    let ours = rouge::score_multi(&refs, hyp, &DEFAULT_TYPES, true).unwrap();
    for t in DEFAULT_TYPES {
        assert_close(&ours[t], &m["stemmed"][t], t);
    }
    // The corpus score is the mean of the pairs' scores.
    let pairs = f["pairs"].as_array().unwrap();
    let hyps: Vec<&str> = pairs
        .iter()
        .map(|c| c["hypothesis"].as_str().unwrap())
        .collect();
    let refs: Vec<&str> = pairs
        .iter()
        .map(|c| c["reference"].as_str().unwrap())
        .collect();
    let corpus = rouge::corpus_rouge(&hyps, &[refs], &["rouge1"], false).unwrap();
    let mean: f64 = pairs
        .iter()
        .map(|c| c["plain"]["rouge1"][2].as_f64().unwrap())
        .sum::<f64>()
        / pairs.len() as f64;
    assert!((corpus["rouge1"].fmeasure - mean).abs() < 1e-9);
    assert!(rouge::corpus_rouge(&hyps, &[vec!["one"]], &["rouge1"], false).is_err());
    assert!(rouge::score("a", "a", &["rouge0"], false).is_err());
}

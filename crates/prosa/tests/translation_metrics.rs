//! BLEU and chrF against sacrebleu 2.6.0 (tests/fixtures/make_translation_metrics_fixture.py):
//! Portuguese segments with accents, punctuation, numbers, an empty hypothesis, an HTML entity,
//! and one or two references — corpus scores, statistics, signatures and sentence scores within
//! 0.01.

use prosa::metrics::bleu::{bleu_signature, corpus_bleu, sentence_bleu};
use prosa::metrics::chrf::{chrf_signature, corpus_chrf, sentence_chrf};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/translation/sacrebleu.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

fn close(ours: f64, theirs: &Value, what: &str) {
    let theirs = theirs.as_f64().unwrap();
    assert!(
        (ours - theirs).abs() < 0.01,
        "{what}: prosa {ours}, sacrebleu {theirs}"
    );
}

#[test]
fn corpus_and_sentence_scores_equal_sacrebleu_with_one_and_two_references() {
    let f = fixture();
    let hyps = strings(&f["hypotheses"]);
    let all_refs: Vec<Vec<&str>> = f["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(strings)
        .collect();
    for (case, refs) in [
        ("one_reference", all_refs[..1].to_vec()),
        ("two_references", all_refs.clone()),
    ] {
        let want = &f[case];
        let bleu = corpus_bleu(&hyps, &refs).unwrap();
        close(bleu.score, &want["bleu"], &format!("{case} BLEU"));
        assert_eq!(
            serde_json::to_value(bleu.counts).unwrap(),
            want["counts"],
            "{case}"
        );
        assert_eq!(
            serde_json::to_value(bleu.totals).unwrap(),
            want["totals"],
            "{case}"
        );
        assert_eq!(
            (bleu.sys_len as u64, bleu.ref_len as u64),
            (
                want["sys_len"].as_u64().unwrap(),
                want["ref_len"].as_u64().unwrap()
            )
        );
        close(bleu.bp, &want["bp"], &format!("{case} BP"));
        assert_eq!(bleu_signature(refs.len()), want["bleu_signature"]);
        let chrf = corpus_chrf(&hyps, &refs).unwrap();
        close(chrf.score, &want["chrf"], &format!("{case} chrF"));
        assert_eq!(chrf_signature(refs.len()), want["chrf_signature"]);
        for (i, hyp) in hyps.iter().enumerate() {
            let segment_refs: Vec<&str> = refs.iter().map(|r| r[i]).collect();
            close(
                sentence_bleu(hyp, &segment_refs).score,
                &want["sentence_bleu"][i],
                &format!("{case} sentence BLEU {i}"),
            );
            close(
                sentence_chrf(hyp, &segment_refs).score,
                &want["sentence_chrf"][i],
                &format!("{case} sentence chrF {i}"),
            );
        }
    }
}

#[test]
fn reference_streams_of_another_length_are_errors() {
    let err = corpus_bleu(&["a", "b"], &[vec!["a"]])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("reference stream 1 has 1 lines") && err.contains("2 hypotheses"),
        "{err}"
    );
    assert!(corpus_chrf(&["a"], &[]).is_err());
}

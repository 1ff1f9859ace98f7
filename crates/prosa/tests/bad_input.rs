//! Bad input gets a clear error naming the file and the line or field — never a panic.
//!
//! Empty text rows are skipped and counted (not an error); everything else here is an error.

use std::path::Path;

use candle_core::Device;
use prosa::data::{read_file, Encoding, LabelMap, ReadOptions};
use prosa::models::bow::BowClassifier;
use prosa::models::{load_classifier, TextClassifier};
use prosa::tasks::text_classification::evaluate;
use prosa::text::{Vectorizer, VectorizerConfig};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn read_err(path: &Path, options: &ReadOptions) -> String {
    read_file(path, options).unwrap_err().to_string()
}

#[test]
fn missing_column_names_the_file_and_the_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "d.csv", b"tweet,label\nhello,pos\n");
    let err = read_err(&path, &ReadOptions::default());
    assert_eq!(
        err,
        format!(
            "{}: no column named 'text' (columns are: tweet, label)",
            path.display()
        )
    );
}

/// A UTF-8 byte-order mark (as Excel writes CSV) is not part of the first column's name; in
/// Latin-1 files its bytes would be text, so it is only stripped from UTF-8.
#[test]
fn a_utf8_byte_order_mark_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("bom.csv", "\u{feff}text,label\nolá,pos\n".as_bytes()),
        ("bom.tsv", "\u{feff}text\tlabel\nolá\tpos\n".as_bytes()),
        (
            "bom.jsonl",
            "\u{feff}{\"text\": \"olá\", \"label\": \"pos\"}\n".as_bytes(),
        ),
    ] {
        let path = write(dir.path(), name, bytes);
        let data = read_file(&path, &ReadOptions::default()).unwrap();
        assert_eq!(data.texts(), ["olá"], "{name}");
    }
}

#[test]
fn empty_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in [
        ("empty.csv", &b""[..]),
        ("header.csv", b"text,label\n"),
        ("blank.jsonl", b"\n\n"),
    ] {
        let path = write(dir.path(), name, body);
        let err = read_err(&path, &ReadOptions::default());
        assert_eq!(
            err,
            format!("{}: the file is empty (no data rows)", path.display())
        );
    }
}

#[test]
fn wrong_encoding_names_the_line_and_suggests_latin1() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "d.csv",
        b"text,label\nfine,a\ncaf\xe9 com leite,b\n",
    );
    let err = read_err(&path, &ReadOptions::default());
    assert_eq!(
        err,
        format!(
            "{}, line 3: not valid utf-8 text (try --encoding latin-1)",
            path.display()
        )
    );
    let latin = ReadOptions {
        encoding: Encoding::Latin1,
        ..Default::default()
    };
    let data = read_file(&path, &latin).unwrap();
    assert_eq!(data.examples[1].text, "café com leite");
}

#[test]
fn empty_text_rows_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "d.csv",
        b"text,label\nfirst,a\n  ,b\n,a\nlast,b\n",
    );
    let data = read_file(&path, &ReadOptions::default()).unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data.skipped_empty, 2);
    assert_eq!(data.examples[1].line, 5);
}

#[test]
fn malformed_rows_name_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "d.csv", b"text,label\nok,a\ntoo,many,fields\n");
    let err = read_err(&path, &ReadOptions::default());
    assert_eq!(
        err,
        format!(
            "{}, line 3: expected 2 fields like the header, found 3",
            path.display()
        )
    );
    let path = write(dir.path(), "d.csv", b"text,label\nno label,\n");
    let err = read_err(&path, &ReadOptions::default());
    assert_eq!(
        err,
        format!("{}, line 2: the label is empty", path.display())
    );
    let path = write(
        dir.path(),
        "d.jsonl",
        b"{\"text\": \"a\", \"label\": 1}\n{\"text\": oops}\n",
    );
    let err = read_err(&path, &ReadOptions::default());
    assert!(
        err.starts_with(&format!("{}, line 2: invalid JSON", path.display())),
        "{err}"
    );
    // A field opened with a quote and never closed swallows the rest of the file.
    let path = write(
        dir.path(),
        "q.csv",
        b"text,label\nok,a\n\"unterminated,b\nmore,c\n",
    );
    let err = read_err(&path, &ReadOptions::default());
    assert_eq!(
        err,
        format!(
            "{}, line 3: a quoted field opened on this line is never closed (unterminated quote)",
            path.display()
        )
    );
    // Quoted newlines and doubled quotes are fine (RFC 4180).
    let path = write(
        dir.path(),
        "rfc.csv",
        b"text,label\n\"two\nlines, \"\"quoted\"\"\",a\nplain,b\n",
    );
    let read = read_file(&path, &ReadOptions::default()).unwrap();
    assert_eq!(read.examples[0].text, "two\nlines, \"quoted\"");
    // JSONL: a line that is not an object, and a text that is not a string, name their line.
    for (body, message) in [
        (&b"[1, 2]\n"[..], "line 1: expected a JSON object"),
        (
            b"{\"text\": \"a\", \"label\": 1}\n{\"text\": 5, \"label\": 1}\n",
            "line 2: field 'text' is not a string",
        ),
    ] {
        let path = write(dir.path(), "e.jsonl", body);
        let err = read_err(&path, &ReadOptions::default());
        assert_eq!(err, format!("{}, {message}", path.display()));
    }
    let path = write(dir.path(), "d.jsonl", b"{\"text\": \"a\"}\n");
    let err = read_err(&path, &ReadOptions::default());
    assert_eq!(
        err,
        format!(
            "{}: no column named 'label' (columns are: text)",
            path.display()
        )
    );
}

#[test]
fn tsv_and_jsonl_with_integer_labels_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "d.tsv", b"label\ttext\n1\tum\n0\tdois\n");
    let data = read_file(&path, &ReadOptions::default()).unwrap();
    assert_eq!(data.label_map().unwrap().names(), ["0", "1"]);
    let path = write(
        dir.path(),
        "d.jsonl",
        b"{\"text\": \"um\", \"label\": 10}\n{\"text\": \"dois\", \"label\": 2}\n",
    );
    let data = read_file(&path, &ReadOptions::default()).unwrap();
    assert_eq!(data.label_map().unwrap().names(), ["2", "10"]);
}

fn tiny_model(dir: &Path) -> std::path::PathBuf {
    let texts = ["good movie", "great fun", "bad movie", "awful boring"];
    let vectorizer = Vectorizer::fit(VectorizerConfig::default(), &texts).unwrap();
    let labels = LabelMap::fit(["neg", "pos"]);
    let model = BowClassifier::new(vectorizer, labels, 0, 0.0, None, 1, &Device::Cpu).unwrap();
    let out = dir.join("model");
    model.save(&out).unwrap();
    out
}

#[test]
fn unknown_label_at_evaluation_names_file_line_and_known_labels() {
    let dir = tempfile::tempdir().unwrap();
    let model = load_classifier(&tiny_model(dir.path()), &Device::Cpu).unwrap();
    let path = write(
        dir.path(),
        "test.csv",
        b"text,label\ngood fun,pos\nmeh,neutral\n",
    );
    let data = read_file(&path, &ReadOptions::default()).unwrap();
    let err = evaluate(model.as_ref(), &data, &dir.path().join("eval"))
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        err,
        format!(
            "{}, line 3: unknown label 'neutral' (the model knows: neg, pos)",
            path.display()
        )
    );
}

#[test]
fn a_saved_model_loads_back_with_equal_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let texts = ["good movie", "great fun", "bad movie", "awful boring"];
    let vectorizer = Vectorizer::fit(VectorizerConfig::default(), &texts).unwrap();
    let model = BowClassifier::new(
        vectorizer,
        LabelMap::fit(["neg", "pos"]),
        4,
        0.1,
        None,
        3,
        &Device::Cpu,
    )
    .unwrap();
    model.save(&dir.path().join("m")).unwrap();
    let back = load_classifier(&dir.path().join("m"), &Device::Cpu).unwrap();
    let probe = ["good fun", "boring movie", "unseen words"];
    assert_eq!(
        model.predict_proba(&probe).unwrap(),
        back.predict_proba(&probe).unwrap()
    );
    for file in ["config.json", "model.safetensors", "vectorizer.json"] {
        assert!(dir.path().join("m").join(file).exists(), "{file}");
    }
}

#[test]
fn corrupt_or_mismatched_model_folders_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let err = |p: &Path| load_classifier(p, &Device::Cpu).err().unwrap().to_string();

    let missing = dir.path().join("nope");
    assert!(
        err(&missing).contains("nope: not a folder"),
        "{}",
        err(&missing)
    );

    let m = tiny_model(dir.path());
    let config = std::fs::read_to_string(m.join("config.json")).unwrap();
    let weights = std::fs::read(m.join("model.safetensors")).unwrap();

    std::fs::remove_file(m.join("config.json")).unwrap();
    assert_eq!(
        err(&m),
        format!("{}: file not found", m.join("config.json").display())
    );

    std::fs::write(m.join("config.json"), "{ not json").unwrap();
    assert!(err(&m).starts_with(&format!("{}: invalid", m.join("config.json").display())));

    std::fs::write(m.join("config.json"), config.replace("prosa-bow", "gpt-17")).unwrap();
    assert!(
        err(&m).contains(
            "unknown architecture model_type = \"gpt-17\" (prosa knows: prosa-bow, prosa-rnn, prosa-transformer-classifier, prosa-elmo-classifier, prosa-ulmfit-classifier, bert, distilbert, roberta)"
        ),
        "{}",
        err(&m)
    );

    std::fs::write(m.join("config.json"), &config).unwrap();
    std::fs::write(m.join("model.safetensors"), &weights[..weights.len() / 2]).unwrap();
    let e = err(&m);
    assert!(
        e.contains("model.safetensors") && e.contains("truncated or corrupt"),
        "{e}"
    );

    // A config that promises another number of classes: the tensors no longer fit.
    std::fs::write(m.join("model.safetensors"), &weights).unwrap();
    let three = config
        .replace("\"num_labels\": 2", "\"num_labels\": 3")
        .replace("\"1\": \"pos\"", "\"1\": \"pos\", \"2\": \"meh\"");
    std::fs::write(m.join("config.json"), three).unwrap();
    let e = err(&m);
    assert!(
        e.contains("tensor 'bow.weight'") && e.contains("but the model expects"),
        "{e}"
    );

    // A hidden layer the file does not have: a missing tensor.
    std::fs::write(
        m.join("config.json"),
        config.replace("\"hidden_size\": 0", "\"hidden_size\": 4"),
    )
    .unwrap();
    let e = err(&m);
    assert!(
        e.contains("tensor 'bow.weight'") && e.contains("shape"),
        "{e}"
    );

    std::fs::write(m.join("config.json"), &config).unwrap();
    std::fs::remove_file(m.join("vectorizer.json")).unwrap();
    assert_eq!(
        err(&m),
        format!("{}: file not found", m.join("vectorizer.json").display())
    );
}

#[test]
fn a_saved_recurrent_model_loads_back_with_equal_predictions() {
    use prosa::models::rnn::{Pooling, RnnClassifier, RnnConfig};
    use prosa::nn::recurrent::CellKind;
    use prosa::text::{Side, WordTokenizer, WordTokenizerConfig};
    let dir = tempfile::tempdir().unwrap();
    let mut tokenizer = WordTokenizer::new(WordTokenizerConfig::default());
    tokenizer.fit_on_texts(&["good movie", "great fun", "bad movie", "awful boring"]);
    let labels = LabelMap::fit(["neg", "pos"]);
    let config = RnnConfig {
        model_type: prosa::models::rnn::MODEL_TYPE.into(),
        architectures: vec![],
        cell: CellKind::Gru,
        vocab_size: tokenizer.num_ids(),
        embedding_dim: 6,
        hidden_size: 5,
        num_layers: 2,
        bidirectional: true,
        dropout: 0.1,
        pooling: Pooling::Max,
        max_len: 4,
        padding: Side::Pre,
        truncating: Side::Pre,
        freeze_embeddings: false,
        num_labels: 2,
        id2label: labels.id2label(),
        label2id: Default::default(),
        class_weights: None,
    };
    let model = RnnClassifier::new(config, tokenizer, labels, None, 3, &Device::Cpu).unwrap();
    model.save(&dir.path().join("m")).unwrap();
    let back = load_classifier(&dir.path().join("m"), &Device::Cpu).unwrap();
    let probe = ["good fun movie", "boring", "unseen words only"];
    let (a, b) = (
        model.predict_proba(&probe).unwrap(),
        back.predict_proba(&probe).unwrap(),
    );
    assert_eq!(a, b);
    assert!(a
        .iter()
        .all(|p| p.len() == 2 && (p[0] + p[1] - 1.0).abs() < 1e-6));
    assert!(dir.path().join("m/word_tokenizer.json").exists());
}

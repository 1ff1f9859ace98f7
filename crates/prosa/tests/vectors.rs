//! Word vectors: the file formats, their errors, similarity queries and the embedding matrix.

use std::path::{Path, PathBuf};

use prosa::text::{WordTokenizer, WordTokenizerConfig};
use prosa::vectors::{VectorsFormat, WordVectors};

fn toy() -> WordVectors {
    let words = ["rei", "rainha", "homem", "mulher", "carro"]
        .map(String::from)
        .to_vec();
    #[rustfmt::skip]
    let values = vec![
        0.9, 0.8, 0.1,
        0.9, 0.1, 0.8,
        0.1, 0.9, 0.0,
        0.1, 0.1, 0.9,
        -0.5, 0.0, 0.1,
    ];
    WordVectors::from_parts(words, 3, values, Path::new("toy")).unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn analogy_and_neighbours_follow_gensim() {
    let v = toy();
    let best = v.most_similar(&["rei", "mulher"], &["homem"], 1).unwrap();
    assert_eq!(best[0].word, "rainha");
    let near = v.neighbors("rei", 2).unwrap();
    assert_eq!(near.len(), 2);
    assert!(
        near.iter().all(|s| s.word != "rei"),
        "the query word is excluded"
    );
    assert!(near[0].similarity >= near[1].similarity);
    let err = v.neighbors("gato", 3).unwrap_err().to_string();
    assert!(err.contains("'gato' is not in the vocabulary"), "{err}");
}

#[test]
fn every_format_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let v = toy();
    let bin = dir.path().join("v.bin");
    v.save_word2vec_binary(&bin).unwrap();
    let text = "5 3\nrei 0.9 0.8 0.1\nrainha 0.9 0.1 0.8\nhomem 0.1 0.9 0\nmulher 0.1 0.1 0.9\ncarro -0.5 0 0.1\n";
    let w2v = write(dir.path(), "v.txt", text.as_bytes());
    let glove = write(
        dir.path(),
        "g.txt",
        text.split_once('\n').unwrap().1.as_bytes(),
    );
    for (path, format) in [
        (&bin, VectorsFormat::Word2vecBinary),
        (&w2v, VectorsFormat::Word2vecText),
        (&glove, VectorsFormat::GloveText),
    ] {
        for f in [format, VectorsFormat::Auto] {
            let back = WordVectors::load(path, f, None).unwrap();
            assert_eq!(back.len(), 5, "{path:?} {f:?}");
            assert_eq!(back.get("mulher").unwrap(), v.get("mulher").unwrap());
        }
    }
}

#[test]
fn malformed_files_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "dim.txt",
        b"2 3\nrei 0.1 0.2 0.3\nrainha 0.1 0.2\n",
    );
    let err = WordVectors::load(&p, VectorsFormat::Auto, None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "{}, line 3: 'rainha' has 2 values, expected 3 (wrong dimension)",
            p.display()
        )
    );

    let bin = dir.path().join("v.bin");
    toy().save_word2vec_binary(&bin).unwrap();
    let bytes = std::fs::read(&bin).unwrap();
    let cut = write(dir.path(), "cut.bin", &bytes[..bytes.len() - 7]);
    let err = WordVectors::load(&cut, VectorsFormat::Word2vecBinary, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("truncated: the header promises 5 vectors, entry 5 of 5 is incomplete"),
        "{err}"
    );

    // A 20-byte file whose header claims 10^12 vectors is an error, not a 24 TB allocation.
    let huge = write(dir.path(), "huge.bin", b"1000000000000 50\nabc");
    let err = WordVectors::load(&huge, VectorsFormat::Word2vecBinary, None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "{}, line 1: the header promises 1000000000000 vectors of 50 values, more than the \
             file's 20 bytes can hold",
            huge.display()
        )
    );
    // The same for an .npy matrix whose header shape is larger than the file.
    let mut npy = Vec::new();
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 50), }";
    let padded = format!("{header:<117}\n");
    npy.extend_from_slice(b"\x93NUMPY\x01\x00");
    npy.extend_from_slice(&(padded.len() as u16).to_le_bytes());
    npy.extend_from_slice(padded.as_bytes());
    npy.extend_from_slice(&[0u8; 16]);
    let npy_path = write(dir.path(), "huge.npy", &npy);
    let index = write(dir.path(), "huge.txt", b"a\nb\n");
    let err = WordVectors::load(&npy_path, VectorsFormat::Auto, Some(&index))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("shape (1000000000, 50) does not fit the file's 144 bytes"),
        "{err}"
    );

    for (name, body) in [("empty.txt", &b""[..]), ("zero.txt", b"0 50\n")] {
        let p = write(dir.path(), name, body);
        let err = WordVectors::load(&p, VectorsFormat::Word2vecText, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty vocabulary"), "{name}: {err}");
    }
    let p = write(dir.path(), "short.txt", b"3 2\na 1 2\nb 3 4\n");
    let err = WordVectors::load(&p, VectorsFormat::Auto, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the header promises 3 vectors, the file has 2"),
        "{err}"
    );
    let p = write(dir.path(), "nan.txt", b"a 1 x\n");
    let err = WordVectors::load(&p, VectorsFormat::GloveText, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 1: 'x' is not a number"), "{err}");
}

#[test]
fn the_embedding_matrix_reports_missing_words_and_is_seeded() {
    let mut tk = WordTokenizer::new(WordTokenizerConfig::default());
    tk.fit_on_texts(&["o rei e a rainha", "o carro"]);
    let v = toy();
    let m = v.embedding_matrix(&tk, 1);
    assert_eq!((m.num_ids, m.dim), (7, 3));
    assert_eq!(m.found, 3);
    assert_eq!(m.missing, ["o", "e", "a"]);
    assert!(m.values[..3].iter().all(|&x| x == 0.0), "row 0 is padding");
    let rei = tk.word_index("rei").unwrap() as usize;
    assert_eq!(&m.values[rei * 3..rei * 3 + 3], v.get("rei").unwrap());
    assert_eq!(m.values, v.embedding_matrix(&tk, 1).values);
    assert_ne!(m.values, v.embedding_matrix(&tk, 2).values);
}

#[test]
fn the_word_map_is_scikit_learns_pca_and_draws_a_png() {
    // Expected coordinates: fixtures/make_vectors_evaluation_fixture.py (numpy SVD with
    // scikit-learn's sign convention).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/fixtures/vectors/gensim_evaluation.json"))
            .unwrap(),
    )
    .unwrap();
    let pca = &fixture["pca"];
    let words: Vec<&str> = pca["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    let vectors = WordVectors::load(
        &root.join("../../data/vectors/glove.6B.50d.top20k.bin"),
        VectorsFormat::Auto,
        None,
    )
    .unwrap();
    let map = vectors.pca_map(&words).unwrap();
    for (i, point) in map.iter().enumerate() {
        let (x, y) = (
            pca["x"][i].as_f64().unwrap() as f32,
            pca["y"][i].as_f64().unwrap() as f32,
        );
        assert!(
            (point.x - x).abs() < 1e-3 && (point.y - y).abs() < 1e-3,
            "{}: ({}, {}) vs ({x}, {y})",
            point.word,
            point.x,
            point.y
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("map.png");
    let points: Vec<(String, f32, f32)> = map.iter().map(|p| (p.word.clone(), p.x, p.y)).collect();
    prosa::report::word_map_png(&points, "GloVe", &png).unwrap();
    assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
}

//! The fuzz targets: one per loader. Each writes nothing itself; it reads the mutated input
//! from the file the worker wrote and must end in `Ok` or a typed error — never a panic, an
//! abort, a huge allocation or a hang.

use std::path::{Path, PathBuf};

use candle_core::Device;
use prosa::data::{self, Format, ReadOptions};
use prosa::models::decoder::chat::{apply_chat_template, ChatMessage};
use prosa::models::decoder::DecoderModel;
use prosa::models::encoder::EncoderModel;
use prosa::models::seq2seq::AnyTranslator;
use prosa::nn::ForwardCtx;
use prosa::text::sentencepiece::{from_spm_file, SpmOptions};
use prosa::vectors::{VectorsFormat, WordVectors};

/// Where a target's input and fixtures live for one worker.
pub struct Workspace {
    /// A scratch folder.
    pub dir: PathBuf,
    /// The repository root (fixtures are copied from it).
    pub root: PathBuf,
    /// The device models load on.
    pub device: Device,
}

/// What a target reads: the input file, and the seed it was mutated from (its file stem picks
/// the fixture of targets that have several, such as `config`).
pub struct Input<'a> {
    /// The mutated file.
    pub path: &'a Path,
    /// The seed's file stem.
    pub seed: &'a str,
}

/// One loader under test.
pub struct Target {
    /// Name on the command line and folder under `fuzz/seeds/` and `fuzz/findings/`.
    pub name: &'static str,
    /// Where the input is written, relative to the workspace (the extension matters to
    /// loaders that look at it).
    pub file: fn(&Input) -> String,
    /// Text formats get text-aware mutations too.
    pub text: bool,
    /// Loads the input; `true` when it was accepted (for statistics only).
    pub run: fn(&Workspace, &Input) -> bool,
}

macro_rules! target {
    ($name:literal, $file:literal, $text:literal, $run:expr) => {
        Target {
            name: $name,
            file: |_| $file.to_string(),
            text: $text,
            run: $run,
        }
    };
}

/// Every target, in the order `prosa-fuzz all` runs them.
pub const TARGETS: &[Target] = &[
    target!("csv", "input.csv", true, |_, i| table(i.path, Format::Csv)),
    target!("tsv", "input.tsv", true, |_, i| table(i.path, Format::Tsv)),
    target!("jsonl", "input.jsonl", true, |_, i| table(
        i.path,
        Format::Jsonl
    )),
    target!("text", "input.txt", true, |_, i| table(
        i.path,
        Format::Text
    )),
    target!("conll", "input.conll", true, |_, i| {
        data::conll::read_conll(i.path).is_ok()
    }),
    target!("word2vec-text", "input.vec", true, |_, i| {
        vectors_of(i.path, VectorsFormat::Word2vecText, None)
    }),
    target!("word2vec-binary", "input.bin", false, |_, i| {
        vectors_of(i.path, VectorsFormat::Word2vecBinary, None)
    }),
    target!("glove", "input.glove.txt", true, |_, i| {
        vectors_of(i.path, VectorsFormat::GloveText, None)
    }),
    target!("npy", "input.npy", false, |w, i| {
        vectors_of(i.path, VectorsFormat::Npy, Some(&w.dir.join("index.txt")))
    }),
    target!("parquet", "index.parquet", false, |w, i| {
        vectors_of(&w.dir.join("matrix.npy"), VectorsFormat::Npy, Some(i.path))
    }),
    target!("safetensors", "input.safetensors", false, |w, i| {
        prosa::train::load_safetensors(i.path, &w.device).is_ok()
    }),
    Target {
        name: "config",
        file: |i| format!("{}/config.json", i.seed),
        text: true,
        run: |w, i| load_family(w, i.seed),
    },
    target!("tokenizer", "tokenizer/tokenizer.json", true, |_, i| {
        prosa::text::SubwordTokenizer::from_file(i.path)
            .and_then(|t| t.encode("Olá, mundo! hello a text", true))
            .is_ok()
    }),
    target!("sentencepiece", "input.spm", false, |_, i| {
        let options = SpmOptions {
            eos: Some("</s>"),
            special: &["<pad>", "</s>", "<unk>"],
            added: &[],
            extra_ids: 0,
        };
        from_spm_file(i.path, &options)
            .and_then(|t| t.encode("Olá, mundo!", true))
            .is_ok()
    }),
    target!("gguf", "input.gguf", false, |w, i| decoder(
        i.path, &w.device
    )),
    target!("mo", "input.mo", false, |_, i| {
        data::gettext::read_mo(i.path).is_ok()
    }),
    target!("toml", "experiment.toml", true, |_, i| experiment(i.path)),
    target!("chat-template", "template.jinja", true, |_, i| chat(i.path)),
];

/// The target called `name`.
pub fn find(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

fn table(path: &Path, format: Format) -> bool {
    let options = ReadOptions {
        format,
        ..ReadOptions::default()
    };
    data::read_file(path, &options).is_ok()
}

fn vectors_of(path: &Path, format: VectorsFormat, index: Option<&Path>) -> bool {
    match WordVectors::load(path, format, index) {
        // Use what was read: a neighbour query touches every row.
        Ok(v) => !v.is_empty() && v.neighbors(&v.words()[0].clone(), 3).is_ok(),
        Err(_) => false,
    }
}

fn decoder(path: &Path, device: &Device) -> bool {
    let Ok(model) = DecoderModel::from_pretrained(path, device) else {
        return false;
    };
    // One forward pass over a short prompt: the shapes the header promised must hold.
    let Ok(ids) = model.encode_prompt("a hello text", false) else {
        return false;
    };
    let n = ids.len() as u32;
    let positions: Vec<u32> = (0..n).collect();
    let mask = vec![1u32; ids.len()];
    model
        .forward(
            &[ids],
            &[positions],
            &[mask],
            None,
            &mut ForwardCtx::eval(),
            true,
        )
        .is_ok()
}

/// Loads the fixture folder of `family` (its `config.json` is the mutated input).
fn load_family(w: &Workspace, family: &str) -> bool {
    let dir = w.dir.join(family);
    match family {
        "bert" => EncoderModel::from_pretrained(&dir, None, None, &w.device).is_ok(),
        "gpt2" | "llama" => decoder(&dir, &w.device),
        _ => AnyTranslator::from_pretrained(&dir, &w.device).is_ok(),
    }
}

fn experiment(path: &Path) -> bool {
    let Ok(text) = prosa::fsio::read_text(path) else {
        return false;
    };
    match toml::from_str::<prosa::tasks::experiment::Experiment>(&text) {
        Ok(e) => e.check().is_ok(),
        Err(_) => false,
    }
}

fn chat(path: &Path) -> bool {
    let Ok(template) = prosa::fsio::read_text(path) else {
        return false;
    };
    let messages = [
        ChatMessage {
            role: "system".into(),
            content: "Responda em português.".into(),
        },
        ChatMessage::user("Qual é a capital do Brasil?"),
    ];
    apply_chat_template(&template, &messages, true, "<s>", "</s>").is_ok()
}

/// A family of the `config` target: its name (the seed's stem), the fixture folder, and extra
/// files copied in as (from, to).
pub type Family = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// The fixture folders of the `config` target, by family.
pub const FAMILIES: &[Family] = &[
    (
        "bert",
        "crates/prosa/tests/fixtures/pipelines/bert-tiny",
        &[],
    ),
    (
        "gpt2",
        "crates/prosa/tests/fixtures/decoders/gpt2",
        &[(
            "crates/prosa/tests/fixtures/decoders/word-level-96.tokenizer.json",
            "tokenizer.json",
        )],
    ),
    (
        "llama",
        "crates/prosa/tests/fixtures/decoders/llama",
        &[(
            "crates/prosa/tests/fixtures/decoders/word-level-96.tokenizer.json",
            "tokenizer.json",
        )],
    ),
    (
        "t5",
        "crates/prosa/tests/fixtures/seq2seq/t5-v1_0",
        &[(
            "crates/prosa/tests/fixtures/seq2seq/t5-spm/spiece.model",
            "spiece.model",
        )],
    ),
    ("bart", "crates/prosa/tests/fixtures/seq2seq/bart-tiny", &[]),
    (
        "marian",
        "crates/prosa/tests/fixtures/seq2seq/marian-spm",
        &[],
    ),
];

/// Prepares the workspace of `target`: fixture folders and the fixed companion files.
pub fn prepare(target: &Target, w: &Workspace) -> std::io::Result<()> {
    std::fs::create_dir_all(&w.dir)?;
    match target.name {
        "config" => {
            for (family, folder, extra) in FAMILIES {
                copy_dir(&w.root.join(folder), &w.dir.join(family))?;
                for (from, to) in *extra {
                    std::fs::copy(w.root.join(from), w.dir.join(family).join(to))?;
                }
            }
        }
        "tokenizer" => std::fs::create_dir_all(w.dir.join("tokenizer"))?,
        "npy" => std::fs::write(w.dir.join("index.txt"), "king\nqueen\nman\nwoman\n")?,
        "parquet" => {
            let seed = w.root.join("fuzz/seeds/npy/four-by-three.npy");
            std::fs::copy(seed, w.dir.join("matrix.npy"))?;
        }
        _ => {}
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

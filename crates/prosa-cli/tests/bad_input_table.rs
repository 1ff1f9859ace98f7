//! The bad-input table (issue 15): well over a hundred malformed files, folders, settings and
//! flags, each its own test. Every case must end with exit status 1 and a message on stderr
//! that names the file, line, setting or flag at fault — never a panic, an abort, a signal or a
//! hang. `docs/BAD_INPUT.md` is this table with the messages prosa printed; regenerate it with
//! `PROSA_WRITE_BAD_INPUT=1 cargo test -p prosa-cli --test bad_input_table -- --ignored`.
//!
//! Each case runs in a fresh temporary folder (its current directory), so the messages name
//! files as the user typed them. Fixture folders are copied in, then edited.

#[path = "bad_input_table/build.rs"]
mod build;
mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use Edit::*;

/// How a case prepares its folder before running.
#[derive(Clone, Copy)]
pub enum Edit {
    /// Copy a file or folder of the repository (relative to its root) to a name.
    Copy(&'static str, &'static str),
    /// Write these bytes to a file.
    Write(&'static str, &'static [u8]),
    /// Write what the function makes to a file.
    Make(&'static str, fn() -> Vec<u8>),
    /// Remove a file.
    Remove(&'static str),
    /// Set a top-level key of a JSON file to a JSON value.
    Json(&'static str, &'static str, &'static str),
    /// Keep the first N bytes of a file.
    Truncate(&'static str, usize),
    /// Make an empty folder.
    Folder(&'static str),
}

/// One bad input: how to prepare it, the command, and what the message must contain.
pub struct Case {
    /// The test's name.
    pub name: &'static str,
    /// The category of the table.
    pub category: &'static str,
    /// What the folder holds before the command runs.
    pub edits: &'static [Edit],
    /// The `prosa` arguments, separated by spaces.
    pub args: &'static str,
    /// Pieces the error message must contain (the file, line, setting or flag at fault).
    pub expect: &'static [&'static str],
}

/// What one case printed.
struct Outcome {
    status: Option<i32>,
    stderr: String,
}

fn prepare(dir: &Path, edits: &[Edit]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for edit in edits {
        match *edit {
            Edit::Copy(from, to) => copy(&root.join(from), &dir.join(to)),
            Edit::Write(name, bytes) => std::fs::write(dir.join(name), bytes).unwrap(),
            Edit::Make(name, make) => std::fs::write(dir.join(name), make()).unwrap(),
            Edit::Remove(name) => std::fs::remove_file(dir.join(name)).unwrap(),
            Edit::Json(name, key, value) => {
                let path = dir.join(name);
                let mut json: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                json[key] = serde_json::from_str(value).unwrap();
                std::fs::write(&path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
            }
            Edit::Truncate(name, len) => {
                let path = dir.join(name);
                let bytes = std::fs::read(&path).unwrap();
                std::fs::write(&path, &bytes[..len.min(bytes.len())]).unwrap();
            }
            Edit::Folder(name) => std::fs::create_dir_all(dir.join(name)).unwrap(),
        }
    }
}

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
}

fn run(case: &Case) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path(), case.edits);
    let mut child = common::prosa()
        .args(case.args.split_whitespace())
        .current_dir(dir.path())
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("{}: still running after 120 s", case.name);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Outcome {
        status: status.code(),
        stderr,
    }
}

/// Runs `case` and checks its exit status and message.
fn check(name: &str) {
    let case = CASES.iter().find(|c| c.name == name).unwrap();
    let out = run(case);
    let command = format!("prosa {}", case.args);
    assert_eq!(
        out.status,
        Some(1),
        "{command}: exit status {:?} (a signal if None)\n{}",
        out.status,
        out.stderr
    );
    // Warnings may come first (an unused tensor, a skipped row); then the error.
    assert!(
        out.stderr.lines().any(|l| l.starts_with("error")) && !out.stderr.contains("panicked"),
        "{command}: not a clean error message:\n{}",
        out.stderr
    );
    for piece in case.expect {
        assert!(
            out.stderr.contains(piece),
            "{command}: the message lacks {piece:?}:\n{}",
            out.stderr
        );
    }
}

/// `name(category; edits; arguments; expected pieces)` → the case in `CASES` and its test.
macro_rules! cases {
    ($($name:ident($category:expr; [$($edit:expr),* $(,)?]; $args:expr; [$($piece:expr),* $(,)?]);)*) => {
        const CASES: &[Case] = &[$(Case {
            name: stringify!($name),
            category: $category,
            edits: &[$($edit),*],
            args: $args,
            expect: &[$($piece),*],
        }),*];
        $(#[test] fn $name() { check(stringify!($name)); })*
    };
}

include!("bad_input_table/cases.rs");

const DOC: &str = "docs/BAD_INPUT.md";

fn doc_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(DOC)
}

#[test]
fn the_docs_table_lists_every_case() {
    let doc = std::fs::read_to_string(doc_path()).unwrap();
    for case in CASES {
        assert!(
            doc.contains(&format!("`{}`", case.name)),
            "{DOC} lacks {}: regenerate it (see this file's header)",
            case.name
        );
    }
    assert!(CASES.len() >= 100, "{} cases", CASES.len());
}

/// Writes `docs/BAD_INPUT.md` from the cases and what prosa printed for each.
#[test]
#[ignore]
fn write_the_docs_table() {
    if std::env::var("PROSA_WRITE_BAD_INPUT").as_deref() != Ok("1") {
        return;
    }
    let mut doc = String::from(
        "# Bad input: what prosa says\n\n\
         Each row is a test in `crates/prosa-cli/tests/bad_input_table.rs` (the cases are in \
         `crates/prosa-cli/tests/bad_input_table/cases.rs`): the input is prepared in an empty \
         folder, the command runs there, and the test requires exit status 1 and a message \
         naming the file, line, setting or flag at fault — no panic, abort, signal or hang. \
         This page is written by the test suite itself:\n\n\
         ```\nPROSA_WRITE_BAD_INPUT=1 cargo test -p prosa-cli --test bad_input_table -- --ignored\n```\n\n",
    );
    let mut category = "";
    let mut total = 0;
    for case in CASES {
        if case.category != category {
            category = case.category;
            doc.push_str(&format!(
                "\n## {category}\n\n| case | command | status | message |\n|---|---|---|---|\n"
            ));
        }
        let out = run(case);
        let message = out
            .stderr
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or("")
            .replace('|', "\\|");
        doc.push_str(&format!(
            "| `{}` | `prosa {}` | {} | {} |\n",
            case.name,
            case.args.replace('|', "\\|"),
            out.status.map_or("signal".into(), |s| s.to_string()),
            message
        ));
        total += 1;
    }
    doc.push_str(&format!("\n{total} cases.\n"));
    std::fs::write(doc_path(), doc).unwrap();
}

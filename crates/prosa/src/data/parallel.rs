//! Parallel text: (source, target) pairs with the group they come from (a gettext catalogue,
//! a document), read from and written to TSV or JSONL, gathered from gettext catalogues, and
//! split by group so that test pairs come from groups never seen in training.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::gettext;
use crate::error::{Error, Result};
use crate::fsio;

/// One translation pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pair {
    /// The source text (English for gettext catalogues).
    pub source: String,
    /// Its translation.
    pub target: String,
    /// Where it comes from (`package/domain` for a catalogue); the unit of the split.
    #[serde(default)]
    pub group: String,
}

/// What [`from_catalogues`] found.
#[derive(Debug, Clone, Serialize)]
pub struct GettextReport {
    /// Catalogues read.
    pub catalogues: usize,
    /// Pairs before de-duplication.
    pub pairs: usize,
    /// Pairs kept: the first pair of each source text, in catalogue order.
    pub unique: usize,
}

/// The pairs of every `<locale>` catalogue under `root`, each source text kept once (its first
/// catalogue, in path order, wins). A catalogue's group is its path below `root` up to the
/// locale folder, then its domain (`coreutils/usr/share/locale/pt_BR/LC_MESSAGES/coreutils.mo`
/// → `coreutils/coreutils`).
pub fn from_catalogues(root: &Path, locale: &str) -> Result<(Vec<Pair>, GettextReport)> {
    let paths = gettext::find_catalogues(root, locale)?;
    if paths.is_empty() {
        return Err(Error::folder(
            root,
            format!("no {locale} catalogues (…/{locale}/LC_MESSAGES/*.mo) below this folder"),
        ));
    }
    let mut seen = HashSet::new();
    let (mut pairs, mut total) = (Vec::new(), 0);
    for path in &paths {
        let catalogue = gettext::read_mo(path)?;
        let group = group_name(root, path);
        for (source, target) in gettext::pairs(&catalogue) {
            total += 1;
            if seen.insert(source.clone()) {
                pairs.push(Pair {
                    source,
                    target,
                    group: group.clone(),
                });
            }
        }
    }
    let report = GettextReport {
        catalogues: paths.len(),
        pairs: total,
        unique: pairs.len(),
    };
    Ok((pairs, report))
}

/// `package/domain` of a catalogue path below `root`.
fn group_name(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    let package = relative
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    let domain = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if package.ends_with(".mo") || package.is_empty() {
        domain
    } else {
        format!("{package}/{domain}")
    }
}

/// Writes pairs as TSV with the header `source`, `target`, `group` (fields quoted when needed).
pub fn write_tsv(pairs: &[Pair], path: &Path) -> Result<()> {
    let mut writer = csv::WriterBuilder::new()
        .delimiter(b'\t')
        .from_writer(Vec::new());
    let err = |e: csv::Error| Error::io(path, std::io::Error::other(e.to_string()));
    writer
        .write_record(["source", "target", "group"])
        .map_err(err)?;
    for p in pairs {
        writer
            .write_record([&p.source, &p.target, &p.group])
            .map_err(err)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))?;
    fsio::write_atomic(path, &bytes)
}

/// Reads pairs from a TSV file (a header with `source` and `target`, and optionally `group`)
/// or a JSONL file (`{"source": …, "target": …}` per line). A missing column, a line that is
/// not an object, or an empty side is an error naming the file and line.
pub fn read_pairs(path: &Path) -> Result<Vec<Pair>> {
    let text = fsio::read_text(path)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let jsonl = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("json"));
    let pairs = if jsonl {
        read_jsonl(text, path)?
    } else {
        read_tsv(text, path)?
    };
    if pairs.is_empty() {
        return Err(Error::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    Ok(pairs)
}

fn checked(pair: Pair, path: &Path, line: usize) -> Result<Pair> {
    for (side, text) in [("source", &pair.source), ("target", &pair.target)] {
        if text.trim().is_empty() {
            return Err(Error::BadRow {
                path: path.to_path_buf(),
                line,
                message: format!("the {side} side is empty"),
            });
        }
    }
    Ok(pair)
}

fn read_tsv(text: &str, path: &Path) -> Result<Vec<Pair>> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| Error::BadRow {
            path: path.to_path_buf(),
            line: 1,
            message: e.to_string(),
        })?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| Error::MissingColumn {
                path: path.to_path_buf(),
                column: name.to_string(),
                available: headers.iter().collect::<Vec<_>>().join(", "),
            })
    };
    let (source, target) = (column("source")?, column("target")?);
    let group = headers.iter().position(|h| h == "group");
    let mut pairs = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| Error::BadRow {
            path: path.to_path_buf(),
            line: e.position().map_or(0, |p| p.line() as usize),
            message: e.to_string(),
        })?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let field = |i: usize| record.get(i).unwrap_or_default().to_string();
        pairs.push(checked(
            Pair {
                source: field(source),
                target: field(target),
                group: group.map(field).unwrap_or_default(),
            },
            path,
            line,
        )?);
    }
    Ok(pairs)
}

fn read_jsonl(text: &str, path: &Path) -> Result<Vec<Pair>> {
    let mut pairs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| Error::BadRow {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let field = |name: &str| -> Result<String> {
            match value.get(name) {
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(bad(format!("field \"{name}\" is not a string"))),
                None if value.is_object() => Err(bad(format!("no \"{name}\" field"))),
                None => Err(bad("not a JSON object".into())),
            }
        };
        let group = match value.get("group") {
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        pairs.push(checked(
            Pair {
                source: field("source")?,
                target: field("target")?,
                group,
            },
            path,
            i + 1,
        )?);
    }
    Ok(pairs)
}

/// The three splits of a corpus.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training pairs.
    pub train: Vec<Pair>,
    /// Validation pairs.
    pub validation: Vec<Pair>,
    /// Test pairs: from groups neither other split has.
    pub test: Vec<Pair>,
}

/// Splits pairs by group: groups, in a seeded random order, go to the test split until it
/// holds `test_fraction` of the pairs (skipping a group larger than half that share, or one
/// that would overshoot it by a fifth), then to validation until `validation_fraction`, the rest to training. Pairs without a
/// group are split one by one the same way.
pub fn split_by_group(
    pairs: Vec<Pair>,
    validation_fraction: f64,
    test_fraction: f64,
    seed: u64,
) -> Splits {
    let mut groups: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for p in &pairs {
        if !p.group.is_empty() && seen.insert(p.group.clone()) {
            groups.push(p.group.clone());
        }
    }
    groups.sort();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    groups.shuffle(&mut rng);
    let total = pairs.len() as f64;
    let count = |g: &str| pairs.iter().filter(|p| p.group == g).count();
    let (mut test_groups, mut validation_groups) = (HashSet::new(), HashSet::new());
    let (mut in_test, mut in_validation) = (0usize, 0usize);
    // A held-out split takes a group while it is short of its share, if the group is at most
    // half the share and does not overshoot it by a fifth: several catalogues, not one big one.
    let fits = |have: usize, n: usize, fraction: f64| {
        let share = fraction * total;
        (have as f64) < share && (n as f64) <= 0.5 * share && ((have + n) as f64) <= 1.2 * share
    };
    for g in groups {
        let n = count(&g);
        if fits(in_test, n, test_fraction) {
            in_test += n;
            test_groups.insert(g);
        } else if fits(in_validation, n, validation_fraction) {
            in_validation += n;
            validation_groups.insert(g);
        }
    }
    let mut splits = Splits {
        train: Vec::new(),
        validation: Vec::new(),
        test: Vec::new(),
    };
    let mut ungrouped = 0usize;
    for p in pairs {
        if test_groups.contains(&p.group) {
            splits.test.push(p);
        } else if validation_groups.contains(&p.group) {
            splits.validation.push(p);
        } else if p.group.is_empty() {
            // Every k-th ungrouped pair, so the fractions hold without groups too.
            ungrouped += 1;
            let slot = (ungrouped as f64 * 0.618_034).fract();
            if slot < test_fraction {
                splits.test.push(p);
            } else if slot < test_fraction + validation_fraction {
                splits.validation.push(p);
            } else {
                splits.train.push(p);
            }
        } else {
            splits.train.push(p);
        }
    }
    splits
}

/// The default folder of the fetched catalogues for `locale` (see `scripts/setup-assets.sh`).
pub fn default_catalogue_root(locale: &str) -> PathBuf {
    PathBuf::from(format!("assets/gettext-{locale}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(s: &str, t: &str, g: &str) -> Pair {
        Pair {
            source: s.into(),
            target: t.into(),
            group: g.into(),
        }
    }

    #[test]
    fn splits_never_share_a_group_and_keep_roughly_their_fractions() {
        let pairs: Vec<Pair> = (0..200)
            .map(|i| pair(&format!("s{i}"), &format!("t{i}"), &format!("g{}", i % 20)))
            .collect();
        let s = split_by_group(pairs, 0.1, 0.1, 7);
        let groups = |v: &[Pair]| v.iter().map(|p| p.group.clone()).collect::<HashSet<_>>();
        let (tr, va, te) = (groups(&s.train), groups(&s.validation), groups(&s.test));
        assert!(tr.is_disjoint(&te) && tr.is_disjoint(&va) && va.is_disjoint(&te));
        assert_eq!(s.train.len() + s.validation.len() + s.test.len(), 200);
        assert!((20..=40).contains(&s.test.len()), "{}", s.test.len());
        assert!(
            (20..=40).contains(&s.validation.len()),
            "{}",
            s.validation.len()
        );
    }

    #[test]
    fn tsv_and_jsonl_read_back_and_bad_rows_name_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let tsv = dir.path().join("p.tsv");
        let pairs = vec![
            pair("Open the \"file\"", "Abrir o \"arquivo\"", "a/b"),
            pair("Save", "Salvar", ""),
        ];
        write_tsv(&pairs, &tsv).unwrap();
        assert_eq!(read_pairs(&tsv).unwrap(), pairs);
        let jsonl = dir.path().join("p.jsonl");
        std::fs::write(&jsonl, "{\"source\": \"Yes\", \"target\": \"Sim\"}\n\n{\"source\": \"No\", \"target\": \"\"}\n").unwrap();
        let err = read_pairs(&jsonl).unwrap_err().to_string();
        assert!(
            err.contains("p.jsonl, line 3") && err.contains("target side is empty"),
            "{err}"
        );
        std::fs::write(&jsonl, "{\"source\": \"Yes\", \"target\": 3}\n").unwrap();
        let err = read_pairs(&jsonl).unwrap_err().to_string();
        assert!(
            err.contains("line 1") && err.contains("not a string"),
            "{err}"
        );
        std::fs::write(&tsv, "en\tpt\nYes\tSim\n").unwrap();
        let err = read_pairs(&tsv).unwrap_err().to_string();
        assert!(
            err.contains("no column named 'source'") && err.contains("en, pt"),
            "{err}"
        );
    }
}

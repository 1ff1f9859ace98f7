//! The supervisor: runs a worker process per target, restarts it after a crash, and turns an
//! abort, a signal or a hang (no new input for 30 s) into a finding with the input the worker
//! left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::targets::Target;
use crate::worker::{input_path, Stats};

/// What fuzzing one target found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The target.
    pub target: String,
    /// Wall-clock seconds spent.
    pub seconds: f64,
    /// Inputs run, accepted, and that panicked (over every worker).
    pub stats: Stats,
    /// Worker processes that aborted, died of a signal or hung.
    pub crashes: u64,
    /// Saved findings (panics, aborts, hangs).
    pub findings: Vec<PathBuf>,
}

/// A worker that uses this much CPU time without writing a new input is hung.
const HANG: Duration = Duration::from_secs(30);

/// Fuzzes `target` for `seconds` in worker processes (`seed` makes the run repeatable).
pub fn supervise(
    target: &Target,
    root: &Path,
    findings_dir: &Path,
    seconds: f64,
    seed: u64,
) -> anyhow::Result<Report> {
    let start = Instant::now();
    let mut total = Stats::default();
    let mut crashes = 0;
    let mut findings = Vec::new();
    let mut restart = 0u64;
    while start.elapsed().as_secs_f64() < seconds - 0.5 {
        let work = tempfile::tempdir()?;
        let left = seconds - start.elapsed().as_secs_f64();
        let mut child = Command::new(std::env::current_exe()?)
            .arg("worker")
            .args(["--target", target.name])
            .arg("--root")
            .arg(root)
            .arg("--findings")
            .arg(findings_dir)
            .arg("--dir")
            .arg(work.path())
            .args(["--seconds", &format!("{left:.1}")])
            .args(["--seed", &(seed + restart).to_string()])
            .stdout(Stdio::null())
            // A file, not a pipe: a worker printing more than a pipe holds (loaders' warnings)
            // would block on the write while nobody reads it until it exits.
            .stderr(std::fs::File::create(work.path().join("stderr.txt"))?)
            .spawn()?;
        // A hang is no new input while the worker burns HANG of CPU time (wall time alone
        // would call a worker starved by other processes hung).
        let mut watch = (newest_change(work.path()), cpu_seconds(child.id()));
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status);
            }
            let changed = newest_change(work.path());
            let cpu = cpu_seconds(child.id());
            if changed != watch.0 {
                watch = (changed, cpu);
            } else if cpu - watch.1 > HANG.as_secs_f64() {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let stats: Stats = std::fs::read(work.path().join("stats.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        total.executions += stats.executions;
        total.accepted += stats.accepted;
        total.panics += stats.panics;
        total.guarded += stats.guarded;
        let stderr = std::fs::read(work.path().join("stderr.txt"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        for line in stderr.lines().filter(|l| l.starts_with("finding: ")) {
            findings.push(PathBuf::from(line.trim_start_matches("finding: ")));
        }
        let crashed = match status {
            None => Some("hang".to_string()),
            Some(s) if s.success() => None,
            Some(s) => Some(format!("abort ({s}): {}", last_lines(&stderr))),
        };
        if let Some(what) = crashed {
            crashes += 1;
            // The input in flight is the newest file the target reads.
            if let Some((seed_name, input)) = newest_input(target, work.path()) {
                let bytes = std::fs::read(&input)?;
                let kind = what.split(' ').next().unwrap_or("abort").to_string();
                findings.push(crate::findings::save(
                    findings_dir,
                    target,
                    &seed_name,
                    &bytes,
                    &kind,
                    &what,
                )?);
            }
        }
        restart += 1;
    }
    Ok(Report {
        target: target.name.to_string(),
        seconds: start.elapsed().as_secs_f64(),
        stats: total,
        crashes,
        findings,
    })
}

/// When an input in `dir` last changed (the worker writes one before every run; its stderr
/// file does not count, or a worker printing while stuck would never look hung).
fn newest_change(dir: &Path) -> Option<SystemTime> {
    walk(dir)
        .into_iter()
        .filter(|p| p.file_name().is_none_or(|n| n != "stderr.txt"))
        .filter_map(|p| p.metadata().ok()?.modified().ok())
        .max()
}

/// CPU seconds (user + system) process `pid` has used (Linux `/proc/PID/stat`; clock ticks of
/// 1/100 s); 0 where it cannot be read.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    (ticks(11) + ticks(12)) / 100.0
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The input file the worker wrote last, and the seed stem it belongs to.
fn newest_input(target: &Target, dir: &Path) -> Option<(String, PathBuf)> {
    let w = crate::targets::Workspace {
        dir: dir.to_path_buf(),
        root: PathBuf::new(),
        device: prosa::device::default_device(),
    };
    let stems: Vec<String> = if target.name == "config" {
        crate::targets::FAMILIES
            .iter()
            .map(|f| f.0.to_string())
            .collect()
    } else {
        vec!["x".to_string()]
    };
    stems
        .into_iter()
        .map(|s| (input_path(target, &w, &s), s))
        .filter_map(|(p, s)| Some((p.metadata().ok()?.modified().ok()?, s, p)))
        .max_by_key(|(t, _, _)| *t)
        .map(|(_, s, p)| (s, p))
}

fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}

//! How `prosa bench …` prints a measurement: JSON or one line, with the process's peak memory.

use crate::print_json;

/// Peak resident memory of this process in MiB (Linux: `VmHWM` of `/proc/self/status`), the
/// figure to set beside a peer's.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Prints a measurement: its JSON with `peak_rss_mib` added, or `line` and the peak memory.
pub(crate) fn report(m: &impl serde::Serialize, json: bool, line: String) -> anyhow::Result<()> {
    let rss = peak_rss_mib();
    if json {
        let mut value = serde_json::to_value(m)?;
        if let Some(object) = value.as_object_mut() {
            object.insert("peak_rss_mib".into(), rss.into());
        }
        return print_json(&value);
    }
    match rss {
        Some(mib) => println!("{line}; peak RSS {mib:.0} MiB"),
        None => println!("{line}"),
    }
    Ok(())
}

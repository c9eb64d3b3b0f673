//! What a benchmark case reports about its own process (Linux `/proc/self`), shared by
//! `benches/codec_bench.rs` and `benches/candle-reference` through `#[path]`.
#![allow(dead_code)]

use serde_json::{json, Value};

/// `VmHWM` (peak resident set) and `VmRSS` of this process in MiB, where the OS tells.
pub fn memory_mib() -> (Option<f64>, Option<f64>) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (None, None);
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map(|kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU seconds (user, system) and minor page faults of this process so far, from
/// `/proc/self/stat` (clock ticks taken as 100 per second, the Linux default).
pub fn cpu_usage() -> Option<(f64, f64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let minflt = f.get(7)?.parse().ok()?;
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime / 100.0, stime / 100.0, minflt))
}

/// CPU time and page faults per run since `before` (a [`cpu_usage`] reading), as JSON.
pub fn cpu_per_run(before: Option<(f64, f64, u64)>, runs: usize) -> Value {
    match (before, cpu_usage()) {
        (Some((u0, s0, f0)), Some((u1, s1, f1))) => json!({
            "user_s_per_run": (u1 - u0) / runs as f64,
            "sys_s_per_run": (s1 - s0) / runs as f64,
            "minor_faults_per_run": (f1 - f0) / runs as u64,
        }),
        _ => Value::Null,
    }
}

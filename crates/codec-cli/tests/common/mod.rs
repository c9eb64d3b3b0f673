//! Helpers shared by the CLI integration tests: run the `codec` binary, find fixtures, compare
//! audio. (Each test file uses only some of them.)
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `../shared/fixtures/NAME` beside the workspace, or `None` (printing why the test skips)
/// when it is absent.
pub fn fixture_dir(name: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures")
        .join(name);
    if dir.is_dir() {
        Some(dir)
    } else {
        // Under CI (.ci/run sets the switch) a missing fixture fails instead of skipping.
        if std::env::var_os("CODEC_REQUIRE_FIXTURES").is_some_and(|v| v != "0") {
            panic!(
                "fixture folder {} is absent and CODEC_REQUIRE_FIXTURES is set",
                dir.display()
            );
        }
        eprintln!("SKIPPED: fixture folder {} is absent", dir.display());
        None
    }
}

/// Run the `codec` binary offline.
pub fn codec(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_codec"));
    for a in args {
        cmd.arg(a);
    }
    cmd.env("HF_HUB_OFFLINE", "1");
    cmd.output().expect("run codec")
}

/// Run the `codec` binary offline over the hub cache at `hf_home`.
pub fn codec_with_hub_cache(args: &[&dyn AsRef<std::ffi::OsStr>], hf_home: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_codec"));
    for a in args {
        cmd.arg(a);
    }
    cmd.env("HF_HUB_OFFLINE", "1").env("HF_HOME", hf_home);
    cmd.output().expect("run codec")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn assert_ok(o: &Output) {
    assert!(o.status.success(), "codec failed: {}", stderr(o));
}

/// A clean failure: exit code 1, no panic, and every needle in the message.
pub fn assert_fails_with(o: &Output, needles: &[&str]) {
    assert!(!o.status.success(), "expected failure, got success");
    assert_eq!(o.status.code(), Some(1), "exit code; stderr: {}", stderr(o));
    let err = stderr(o);
    assert!(!err.contains("panicked"), "panic: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
}

/// Signal-to-noise ratio of `test` against `reference` (same length), in dB.
pub fn snr_db(reference: &[f32], test: &[f32]) -> f64 {
    assert_eq!(reference.len(), test.len(), "lengths differ");
    let signal: f64 = reference.iter().map(|&x| (x as f64).powi(2)).sum();
    let noise: f64 = reference
        .iter()
        .zip(test)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    10.0 * (signal / noise.max(1e-30)).log10()
}

/// A WAV file's spec and samples as f32 (integer PCM scaled by 1/32768).
pub fn read_wav(path: &Path) -> (hound::WavSpec, Vec<f32>) {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    let samples = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().map(|s| s.unwrap()).collect(),
        hound::SampleFormat::Int => r
            .samples::<i32>()
            .map(|s| s.unwrap() as f32 / 32768.0)
            .collect(),
    };
    (spec, samples)
}

/// A float WAV file (as `codec decode --float` writes): spec and samples.
pub fn read_wav_f32(path: &Path) -> (hound::WavSpec, Vec<f32>) {
    let (spec, samples) = read_wav(path);
    assert_eq!(spec.sample_format, hound::SampleFormat::Float, "{path:?}");
    (spec, samples)
}

/// `cases.json` → `[case][variant].ambiguous_frames` of a fixture (the cases at the top level
/// or under `cases`, as fixtures lay them out; `variant` "" for a fixture without variants).
pub fn ambiguous_frames(dir: &Path, case: &str, variant: &str) -> Vec<usize> {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let cases = json.get("cases").unwrap_or(&json);
    // Fixtures with one variant per case keep the list on the case itself (`variant` "").
    let entry = if variant.is_empty() {
        &cases[case]
    } else {
        &cases[case][variant]
    };
    entry["ambiguous_frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_u64().unwrap() as usize)
        .collect()
}

/// A cached hub snapshot holding `file` for `repo`, as `hf-hub` lays it out.
pub fn hub_cache(root: &std::path::Path, repo: &str, file: &str, from: &std::path::Path) {
    let folder = root
        .join("hub")
        .join(format!("models--{}", repo.replace('/', "--")));
    let commit = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(folder.join("refs")).unwrap();
    std::fs::write(folder.join("refs/main"), commit).unwrap();
    let snapshot = folder.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::copy(from, snapshot.join(file)).unwrap();
}

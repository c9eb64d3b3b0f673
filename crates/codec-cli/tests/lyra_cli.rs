//! Lyra v2, the default model, through the `codec` binary against the official runtime's
//! outputs (`../shared/fixtures/lyra/`): encoding without `--model`, `--bandwidth`, importing the
//! runtime's codes and decoding them, streaming, and bad model files.

mod common;

use std::path::Path;

use common::*;

use codec_core::npy::read_npy;

const CASES: [&str; 5] = [
    "sample1_16kHz",
    "sample2_16kHz",
    "libri_16k",
    "radio_ja_16k",
    "music_16k",
];

/// Rows `[stage][frame]` of a codes array, the first `n` stages and `frames` frames.
fn rows(path: &Path, n: usize, frames: usize) -> Vec<Vec<i64>> {
    let a = read_npy(path).unwrap();
    let width = *a.shape.last().unwrap();
    (0..n)
        .map(|s| {
            a.values[s * width..s * width + frames]
                .iter()
                .map(|&v| v as i64)
                .collect()
        })
        .collect()
}

fn cases_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap()
}

#[test]
fn encode_without_a_model_is_lyra_and_gives_the_runtimes_codes() {
    let Some(dir) = fixture_dir("lyra") else {
        return;
    };
    let cases = cases_json(&dir);
    let tmp = tempfile::tempdir().unwrap();
    for name in CASES {
        let frames = cases[name]["frames"].as_u64().unwrap() as usize;
        for (n, bandwidth) in [(16usize, None), (30, Some("6")), (46, Some("9.2"))] {
            let out = tmp.path().join(format!("{name}.{n}.npy"));
            let wav = dir.join(format!("{name}.wav"));
            let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
                vec![&"encode", &wav, &out, &"--format", &"npy"];
            if let Some(b) = &bandwidth {
                args.extend([&"--bandwidth" as &dyn AsRef<std::ffi::OsStr>, b]);
            }
            assert_ok(&codec(&args));
            let got_shape = read_npy(&out).unwrap().shape;
            // A trailing partial frame is zero-padded into one more frame.
            let samples = cases[name]["samples"].as_u64().unwrap() as usize;
            assert_eq!(
                got_shape,
                vec![n, samples.div_ceil(320)],
                "{name}: codes shape"
            );
            let got = rows(&out, n, frames);
            let refk = rows(
                &dir.join(format!("{name}.refkernels.nq{n}.codes.npy")),
                n,
                frames,
            );
            // Measured: identical to the runtime's reference kernels on every clip and stage.
            assert_eq!(
                got, refk,
                "{name} nq{n}: codes differ from the reference kernels'"
            );
            let default = rows(&dir.join(format!("{name}.nq{n}.codes.npy")), n, frames);
            let same = got
                .iter()
                .flatten()
                .zip(default.iter().flatten())
                .filter(|(a, b)| a == b)
                .count();
            let fraction = same as f64 / (n * frames) as f64;
            let own = cases[name][format!("nq{n}")]["reference_self_agreement"]
                ["codes_equal_fraction"]
                .as_f64()
                .unwrap();
            assert!(
                fraction >= own - 0.05,
                "{name} nq{n}: {fraction:.3} of codes equal, runtime's own {own:.3}"
            );
        }
    }
}

#[test]
fn imported_runtime_codes_decode_to_the_runtimes_audio() {
    let Some(dir) = fixture_dir("lyra") else {
        return;
    };
    let cases = cases_json(&dir);
    let tmp = tempfile::tempdir().unwrap();
    for name in CASES {
        for n in [16usize, 30, 46] {
            for (kernels, prefix) in [("default", ""), ("reference", "refkernels.")] {
                let codes = dir.join(format!("{name}.{prefix}nq{n}.codes.npy"));
                let tok = tmp.path().join(format!("{name}.{n}.tok"));
                let wav = tmp.path().join(format!("{name}.{n}.wav"));
                assert_ok(&codec(&[&"import-codes", &codes, &tok]));
                assert_ok(&codec(&[&"decode", &tok, &wav, &"--float"]));
                let (spec, audio) = read_wav_f32(&wav);
                assert_eq!(spec.sample_rate, 16000);
                let want: Vec<f32> =
                    read_npy(&dir.join(format!("{name}.{prefix}nq{n}.decoded.npy")))
                        .unwrap()
                        .values
                        .iter()
                        .map(|&v| v as f32)
                        .collect();
                if kernels == "reference" {
                    // Measured: bit-identical to the reference kernels' decode.
                    assert_eq!(
                        audio, want,
                        "{name} nq{n}: audio differs from the reference kernels'"
                    );
                } else {
                    let own = cases[name][format!("nq{n}")]["reference_self_agreement"]
                        ["decoded_snr_db_same_codes"]
                        .as_f64()
                        .unwrap();
                    let snr = snr_db(&want, &audio);
                    assert!(
                        snr >= own - 3.0,
                        "{name} nq{n}: {snr:.2} dB from the runtime's decode, its own {own:.2} dB"
                    );
                }
            }
        }
    }
}

#[test]
fn streamed_round_trip_equals_the_batch_one() {
    let Some(dir) = fixture_dir("lyra") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let wav = dir.join("libri_16k.wav");
    let (tok, batch_wav) = (tmp.path().join("b.tok"), tmp.path().join("b.wav"));
    assert_ok(&codec(&[&"encode", &wav, &tok, &"--bandwidth", &"6"]));
    assert_ok(&codec(&[&"decode", &tok, &batch_wav, &"--float"]));
    let (stream, stream_wav) = (tmp.path().join("s.tokstream"), tmp.path().join("s.wav"));
    assert_ok(&codec(&[
        &"encode",
        &"--stream",
        &wav,
        &stream,
        &"--bandwidth",
        &"6",
    ]));
    assert_ok(&codec(&[
        &"decode",
        &"--stream",
        &stream,
        &stream_wav,
        &"--float",
    ]));
    let (_, batch) = read_wav_f32(&batch_wav);
    let (_, streamed) = read_wav_f32(&stream_wav);
    assert_eq!(streamed.len(), batch.len());
    assert_eq!(streamed, batch, "streamed audio differs from batch");
}

#[test]
fn a_wrong_rate_stream_is_refused() {
    let Some(_) = fixture_dir("lyra") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("24k.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 24000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    for i in 0..4800 {
        w.write_sample(((i as f32 * 0.05).sin() * 8000.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
    let out = tmp.path().join("out.tokstream");
    assert_fails_with(
        &codec(&[&"encode", &"--stream", &wav, &out]),
        &["24000 Hz", "16000 Hz"],
    );
    assert!(!out.exists(), "a refused stream leaves no output");
}

#[test]
fn broken_or_foreign_model_files_are_clear_errors() {
    let Some(dir) = fixture_dir("lyra") else {
        return;
    };
    let files = [
        "soundstream_encoder.tflite",
        "quantizer.tflite",
        "lyragan.tflite",
    ];
    let input = dir.join("sample2_16kHz.wav");
    let tmp = tempfile::tempdir().unwrap();
    let setup = |name: &str, edit: &dyn Fn(&str, Vec<u8>) -> Vec<u8>| {
        let d = tmp.path().join(name);
        std::fs::create_dir(&d).unwrap();
        for f in files {
            std::fs::write(d.join(f), edit(f, std::fs::read(dir.join(f)).unwrap())).unwrap();
        }
        d
    };
    let out = tmp.path().join("out.tok");
    // The untouched files load from a folder.
    let good = setup("good", &|_, b| b);
    assert_ok(&codec(&[&"encode", &"--model", &good, &input, &out]));
    std::fs::remove_file(&out).unwrap();
    // Truncated: the flatbuffer verifier refuses it.
    let truncated = setup("truncated", &|f, b| {
        if f == "lyragan.tflite" {
            b[..b.len() / 2].to_vec()
        } else {
            b
        }
    });
    assert_fails_with(
        &codec(&[&"encode", &"--model", &truncated, &input, &out]),
        &["lyragan.tflite", "not a valid TFLite model"],
    );
    // Corrupted in the middle (weights and offsets overwritten).
    let corrupt = setup("corrupt", &|f, mut b| {
        if f == "soundstream_encoder.tflite" {
            let n = b.len();
            b[n / 3..n / 3 + 4096].iter_mut().for_each(|x| *x = 0xff);
            b[8..64].iter_mut().for_each(|x| *x = 0xee);
        }
        b
    });
    let o = codec(&[&"encode", &"--model", &corrupt, &input, &out]);
    assert!(
        !o.status.success() && stderr(&o).contains("soundstream_encoder.tflite"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    // Another model's graph in the encoder's place.
    let swapped = setup("swapped", &|f, b| {
        if f == "soundstream_encoder.tflite" {
            std::fs::read(dir.join("lyragan.tflite")).unwrap()
        } else {
            b
        }
    });
    assert_fails_with(
        &codec(&[&"encode", &"--model", &swapped, &input, &out]),
        &["soundstream_encoder.tflite", "is this the right file?"],
    );
    assert!(!out.exists(), "failed runs leave no output");
    // A lone .tflite file names what it needs.
    let lone = tmp.path().join("lone");
    std::fs::create_dir(&lone).unwrap();
    std::fs::copy(dir.join("quantizer.tflite"), lone.join("quantizer.tflite")).unwrap();
    assert_fails_with(
        &codec(&[
            &"encode",
            &"--model",
            &lone.join("quantizer.tflite"),
            &input,
            &out,
        ]),
        &["soundstream_encoder.tflite"],
    );
}

#[test]
fn models_lists_lyra_as_the_built_in_default() {
    let o = codec(&[&"models"]);
    assert_ok(&o);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let line = text
        .lines()
        .find(|l| l.starts_with("lyra-v2"))
        .expect("lyra-v2 listed");
    assert!(
        line.contains("(default)") && line.contains("built in") && line.contains("Apache-2.0"),
        "{line}"
    );
}

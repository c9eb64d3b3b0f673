//! End-to-end tests of the `codec` binary with the Qwen3-TTS-Tokenizer-12Hz reference fixture
//! (`../shared/fixtures/qwen3-tts-tokenizer`: the hub folder's `config.json` +
//! `model.safetensors`): codes as `.npy` and `.tok`, the reference's own codes files (one of
//! them written in Fortran order by numpy) imported with `codec import-codes` and decoded, and
//! `codec encode --stream` refused with the reason.

mod common;

use common::*;

use codec_core::npy::read_npy;
use codec_core::tokfile::TokenFile;

const FIXTURE: &str = "qwen3-tts-tokenizer";

#[test]
fn encode_gives_reference_codes_and_imported_codes_decode_like_the_reference() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for case in ["speech_a", "speech_b_odd"] {
        let wav = dir.join(format!("{case}.wav"));
        let samples = hound::WavReader::open(&wav).unwrap().duration() as usize;
        let want = read_npy(&dir.join(format!("{case}.codes.npy"))).unwrap();
        let frames = want.shape[2];
        assert_eq!(frames, samples.div_ceil(1920), "{case}");

        let npy = tmp.path().join(format!("{case}.npy"));
        assert_ok(&codec(&[
            &"encode",
            &"--model",
            &dir,
            &"--format",
            &"npy",
            &wav,
            &npy,
        ]));
        let got = read_npy(&npy).unwrap();
        assert_eq!(got.shape, vec![16, frames], "{case}");
        // `[1, 16, frames]` and `[16, frames]` hold the values in the same order.
        assert_eq!(got.values, want.values, "{case}: codes");

        let tok = tmp.path().join(format!("{case}.tok"));
        assert_ok(&codec(&[&"encode", &"--model", &dir, &wav, &tok]));
        let t = TokenFile::read(&tok).unwrap();
        assert_eq!(t.streams.len(), 16);
        assert_eq!(t.header.original_length, samples as u64);
        assert!(t
            .streams
            .iter()
            .all(|s| s.codebook_size == 2048 && s.frame_rate == 12.5));

        let imported = tmp.path().join(format!("{case}.ref.tok"));
        let reference_codes = dir.join(format!("{case}.codes.npy"));
        assert_ok(&codec(&[
            &"import-codes",
            &"--model",
            &dir,
            &reference_codes,
            &imported,
        ]));
        let r = TokenFile::read(&imported).unwrap();
        for (a, b) in r.streams.iter().zip(&t.streams) {
            assert_eq!(a.codes, b.codes, "{case}: imported codes");
        }
        let out = tmp.path().join(format!("{case}.wav"));
        assert_ok(&codec(&[
            &"decode", &"--model", &dir, &"--float", &imported, &out,
        ]));
        let (spec, decoded) = read_wav_f32(&out);
        assert_eq!(spec.sample_rate, 24000);
        let reference = read_npy(&dir.join(format!("{case}.decoded.npy"))).unwrap();
        let reference: Vec<f32> = reference.values.iter().map(|&v| v as f32).collect();
        // An imported file does not know the clip's length: whole frames come back.
        assert_eq!(decoded.len(), frames * 1920, "{case}");
        let snr = snr_db(&reference[..samples], &decoded[..samples]);
        // Measured 86.8 dB at the lowest; asserted 12 dB under it.
        assert!(snr >= 74.0, "{case}: SNR {snr:.1} dB");

        let round_trip = tmp.path().join(format!("{case}.rt.wav"));
        assert_ok(&codec(&[
            &"decode",
            &"--model",
            &dir,
            &"--float",
            &tok,
            &round_trip,
        ]));
        let (_, rt) = read_wav_f32(&round_trip);
        assert_eq!(
            rt.len(),
            samples,
            "{case}: a token file restores the length"
        );
        assert_eq!(rt[..], decoded[..samples], "{case}: same codes, same audio");
    }
}

#[test]
fn long_reference_codes_import_and_decode_through_the_chunking() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // numpy saved this one in Fortran order (a transposed array).
    let imported = tmp.path().join("long.tok");
    assert_ok(&codec(&[
        &"import-codes",
        &"--model",
        &dir,
        &dir.join("decode_only_long.codes.npy"),
        &imported,
    ]));
    let out = tmp.path().join("long.wav");
    assert_ok(&codec(&[
        &"decode", &"--model", &dir, &"--float", &imported, &out,
    ]));
    let (_, decoded) = read_wav_f32(&out);
    let reference = read_npy(&dir.join("decode_only_long.decoded.npy")).unwrap();
    let reference: Vec<f32> = reference.values.iter().map(|&v| v as f32).collect();
    assert_eq!(decoded.len(), 330 * 1920);
    let snr = snr_db(&reference, &decoded);
    // Measured 86.7 dB; asserted 12+ dB under it.
    assert!(snr >= 74.0, "SNR {snr:.1} dB");
}

#[test]
fn streaming_is_refused_with_the_reason() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s.tok");
    let o = codec(&[
        &"encode",
        &"--model",
        &dir,
        &"--stream",
        &dir.join("speech_a.wav"),
        &out,
    ]);
    assert_fails_with(&o, &["cannot stream", "whole clips", "whole files"]);
    assert!(!out.exists(), "a refused run leaves no output");
}

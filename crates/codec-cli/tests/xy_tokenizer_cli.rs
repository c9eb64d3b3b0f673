//! End-to-end tests of the `codec` binary with the XY-Tokenizer reference fixture
//! (`../shared/fixtures/xy-tokenizer`: the repo's `xy_tokenizer.ckpt` + yaml, 16 kHz out, and
//! `ttsd_v0/`, MOSS-TTSD's layout decoding to 24 kHz): codes as `.npy` and `.tok`, the
//! reference's codes imported with `codec import-codes` and decoded, a round trip.

mod common;

use common::*;

use codec_core::npy::read_npy;
use codec_core::tokfile::TokenFile;

const FIXTURE: &str = "xy-tokenizer";

#[test]
fn encode_gives_reference_codes_and_imported_codes_decode_like_the_reference() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for case in ["speech_a", "speech_b_odd"] {
        let wav = dir.join(format!("{case}.wav"));
        let samples = hound::WavReader::open(&wav).unwrap().duration() as usize;
        let reference_codes = dir.join(format!("{case}.nq8.codes.npy"));
        let want = read_npy(&reference_codes).unwrap();
        let frames = want.shape[2];
        assert_eq!(frames, samples / 1280, "{case}");

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
        assert_eq!(got.shape, vec![8, frames], "{case}");
        // `[8, 1, frames]` and `[8, frames]` hold the values in the same order; frames the
        // fixture marks ambiguous may differ.
        let ambiguous = ambiguous_frames(&dir, case, "nq8");
        for (i, (g, w)) in got.values.iter().zip(&want.values).enumerate() {
            let frame = i % frames;
            assert!(
                g == w || ambiguous.contains(&frame),
                "{case}: code {i} (frame {frame}) is {g}, the reference's {w}"
            );
        }

        let tok = tmp.path().join(format!("{case}.tok"));
        assert_ok(&codec(&[&"encode", &"--model", &dir, &wav, &tok]));
        let t = TokenFile::read(&tok).unwrap();
        assert_eq!(t.streams.len(), 8);
        assert_eq!(t.header.original_length, samples as u64);
        assert!(t
            .streams
            .iter()
            .all(|s| s.codebook_size == 1024 && s.frame_rate == 12.5));

        for (folder, rate, hop) in [
            (dir.clone(), 16000, 1280),
            (dir.join("ttsd_v0"), 24000, 1920),
        ] {
            let imported = tmp.path().join(format!("{case}.{rate}.ref.tok"));
            assert_ok(&codec(&[
                &"import-codes",
                &"--model",
                &folder,
                &reference_codes,
                &imported,
            ]));
            let out = tmp.path().join(format!("{case}.{rate}.wav"));
            assert_ok(&codec(&[
                &"decode", &"--model", &folder, &"--float", &imported, &out,
            ]));
            let (spec, decoded) = read_wav_f32(&out);
            assert_eq!(spec.sample_rate, rate);
            let reference = read_npy(&folder.join(format!("{case}.nq8.decoded.npy"))).unwrap();
            let reference: Vec<f32> = reference.values.iter().map(|&v| v as f32).collect();
            // An imported file does not know the clip's length: whole frames come back.
            assert_eq!(decoded.len(), frames * hop, "{case}");
            let snr = snr_db(&reference, &decoded);
            // The library's parity test measures over 100 dB; 60 dB is the fixture's criterion.
            assert!(snr >= 60.0, "{case} at {rate} Hz: SNR {snr:.1} dB");
        }

        let round_trip = tmp.path().join(format!("{case}.rt.wav"));
        assert_ok(&codec(&[
            &"decode",
            &"--model",
            &dir,
            &"--float",
            &tok,
            &round_trip,
        ]));
        let (spec, rt) = read_wav_f32(&round_trip);
        assert_eq!(spec.sample_rate, 16000);
        // A token file restores the length (the dropped partial frame comes back as silence).
        assert_eq!(rt.len(), samples, "{case}");
        assert!(rt.iter().all(|v| v.is_finite()));
    }
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
    assert_fails_with(&o, &["cannot stream", "looks ahead", "whole files"]);
    assert!(!out.exists(), "a refused run leaves no output");
}

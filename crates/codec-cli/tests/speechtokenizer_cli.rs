//! End-to-end tests of the `codec` binary with the SpeechTokenizer reference fixture
//! (`../shared/fixtures/speechtokenizer`: SpeechTokenizer.pt + the reference's config.json):
//! codes at 1 and 8 quantizers as `.npy` and `.tok`, the reference's own codes file imported
//! with `codec import-codes` and decoded, and `codec encode --stream` refused with the reason.

mod common;

use common::*;

use codec_core::npy::read_npy;
use codec_core::tokfile::TokenFile;

#[test]
fn encode_gives_reference_codes_and_imported_codes_decode_like_the_reference() {
    let Some(dir) = fixture_dir("speechtokenizer") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for case in ["speech_a", "speech_b_odd"] {
        let wav = dir.join(format!("{case}.wav"));
        let samples = hound::WavReader::open(&wav).unwrap().duration() as usize;
        for n_q in [1usize, 8] {
            let what = format!("{case} nq{n_q}");
            let want = read_npy(&dir.join(format!("{case}.nq{n_q}.codes.npy"))).unwrap();
            let frames = want.shape[2];
            let ambiguous = ambiguous_frames(&dir, case, &format!("nq{n_q}"));
            assert!(ambiguous.is_empty(), "{what}: the fixture lists none");

            let npy = tmp.path().join(format!("{case}.{n_q}.npy"));
            let n = n_q.to_string();
            assert_ok(&codec(&[
                &"encode",
                &"--model",
                &dir,
                &"--codebooks",
                &n,
                &"--format",
                &"npy",
                &wav,
                &npy,
            ]));
            let got = read_npy(&npy).unwrap();
            assert_eq!(got.shape, vec![n_q, frames], "{what}");
            // `[n_q, 1, frames]` and `[n_q, frames]` hold the values in the same order.
            assert_eq!(got.values, want.values, "{what}: codes");

            // The token file holds the same codes and decodes to the same audio as importing
            // the reference's codes file does.
            let tok = tmp.path().join(format!("{case}.{n_q}.tok"));
            assert_ok(&codec(&[
                &"encode",
                &"--model",
                &dir,
                &"--codebooks",
                &n,
                &wav,
                &tok,
            ]));
            let t = TokenFile::read(&tok).unwrap();
            assert_eq!(t.streams.len(), n_q);
            assert_eq!(t.header.original_length, samples as u64);
            assert!(t
                .streams
                .iter()
                .all(|s| s.codebook_size == 1024 && s.frame_rate == 50.0));

            let imported = tmp.path().join(format!("{case}.{n_q}.ref.tok"));
            let reference_codes = dir.join(format!("{case}.nq{n_q}.codes.npy"));
            assert_ok(&codec(&[
                &"import-codes",
                &"--model",
                &dir,
                &reference_codes,
                &imported,
            ]));
            let r = TokenFile::read(&imported).unwrap();
            assert_eq!(r.streams.len(), n_q);
            for (a, b) in r.streams.iter().zip(&t.streams) {
                assert_eq!(a.codes, b.codes, "{what}: imported codes");
            }
            let out = tmp.path().join(format!("{case}.{n_q}.wav"));
            assert_ok(&codec(&[
                &"decode", &"--model", &dir, &"--float", &imported, &out,
            ]));
            let (spec, decoded) = read_wav_f32(&out);
            assert_eq!(spec.sample_rate, 16000);
            let reference = read_npy(&dir.join(format!("{case}.nq{n_q}.decoded.npy"))).unwrap();
            let reference: Vec<f32> = reference.values.iter().map(|&v| v as f32).collect();
            // An imported file does not know the clip's length: whole frames come back.
            assert_eq!(decoded.len(), frames * 320, "{what}");
            let snr = snr_db(&reference[..samples], &decoded[..samples]);
            // Measured 124.8 dB at the lowest; asserted 12+ dB under it.
            assert!(snr >= 110.0, "{what}: SNR {snr:.1} dB");

            let round_trip = tmp.path().join(format!("{case}.{n_q}.rt.wav"));
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
                "{what}: a token file restores the length"
            );
            assert_eq!(rt[..], decoded[..samples], "{what}: same codes, same audio");
        }
    }
}

#[test]
fn streaming_is_refused_with_the_reason() {
    let Some(dir) = fixture_dir("speechtokenizer") else {
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

//! End-to-end tests of the `codec` binary with the MOSS-Audio-Tokenizer reference fixture
//! (`../shared/fixtures/moss-audio-tokenizer`: the hub folder's `config.json` +
//! `model.safetensors`): codes as `.npy` and `.tok`, the reference's codes (its `[n_q, 1,
//! frames]` layout) imported and decoded, and `--stream` with the reference's chunking.

mod common;

use common::*;

use codec_core::npy::read_npy;
use codec_core::tokfile::TokenFile;
use codec_core::tokstream::TokenStreamReader;

const FIXTURE: &str = "moss-audio-tokenizer";
/// Decoded through the CLI's float WAV: the library's 125.7-127.5 dB (see the parity test),
/// asserted 5.7 dB under the lowest.
const SNR_DB: f64 = 120.0;

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
        assert_eq!(got.shape, vec![32, frames], "{case}");
        // `[32, 1, frames]` and `[32, frames]` hold the values in the same order.
        assert_eq!(got.values, want.values, "{case}: codes");

        let tok = tmp.path().join(format!("{case}.tok"));
        assert_ok(&codec(&[&"encode", &"--model", &dir, &wav, &tok]));
        let t = TokenFile::read(&tok).unwrap();
        assert_eq!(t.streams.len(), 32);
        assert_eq!(t.header.original_length, samples as u64);

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
        assert_eq!(decoded.len(), frames * 1920, "{case}");
        let snr = snr_db(&reference, &decoded);
        assert!(snr >= SNR_DB, "{case}: SNR {snr:.1} dB");
    }
}

#[test]
fn streaming_encode_gives_the_reference_streaming_codes() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let case = "speech_b_odd";
    let out = tmp.path().join("stream.tks");
    assert_ok(&codec(&[
        &"encode",
        &"--model",
        &dir,
        &"--stream",
        &"--set",
        &"stream_chunk_frames=5",
        &dir.join(format!("{case}.wav")),
        &out,
    ]));
    let bytes = std::fs::read(&out).unwrap();
    let mut r = TokenStreamReader::new(bytes.as_slice()).unwrap();
    let mut got = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        got.push(f);
    }
    // The reference's `[32, 1, frames]` as `[frames][32]`.
    let want = read_npy(&dir.join(format!("{case}.stream.codes.npy"))).unwrap();
    let frames = want.shape[2];
    let want: Vec<Vec<u32>> = (0..frames)
        .map(|t| {
            (0..32)
                .map(|q| want.values[q * frames + t] as u32)
                .collect()
        })
        .collect();
    assert_eq!(got, want);

    let o = codec(&[
        &"encode",
        &"--model",
        &dir,
        &"--set",
        &"stream_chunk_frames=40",
        &dir.join(format!("{case}.wav")),
        &tmp.path().join("x.tok"),
    ]);
    assert_fails_with(&o, &["stream_chunk_frames"]);
}

//! End-to-end tests of the `codec` binary with the S3Tokenizer fixture
//! (`../shared/fixtures/s3tokenizer`: model.pt + the reference's config.json): codes as `.npy`
//! and `.tok` equal the reference's, decoding says it is not there (encode only), and the
//! published card says how to get weights from the ONNX-only release.

mod common;

use common::*;

use codec_core::npy::read_npy;
use codec_core::tokfile::TokenFile;

#[test]
fn encode_gives_reference_codes_and_decode_says_encode_only() {
    let Some(dir) = fixture_dir("s3tokenizer") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for case in ["speech_a", "speech_b_odd"] {
        let wav = dir.join(format!("{case}.16k.wav"));
        let want = read_npy(&dir.join(format!("{case}.codes.npy"))).unwrap();
        let ambiguous = ambiguous_frames(&dir, case, "");
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
        assert_eq!(got.shape, want.shape, "{case}");
        let differ: Vec<usize> = (0..want.values.len())
            .filter(|&t| got.values[t] != want.values[t] && !ambiguous.contains(&t))
            .collect();
        assert!(differ.is_empty(), "{case}: codes differ at {differ:?}");

        let tok = tmp.path().join(format!("{case}.tok"));
        assert_ok(&codec(&[&"encode", &"--model", &dir, &wav, &tok]));
        let t = TokenFile::read(&tok).unwrap();
        assert_eq!(t.streams.len(), 1);
        assert_eq!(
            (t.streams[0].codebook_size, t.streams[0].frame_rate),
            (6561, 25.0)
        );
        let codes: Vec<f64> = t.streams[0].codes.iter().map(|&c| c as f64).collect();
        assert_eq!(
            codes, got.values,
            "{case}: the token file holds the same codes"
        );

        let out = tmp.path().join(format!("{case}.wav"));
        let o = codec(&[&"decode", &"--model", &dir, &tok, &out]);
        assert_fails_with(&o, &["encode only", "CosyVoice"]);
        assert!(!out.exists(), "a refused decode writes nothing");
    }
}

#[test]
fn the_published_card_says_how_to_get_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("a.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    for i in 0..16000 {
        w.write_sample(((i % 100) * 100) as i16).unwrap();
    }
    w.finalize().unwrap();
    let o = codec(&[
        &"encode",
        &"--model",
        &"s3tokenizer-v2",
        &wav,
        &tmp.path().join("a.tok"),
    ]);
    assert_fails_with(&o, &["ONNX", "onnx2torch", "--model DIR"]);
}

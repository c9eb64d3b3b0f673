//! End-to-end tests of the `codec` binary with the DAC reference fixture
//! (`../shared/fixtures/dac`: weights.pth + the reference's config.json).

mod common;

use common::*;

use codec_core::npy::{read_npy, NpyArray};
use codec_core::tokfile::TokenFile;

/// Codes of `.npy` `[codebooks, frames]` (ours) against the reference's `[1, codebooks,
/// frames]`, skipping the reference's ambiguous frames.
fn assert_codes_match(got: &NpyArray, want: &NpyArray, ambiguous: &[usize], what: &str) {
    let (n, frames) = (want.shape[1], want.shape[2]);
    assert_eq!(got.shape, vec![n, frames], "{what}: npy shape");
    let differ: Vec<(usize, usize)> = (0..n)
        .flat_map(|q| (0..frames).map(move |t| (q, t)))
        .filter(|&(q, t)| {
            got.values[q * frames + t] != want.values[q * frames + t] && !ambiguous.contains(&t)
        })
        .collect();
    assert!(differ.is_empty(), "{what}: codes differ at {differ:?}");
}

#[test]
fn encode_gives_reference_codes_and_decode_reference_audio() {
    let Some(dir) = fixture_dir("dac") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for case in ["speech_a", "speech_b_odd"] {
        let wav = dir.join(format!("{case}.wav"));
        let npy = tmp.path().join(format!("{case}.npy"));
        let tok = tmp.path().join(format!("{case}.tok"));

        // All 32 codebooks by default.
        assert_ok(&codec(&[
            &"encode",
            &"--model",
            &dir,
            &"--format",
            &"npy",
            &wav,
            &npy,
        ]));
        let want = read_npy(&dir.join(format!("{case}.nq32.codes.npy"))).unwrap();
        let ambiguous = ambiguous_frames(&dir, case, "nq32");
        assert_codes_match(&read_npy(&npy).unwrap(), &want, &ambiguous, case);

        // Token file: the same codes, 32 streams of 1024 entries at 75 frames/s.
        assert_ok(&codec(&[&"encode", &"--model", &dir, &wav, &tok]));
        let mut t = TokenFile::read(&tok).unwrap();
        assert_eq!(t.streams.len(), 32);
        assert!(t
            .streams
            .iter()
            .all(|s| s.codebook_size == 1024 && s.frame_rate == 75.0));
        assert_eq!(t.bitrate(), 24000.0);

        // Decode the reference's codes (in our token file) and compare with its audio.
        let frames = want.shape[2];
        for (q, s) in t.streams.iter_mut().enumerate() {
            s.codes = want.values[q * frames..(q + 1) * frames]
                .iter()
                .map(|&v| v as u32)
                .collect();
        }
        let ref_tok = tmp.path().join(format!("{case}.ref.tok"));
        t.write(&ref_tok).unwrap();
        let out = tmp.path().join(format!("{case}.wav"));
        assert_ok(&codec(&[
            &"decode", &"--model", &dir, &"--float", &ref_tok, &out,
        ]));
        let (spec, decoded) = read_wav_f32(&out);
        assert_eq!(spec.sample_rate, 24000);
        let input_len = hound::WavReader::open(&wav).unwrap().duration() as usize;
        // Decode returns the original length; the reference returns a few samples less than
        // whole frames: compare over the reference's length.
        assert_eq!(decoded.len(), input_len, "{case}: decoded length");
        let reference = read_npy(&dir.join(format!("{case}.nq32.decoded.npy"))).unwrap();
        let reference: Vec<f32> = reference.values.iter().map(|&v| v as f32).collect();
        let n = reference.len().min(input_len);
        let snr = snr_db(&reference[..n], &decoded[..n]);
        eprintln!("{case}: CLI decoded SNR {snr:.1} dB over {n} samples");
        // Measured 118.9 dB at the lowest; asserted 12+ dB under it so a regression fails.
        assert!(snr >= 105.0, "{case}: SNR {snr:.1} dB");
    }
}

/// `--codebooks N` (a prefix of the residual codebooks).
#[test]
fn fewer_codebooks_give_the_reference_nq4_codes() {
    let Some(dir) = fixture_dir("dac") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for case in ["speech_a", "speech_b_odd"] {
        let wav = dir.join(format!("{case}.wav"));
        let npy = tmp.path().join(format!("{case}.nq4.npy"));
        assert_ok(&codec(&[
            &"encode",
            &"--model",
            &dir,
            &"--codebooks",
            &"4",
            &"--format",
            &"npy",
            &wav,
            &npy,
        ]));
        let want = read_npy(&dir.join(format!("{case}.nq4.codes.npy"))).unwrap();
        let ambiguous = ambiguous_frames(&dir, case, "nq4");
        assert_codes_match(&read_npy(&npy).unwrap(), &want, &ambiguous, case);

        // A 4-codebook token file decodes to the reference's 4-codebook audio.
        let tok = tmp.path().join(format!("{case}.nq4.tok"));
        assert_ok(&codec(&[
            &"encode",
            &"--model",
            &dir,
            &"--codebooks",
            &"4",
            &wav,
            &tok,
        ]));
        let t = TokenFile::read(&tok).unwrap();
        assert_eq!(t.streams.len(), 4);
        let out = tmp.path().join(format!("{case}.nq4.wav"));
        assert_ok(&codec(&[
            &"decode", &"--model", &dir, &"--float", &tok, &out,
        ]));
        let (_, decoded) = read_wav_f32(&out);
        let reference = read_npy(&dir.join(format!("{case}.nq4.decoded.npy"))).unwrap();
        let reference: Vec<f32> = reference.values.iter().map(|&v| v as f32).collect();
        let n = reference.len().min(decoded.len());
        let snr = snr_db(&reference[..n], &decoded[..n]);
        eprintln!("{case}: CLI nq4 decoded SNR {snr:.1} dB");
        // Measured 123.9 dB at the lowest; asserted 12+ dB under it so a regression fails.
        assert!(snr >= 110.0, "{case}: nq4 SNR {snr:.1} dB");
    }
}

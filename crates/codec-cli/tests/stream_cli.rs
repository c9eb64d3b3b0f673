//! `codec encode --stream` / `codec decode --stream` through real pipes, with the Mimi
//! reference fixture (`../shared/fixtures/mimi`): the streamed codes equal the reference's
//! codes, the streamed audio its decoded audio, and bad streams fail cleanly.

mod common;

use common::*;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use codec_core::audio::stream::{PcmStreamReader, RawPcm};
use codec_core::npy::read_npy;
use codec_core::tokstream::TokenStreamReader;

fn codec_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_codec"));
    cmd.env("HF_HUB_OFFLINE", "1");
    cmd
}

/// Run `codec ARGS` with `input` on stdin; returns (stdout, stderr, success).
fn codec_piped(args: &[&str], input: &[u8]) -> (Vec<u8>, String, bool) {
    let mut child = codec_cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run codec");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Write from another thread: the child writes stdout while it reads stdin.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

/// `codec encode --stream -m MODEL --codebooks 8 - -` with `input` on stdin.
fn stream_encode(model: &str, input: &[u8]) -> (Vec<u8>, String, bool) {
    codec_piped(
        &[
            "encode",
            "--stream",
            "-m",
            model,
            "--codebooks",
            "8",
            "-",
            "-",
        ],
        input,
    )
}

fn stream_frames(bytes: &[u8]) -> (TokenStreamReader<&[u8]>, Vec<Vec<u32>>) {
    let mut r = TokenStreamReader::new(bytes).unwrap();
    let mut frames = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        frames.push(f);
    }
    (r, frames)
}

/// Reference codes `[1, books, frames]` as `[frames][books]`.
fn reference_frames(path: &Path) -> Vec<Vec<u32>> {
    let a = read_npy(path).unwrap();
    let (books, frames) = (a.shape[1], a.shape[2]);
    (0..frames)
        .map(|t| {
            (0..books)
                .map(|q| a.values[q * frames + t] as u32)
                .collect()
        })
        .collect()
}

fn npy_f32(path: &Path) -> Vec<f32> {
    read_npy(path)
        .unwrap()
        .values
        .into_iter()
        .map(|v| v as f32)
        .collect()
}

fn wav_stream_samples(bytes: &[u8]) -> (u32, Vec<f32>) {
    let raw = RawPcm {
        sample_rate: 1,
        channels: 1,
    };
    let mut r = PcmStreamReader::new(bytes, raw).unwrap();
    assert!(r.is_wav(), "decode --stream writes a WAV stream by default");
    let mut all = Vec::new();
    while let Some(s) = r.read_mono().unwrap() {
        all.extend(s);
    }
    (r.sample_rate(), all)
}

#[test]
fn streamed_codes_and_audio_match_the_reference() {
    let Some(dir) = fixture_dir("mimi") else {
        return;
    };
    let model = dir.to_str().unwrap();
    for case in ["speech_a", "speech_b_odd"] {
        let wav = std::fs::read(dir.join(format!("{case}.wav"))).unwrap();
        let (tokens, err, ok) = stream_encode(model, &wav);
        assert!(ok, "encode --stream failed: {err}");
        assert!(err.contains("latency"), "no latency report: {err}");
        let (reader, frames) = stream_frames(&tokens);
        assert_eq!(reader.header().codebook_sizes, vec![2048; 8]);
        // The last partial frame is completed with silence, as batch encoding pads: every
        // frame equals the batch reference (nq8 has no ambiguous frames).
        let want = reference_frames(&dir.join(format!("{case}.nq8.codes.npy")));
        assert_eq!(frames, want, "{case}: streamed codes");

        let (wav_out, err, ok) = codec_piped(
            &["decode", "--stream", "-m", model, "--float", "-", "-"],
            &tokens,
        );
        assert!(ok, "decode --stream failed: {err}");
        let (rate, audio) = wav_stream_samples(&wav_out);
        assert_eq!(rate, 24000);
        let reference = npy_f32(&dir.join(format!("{case}.nq8.decoded.npy")));
        let snr = snr_db(&reference, &audio);
        // Measured 119.3 dB at the lowest; asserted 12+ dB under it so a regression fails.
        assert!(snr >= 105.0, "{case}: streamed audio SNR {snr:.1} dB");
        eprintln!("{case}: streamed codes equal, audio SNR {snr:.1} dB");
    }
}

#[test]
fn encoder_and_decoder_run_as_one_pipeline() {
    let Some(dir) = fixture_dir("mimi") else {
        return;
    };
    let model = dir.to_str().unwrap();
    let wav = std::fs::read(dir.join("speech_a.wav")).unwrap();
    let mut encoder = codec_cmd()
        .args([
            "encode",
            "--stream",
            "-m",
            model,
            "--codebooks",
            "8",
            "-",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let decoder = codec_cmd()
        .args(["decode", "--stream", "-m", model, "--raw", "-", "-"])
        .stdin(encoder.stdout.take().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Feed the raw samples (no header) in small pieces, as a sound card would.
    let mut stdin = encoder.stdin.take().unwrap();
    let pcm = wav[44..].to_vec();
    let feeder = std::thread::spawn(move || {
        for piece in pcm.chunks(480) {
            stdin.write_all(piece).unwrap();
        }
    });
    let out = decoder.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(encoder.wait().unwrap().success());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Raw 16-bit output: 38 frames of 1920 samples.
    assert_eq!(out.stdout.len(), 38 * 1920 * 2);
    let reference = npy_f32(&dir.join("speech_a.nq8.decoded.npy"));
    let audio: Vec<f32> = out
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32767.0)
        .collect();
    // 16-bit output: the bar is the quantisation noise, not the model.
    let snr = snr_db(&reference, &audio);
    // Measured 68.6 dB at the lowest; asserted 12+ dB under it so a regression fails.
    assert!(snr >= 55.0, "pipeline audio SNR {snr:.1} dB");
}

#[test]
fn bad_streams_fail_cleanly() {
    let Some(dir) = fixture_dir("mimi") else {
        return;
    };
    let model = dir.to_str().unwrap();
    let wav = std::fs::read(dir.join("speech_a.wav")).unwrap();

    // A model that looks ahead cannot stream.
    let (_, err, ok) = codec_piped(
        &["encode", "--stream", "-m", "tinycodec-24khz", "-", "-"],
        &wav,
    );
    assert!(!ok && err.contains("cannot stream"), "{err}");

    // Raw input at another rate.
    let (_, err, ok) = codec_piped(
        &[
            "encode",
            "--stream",
            "-m",
            model,
            "--raw-rate",
            "16000",
            "-",
            "-",
        ],
        &wav[44..],
    );
    assert!(
        !ok && err.contains("16000 Hz") && err.contains("arecord"),
        "{err}"
    );

    // A token file, or audio, is not a token stream.
    let (_, err, ok) = codec_piped(&["decode", "--stream", "-m", model, "-", "-"], &wav);
    assert!(!ok && err.contains("not a token stream"), "{err}");

    // A stream cut inside a frame, and one with a flipped bit.
    let (tokens, _, ok) = stream_encode(model, &wav);
    assert!(ok);
    let cut = &tokens[..tokens.len() - 5];
    let (_, err, ok) = codec_piped(&["decode", "--stream", "-m", model, "-", "-"], cut);
    assert!(
        !ok && err.contains("token stream: frame") && err.contains("ends inside it"),
        "{err}"
    );
    let mut flipped = tokens.clone();
    let n = flipped.len();
    flipped[n - 30] ^= 0x10;
    let (_, err, ok) = codec_piped(&["decode", "--stream", "-m", model, "-", "-"], &flipped);
    assert!(!ok && err.contains("checksum"), "{err}");

    // '-' without --stream.
    let o = codec(&[&"encode", &"-", &"out.tok"]);
    assert_fails_with(&o, &["needs --stream"]);
}

/// The stream reader/writer on a byte level do not need a model: the unit tests in
/// `codec_core::tokstream` cover truncation at every byte and every bit flip.
#[test]
fn decode_stream_of_an_empty_stream_writes_just_a_header() {
    let Some(dir) = fixture_dir("mimi") else {
        return;
    };
    let model = dir.to_str().unwrap();
    let (tokens, _, ok) = stream_encode(model, &[]);
    assert!(ok);
    let (_, frames) = stream_frames(&tokens);
    assert!(frames.is_empty());
    let (mut out, err, ok) = codec_piped(&["decode", "--stream", "-m", model, "-", "-"], &tokens);
    assert!(ok, "{err}");
    assert_eq!(out.len(), 44, "a WAV header and no samples");
    let mut head = [0u8; 4];
    out.as_slice().read_exact(&mut head).unwrap();
    assert_eq!(&head, b"RIFF");
    out.clear();
}

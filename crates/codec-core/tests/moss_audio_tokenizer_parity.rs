//! Parity with the reference MOSS-Audio-Tokenizer (OpenMOSS/MOSS-Audio-Tokenizer at 56df9ee,
//! transformers 5.0.0) on `../shared/fixtures/moss-audio-tokenizer`: a test model of the
//! published module pattern with windows of 1 s, so the sliding window acts on 3 s clips.
//!
//! What is checked (the fixture lists no ambiguous frame in any case):
//! - the hub folder loads through the registry with every key used;
//! - every stage against the trace (each transformer's output, the quantizer's input and
//!   projection, codes, the decoder's input and stages);
//! - codes from the WAV equal the reference's, all 32 rows and the 8-row prefix, the masked
//!   partial last frame included; the ONNX-path codes with `mask_partial_frame=false`;
//! - decoding the reference's codes matches its audio;
//! - a padded batch of both clips gives `batch.codes.npy`, and each clip's lone codes;
//! - streaming (1-frame chunks for speech_a, 5-frame chunks for speech_b_odd) gives the
//!   reference's streaming codes and audio.

mod common;

use std::collections::HashMap;
use std::path::Path;

use codec_core::audio::read_audio;
use codec_core::models::moss_audio_tokenizer::{MossAudioTokenizer, MossAudioTokenizerConfig};
use codec_core::npy::read_npy;
use codec_core::weights::StateDict;
use codec_core::{Codec, Device, EncodeOptions, Tensor};

use common::{fixture_dir, snr_db};

const FIXTURE: &str = "moss-audio-tokenizer";
const CASES: &[&str] = &["speech_a", "speech_b_odd"];
/// Decoded audio: measured 127.5 / 126.7 dB (speech_a, all and 8 codebooks) and 127.3 / 125.7
/// dB (speech_b_odd) against the reference's decode, where float32 and float64 runs of the
/// reference itself part at 127-128 dB. The bound sits 5.7 dB under the lowest (a real
/// regression, e.g. a window one frame off, falls to 24 dB), far above the fixture's 60 dB.
const DECODED_SNR_DB: f64 = 120.0;
/// Streaming decode: measured 127.3 and 126.5 dB; the same margin.
const STREAM_SNR_DB: f64 = 120.0;
/// Stage outputs against the trace: largest |difference| relative to the stage's RMS,
/// measured 0.7e-6 to 3.3e-6 over the stages; 3x margin.
const STAGE_REL_TOL: f32 = 1e-5;

fn load(dir: &Path) -> MossAudioTokenizer {
    let json = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let cfg = MossAudioTokenizerConfig::from_reference_json(&json, "config.json").unwrap();
    let state = StateDict::load(&dir.join("model.safetensors")).unwrap();
    let (model, unused) = MossAudioTokenizer::load(&cfg, state, "fixture", &Device::Cpu).unwrap();
    assert!(unused.is_empty(), "unused keys: {unused:?}");
    model
}

fn trace(dir: &Path, name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join(format!("{name}.trace.safetensors")), &Device::Cpu)
        .unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.to_dtype(candle_core::DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

/// Codes of a `.codes.npy` (`[n_q, batch, frames]`, int64) as `[batch][n_q][frames]`.
fn npy_codes(path: &Path) -> Vec<Vec<Vec<u32>>> {
    let a = read_npy(path).unwrap();
    let (n_q, b, f) = (a.shape[0], a.shape[1], a.shape[2]);
    (0..b)
        .map(|i| {
            (0..n_q)
                .map(|k| {
                    (0..f)
                        .map(|t| a.values[(k * b + i) * f + t] as u32)
                        .collect()
                })
                .collect()
        })
        .collect()
}

fn npy_f32(path: &Path) -> Vec<f32> {
    read_npy(path)
        .unwrap()
        .values
        .iter()
        .map(|&v| v as f32)
        .collect()
}

fn audio_tensor(dir: &Path, case: &str) -> Tensor {
    let clip = read_audio(dir.join(format!("{case}.wav"))).unwrap();
    assert_eq!(clip.sample_rate, 24000);
    let samples = clip.channels.into_iter().next().unwrap();
    let n = samples.len();
    Tensor::from_vec(samples, (1, 1, n), &Device::Cpu).unwrap()
}

/// Codes `[batch, n_q, frames]` as the fixture's layout, `[batch][n_q][frames]`.
fn ours(codes: &Tensor) -> Vec<Vec<Vec<u32>>> {
    codes.to_vec3::<u32>().unwrap()
}

/// Codes `[1][n_q][frames]` as a `[1, n_q, frames]` tensor.
fn codes_tensor(codes: &[Vec<Vec<u32>>]) -> Tensor {
    let (n_q, f) = (codes[0].len(), codes[0][0].len());
    let flat: Vec<u32> = codes[0].iter().flatten().copied().collect();
    Tensor::from_vec(flat, (1, n_q, f), &Device::Cpu).unwrap()
}

fn max_rel_diff(reference: &[f32], ours: &[f32]) -> f32 {
    assert_eq!(reference.len(), ours.len());
    let rms = (reference.iter().map(|v| v * v).sum::<f32>() / reference.len() as f32).sqrt();
    let max = reference
        .iter()
        .zip(ours)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    max / rms.max(1e-12)
}

#[test]
fn the_hub_folder_loads_through_the_registry() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let spec = codec_core::ModelSpec::parse(dir.to_str().unwrap()).unwrap();
    let loaded = codec_core::load_model_with_report(&spec, &Device::Cpu).unwrap();
    assert!(loaded.unused_keys.is_empty(), "{:?}", loaded.unused_keys);
    let model = loaded.model;
    let info = model.info();
    assert_eq!(info.family, "moss-audio-tokenizer");
    assert_eq!((info.sample_rate, info.frame_rate), (24000, 12.5));
    assert_eq!(info.codebook_sizes, vec![1024; 32]);
    assert!(model.supports_streaming());
    assert_eq!(info.fingerprint, load(&dir).info().fingerprint);
    let state = StateDict::load(&dir.join("model.safetensors")).unwrap();
    assert_eq!(
        codec_core::models::detect_family_from_weights(&state),
        Some("moss-audio-tokenizer")
    );
}

#[test]
fn every_stage_matches_the_trace() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let model = load(&dir);
    for case in CASES {
        let t = trace(&dir, case);
        let input = t["input"].reshape((1, 1, ())).unwrap();
        assert_eq!(
            values(&input),
            values(&audio_tensor(&dir, case)),
            "{case} input"
        );
        let ours = model.trace(&input, 32).unwrap();
        let mut stages: Vec<(String, Tensor)> = Vec::new();
        for (i, x) in &ours.encoder {
            if *i < 7 {
                stages.push((format!("encoder{i}_out"), x.clone()));
            }
        }
        stages.push(("encoder_hidden_states".into(), ours.encoder_hidden_states));
        stages.push(("rvq_input".into(), ours.rvq_input));
        stages.push(("decoder_input".into(), ours.decoder_input));
        for (i, x) in &ours.decoder {
            stages.push((format!("decoder{i}_out"), x.clone()));
        }
        stages.push(("decoded".into(), ours.decoded));
        assert_eq!(stages.len(), 11, "{case}: stages");
        for (name, x) in &stages {
            let want = &t[name.as_str()];
            let shape = if name == "decoded" {
                &x.dims()[2..]
            } else {
                &x.dims()[1..]
            };
            assert_eq!(shape, want.dims(), "{case} {name} shape");
            let rel = max_rel_diff(&values(want), &values(x));
            eprintln!("{case} {name}: max |diff| / rms {rel:.2e}");
            assert!(rel < STAGE_REL_TOL, "{case} {name}: {rel:.2e}");
        }
        let want: Vec<u32> = values(&t["codes"]).iter().map(|&c| c as u32).collect();
        let got: Vec<u32> = ours.codes.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(got, want, "{case} traced codes");
    }
}

#[test]
fn codes_match_the_reference_at_every_frame() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let model = load(&dir);
    for case in CASES {
        let audio = audio_tensor(&dir, case);
        let codes = model.encode(&audio).unwrap();
        let want = npy_codes(&dir.join(format!("{case}.codes.npy")));
        assert_eq!(ours(&codes), want, "{case}: 32 codebooks");
        let q8 = model
            .encode_with(&audio, &EncodeOptions::new(Some(8)))
            .unwrap()
            .stacked()
            .unwrap();
        let want8 = npy_codes(&dir.join(format!("{case}.q8.codes.npy")));
        assert_eq!(ours(&q8), want8, "{case}: 8 codebooks");
    }
}

#[test]
fn the_onnx_path_quantizes_the_partial_frame() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let mut model = load(&dir);
    model.set_option("mask_partial_frame", "false").unwrap();
    for case in CASES {
        let codes = model.encode(&audio_tensor(&dir, case)).unwrap();
        let want = npy_codes(&dir.join(format!("{case}.onnx_path.codes.npy")));
        assert_eq!(ours(&codes), want, "{case}");
        // Only the last frame differs from encode's.
        let masked = npy_codes(&dir.join(format!("{case}.codes.npy")));
        let f = want[0][0].len();
        for k in 0..32 {
            assert_eq!(want[0][k][..f - 1], masked[0][k][..f - 1], "{case} row {k}");
        }
        assert_ne!(
            (0..32).map(|k| want[0][k][f - 1]).collect::<Vec<_>>(),
            (0..32).map(|k| masked[0][k][f - 1]).collect::<Vec<_>>()
        );
    }
}

#[test]
fn decoding_the_reference_codes_matches_its_audio() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let model = load(&dir);
    for case in CASES {
        for (codes, audio) in [("codes", "decoded"), ("q8.codes", "q8.decoded")] {
            let codes = npy_codes(&dir.join(format!("{case}.{codes}.npy")));
            let want = npy_f32(&dir.join(format!("{case}.{audio}.npy")));
            let got = values(&model.decode(&codes_tensor(&codes)).unwrap());
            assert_eq!(got.len(), want.len(), "{case} {audio} length");
            let snr = snr_db(&want, &got);
            eprintln!("{case} {audio}: {snr:.1} dB");
            assert!(snr > DECODED_SNR_DB, "{case} {audio}: {snr:.1} dB");
        }
    }
}

#[test]
fn a_padded_batch_gives_the_reference_batch_codes() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let model = load(&dir);
    let clips: Vec<Vec<f32>> = CASES
        .iter()
        .map(|c| values(&audio_tensor(&dir, c)))
        .collect();
    let lengths: Vec<usize> = clips.iter().map(Vec::len).collect();
    let longest = *lengths.iter().max().unwrap();
    let padded: Vec<f32> = clips
        .iter()
        .flat_map(|c| {
            c.iter()
                .copied()
                .chain(std::iter::repeat(0.0))
                .take(longest)
        })
        .collect();
    let audio = Tensor::from_vec(padded, (2, 1, longest), &Device::Cpu).unwrap();
    let codes = model.encode_padded(&audio, &lengths, 32).unwrap();
    let want = npy_codes(&dir.join("batch.codes.npy"));
    assert_eq!(ours(&codes), want);
    // Each clip's lone codes over its own frames.
    for (i, case) in CASES.iter().enumerate() {
        let lone = npy_codes(&dir.join(format!("{case}.codes.npy")));
        let f = lone[0][0].len();
        for k in 0..32 {
            assert_eq!(want[i][k][..f - 1], lone[0][k][..f - 1], "{case} row {k}");
        }
    }
}

/// Push `audio` through a stream in uneven pieces; everything out, `finish` included.
fn stream_encode(model: &MossAudioTokenizer, audio: &Tensor) -> Tensor {
    let mut enc = model
        .streaming_encoder(1, &EncodeOptions::default())
        .unwrap();
    let n = audio.dim(2).unwrap();
    let mut out = None;
    let (mut pos, mut i) = (0, 0);
    while pos < n {
        let len = [1000, 4321, 77, 9600][i % 4].min(n - pos);
        let piece = enc.push_audio(&audio.narrow(2, pos, len).unwrap()).unwrap();
        out = codec_core::streaming::cat_pieces(out, piece).unwrap();
        pos += len;
        i += 1;
    }
    let last = enc.finish().unwrap();
    codec_core::streaming::cat_pieces(out, last)
        .unwrap()
        .unwrap()
}

fn stream_decode(model: &MossAudioTokenizer, codes: &Tensor) -> Tensor {
    let mut dec = model.streaming_decoder(1).unwrap();
    let f = codes.dim(2).unwrap();
    let mut out = None;
    let (mut pos, mut i) = (0, 0);
    while pos < f {
        let len = [3, 1, 7][i % 3].min(f - pos);
        let piece = dec.push_codes(&codes.narrow(2, pos, len).unwrap()).unwrap();
        out = codec_core::streaming::cat_pieces(out, piece).unwrap();
        pos += len;
        i += 1;
    }
    let last = dec.finish().unwrap();
    codec_core::streaming::cat_pieces(out, last)
        .unwrap()
        .unwrap()
}

#[test]
fn streaming_gives_the_reference_streaming_codes_and_audio() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let mut model = load(&dir);
    for (case, chunk) in [("speech_a", "1"), ("speech_b_odd", "5")] {
        model.set_option("stream_chunk_frames", chunk).unwrap();
        let codes = stream_encode(&model, &audio_tensor(&dir, case));
        let want = npy_codes(&dir.join(format!("{case}.stream.codes.npy")));
        assert_eq!(ours(&codes), want, "{case} stream codes");
        let audio = stream_decode(&model, &codes_tensor(&want));
        let want = npy_f32(&dir.join(format!("{case}.stream.decoded.npy")));
        let got = values(&audio);
        assert_eq!(got.len(), want.len(), "{case} stream audio length");
        let snr = snr_db(&want, &got);
        eprintln!("{case} stream decode: {snr:.1} dB");
        assert!(snr > STREAM_SNR_DB, "{case} stream: {snr:.1} dB");
    }
    // The reference's bound: a chunk no longer than the window (12 frames at 1 s here).
    assert_eq!(model.max_stream_chunk_frames(), 12);
    assert!(model.set_option("stream_chunk_frames", "13").is_err());
    assert!(model.set_option("stream_chunk_frames", "0").is_err());
}

#[test]
fn a_stream_shorter_than_a_chunk_is_a_whole_file_encode() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let mut model = load(&dir);
    model.set_option("stream_chunk_frames", "12").unwrap();
    // 2.5 frames: under one chunk, so the reference's encode with its masked partial frame.
    let audio = audio_tensor(&dir, "speech_a").narrow(2, 0, 4800).unwrap();
    let streamed = stream_encode(&model, &audio);
    assert_eq!(streamed.dims(), &[1, 32, 3]);
    assert_eq!(ours(&streamed), ours(&model.encode(&audio).unwrap()));
}

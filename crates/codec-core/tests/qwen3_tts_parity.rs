//! Parity with the reference Qwen3-TTS-Tokenizer-12Hz (`qwen-tts` 0.1.1, transformers 4.57.3)
//! on `../shared/fixtures/qwen3-tts-tokenizer`.
//!
//! What is checked:
//! - the hub folder loads as published (`config.json` + `model.safetensors`, the trace files
//!   beside it ignored) with every key used;
//! - the encoder's stages (SEANet, transformer, quantizer input) against the trace;
//! - codes from the WAV equal the reference's at every frame (the fixture lists no ambiguous
//!   frame);
//! - decoding the reference's codes matches its audio, the 330-frame case through the
//!   reference's 300-frame chunking;
//! - a batch of both clips gives each its lone codes and audio (where the reference's batched
//!   encode changes the shorter clip's last frame).

mod common;

use std::collections::HashMap;
use std::path::Path;

use codec_core::audio::{read_audio, AudioClip};
use codec_core::models::qwen3_tts::{Qwen3Tts, Qwen3TtsConfig};
use codec_core::npy::read_npy;
use codec_core::weights::StateDict;
use codec_core::{batch, Codec, Device, EncodeOptions, Tensor};

use common::{fixture_dir, snr_db};

const FIXTURE: &str = "qwen3-tts-tokenizer";
const CASES: &[&str] = &["speech_a", "speech_b_odd"];

fn load(dir: &Path) -> Qwen3Tts {
    let json = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let cfg = Qwen3TtsConfig::from_reference_json(&json, "config.json").unwrap();
    let state = StateDict::load(&dir.join("model.safetensors")).unwrap();
    let (model, unused) = Qwen3Tts::load(&cfg, state, "fixture", &Device::Cpu).unwrap();
    assert!(unused.is_empty(), "unused keys: {unused:?}");
    model
}

fn trace(dir: &Path, case: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join(format!("{case}.trace.safetensors")), &Device::Cpu)
        .unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Codes `[batch, 16, frames]` of a `.codes.npy` (int64, -1 past an item's end) as rows.
fn npy_codes(path: &Path) -> (Vec<usize>, Vec<i64>) {
    let a = read_npy(path).unwrap();
    (
        a.shape.clone(),
        a.values.iter().map(|&v| v as i64).collect(),
    )
}

/// One item's codes `[16][frames]` (the first `frames` of each row).
fn item_codes(path: &Path, item: usize, frames: usize) -> Vec<Vec<u32>> {
    let (shape, v) = npy_codes(path);
    let (books, len) = (shape[1], shape[2]);
    (0..books)
        .map(|k| {
            let row = &v[(item * books + k) * len..][..len];
            row[..frames].iter().map(|&c| c as u32).collect()
        })
        .collect()
}

fn audio_tensor(dir: &Path, case: &str) -> Tensor {
    let clip = read_audio(dir.join(format!("{case}.wav"))).unwrap();
    assert_eq!(clip.sample_rate, 24000);
    let samples = clip.channels.into_iter().next().unwrap();
    let n = samples.len();
    Tensor::from_vec(samples, (1, 1, n), &Device::Cpu).unwrap()
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
    assert_eq!(info.family, "qwen3-tts");
    assert_eq!((info.sample_rate, info.frame_rate), (24000, 12.5));
    assert_eq!(info.codebook_sizes, vec![2048; 16]);
    assert!(!model.supports_streaming());
    assert_eq!(info.fingerprint, load(&dir).info().fingerprint);
    let state = StateDict::load(&dir.join("model.safetensors")).unwrap();
    assert_eq!(
        codec_core::models::detect_family_from_weights(&state),
        Some("qwen3-tts")
    );
}

#[test]
fn the_wav_reads_as_the_trace_input() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    for case in CASES {
        let want = values(&trace(&dir, case)["input"]);
        assert_eq!(values(&audio_tensor(&dir, case)), want, "{case}");
    }
}

#[test]
fn encoder_stages_match_the_trace() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let model = load(&dir);
    for case in CASES {
        let trace = trace(&dir, case);
        let input = trace["input"].reshape((1, 1, ())).unwrap();
        let stages = model.encoder_stages(&input).unwrap();
        // Measured at the lowest: SEANet 115.8 dB, transformer 110.7 dB, latent 111.2 dB;
        // asserted 12+ dB under each (the README: float32 and float64 latents of the reference
        // differ by 8e-6 relative, ~100 dB).
        for (stage, name, floor) in [
            (0, "seanet_out", 103.0),
            (1, "encoder_transformer_out", 98.0),
            (2, "latent", 99.0),
        ] {
            let want = &trace[name];
            let got = stages[stage].squeeze(0).unwrap();
            assert_eq!(got.dims(), want.dims(), "{case} {name}");
            let snr = snr_db(&values(want), &values(&got));
            println!("{case} {name}: {snr:.1} dB");
            assert!(snr >= floor, "{case}: {name} at {snr:.1} dB");
        }
    }
}

#[test]
fn codes_equal_the_reference_and_decoding_its_codes_matches_its_audio() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let model = load(&dir);
    for case in CASES {
        let audio = audio_tensor(&dir, case);
        let samples = audio.dim(2).unwrap();
        let frames = samples.div_ceil(1920);
        let want = item_codes(&dir.join(format!("{case}.codes.npy")), 0, frames);
        let got = model.encode(&audio).unwrap().squeeze(0).unwrap();
        let got = got.to_vec2::<u32>().unwrap();
        assert_eq!(got.len(), 16);
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.len(), frames, "{case}: frames");
            let diff: Vec<usize> = (0..frames).filter(|&t| g[t] != w[t]).collect();
            assert!(diff.is_empty(), "{case}: codebook {k} differs at {diff:?}");
        }

        let codes = Tensor::new(want, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let decoded = model.decode(&codes).unwrap();
        let reference = read_npy(&dir.join(format!("{case}.decoded.npy"))).unwrap();
        assert_eq!(decoded.dims(), &[1, 1, frames * 1920], "{case}");
        let got = values(&decoded.narrow(2, 0, samples).unwrap());
        let want: Vec<f32> = reference.values[..samples]
            .iter()
            .map(|&v| v as f32)
            .collect();
        let snr = snr_db(&want, &got);
        println!("{case} decoded: {snr:.1} dB");
        // Measured 86.8 dB at the lowest (the reference's own float32 vs float64: 89 dB);
        // asserted 12 dB under it (the issue asks >= 60).
        assert!(snr >= 74.0, "{case}: decoded at {snr:.1} dB");
    }
}

#[test]
fn long_codes_decode_through_the_reference_chunking() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let model = load(&dir);
    let codes = item_codes(&dir.join("decode_only_long.codes.npy"), 0, 330);
    let codes = Tensor::new(codes, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let reference = read_npy(&dir.join("decode_only_long.decoded.npy")).unwrap();
    let want: Vec<f32> = reference.values.iter().map(|&v| v as f32).collect();
    let chunked = values(&model.decode(&codes).unwrap());
    let snr = snr_db(&want, &chunked);
    println!("decode_only_long: {snr:.1} dB");
    // Measured 86.7 dB; asserted 12+ dB under it.
    assert!(snr >= 74.0, "chunked decode at {snr:.1} dB");
    // One unchunked pass is another result (the fixture: 36.6 dB from the chunked one).
    let whole = values(&model.decode_unchunked(&codes).unwrap());
    let snr = snr_db(&want, &whole);
    println!("unchunked: {snr:.1} dB");
    // Measured 36.6 dB (the fixture's own figure); a decode that ignored the chunking would
    // sit near 87 dB.
    assert!(
        snr < 45.0,
        "unchunked decode matches the chunked one at {snr:.1} dB"
    );
}

#[test]
fn a_batch_gives_each_clip_its_lone_codes_and_audio() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let model = load(&dir);
    let clips: Vec<AudioClip> = CASES
        .iter()
        .map(|case| read_audio(dir.join(format!("{case}.wav"))).unwrap())
        .collect();
    let encoded = batch::encode_batch(&model, &clips, &EncodeOptions::default()).unwrap();
    for (i, (case, e)) in CASES.iter().zip(&encoded).enumerate() {
        let frames = clips[i].channels[0].len().div_ceil(1920);
        let single = item_codes(&dir.join(format!("{case}.codes.npy")), 0, frames);
        let got: Vec<Vec<u32>> = e.tokens.streams.iter().map(|s| s.codes.clone()).collect();
        assert_eq!(
            got, single,
            "{case}: batch codes differ from the lone encode"
        );
        // The reference's batched encode changed the shorter clip's last frame; ours did not.
        let reference_batch = item_codes(&dir.join("batch.codes.npy"), i, frames);
        if i == 1 {
            assert_ne!(
                reference_batch, single,
                "the fixture's batch quirk is gone: re-read its README"
            );
        }
    }
    let tokens: Vec<_> = encoded.into_iter().map(|e| e.tokens).collect();
    let audio = batch::decode_batch(&model, &tokens, &Default::default()).unwrap();
    for (i, case) in CASES.iter().enumerate() {
        let lone =
            codec_core::pipeline::decode_tokens(&model, &tokens[i], &Default::default()).unwrap();
        assert_eq!(
            audio[i].channels, lone.channels,
            "{case}: batch audio differs"
        );
    }
}

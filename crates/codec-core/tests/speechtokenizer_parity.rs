//! Parity with the reference SpeechTokenizer (`speechtokenizer` 1.0.1) on
//! `../shared/fixtures/speechtokenizer`, for both cases at 1 and 8 quantizers.
//!
//! What is checked:
//! - the folder loads as the reference ships it (`SpeechTokenizer.pt` + `config.json`, the
//!   trace files beside them ignored) with every key used;
//! - the encoder output, the first stage's semantic features and each stage's residual input
//!   against the trace;
//! - codes from the WAV equal the reference's at every frame not listed in `ambiguous_frames`
//!   (none in this fixture);
//! - decoding the reference's codes: SNR against the reference's audio over the input's length.

mod common;

use std::collections::HashMap;
use std::path::Path;

use codec_core::models::speechtokenizer::{SpeechTokenizer, SpeechTokenizerConfig};
use codec_core::npy::read_npy;
use codec_core::weights::StateDict;
use codec_core::{Codec, Device, EncodeOptions, Tensor};

use common::{fixture_dir, snr_db};

const CASES: &[&str] = &["speech_a", "speech_b_odd"];
const QUANTIZERS: &[usize] = &[1, 8];

fn load(dir: &Path) -> SpeechTokenizer {
    let json = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let cfg = SpeechTokenizerConfig::from_reference_json(&json, "config.json").unwrap();
    let state = StateDict::load(&dir.join("SpeechTokenizer.pt")).unwrap();
    let (model, unused) = SpeechTokenizer::load(&cfg, state, "fixture", &Device::Cpu).unwrap();
    assert!(unused.is_empty(), "unused inference keys: {unused:?}");
    model
}

fn trace(dir: &Path, case: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join(format!("{case}.trace.safetensors")), &Device::Cpu)
        .unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn cases_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap()
}

fn ambiguous_frames(meta: &serde_json::Value) -> Vec<usize> {
    meta["ambiguous_frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect()
}

/// Reference codes `[n_q, batch=1, frames]` as rows `[n_q][frames]`.
fn reference_codes(dir: &Path, case: &str, n_q: usize) -> Vec<Vec<u32>> {
    let want = read_npy(&dir.join(format!("{case}.nq{n_q}.codes.npy"))).unwrap();
    assert_eq!(want.shape[..2], [n_q, 1], "{case} nq{n_q}: codes layout");
    let frames = want.shape[2];
    want.values
        .chunks(frames)
        .map(|c| c.iter().map(|&v| v as u32).collect())
        .collect()
}

#[test]
fn the_reference_folder_loads_through_the_registry() {
    let Some(dir) = fixture_dir("speechtokenizer") else {
        return;
    };
    let spec = codec_core::ModelSpec::parse(dir.to_str().unwrap()).unwrap();
    let loaded = codec_core::load_model_with_report(&spec, &Device::Cpu).unwrap();
    assert!(loaded.unused_keys.is_empty(), "{:?}", loaded.unused_keys);
    let model = loaded.model;
    let info = model.info();
    assert_eq!(info.family, "speechtokenizer");
    assert_eq!((info.sample_rate, info.frame_rate), (16000, 50.0));
    assert_eq!(info.codebook_sizes, vec![1024; 8]);
    assert!(!model.supports_streaming());
    assert_eq!(info.fingerprint, load(&dir).info().fingerprint);
    // Without its config the architecture is read off the shapes.
    let state = StateDict::load(&dir.join("SpeechTokenizer.pt")).unwrap();
    assert_eq!(
        codec_core::models::detect_family_from_weights(&state),
        Some("speechtokenizer")
    );
    let json = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let from_json = SpeechTokenizerConfig::from_reference_json(&json, "config.json").unwrap();
    assert_eq!(
        codec_core::models::speechtokenizer::infer_config(&state).unwrap(),
        from_json
    );
}

#[test]
fn encoder_semantic_head_and_residuals_match_the_trace() {
    let Some(dir) = fixture_dir("speechtokenizer") else {
        return;
    };
    let model = load(&dir);
    for case in CASES {
        let trace = trace(&dir, case);
        let input = trace["input"].unsqueeze(1).unwrap();
        let latent = model.encode_latent(&input).unwrap();
        let want = &trace["encoder_out"];
        assert_eq!(latent.dims(), want.dims(), "{case}");
        let snr = snr_db(&values(want), &values(&latent));
        // Measured 97.9 dB at the lowest; asserted 12+ dB under it (the README: float32 and
        // float64 latents of the reference differ by 7e-6 relative, ~103 dB).
        assert!(snr >= 85.0, "{case}: encoder output at {snr:.1} dB");

        let features = model.semantic_features(&input).unwrap();
        let want = &trace["semantic_feature"];
        assert_eq!(features.dims(), want.dims(), "{case}");
        let snr = snr_db(&values(want), &values(&features));
        // Measured 326.0 dB at the lowest (the first stage's entries are exact once its codes
        // agree); asserted 12+ dB under it.
        assert!(snr >= 310.0, "{case}: semantic features at {snr:.1} dB");

        // Stage by stage from the reference's latent: the residual each stage sees.
        let codes = model.quantize_latent(&trace["encoder_out"], 8).unwrap();
        let residuals = &trace["rvq_residual_in"];
        // Measured at the lowest (stages 1..7): 328.3, 136.8, 125.7, 115.8, 106.5, 97.8,
        // 88.9 dB: the residual falls 8 dB a stage against a fixed float32 noise. Asserted 12+
        // dB under each.
        let floors = [315.0, 120.0, 110.0, 100.0, 90.0, 85.0, 75.0];
        for (stage, floor) in (1..8).zip(floors) {
            let quantized = model
                .dequantize(&codes.narrow(1, 0, stage).unwrap())
                .unwrap();
            let residual = (&trace["encoder_out"] - quantized).unwrap();
            let want = residuals.get(stage).unwrap().unsqueeze(0).unwrap();
            let snr = snr_db(&values(&want), &values(&residual));
            assert!(
                snr >= floor,
                "{case}: residual into stage {stage} at {snr:.1} dB"
            );
        }
    }
}

#[test]
fn codes_equal_the_reference_and_decoding_its_codes_matches_its_audio() {
    let Some(dir) = fixture_dir("speechtokenizer") else {
        return;
    };
    let model = load(&dir);
    let meta = cases_json(&dir);
    for case in CASES {
        let trace = trace(&dir, case);
        let input = trace["input"].unsqueeze(1).unwrap();
        let samples = input.dim(2).unwrap();
        for &n_q in QUANTIZERS {
            let want = reference_codes(&dir, case, n_q);
            let skip = ambiguous_frames(&meta["cases"][case][format!("nq{n_q}")]);
            let got = model
                .encode_with(&input, &EncodeOptions::new(Some(n_q)))
                .unwrap()
                .stacked()
                .unwrap()
                .squeeze(0)
                .unwrap()
                .to_vec2::<u32>()
                .unwrap();
            assert_eq!(got.len(), n_q);
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.len(), samples.div_ceil(320), "{case} nq{n_q}: frames");
                let diff: Vec<usize> = (0..w.len())
                    .filter(|&t| g[t] != w[t] && !skip.contains(&t))
                    .collect();
                assert!(
                    diff.is_empty(),
                    "{case} nq{n_q}: codebook {k} differs at {diff:?}"
                );
            }

            let codes = Tensor::new(want, &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let audio = model.decode(&codes).unwrap();
            let reference = read_npy(&dir.join(format!("{case}.nq{n_q}.decoded.npy"))).unwrap();
            assert_eq!(audio.dims(), reference.shape.as_slice(), "{case} nq{n_q}");
            let got = values(&audio.narrow(2, 0, samples).unwrap());
            let want: Vec<f32> = reference.values[..samples]
                .iter()
                .map(|&v| v as f32)
                .collect();
            let snr = snr_db(&want, &got);
            // Measured 124.8 dB at the lowest; asserted 12+ dB under it (the issue asks >= 60).
            assert!(snr >= 110.0, "{case} nq{n_q}: decoded at {snr:.1} dB");
        }
    }
}

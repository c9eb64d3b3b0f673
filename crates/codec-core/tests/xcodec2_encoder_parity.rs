//! Parity of X-Codec2's full path with the reference (`xcodec2` 0.1.5 on transformers 5.24) on
//! `../shared/fixtures/xcodec2`: the front end (mel filters, window, log-mel, normalised and
//! stacked features), w2v-BERT's `hidden_states[16]`, the semantic and acoustic encoders, the
//! FSQ input, the codes, and decoding them.

mod common;

use std::collections::HashMap;
use std::path::Path;

use codec_core::dsp::fbank::{kaldi_mel_filters, povey_window, Fbank, NUM_MEL_BINS};
use codec_core::models::xcodec2::XCodec2;
use codec_core::npy::read_npy;
use codec_core::{Codec, Device, Tensor};

use common::{fixture_dir, snr_db};

const FIXTURE: &str = "xcodec2";
const CASES: &[&str] = &["speech_a", "speech_b_odd"];

fn load(dir: &Path) -> XCodec2 {
    common::xcodec2_test_model(dir)
}

fn trace(dir: &Path, case: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join(format!("{case}.trace.safetensors")), &Device::Cpu)
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

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn front_end_matches_the_reference() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let constants =
        candle_core::safetensors::load(dir.join("frontend_constants.safetensors"), &Device::Cpu)
            .unwrap();
    let filters = constants["mel_filters"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let ours = kaldi_mel_filters(16000);
    let d = filters
        .iter()
        .zip(&ours)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(d < 1e-12, "mel filters differ by {d}");
    let window = constants["window"].to_vec1::<f64>().unwrap();
    let d = window
        .iter()
        .zip(povey_window())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(d < 1e-12, "window differs by {d}");
    let fbank = Fbank::new(16000);
    for case in CASES {
        let trace = trace(&dir, case);
        let wav = values(&trace["fe_waveform"]);
        let mel = fbank.log_mel(&wav);
        let d = max_abs(&mel, &values(&trace["fbank"]));
        println!("{case} fbank: {d:e}");
        // Measured 0 (bit-identical); asserted within a few float32 ulps of log-mels near 16.
        assert!(d < 1e-5, "{case}: log-mel differs by {d}");
        let (features, steps) = fbank.features(&wav);
        assert_eq!(steps * 2 * NUM_MEL_BINS, features.len());
        let d = max_abs(&features, &values(&trace["input_features"]));
        println!("{case} input_features: {d:e}");
        // Measured 9.5e-7 at the most: the normalisation's sums, which the reference takes in
        // float32 in numpy's memory order (the README: float64 sums land within 7e-7).
        assert!(d < 2e-6, "{case}: input features differ by {d}");
    }
}

#[test]
fn encoder_stages_and_codes_match_the_reference() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let model = load(&dir);
    let encoder = model.encoder().expect("the checkpoint holds the encoder");
    for case in CASES {
        let trace = trace(&dir, case);
        let input = values(&trace["input"]);
        let stages = encoder.stages(&input, &Device::Cpu).unwrap();
        let check = |name: &str, got: &Tensor, want: &Tensor| {
            assert_eq!(got.dims(), want.dims(), "{case} {name}");
            let snr = snr_db(&values(want), &values(got));
            println!("{case} {name}: {snr:.1} dB");
            snr
        };
        let hidden = trace["semantic_hidden_states"]
            .get(16)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let s = [
            check(
                "input_features",
                &stages.input_features,
                &trace["input_features"],
            ),
            check("semantic_hidden_16", &stages.semantic_hidden, &hidden),
            check(
                "semantic_encoded",
                &stages.semantic_encoded,
                &trace["semantic_encoded"],
            ),
            check(
                "acoustic_encoded",
                &stages.acoustic_encoded,
                &trace["acoustic_encoded"],
            ),
            check("fsq_input", &stages.latent, &trace["fsq_input"]),
        ];
        // Measured at the lowest: 134.7, 123.7, 123.3, 111.8, 111.5 dB; asserted 12+ dB under
        // each (the README: float32 and float64 latents of the reference differ by 2e-6
        // relative, ~114 dB).
        for (snr, floor) in s.iter().zip([122.0, 111.0, 111.0, 99.0, 99.0]) {
            assert!(*snr >= floor, "{case}: {snr:.1} dB");
        }
        let want: Vec<u32> = values(&trace["codes"]).iter().map(|&c| c as u32).collect();
        let samples = input.len();
        let audio = Tensor::from_vec(input, (1, 1, samples), &Device::Cpu).unwrap();
        let got = model.encode(&audio).unwrap();
        assert_eq!(got.dims(), &[1, 1, want.len()], "{case}");
        assert_eq!(encoder.frames_for(samples), want.len(), "{case}");
        let got = got.flatten_all().unwrap().to_vec1::<u32>().unwrap();
        let diff: Vec<usize> = (0..want.len()).filter(|&t| got[t] != want[t]).collect();
        assert!(diff.is_empty(), "{case}: codes differ at {diff:?}");

        let codes = Tensor::new(got.as_slice(), &Device::Cpu)
            .unwrap()
            .reshape((1, 1, ()))
            .unwrap();
        let decoded = model.decode(&codes).unwrap();
        let reference = read_npy(&dir.join(format!("{case}.decoded.npy"))).unwrap();
        let reference: Vec<f32> = reference.values.iter().map(|&v| v as f32).collect();
        let got = values(&decoded);
        let snr = snr_db(&reference[..samples], &got[..samples]);
        println!("{case} decoded: {snr:.1} dB");
        // Measured 119.0 dB at the lowest; asserted 12 dB under it (the issue asks >= 60).
        assert!(snr >= 107.0, "{case}: decoded at {snr:.1} dB");
    }
}

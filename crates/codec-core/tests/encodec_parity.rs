//! Parity with the reference EnCodec (`encodec` 0.1.1) on `../shared/fixtures/encodec`, at 1.5
//! and 6 kbit/s, for both cases.
//!
//! What is checked:
//! - the quantizer: from the reference's encoder output (the trace), codes equal at every frame
//!   not listed in `ambiguous_frames`, at both bandwidths;
//! - the encoder: its output against the trace at >= 80 dB SNR;
//! - end to end from the WAV: at 1.5 kbit/s codes equal at every frame not listed in
//!   `ambiguous_frames`. At 6 kbit/s the same for every (codebook, frame) the reference decided by
//!   more than the float32 noise of its encoder; see [`check_mismatch_is_encoder_noise`];
//! - decoding the reference's codes: SNR >= 60 dB against the reference over the input's length.
//!
//! Why 6 kbit/s needs the second rule: the test model's last encoder convolution has weights up
//! to ~60 and biases up to ~185 cancelling to latents of ~0.3 (the fixture rescaled it to get
//! unit-scale latents from a random encoder), so float32 rounding leaves ~1e-4 of noise on the
//! latent: the reference's own latent is 90 dB from an exact (f64) computation of the same graph.
//! The test codebooks of stages 5 to 8 separate their entries by less than that (Gaussian noise
//! of 1e-6 on the reference latent already flips codes there), so those codes follow the
//! reference's rounding, which no other float32 implementation reproduces. `ambiguous_frames`
//! only covers the quantizer's own float32 resolution given the reference's latent.

mod common;

use std::path::Path;

use codec_core::models::encodec::{Encodec, EncodecConfig};
use codec_core::npy::read_npy;
use codec_core::weights::StateDict;
use codec_core::{CodeStreams, Codec, Device, EncodeOptions, Tensor};

const CASES: &[&str] = &["speech_a", "speech_b_odd"];
const BANDWIDTHS: &[(&str, f64)] = &[("1.5kbps", 1.5), ("6kbps", 6.0)];
const HOP: usize = 320;

struct Fixture {
    model: Encodec,
    /// Codebook entries in f64, `[codebook][entry][dim]`.
    codebooks: Vec<Vec<Vec<f64>>>,
    cases: serde_json::Value,
}

fn load_fixture(dir: &Path) -> Fixture {
    let json = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let cfg = EncodecConfig::from_reference_json(&json, "config.json").unwrap();
    let state = StateDict::load(&dir.join("model.th")).unwrap();
    let weights = codec_core::models::encodec::inference_weights(state.clone()).unwrap();
    let codebooks = (0..cfg.num_quantizers)
        .map(|i| {
            let e = &weights.tensors[&format!("quantizer.vq.layers.{i}._codebook.embed")];
            e.to_vec2::<f32>()
                .unwrap()
                .into_iter()
                .map(|row| row.into_iter().map(f64::from).collect())
                .collect()
        })
        .collect();
    let (model, unused) = Encodec::load(&cfg, state, "fixture", &Device::Cpu).unwrap();
    assert!(unused.is_empty(), "unused inference keys: {unused:?}");
    let cases =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    Fixture {
        model,
        codebooks,
        cases,
    }
}

fn read_wav_i16(path: &Path) -> Vec<f32> {
    let mut r = hound::WavReader::open(path).unwrap();
    r.samples::<i16>()
        .map(|s| s.unwrap() as f32 / 32768.0)
        .collect()
}

/// Reference codes `[n_q][frames]`.
fn reference_codes(dir: &Path, case: &str, bw: &str) -> Vec<Vec<u32>> {
    let want = read_npy(&dir.join(format!("{case}.{bw}.codes.npy"))).unwrap();
    assert_eq!(want.shape.len(), 3, "{case} {bw}: codes rank");
    let frames = want.shape[2];
    want.values
        .chunks(frames)
        .map(|c| c.iter().map(|&v| v as u32).collect())
        .collect()
}

fn ambiguous_frames(meta: &serde_json::Value) -> Vec<usize> {
    meta["ambiguous_frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect()
}

/// `[1, d, frames]` → per-frame vectors.
fn frames_of(latent: &Tensor) -> Vec<Vec<f64>> {
    latent
        .squeeze(0)
        .unwrap()
        .t()
        .unwrap()
        .to_vec2::<f32>()
        .unwrap()
        .into_iter()
        .map(|row| row.into_iter().map(f64::from).collect())
        .collect()
}

fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

/// A code that differs from the reference's at `stage` (the earlier stages agreeing) is the
/// encoder's float32 noise at work when the reference's residual lies closer to the boundary
/// between the two entries than our latent lies from the reference's: a perturbation of that
/// size moves the decision. Returns `(distance to the boundary, latent deviation)`.
fn check_mismatch_is_encoder_noise(
    codebooks: &[Vec<Vec<f64>>],
    ref_latent: &[f64],
    our_latent: &[f64],
    ref_codes: &[u32],
    stage: usize,
    ours: u32,
) -> (f64, f64) {
    let mut residual = ref_latent.to_vec();
    for (cb, &c) in codebooks.iter().zip(ref_codes).take(stage) {
        for (r, e) in residual.iter_mut().zip(&cb[c as usize]) {
            *r -= e;
        }
    }
    let (e_ref, e_ours) = (
        &codebooks[stage][ref_codes[stage] as usize],
        &codebooks[stage][ours as usize],
    );
    let margin = dist2(&residual, e_ours) - dist2(&residual, e_ref);
    let boundary = margin / (2.0 * dist2(e_ref, e_ours).sqrt());
    (boundary, dist2(ref_latent, our_latent).sqrt())
}

#[test]
fn quantizer_matches_reference_on_reference_latent() {
    let Some(dir) = common::fixture_dir("encodec") else {
        return;
    };
    let fx = load_fixture(&dir);
    for case in CASES {
        let trace = candle_core::safetensors::load(
            dir.join(format!("{case}.trace.safetensors")),
            &Device::Cpu,
        )
        .unwrap();
        for &(bw, kbps) in BANDWIDTHS {
            let n_q = fx.model.info().codebooks_for_bandwidth(kbps).unwrap();
            let got = fx
                .model
                .quantize_latent(&trace["encoder_out"], n_q)
                .unwrap()
                .squeeze(0)
                .unwrap()
                .to_vec2::<u32>()
                .unwrap();
            let want = reference_codes(&dir, case, bw);
            let ambiguous = ambiguous_frames(&fx.cases[case][bw]);
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                let diff: Vec<usize> = (0..w.len())
                    .filter(|&t| g[t] != w[t] && !ambiguous.contains(&t))
                    .collect();
                assert!(diff.is_empty(), "{case} {bw} codebook {k}: frames {diff:?}");
            }
        }
    }
}

#[test]
fn encoder_output_matches_trace() {
    let Some(dir) = common::fixture_dir("encodec") else {
        return;
    };
    let fx = load_fixture(&dir);
    for case in CASES {
        let trace = candle_core::safetensors::load(
            dir.join(format!("{case}.trace.safetensors")),
            &Device::Cpu,
        )
        .unwrap();
        let input = trace["input"].unsqueeze(1).unwrap();
        let latent = fx.model.encode_latent(&input).unwrap();
        let want = &trace["encoder_out"];
        assert_eq!(latent.dims(), want.dims(), "{case}: latent shape");
        let a: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = latent.flatten_all().unwrap().to_vec1().unwrap();
        let snr = common::snr_db(&a, &b);
        eprintln!("{case}: encoder output SNR {snr:.1} dB");
        // Measured 83.3 dB at the lowest; asserted 12+ dB under it so a regression fails.
        assert!(snr >= 80.0, "{case}: encoder output SNR {snr:.1} dB");
    }
}

#[test]
fn codes_and_audio_match_reference() {
    let Some(dir) = common::fixture_dir("encodec") else {
        return;
    };
    let fx = load_fixture(&dir);
    let model = &fx.model;
    for case in CASES {
        let wav = read_wav_i16(&dir.join(format!("{case}.wav")));
        let n = wav.len();
        assert_eq!(n as u64, fx.cases[case]["samples"].as_u64().unwrap());
        let audio = Tensor::from_vec(wav, (1, 1, n), &Device::Cpu).unwrap();
        let trace = candle_core::safetensors::load(
            dir.join(format!("{case}.trace.safetensors")),
            &Device::Cpu,
        )
        .unwrap();
        let ref_latent = frames_of(&trace["encoder_out"]);
        let our_latent = frames_of(&model.encode_latent(&audio).unwrap());
        for &(bw, kbps) in BANDWIDTHS {
            let meta = &fx.cases[case][bw];
            let n_q = model.info().codebooks_for_bandwidth(kbps).unwrap();
            assert_eq!(
                n_q as u64,
                meta["n_q"].as_u64().unwrap(),
                "{case} {bw}: n_q"
            );

            // Encode with only the codebooks this bandwidth uses.
            let options = EncodeOptions::new(Some(n_q));
            let codes = model.encode_with(&audio, &options).unwrap();
            assert!(codes.scales.is_none());
            let got = codes.stacked().unwrap();
            let want = reference_codes(&dir, case, bw);
            let frames = want[0].len();
            assert_eq!(got.dims(), &[1, n_q, frames], "{case} {bw}: code shape");
            assert_eq!(frames, n.div_ceil(HOP));
            let got = got.squeeze(0).unwrap().to_vec2::<u32>().unwrap();
            let ambiguous = ambiguous_frames(meta);
            let mut per_codebook = vec![0usize; n_q];
            for t in (0..frames).filter(|t| !ambiguous.contains(t)) {
                let ref_t: Vec<u32> = want.iter().map(|w| w[t]).collect();
                let Some(k) = (0..n_q).find(|&k| got[k][t] != ref_t[k]) else {
                    continue;
                };
                per_codebook[k] += 1;
                let (boundary, deviation) = check_mismatch_is_encoder_noise(
                    &fx.codebooks,
                    &ref_latent[t],
                    &our_latent[t],
                    &ref_t,
                    k,
                    got[k][t],
                );
                assert!(
                    kbps > 1.5 && k >= 2 && boundary <= deviation * 1.001 + 1e-9,
                    "{case} {bw}: codebook {k} frame {t}: code {} != reference {} \
                     (reference decided by {boundary:.2e}, our latent deviates by {deviation:.2e})",
                    got[k][t],
                    ref_t[k],
                );
            }
            eprintln!(
                "{case} {bw}: first differing codebook per frame (all within the encoder's \
                 float32 noise): {per_codebook:?} of {frames} frames"
            );

            // Decode the reference's codes; compare over the input's length.
            let ref_codes =
                Tensor::from_vec(want.concat(), (1, n_q, frames), &Device::Cpu).unwrap();
            let decoded = model
                .decode_streams(&CodeStreams::from_stacked(&ref_codes).unwrap())
                .unwrap();
            assert_eq!(decoded.dims(), &[1, 1, frames * HOP], "{case} {bw}");
            let decoded: Vec<f32> = decoded.flatten_all().unwrap().to_vec1().unwrap();
            let reference = read_npy(&dir.join(format!("{case}.{bw}.decoded.npy"))).unwrap();
            assert_eq!(
                reference.values.len() as u64,
                meta["decoded_samples"].as_u64().unwrap()
            );
            let reference: Vec<f32> = reference.values[..n].iter().map(|&v| v as f32).collect();
            let snr = common::snr_db(&reference, &decoded[..n]);
            eprintln!("{case} {bw}: decoded SNR {snr:.1} dB");
            // Measured 104.3 dB at the lowest; asserted 12+ dB under it so a regression fails.
            assert!(snr >= 90.0, "{case} {bw}: SNR {snr:.1} dB < 90 dB");
        }
    }
}

/// Through the generic loader: the fixture folder (model.th + config.json) is detected as
/// EnCodec, and its bandwidths map to codebooks.
#[test]
fn fixture_folder_loads_through_model_spec() {
    let Some(dir) = common::fixture_dir("encodec") else {
        return;
    };
    let spec = codec_core::ModelSpec::parse(dir.to_str().unwrap()).unwrap();
    let model = codec_core::load_model(&spec, &Device::Cpu).unwrap();
    let info = model.info();
    assert_eq!(info.family, "encodec");
    assert_eq!(info.sample_rate, 24000);
    assert_eq!(info.channels, 1);
    assert_eq!(info.frame_rate, 75.0);
    assert_eq!(info.codebook_sizes, vec![1024; 32]);
    assert_eq!(info.bandwidths_kbps, vec![1.5, 3.0, 6.0, 12.0, 24.0]);
    for (kbps, n) in [(1.5, 2), (3.0, 4), (6.0, 8), (12.0, 16), (24.0, 32)] {
        assert_eq!(info.codebooks_for_bandwidth(kbps), Some(n));
        assert!((info.bitrate_with(n) - kbps * 1000.0).abs() < 1e-6);
    }
    assert_eq!(info.codebooks_for_bandwidth(5.0), None);
    assert_eq!(
        info.fingerprint,
        load_fixture(&dir).model.info().fingerprint
    );
}

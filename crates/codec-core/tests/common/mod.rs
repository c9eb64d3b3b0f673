//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use codec_core::models::xcodec2::{XCodec2, XCodec2Config, XCodec2EncoderConfig};
use codec_core::weights::StateDict;
use codec_core::Device;

/// `../shared/fixtures/NAME` beside the repo, or `None` (with the reason printed) when absent.
pub fn fixture_dir(name: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures")
        .join(name);
    if dir.is_dir() {
        Some(dir)
    } else {
        // Under CI (.ci/run sets the switch) a missing fixture fails instead of skipping.
        if std::env::var_os("CODEC_REQUIRE_FIXTURES").is_some_and(|v| v != "0") {
            panic!(
                "fixture folder {} is absent and CODEC_REQUIRE_FIXTURES is set",
                dir.display()
            );
        }
        eprintln!("SKIPPED: fixture folder {} is absent", dir.display());
        None
    }
}

/// Signal-to-noise ratio of `test` against `reference`, in dB.
pub fn snr_db(reference: &[f32], test: &[f32]) -> f64 {
    assert_eq!(reference.len(), test.len(), "lengths differ");
    let signal: f64 = reference.iter().map(|&x| (x as f64).powi(2)).sum();
    let noise: f64 = reference
        .iter()
        .zip(test)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    10.0 * (signal / noise.max(1e-30)).log10()
}

/// X-Codec2's test model (`../shared/fixtures/xcodec2/config.json`'s `test_model`).
pub fn xcodec2_test_config() -> XCodec2Config {
    XCodec2Config {
        sample_rate: 16000,
        encoder_sample_rate: 16000,
        hop_length: 320,
        n_fft: 1280,
        hidden_dim: 64,
        depth: 2,
        heads: 2,
        pos_meb_dim: 32,
        vq_dim: 128,
        fsq_levels: vec![4; 8],
        encoder: Some(XCodec2EncoderConfig {
            semantic_hidden: 64,
            semantic_heads: 2,
            semantic_intermediate: 128,
            acoustic_ngf: 4,
            acoustic_dim: 64,
            ..XCodec2EncoderConfig::xcodec2()
        }),
    }
}

/// X-Codec2's test model from its fixture folder `dir`, every key used.
pub fn xcodec2_test_model(dir: &std::path::Path) -> XCodec2 {
    let state = StateDict::load(&dir.join("model.safetensors")).unwrap();
    let (model, unused) =
        XCodec2::load(&xcodec2_test_config(), state, "fixture", &Device::Cpu).unwrap();
    assert!(unused.is_empty(), "unused keys: {unused:?}");
    model
}

//! The XY-Tokenizer loader accepts state dicts with exactly the keys and shapes of the three
//! published checkpoints (the reference's key manifests in `../shared/fixtures/xy-tokenizer`:
//! the repo's release with `vocos.*`, MOSS-TTSD's 24 kHz and 32 kHz ones with
//! `enhanced_vocos.*`), uses every key, reads the architecture off the shapes, names a missing
//! key, and the manifest's config, the named config and the card agree. Weights are random,
//! made here; each model runs a short encode and decode at full size.

mod support;

use codec::models::xy_tokenizer::{self, XyTokenizer, XyTokenizerConfig};
use codec::{Codec, Device, ModelCard, Tensor};

use support::manifest::manifest_or_skip;
use support::random_weights::{noise, num_params, random_state_dict};

/// One full-size model (2.1 GB of float32) at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn check(file: &str, card: &str, config: &XyTokenizerConfig, vocoder: &str, seed: u64) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(manifest) = manifest_or_skip("xy-tokenizer", file) else {
        return;
    };
    assert_eq!(
        num_params(&manifest.keys),
        manifest.n_params,
        "{file}: n_params"
    );
    assert!(
        manifest
            .keys
            .iter()
            .any(|(k, _)| k.starts_with(&format!("{vocoder}.head."))),
        "{file}: the vocoder is {vocoder}.*"
    );
    // The manifest's config is the yaml's `generator_params` (as JSON, which is YAML too).
    let yaml = serde_json::to_string(manifest.config.as_ref().expect("manifest config"))
        .expect("config as JSON");
    assert_eq!(
        &XyTokenizerConfig::from_reference_yaml(&yaml, file).unwrap(),
        config,
        "{file}: config"
    );
    let from_card: XyTokenizerConfig = ModelCard::find(card)
        .expect("the card")
        .architecture
        .clone()
        .try_into()
        .unwrap();
    assert_eq!(&from_card, config, "{card}");

    let state = random_state_dict(&manifest.keys, seed, file).unwrap();
    assert_eq!(
        codec::models::detect_family_from_weights(&state),
        Some("xy-tokenizer"),
        "{file}"
    );
    // The shapes give everything but the 32 kHz yaml's redundant rates.
    let inferred = xy_tokenizer::infer_config(&state).unwrap();
    let without_rates = XyTokenizerConfig {
        encoder_downsample_rate: None,
        decoder_upsample_rate: None,
        ..config.clone()
    };
    assert_eq!(inferred, without_rates, "{file}: inferred");

    let key = format!("{vocoder}.backbone.convnext.29.pwconv2.weight");
    let mut broken = state.clone();
    assert!(broken.tensors.remove(&key).is_some(), "{file}: {key}");
    let err = match XyTokenizer::load(config, broken, "broken", &Device::Cpu) {
        Ok(_) => panic!("{file}: loading without {key} succeeded"),
        Err(e) => format!("{:#}", anyhow::Error::new(e)),
    };
    // The loader reads the vocoder as `vocos.*` whichever name the checkpoint gives it.
    assert!(
        err.contains("vocos.backbone.convnext.29.pwconv2.weight"),
        "{file}: {err}"
    );

    let (model, unused) = XyTokenizer::load(config, state, file, &Device::Cpu).unwrap();
    assert!(unused.is_empty(), "{file}: unused keys {unused:?}");
    assert_eq!(model.info().sample_rate, config.output_rate());

    // 1 s at 16 kHz: 12 frames of 8 codebooks, and 12 * hop samples back.
    let audio = noise(16000, 0.3, seed);
    let codes = model.encode_input_rate(&audio, 8).unwrap();
    assert_eq!(codes.len(), 8);
    assert!(codes
        .iter()
        .all(|s| s.len() == 12 && s.iter().all(|&c| c < 1024)));
    let flat: Vec<u32> = codes.iter().flatten().copied().collect();
    let codes = Tensor::from_vec(flat, (1, 8, 12), &Device::Cpu).unwrap();
    let decoded = model.decode(&codes).unwrap();
    assert_eq!(decoded.dims(), &[1, 1, 12 * config.output_hop()]);
    let v: Vec<f32> = decoded.flatten_all().unwrap().to_vec1().unwrap();
    assert!(v.iter().all(|x| x.is_finite()), "{file}: finite audio");
}

#[test]
fn the_repo_release_keys_load_and_run() {
    check(
        "full-xy_tokenizer-keys.json",
        "xy-tokenizer",
        &XyTokenizerConfig::xy_tokenizer(),
        "vocos",
        1125,
    );
}

#[test]
fn the_moss_ttsd_v0_keys_load_and_run() {
    check(
        "full-xy_tokenizer_ttsd_v0-keys.json",
        "xy-tokenizer-ttsd-v0",
        &XyTokenizerConfig::xy_tokenizer_ttsd_v0(),
        "enhanced_vocos",
        24,
    );
}

#[test]
fn the_moss_ttsd_32k_keys_load_and_run() {
    check(
        "full-xy_tokenizer_32k-keys.json",
        "xy-tokenizer-32k",
        &XyTokenizerConfig::xy_tokenizer_32k(),
        "enhanced_vocos",
        32,
    );
}

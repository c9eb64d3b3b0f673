//! The Qwen3-TTS-Tokenizer-12Hz loader accepts a state dict with exactly the keys and shapes
//! of the published checkpoint (the reference's key manifest in
//! `../shared/fixtures/qwen3-tts-tokenizer`), uses every key, reads the architecture off the
//! shapes when no config is given, names the key at fault when one is missing, and the card,
//! the manifest's config and the named config agree. Weights are random, made here; the model
//! runs a short encode/decode at full size.

mod support;

use codec::models::qwen3_tts::{self, Qwen3Tts, Qwen3TtsConfig};
use codec::{Codec, Device, ModelCard, Tensor};

use support::manifest::manifest_or_skip;
use support::random_weights::{noise, num_params, random_state_dict};

const FIXTURE: &str = "qwen3-tts-tokenizer";
const MANIFEST: &str = "full-keys.json";

#[test]
fn full_size_keys_load_and_run() -> anyhow::Result<()> {
    let Some(manifest) = manifest_or_skip(FIXTURE, MANIFEST) else {
        return Ok(());
    };
    assert_eq!(num_params(&manifest.keys), manifest.n_params, "n_params");
    let config = Qwen3TtsConfig::qwen3_tts_tokenizer_12hz();
    // The manifest's config is the hub config.json's fields.
    let json = serde_json::to_string(manifest.config.as_ref().expect("manifest config"))?;
    assert_eq!(
        Qwen3TtsConfig::from_reference_json(&json, MANIFEST)?,
        config
    );
    let card = ModelCard::find("qwen3-tts-tokenizer-12hz").expect("the card");
    let from_card: Qwen3TtsConfig = card.architecture.clone().try_into()?;
    assert_eq!(from_card, config);

    let state = random_state_dict(&manifest.keys, 1212, "random full-size Qwen3-TTS")?;
    assert_eq!(
        codec::models::detect_family_from_weights(&state),
        Some("qwen3-tts")
    );
    assert_eq!(qwen3_tts::infer_config(&state)?, config);

    let key = "decoder.decoder.2.block.3.conv1.conv.weight";
    let mut broken = state.clone();
    assert!(broken.tensors.remove(key).is_some());
    let err = match Qwen3Tts::load(&config, broken, "broken", &Device::Cpu) {
        Ok(_) => panic!("loading without {key} succeeded"),
        Err(e) => format!("{:#}", anyhow::Error::new(e)),
    };
    assert!(err.contains(key), "{err}");

    // What `codec convert` writes loads the same way.
    let converted = qwen3_tts::inference_weights(state.clone())?;
    assert_eq!(
        codec::models::detect_family_from_weights(&converted),
        Some("qwen3-tts")
    );
    let (model, unused) = Qwen3Tts::load(&config, state, "full", &Device::Cpu)?;
    assert!(unused.is_empty(), "unused keys {unused:?}");

    // 0.5 s: 7 frames of 16 codebooks, and 7 * 1920 samples back.
    let audio = Tensor::from_vec(noise(12000, 0.3, 9), (1, 1, 12000), &Device::Cpu)?;
    let codes = model.encode(&audio)?;
    assert_eq!(codes.dims(), &[1, 16, 7]);
    let v: Vec<u32> = codes.flatten_all()?.to_vec1()?;
    assert!(v.iter().all(|&c| c < 2048));
    let decoded = model.decode(&codes)?;
    assert_eq!(decoded.dims(), &[1, 1, 7 * 1920]);
    let (converted_model, unused) = Qwen3Tts::load(&config, converted, "conv", &Device::Cpu)?;
    assert!(unused.is_empty(), "unused keys after convert {unused:?}");
    assert_eq!(
        converted_model.encode(&audio)?.to_vec3::<u32>()?,
        codes.to_vec3::<u32>()?
    );
    Ok(())
}

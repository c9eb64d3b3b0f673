//! The MOSS-Audio-Tokenizer loader accepts a state dict with exactly the keys and shapes of
//! the published 1.77 B checkpoint (the reference's key manifest in
//! `../shared/fixtures/moss-audio-tokenizer`), uses every key, recognises the published shapes
//! when no config is given, names the key at fault when one is missing, accepts the
//! attention names the reference's load hook accepts, and the card, the manifest's config and
//! the named config agree. Weights are random, made here; the model runs a short
//! encode/decode at full size.

mod support;

use codec::models::moss_audio_tokenizer::{self, MossAudioTokenizer, MossAudioTokenizerConfig};
use codec::{Codec, Device, ModelCard, Tensor};

use support::manifest::manifest_or_skip;
use support::random_weights::{noise, num_params, random_state_dict};

const FIXTURE: &str = "moss-audio-tokenizer";
const MANIFEST: &str = "full-keys.json";

#[test]
fn full_size_keys_load_and_run() -> anyhow::Result<()> {
    let Some(manifest) = manifest_or_skip(FIXTURE, MANIFEST) else {
        return Ok(());
    };
    assert_eq!(manifest.keys.len(), 1600);
    assert_eq!(num_params(&manifest.keys), manifest.n_params, "n_params");
    let config = MossAudioTokenizerConfig::moss_audio_tokenizer();
    // The manifest's config is the published config.json.
    let json = serde_json::to_string(manifest.config.as_ref().expect("manifest config"))?;
    assert_eq!(
        MossAudioTokenizerConfig::from_reference_json(&json, MANIFEST)?,
        config
    );
    let card = ModelCard::find("moss-audio-tokenizer").expect("the card");
    let from_card: MossAudioTokenizerConfig = card.architecture.clone().try_into()?;
    assert_eq!(from_card, config);

    let state = random_state_dict(
        &manifest.keys,
        2602,
        "random full-size MOSS-Audio-Tokenizer",
    )?;
    assert_eq!(
        codec::models::detect_family_from_weights(&state),
        Some("moss-audio-tokenizer")
    );
    assert_eq!(moss_audio_tokenizer::infer_config(&state)?, config);

    let key = "decoder.4.transformer.layers.11.layer_scale_2.scale";
    let mut broken = state.clone();
    assert!(broken.tensors.remove(key).is_some());
    let err = match MossAudioTokenizer::load(&config, broken, "broken", &Device::Cpu) {
        Ok(_) => panic!("loading without {key} succeeded"),
        Err(e) => format!("{:#}", anyhow::Error::new(e)),
    };
    assert!(err.contains(key), "{err}");

    // The load hook's names for the attention projections.
    let mut hooked = state.clone();
    let stem = "encoder.3.transformer.layers.5.self_attn";
    let t = hooked
        .tensors
        .remove(&format!("{stem}.in_projs.0.weight"))
        .unwrap();
    hooked.tensors.insert(format!("{stem}.in_proj_weight"), t);
    let t = hooked
        .tensors
        .remove(&format!("{stem}.out_projs.0.weight"))
        .unwrap();
    hooked.tensors.insert(format!("{stem}.out_proj.weight"), t);

    let (model, unused) = MossAudioTokenizer::load(&config, state.clone(), "full", &Device::Cpu)?;
    assert!(unused.is_empty(), "unused keys {unused:?}");
    // 0.5 s: 7 frames (the last partial) of 32 codebooks, and 7 * 1920 samples back.
    let audio = Tensor::from_vec(noise(12000, 0.3, 9), (1, 1, 12000), &Device::Cpu)?;
    let codes = model.encode(&audio)?;
    assert_eq!(codes.dims(), &[1, 32, 7]);
    let v: Vec<u32> = codes.flatten_all()?.to_vec1()?;
    assert!(v.iter().all(|&c| c < 1024));
    let decoded = model.decode(&codes)?;
    assert_eq!(decoded.dims(), &[1, 1, 7 * 1920]);
    let fingerprint = model.info().fingerprint;
    drop(model);

    let (hooked_model, unused) = MossAudioTokenizer::load(&config, hooked, "hook", &Device::Cpu)?;
    assert!(
        unused.is_empty(),
        "unused keys with the hook's names {unused:?}"
    );
    assert_eq!(hooked_model.info().fingerprint, fingerprint);
    drop(hooked_model);

    // What `codec convert` writes loads the same way.
    let converted = moss_audio_tokenizer::inference_weights(state)?;
    assert_eq!(
        codec::models::detect_family_from_weights(&converted),
        Some("moss-audio-tokenizer")
    );
    let (converted_model, unused) =
        MossAudioTokenizer::load(&config, converted, "conv", &Device::Cpu)?;
    assert!(unused.is_empty(), "unused keys after convert {unused:?}");
    assert_eq!(converted_model.info().fingerprint, fingerprint);
    assert_eq!(
        converted_model.encode(&audio)?.to_vec3::<u32>()?,
        codes.to_vec3::<u32>()?
    );
    Ok(())
}

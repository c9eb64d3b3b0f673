//! The SpeechTokenizer loader accepts a state dict with exactly the keys and shapes of the
//! published `speechtokenizer_hubert_avg` checkpoint (the reference's key manifest in
//! `../shared/fixtures/speechtokenizer`), drops the codebooks' training statistics, uses every
//! other key, reads the architecture off the shapes when no config is given, and names the key
//! at fault when one is missing. Weights are random, made here; the model runs a short
//! encode/decode at full size.

mod support;

use codec::models::speechtokenizer::{self, SpeechTokenizer, SpeechTokenizerConfig};
use codec::{Codec, Device, EncodeOptions, ModelCard, Tensor};

use support::manifest::manifest_or_skip;
use support::random_weights::{noise, num_params, random_state_dict};

const MANIFEST: &str = "full-speechtokenizer-keys.json";

#[test]
fn full_size_keys_load_and_run() -> anyhow::Result<()> {
    let Some(manifest) = manifest_or_skip("speechtokenizer", MANIFEST) else {
        return Ok(());
    };
    assert_eq!(num_params(&manifest.keys), manifest.n_params, "n_params");
    let config = SpeechTokenizerConfig::speechtokenizer_hubert_avg();
    // The manifest's config (the reference's model fields) and the card say the same.
    let json = serde_json::to_string(manifest.config.as_ref().expect("manifest config"))?;
    assert_eq!(
        SpeechTokenizerConfig::from_reference_json(&json, MANIFEST)?,
        config
    );
    let card = ModelCard::find("speechtokenizer-hubert-avg").expect("the card");
    let from_card: SpeechTokenizerConfig = card.architecture.clone().try_into()?;
    assert_eq!(from_card, config);

    let state = random_state_dict(&manifest.keys, 1618, "random full-size SpeechTokenizer")?;
    assert_eq!(
        codec::models::detect_family_from_weights(&state),
        Some("speechtokenizer")
    );
    assert_eq!(speechtokenizer::infer_config(&state)?, config);

    // What inference keeps: everything but the codebook statistics, weight norm folded.
    let kept = speechtokenizer::inference_weights(state.clone())?;
    let stat = |k: &str| {
        k.ends_with(".embed_avg") || k.ends_with(".cluster_size") || k.ends_with(".inited")
    };
    let expected: std::collections::BTreeSet<String> = manifest
        .keys
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| !stat(k))
        .map(|k| {
            k.replace(".weight_g", ".weight")
                .replace(".weight_v", ".weight")
        })
        .collect();
    let got: std::collections::BTreeSet<String> = kept.tensors.keys().cloned().collect();
    assert_eq!(got, expected, "inference keys");

    for key in [
        "encoder.model.13.lstm.weight_hh_l1_reverse",
        "transform.bias",
        "quantizer.vq.layers.7._codebook.embed",
        "decoder.model.12.convtr.convtr.weight_v",
    ] {
        let mut broken = state.clone();
        assert!(broken.tensors.remove(key).is_some(), "{key}");
        let err = match SpeechTokenizer::load(&config, broken, "broken", &Device::Cpu) {
            Ok(_) => panic!("loading without {key} succeeded"),
            Err(e) => format!("{:#}", anyhow::Error::new(e)),
        };
        assert!(err.contains(key), "error for missing {key}: {err}");
    }

    let (model, unused) = SpeechTokenizer::load(&config, state, "full", &Device::Cpu)?;
    assert!(unused.is_empty(), "unused keys {unused:?}");
    // 0.4 s plus a partial frame of noise: ceil(L / 320) frames, 320 samples each back.
    let samples: usize = 6400 + 77;
    let frames = samples.div_ceil(320);
    let audio = Tensor::from_vec(noise(samples, 0.3, 16), (1, 1, samples), &Device::Cpu)?;
    let all = model.encode(&audio)?;
    assert_eq!(all.dims(), &[1, 8, frames]);
    let two = model
        .encode_with(&audio, &EncodeOptions::new(Some(2)))?
        .stacked()?;
    assert_eq!(
        two.flatten_all()?.to_vec1::<u32>()?,
        all.narrow(1, 0, 2)?.flatten_all()?.to_vec1::<u32>()?,
        "residual VQ: 2 codebooks are the first 2 of 8"
    );
    let features = model.semantic_features(&audio)?;
    assert_eq!(features.dims(), &[1, frames, 768]);
    let decoded = model.decode(&two)?;
    assert_eq!(decoded.dims(), &[1, 1, frames * 320]);
    let v = decoded.flatten_all()?.to_vec1::<f32>()?;
    assert!(v.iter().all(|x| x.is_finite()) && v.iter().any(|&x| x != 0.0));
    Ok(())
}

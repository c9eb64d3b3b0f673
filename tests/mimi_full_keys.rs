//! The Mimi loader accepts a state dict with exactly the keys and shapes of the published
//! checkpoint (the reference's key manifest `../shared/fixtures/mimi/full-keys.json`, made from
//! moshi's published config), drops the codebooks' `_initialized` flags, uses every other key,
//! and names the key at fault when one is missing. Weights are random, made here; the
//! full-size model runs a short batch and streaming encode/decode.

mod support;

use codec::models::mimi::{self, Mimi, MimiConfig};
use codec::weights::StateDict;
use codec::{Codec, Device, EncodeOptions, Tensor};

use support::manifest::{manifest_or_skip, Manifest};
use support::random_weights::{default_init, noise, num_params, random_state_dict_with, Init};

/// Codebook usages positive (entries = sums / usage), flags set, the rest as usual.
fn init(name: &str, shape: &[usize]) -> Init {
    if name.ends_with(".cluster_usage") {
        Init::Uniform(0.5, 1.5)
    } else if name.ends_with("._initialized") {
        Init::Constant(1.0)
    } else {
        default_init(name, shape)
    }
}

fn random_state(manifest: &Manifest, seed: u64) -> StateDict {
    random_state_dict_with(&manifest.keys, seed, "random full-size Mimi", init)
        .expect("random state dict")
}

fn load_error(config: &MimiConfig, state: StateDict) -> String {
    match Mimi::load(config, state, "broken", &Device::Cpu) {
        Ok(_) => panic!("loading a broken state dict succeeded"),
        Err(e) => format!("{:#}", anyhow::Error::new(e)),
    }
}

#[test]
fn full_keys_load_into_the_published_architecture_and_run() -> anyhow::Result<()> {
    let Some(manifest) = manifest_or_skip("mimi", "full-keys.json") else {
        return Ok(());
    };
    // The manifest's config is the published one.
    let config = MimiConfig::mimi();
    let from_manifest: MimiConfig =
        serde_json::from_value(manifest.config.clone().expect("manifest has a config"))?;
    assert_eq!(from_manifest, config);
    // `n_params` counts parameters; the codebooks are buffers.
    let params: Vec<_> = manifest
        .keys
        .iter()
        .filter(|(k, _)| !k.contains("._codebook."))
        .cloned()
        .collect();
    assert_eq!(num_params(&params), manifest.n_params, "n_params");

    let state = random_state(&manifest, 12);
    assert_eq!(
        codec::models::detect_family_from_weights(&state),
        Some("mimi")
    );
    assert_eq!(mimi::infer_config(&state)?, config);
    let (model, unused) = Mimi::load(&config, state.clone(), "full", &Device::Cpu)?;
    assert!(unused.is_empty(), "unused keys {unused:?}");

    // What inference keeps: everything but the `_initialized` flags.
    let kept = mimi::inference_weights(state.clone())?;
    let expected: std::collections::BTreeSet<String> = manifest
        .keys
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| !k.ends_with("._initialized"))
        .collect();
    let got: std::collections::BTreeSet<String> = kept.tensors.keys().cloned().collect();
    assert_eq!(got, expected, "inference keys");

    // Missing keys are named.
    for key in [
        "encoder.model.12.conv.conv.weight",
        "decoder.model.2.convtr.convtr.bias",
        "encoder_transformer.transformer.layers.7.layer_scale_2.scale",
        "decoder_transformer.transformer.layers.3.self_attn.in_projs.0.weight",
        "downsample.conv.conv.conv.weight",
        "upsample.convtr.convtr.convtr.weight",
        "quantizer.rvq_first.input_proj.weight",
        "quantizer.rvq_rest.vq.layers.30._codebook.embedding_sum",
        "quantizer.rvq_rest.vq.layers.4._codebook.cluster_usage",
    ] {
        let mut broken = state.clone();
        assert!(broken.tensors.remove(key).is_some(), "{key}");
        let msg = load_error(&config, broken);
        assert!(msg.contains(key), "error for missing {key}: {msg}");
    }

    // Half a second plus a partial frame of noise: 13 frames, with 8 and 32 codebooks.
    let samples: usize = 12_000 + 123;
    let frames = samples.div_ceil(1920);
    let audio = Tensor::from_vec(noise(samples, 0.3, 7), (1, 1, samples), &Device::Cpu)?;
    let eight = EncodeOptions::new(Some(8));
    let codes = model.encode_with(&audio, &eight)?.stacked()?;
    assert_eq!(codes.dims(), &[1, 8, frames]);
    let all = model.encode(&audio)?;
    assert_eq!(all.dims(), &[1, 32, frames]);
    // Both quantizers see the same latent: the first 8 of 32 codes are the 8-codebook codes.
    assert_eq!(
        all.narrow(1, 0, 8)?.flatten_all()?.to_vec1::<u32>()?,
        codes.flatten_all()?.to_vec1::<u32>()?
    );
    let decoded = model.decode(&codes)?;
    assert_eq!(decoded.dims(), &[1, 1, frames * 1920]);
    let v = decoded.flatten_all()?.to_vec1::<f32>()?;
    assert!(v.iter().all(|x| x.is_finite()) && v.iter().any(|&x| x != 0.0));

    // Streaming over the whole frames gives the batch codes.
    let whole = frames - 1;
    let mut enc = model.streaming_encoder(1, &eight)?;
    let mut streamed = None;
    let mut pos = 0;
    for piece in [1000usize, 2000, 2840, 1920, 1920, 13] {
        let n = piece.min(whole * 1920 - pos);
        if n == 0 {
            break;
        }
        let out = enc.push_audio(&audio.narrow(2, pos, n)?)?;
        streamed = codec::streaming::cat_pieces(streamed, out)?;
        pos += n;
    }
    while pos < whole * 1920 {
        let n = 1920.min(whole * 1920 - pos);
        let out = enc.push_audio(&audio.narrow(2, pos, n)?)?;
        streamed = codec::streaming::cat_pieces(streamed, out)?;
        pos += n;
    }
    let streamed = streamed.expect("codes");
    assert_eq!(
        streamed.flatten_all()?.to_vec1::<u32>()?,
        codes.narrow(2, 0, whole)?.flatten_all()?.to_vec1::<u32>()?
    );
    Ok(())
}

//! The X-Codec2 loader accepts a state dict with exactly the decoder-side keys and shapes of the
//! published checkpoint (the reference's key manifest in `../shared/fixtures/xcodec2-decoder`),
//! uses every one, and names the key at fault when one is missing or misshaped. NeuCodec's
//! decoder differs only in the iSTFT head (hop 480, n_fft 1920) and loads the same way. Weights
//! are random, made here; the models decode a few frames at full size.
//!
//! That manifest lists the decoder side only; a decoder-only checkpoint decodes and says why it
//! cannot encode. The whole published X-Codec2 (`../shared/fixtures/xcodec2/full-xcodec2-keys.json`,
//! w2v-BERT 2.0 embedded) loads with its encoder, every key used but w2v-BERT's layers 16..23 and
//! `masked_spec_embed` (stored, never run), and encodes at full size; so does NeuCodec's file with
//! facebook/w2v-bert-2.0's keys beside it (`semantic_model_keys`).

mod support;

use codec::models::xcodec2::{self, XCodec2, XCodec2Config};
use codec::weights::StateDict;
use codec::{Codec, Device, Tensor};

use support::manifest::{manifest_or_skip, Keys, Manifest};
use support::random_weights::{num_params, random_state_dict, XorShift};

const ENCODER_SIDE: &[&str] = &[
    "CodecEnc.",
    "semantic_model.",
    "SemanticEncoder_module.",
    "fc_prior.",
    "fc_post_s.",
    "SemanticDecoder.",
];

fn load_error(config: &XCodec2Config, state: StateDict) -> String {
    match XCodec2::load(config, state, "broken", &Device::Cpu) {
        Ok(_) => panic!("loading a broken state dict succeeded"),
        Err(e) => {
            let msg = format!("{:#}", anyhow::Error::new(e));
            println!("expected error: {msg}");
            msg
        }
    }
}

/// Decode `frames` random codes; the audio has the length the hop says, finite and not silent.
fn decode_some(model: &XCodec2, frames: usize, seed: u64) -> anyhow::Result<()> {
    let mut rng = XorShift::new(seed);
    let codes: Vec<u32> = (0..frames).map(|_| rng.below(65_536)).collect();
    let codes = Tensor::from_vec(codes, (1, 1, frames), &Device::Cpu)?;
    let audio = model.decode(&codes)?;
    let hop = model.config().hop_length;
    assert_eq!(audio.dims(), &[1, 1, frames * hop]);
    let v: Vec<f32> = audio.flatten_all()?.to_vec1()?;
    assert!(v.iter().all(|x| x.is_finite()), "non-finite audio");
    assert!(v.iter().any(|&x| x != 0.0), "silent audio");
    Ok(())
}

#[test]
fn full_decoder_keys_load_and_run() -> anyhow::Result<()> {
    let Some(Manifest {
        n_params,
        keys,
        config,
    }) = manifest_or_skip("xcodec2-decoder", "full-decoder-keys.json")
    else {
        return Ok(());
    };
    assert_eq!(num_params(&keys), n_params, "n_params");
    let (encoder, decoder): (Keys, Keys) = keys
        .into_iter()
        .partition(|(k, _)| ENCODER_SIDE.iter().any(|p| k.starts_with(p)));
    println!("{} encoder-side keys skipped", encoder.len());
    let json = serde_json::to_string(&config.expect("manifest config"))?;
    // The decoder's constructor arguments (and, below, its shapes) describe the decoder alone;
    // the named config with an encoder loads it too.
    let decoder_only = XCodec2Config::from_reference_json(&json, "full-decoder-keys.json")?;
    assert_eq!(
        decoder_only,
        XCodec2Config {
            encoder: None,
            ..XCodec2Config::xcodec2()
        }
    );
    let config = XCodec2Config::xcodec2();

    let state = random_state_dict(&decoder, 2048, "random full-size X-Codec2")?;
    assert_eq!(
        codec::models::detect_family_from_weights(&state),
        Some("xcodec2")
    );
    assert_eq!(xcodec2::infer_config(&state)?, decoder_only);
    let (model, unused) = XCodec2::load(&config, state.clone(), "xcodec2", &Device::Cpu)?;
    assert!(unused.is_empty(), "unused keys {unused:?}");
    decode_some(&model, 6, 1)?;
    let audio = Tensor::zeros((1, 1, 16_000), codec::DType::F32, &Device::Cpu)?;
    let err = model.encode(&audio).unwrap_err().to_string();
    assert!(err.contains("decoder only"), "{err}");
    drop(model);

    // Extra encoder-side tensors in the file are dropped, not reported.
    let mut with_encoder = state.clone();
    let extra = Tensor::zeros((8, 8), codec::DType::F32, &Device::Cpu)?;
    with_encoder
        .tensors
        .insert("fc_prior.weight".into(), extra.clone());
    with_encoder
        .tensors
        .insert("CodecEnc.conv_blocks.0.weight".into(), extra);
    let (model, unused) = XCodec2::load(&config, with_encoder, "xcodec2", &Device::Cpu)?;
    assert!(unused.is_empty(), "unused keys {unused:?}");
    drop(model);

    // A missing key is named; so is a misshaped one.
    for key in [
        "generator.backbone.transformers.11.att.c_attn.weight",
        "generator.backbone.post_net.1.norm2.bias",
        "generator.quantizer.project_out.weight",
        "generator.head.istft.window",
        "fc_post_a.bias",
    ] {
        let mut broken = state.clone();
        assert!(broken.tensors.remove(key).is_some(), "no {key}");
        let msg = load_error(&config, broken);
        assert!(
            msg.contains(key),
            "error for missing {key} does not name it: {msg}"
        );
    }
    let key = "generator.backbone.transformers.3.mlp.fc1.weight";
    let mut broken = state.clone();
    let bad = Tensor::zeros((1024, 4096), codec::DType::F32, &Device::Cpu)?;
    broken.tensors.insert(key.to_string(), bad);
    let msg = load_error(&config, broken);
    assert!(
        msg.contains(key),
        "error for misshaped {key} does not name it: {msg}"
    );
    drop(state);

    // NeuCodec: the same keys with a head for hop 480 (n_fft 1920).
    let neucodec: Keys = decoder
        .into_iter()
        .map(|(k, shape)| {
            let shape = match k.as_str() {
                "generator.head.out.weight" => vec![1922, shape[1]],
                "generator.head.out.bias" => vec![1922],
                "generator.head.istft.window" => vec![1920],
                _ => shape,
            };
            (k, shape)
        })
        .collect();
    let state = random_state_dict(&neucodec, 24, "random full-size NeuCodec")?;
    assert_eq!(
        xcodec2::infer_config(&state)?,
        XCodec2Config {
            encoder: None,
            ..XCodec2Config::neucodec()
        }
    );
    let (model, unused) =
        XCodec2::load(&XCodec2Config::neucodec(), state, "neucodec", &Device::Cpu)?;
    assert!(unused.is_empty(), "unused keys {unused:?}");
    assert_eq!(model.info().sample_rate, 24_000);
    decode_some(&model, 6, 2)?;
    Ok(())
}

/// Encode one second at full size and decode the codes.
fn encode_some(model: &XCodec2, frames: usize) -> anyhow::Result<()> {
    let audio = Tensor::from_vec(
        support::random_weights::noise(16_000, 0.3, 7),
        (1, 1, 16_000),
        &Device::Cpu,
    )?;
    let codes = model.encode(&audio)?;
    assert_eq!(codes.dims(), &[1, 1, frames]);
    let v: Vec<u32> = codes.flatten_all()?.to_vec1()?;
    assert!(v.iter().all(|&c| c < 65_536));
    let decoded = model.decode(&codes)?;
    assert_eq!(decoded.dim(2)?, frames * model.config().hop_length);
    Ok(())
}

#[test]
fn full_xcodec2_with_its_encoder_loads_and_encodes() -> anyhow::Result<()> {
    let Some(manifest) = manifest_or_skip("xcodec2", "full-xcodec2-keys.json") else {
        return Ok(());
    };
    assert_eq!(num_params(&manifest.keys), manifest.n_params, "n_params");
    let state = random_state_dict(&manifest.keys, 16, "random full-size X-Codec2")?;
    assert_eq!(
        codec::models::detect_family_from_weights(&state),
        Some("xcodec2")
    );
    let config = XCodec2Config::xcodec2();
    assert_eq!(xcodec2::infer_config(&state)?, config);
    // Read: everything but w2v-BERT's unused layers and its masked_spec_embed.
    let kept = xcodec2::inference_weights(state.clone())?;
    let expected: std::collections::BTreeSet<String> = manifest
        .keys
        .iter()
        .map(|(k, _)| {
            k.replace(".weight_g", ".weight")
                .replace(".weight_v", ".weight")
        })
        .filter(|k| {
            let layer = k
                .strip_prefix("semantic_model.encoder.layers.")
                .and_then(|r| r.split('.').next())
                .and_then(|l| l.parse::<usize>().ok());
            k != "semantic_model.masked_spec_embed" && layer.is_none_or(|l| l < 16)
        })
        .collect();
    let got: std::collections::BTreeSet<String> = kept.tensors.keys().cloned().collect();
    assert_eq!(got, expected, "inference keys");
    for key in [
        "semantic_model.encoder.layers.15.self_attn.distance_embedding.weight",
        "CodecEnc.conv_blocks.5.block.2.block.2.downsample.lowpass.filter",
        "SemanticEncoder_module.residual_blocks.3.bias",
    ] {
        let mut broken = state.clone();
        assert!(broken.tensors.remove(key).is_some(), "no {key}");
        let msg = load_error(&config, broken);
        assert!(msg.contains(key), "error for missing {key}: {msg}");
    }
    let (model, unused) = XCodec2::load(&config, state, "xcodec2", &Device::Cpu)?;
    assert!(unused.is_empty(), "unused keys {unused:?}");
    assert!(model.encoder().is_some());
    // 1 s: 50 frames, plus the whole hop the reference pads an exact multiple with.
    encode_some(&model, 51)
}

#[test]
fn neucodec_with_w2v_bert_beside_it_loads_and_encodes() -> anyhow::Result<()> {
    let Some(manifest) = manifest_or_skip("xcodec2", "full-neucodec-keys.json") else {
        return Ok(());
    };
    assert_eq!(num_params(&manifest.keys), manifest.n_params, "n_params");
    let path = support::manifest::fixtures_dir("xcodec2").join("full-neucodec-keys.json");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let semantic: Keys = doc["semantic_model_keys"]
        .as_array()
        .expect("semantic_model_keys")
        .iter()
        .map(|e| {
            let shape = e[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize);
            (e[0].as_str().unwrap().to_string(), shape.collect())
        })
        .collect();
    let config = XCodec2Config::neucodec();
    // NeuCodec's file alone: the decoder (its encoder needs w2v-BERT).
    let alone = random_state_dict(&manifest.keys, 5, "random NeuCodec")?;
    let (model, unused) = XCodec2::load(&config, alone, "neucodec", &Device::Cpu)?;
    assert!(unused.is_empty(), "unused keys {unused:?}");
    assert!(model.encoder().is_none());
    drop(model);
    let mut keys = manifest.keys.clone();
    keys.extend(semantic);
    let state = random_state_dict(&keys, 6, "random NeuCodec + w2v-BERT")?;
    assert_eq!(xcodec2::infer_config(&state)?, config);
    let (model, unused) = XCodec2::load(&config, state, "neucodec", &Device::Cpu)?;
    assert!(unused.is_empty(), "unused keys {unused:?}");
    // NeuCodec's front end gets no side padding: one frame fewer than X-Codec2's.
    encode_some(&model, 50)
}

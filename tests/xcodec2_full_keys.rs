//! The X-Codec2 loader accepts a state dict with exactly the decoder-side keys and shapes of the
//! published checkpoint (the reference's key manifest in `../shared/fixtures/xcodec2-decoder`),
//! uses every one, and names the key at fault when one is missing or misshaped. NeuCodec's
//! decoder differs only in the iSTFT head (hop 480, n_fft 1920) and loads the same way. Weights
//! are random, made here; the models decode a few frames at full size.
//!
//! The manifest lists the decoder side only. Should it hold encoder-side keys (the acoustic
//! encoder `CodecEnc.*`, w2v-BERT 2.0 `semantic_model.*`, `SemanticEncoder_module.*`,
//! `fc_prior.*`, training's `fc_post_s.*` / `SemanticDecoder.*`), they are skipped: that encoder
//! is not ported, and loading drops those keys (the FSQ's `project_in` is kept and used).

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
    let config = XCodec2Config::from_reference_json(&json, "full-decoder-keys.json")?;
    assert_eq!(config, XCodec2Config::xcodec2());

    let state = random_state_dict(&decoder, 2048, "random full-size X-Codec2")?;
    assert_eq!(
        codec::models::detect_family_from_weights(&state),
        Some("xcodec2")
    );
    assert_eq!(xcodec2::infer_config(&state)?, config);
    let (model, unused) = XCodec2::load(&config, state.clone(), "xcodec2", &Device::Cpu)?;
    assert!(unused.is_empty(), "unused keys {unused:?}");
    decode_some(&model, 6, 1)?;
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
    assert_eq!(xcodec2::infer_config(&state)?, XCodec2Config::neucodec());
    let (model, unused) =
        XCodec2::load(&XCodec2Config::neucodec(), state, "neucodec", &Device::Cpu)?;
    assert!(unused.is_empty(), "unused keys {unused:?}");
    assert_eq!(model.info().sample_rate, 24_000);
    decode_some(&model, 6, 2)?;
    Ok(())
}

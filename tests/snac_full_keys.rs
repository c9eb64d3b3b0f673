//! The SNAC loader accepts state dicts with exactly the keys and shapes of the published 24, 32
//! and 44.1 kHz checkpoints (the reference's key manifests in `../shared/fixtures/snac`), with
//! weight norm in either spelling, uses every key, and names the key at fault when one is
//! missing or misshaped. Weights are random, made here; the models run a short encode/decode at
//! full size.

mod support;

use codec::models::snac::{Snac, SnacConfig};
use codec::weights::StateDict;
use codec::{Codec, Device, EncodeOptions, Tensor};

use support::manifest::{manifest_or_skip, Keys, Manifest};
use support::random_weights::{default_init, noise, num_params, random_state_dict_with, Init};

/// Random values; Snake `alpha`s positive and of order one, the rotary `inv_freq` buffer as the
/// reference computes it.
fn random_state(keys: &Keys, seed: u64) -> StateDict {
    let mut state = random_state_dict_with(keys, seed, "random full-size SNAC", |name, shape| {
        if name.ends_with(".alpha") {
            Init::Uniform(0.5, 1.5)
        } else {
            default_init(name, shape)
        }
    })
    .expect("random state dict");
    for (k, t) in state.tensors.iter_mut() {
        if k.ends_with(".rel_pos.inv_freq") {
            let n = t.dims()[0];
            let v: Vec<f32> = (0..n)
                .map(|i| 1.0 / 10000f32.powf((2 * i) as f32 / (2 * n) as f32))
                .collect();
            *t = Tensor::from_vec(v, n, &Device::Cpu).unwrap();
        }
    }
    state
}

fn load_error(config: &SnacConfig, state: StateDict) -> String {
    match Snac::load(config, state, "broken", &Device::Cpu) {
        Ok(_) => panic!("loading a broken state dict succeeded"),
        Err(e) => {
            let msg = format!("{:#}", anyhow::Error::new(e));
            println!("expected error: {msg}");
            msg
        }
    }
}

fn to_f32(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn check_full_size(file: &str, config: SnacConfig, seed: u64) -> anyhow::Result<()> {
    let Some(Manifest {
        n_params,
        keys,
        config: manifest_config,
    }) = manifest_or_skip("snac", file)
    else {
        return Ok(());
    };
    // `n_params` counts parameters; the rotary `inv_freq` buffers are saved besides.
    let params: Keys = keys
        .iter()
        .filter(|(k, _)| !k.ends_with(".inv_freq"))
        .cloned()
        .collect();
    assert_eq!(num_params(&params), n_params, "{file}: n_params");
    let json = serde_json::to_string(&manifest_config.expect("manifest config"))?;
    assert_eq!(
        SnacConfig::from_reference_json(&json, file)?,
        config,
        "{file}: config"
    );
    let state = random_state(&keys, seed);
    assert_eq!(
        codec::models::detect_family_from_weights(&state),
        Some("snac")
    );

    // Every key accepted and used.
    let (model, unused) = Snac::load(&config, state.clone(), file, &Device::Cpu)?;
    assert!(unused.is_empty(), "{file}: unused keys {unused:?}");
    assert_eq!(model.config(), &config);
    let mut model = model.with_decoder_noise(false);

    // A short encode/decode at full size: one padding unit, less a little.
    let unit = config.pad_multiple();
    let samples = unit - 100;
    let audio = Tensor::from_vec(
        noise(samples, 0.3, seed ^ 0xA5A5),
        (1, 1, samples),
        &Device::Cpu,
    )?;
    let streams = model.encode_with(&audio, &EncodeOptions::default())?;
    let frames = config.frame_multiple();
    let lens: Vec<usize> = streams.streams.iter().map(|s| s.dim(1).unwrap()).collect();
    let want: Vec<usize> = config.vq_strides.iter().map(|s| frames / s).collect();
    assert_eq!(lens, want, "{file}: stream lengths");
    for s in &streams.streams {
        let max = s.flatten_all()?.max(0)?.to_scalar::<u32>()?;
        assert!((max as usize) < config.codebook_size, "{file}: code {max}");
    }
    let quiet = to_f32(&model.decode_streams(&streams)?);
    assert_eq!(quiet.len(), unit, "{file}: decoded length");
    assert!(quiet.iter().all(|v| v.is_finite()), "{file}: non-finite");
    assert!(quiet.iter().any(|&v| v != 0.0), "{file}: silent output");
    // With random noise-block weights, the noise changes the output (and stays finite).
    model.set_decoder_noise(true);
    let noisy = to_f32(&model.decode_streams(&streams)?);
    assert!(noisy.iter().all(|v| v.is_finite()), "{file}: non-finite");
    assert_ne!(noisy, quiet, "{file}: noise had no effect");
    let fingerprint = model.info().fingerprint;
    drop(model);

    // Old PyTorch spelling of weight norm: the same model.
    let old = StateDict {
        source: "weight_g/weight_v".into(),
        tensors: state
            .tensors
            .iter()
            .map(|(k, v)| {
                let k = k
                    .replace(".parametrizations.weight.original0", ".weight_g")
                    .replace(".parametrizations.weight.original1", ".weight_v");
                (k, v.clone())
            })
            .collect(),
    };
    let (old_model, unused) = Snac::load(&config, old, file, &Device::Cpu)?;
    assert!(unused.is_empty(), "{file}: unused keys {unused:?}");
    assert_eq!(old_model.info().fingerprint, fingerprint);
    drop(old_model);

    // Without a config: the 24 kHz model is recognised; the 32 and 44.1 kHz ones differ only
    // in sample rate, which the error says.
    match codec::models::snac::infer_config(&state) {
        Ok(inferred) => assert_eq!(inferred, config, "{file}: inferred"),
        Err(e) => {
            let msg = e.to_string();
            assert!(config.attn_window_size.is_some(), "{file}: {msg}");
            assert!(msg.contains("32000 and 44100"), "{file}: {msg}");
        }
    }

    // A missing key is named; so is half of a weight-norm pair, and a misshaped key.
    let mut missing = vec![
        "decoder.model.3.block.4.block.1.bias".to_string(),
        "encoder.block.2.block.4.parametrizations.weight.original1".to_string(),
        "quantizer.quantizers.2.codebook.weight".to_string(),
    ];
    if config.attn_window_size.is_some() {
        missing.push("encoder.block.5.rel_pos.inv_freq".to_string());
        missing.push("decoder.model.2.to_qkv.weight".to_string());
    }
    for key in missing {
        let mut broken = state.clone();
        assert!(broken.tensors.remove(&key).is_some(), "{file}: no {key}");
        let msg = load_error(&config, broken);
        assert!(
            msg.contains(&key),
            "{file}: error for missing {key} does not name it: {msg}"
        );
    }
    let key = "quantizer.quantizers.0.codebook.weight";
    let mut broken = state;
    let good = broken.tensors[key].dims().to_vec();
    let swapped = Tensor::zeros((good[1], good[0]), codec::DType::F32, &Device::Cpu)?;
    broken.tensors.insert(key.to_string(), swapped);
    let msg = load_error(&config, broken);
    assert!(
        msg.contains(key),
        "{file}: error for misshaped {key} does not name it: {msg}"
    );
    Ok(())
}

#[test]
fn full_24khz_checkpoint_keys_load_and_run() -> anyhow::Result<()> {
    check_full_size("full-24khz-keys.json", SnacConfig::snac_24khz(), 24)
}

#[test]
fn full_32khz_checkpoint_keys_load_and_run() -> anyhow::Result<()> {
    check_full_size("full-32khz-keys.json", SnacConfig::snac_32khz(), 32)
}

#[test]
fn full_44khz_checkpoint_keys_load_and_run() -> anyhow::Result<()> {
    check_full_size("full-44khz-keys.json", SnacConfig::snac_44khz(), 44)
}

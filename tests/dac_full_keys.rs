//! The DAC loader accepts state dicts with exactly the keys and shapes of the published 16, 24
//! and 44.1 kHz checkpoints (the reference's key manifests in `../shared/fixtures/dac`), in
//! the original layout and renamed to the `transformers` layout, uses every key, and names the
//! key at fault when one is missing or misshaped. Weights are random, made here; the models run
//! a short encode/decode at full size.

mod support;

use codec::models::dac::{hf_key_to_original, Dac, DacConfig};
use codec::weights::StateDict;
use codec::{Codec, Device, EncodeOptions, Tensor};

use support::manifest::{manifest_or_skip, Keys, Manifest};
use support::random_weights::{default_init, noise, num_params, random_state_dict_with, Init};

/// Random values; Snake `alpha`s positive and of order one, as in trained models.
fn random_state(keys: &Keys, seed: u64) -> StateDict {
    random_state_dict_with(keys, seed, "random full-size DAC", |name, shape| {
        if name.ends_with(".alpha") {
            Init::Uniform(0.5, 1.5)
        } else {
            default_init(name, shape)
        }
    })
    .expect("random state dict")
}

/// The `transformers` name of an original DAC key (`convert_dac_checkpoint.py`'s mapping,
/// written out independently of the loader's inverse).
fn to_hf(key: &str, n_enc: usize, n_dec: usize) -> String {
    let p: Vec<&str> = key.split('.').collect();
    let layer = |l: &str| ["snake1", "conv1", "snake2", "conv2"][l.parse::<usize>().unwrap()];
    let i = |s: &str| s.parse::<usize>().unwrap();
    let (stem, rest) = match p.as_slice() {
        ["quantizer", ..] => return key.to_string(),
        ["encoder", "block", b, "block", u, "block", l, rest @ ..] => (
            format!(
                "encoder.block.{}.res_unit{}.{}",
                i(b) - 1,
                i(u) + 1,
                layer(l)
            ),
            rest,
        ),
        ["encoder", "block", b, "block", "3", rest @ ..] => {
            (format!("encoder.block.{}.snake1", i(b) - 1), rest)
        }
        ["encoder", "block", b, "block", "4", rest @ ..] => {
            (format!("encoder.block.{}.conv1", i(b) - 1), rest)
        }
        ["encoder", "block", b, rest @ ..] if i(b) == 0 => ("encoder.conv1".to_string(), rest),
        ["encoder", "block", b, rest @ ..] if i(b) == n_enc + 1 => {
            ("encoder.snake1".to_string(), rest)
        }
        ["encoder", "block", b, rest @ ..] if i(b) == n_enc + 2 => {
            ("encoder.conv2".to_string(), rest)
        }
        ["decoder", "model", b, "block", u, "block", l, rest @ ..] => (
            format!(
                "decoder.block.{}.res_unit{}.{}",
                i(b) - 1,
                i(u) - 1,
                layer(l)
            ),
            rest,
        ),
        ["decoder", "model", b, "block", "0", rest @ ..] => {
            (format!("decoder.block.{}.snake1", i(b) - 1), rest)
        }
        ["decoder", "model", b, "block", "1", rest @ ..] => {
            (format!("decoder.block.{}.conv_t1", i(b) - 1), rest)
        }
        ["decoder", "model", b, rest @ ..] if i(b) == 0 => ("decoder.conv1".to_string(), rest),
        ["decoder", "model", b, rest @ ..] if i(b) == n_dec + 1 => {
            ("decoder.snake1".to_string(), rest)
        }
        ["decoder", "model", b, rest @ ..] if i(b) == n_dec + 2 => {
            ("decoder.conv2".to_string(), rest)
        }
        _ => panic!("unexpected DAC key {key}"),
    };
    format!("{stem}.{}", rest.join("."))
}

fn load_error(config: &DacConfig, state: StateDict) -> String {
    match Dac::load(config, state, "broken", &Device::Cpu) {
        Ok(_) => panic!("loading a broken state dict succeeded"),
        Err(e) => {
            let msg = format!("{:#}", anyhow::Error::new(e));
            println!("expected error: {msg}");
            msg
        }
    }
}

fn check_full_size(file: &str, config: DacConfig, seed: u64) -> anyhow::Result<()> {
    let Some(Manifest {
        n_params,
        keys,
        config: manifest_config,
    }) = manifest_or_skip("dac", file)
    else {
        return Ok(());
    };
    assert_eq!(num_params(&keys), n_params, "{file}: n_params");
    // The manifest's config is the reference's DAC(**kwargs): it reads as the named config.
    let json = serde_json::to_string(&manifest_config.expect("manifest config"))?;
    assert_eq!(
        DacConfig::from_reference_json(&json, file)?,
        config,
        "{file}: config"
    );
    let state = random_state(&keys, seed);

    // Every key accepted and used.
    let (model, unused) = Dac::load(&config, state.clone(), file, &Device::Cpu)?;
    assert!(unused.is_empty(), "{file}: unused keys {unused:?}");
    assert_eq!(model.config(), &config);

    // A short encode/decode at full size: a few frames plus a partial one.
    let hop = config.hop_length();
    let samples = 4 * hop + 123;
    let audio = Tensor::from_vec(
        noise(samples, 0.3, seed ^ 0xA5A5),
        (1, 1, samples),
        &Device::Cpu,
    )?;
    let codes = model.encode(&audio)?;
    let frames = samples.div_ceil(hop);
    assert_eq!(
        codes.dims(),
        &[1, config.n_codebooks, frames],
        "{file}: code shape"
    );
    let max = codes.flatten_all()?.max(0)?.to_scalar::<u32>()?;
    assert!(
        (max as usize) < config.codebook_size,
        "{file}: code {max} out of range"
    );
    let decoded = model.decode(&codes)?;
    let len = decoded.dim(2)?;
    assert!(
        decoded.dims()[..2] == [1, 1] && len <= frames * hop && len + hop > frames * hop,
        "{file}: decoded shape {:?}",
        decoded.dims()
    );
    let values = decoded.flatten_all()?.to_vec1::<f32>()?;
    assert!(
        values.iter().all(|v| v.is_finite()),
        "{file}: non-finite output"
    );
    assert!(values.iter().any(|&v| v != 0.0), "{file}: silent output");

    // A prefix of the codebooks encodes to the same first codes.
    let two = model.encode_with(&audio, &EncodeOptions::new(Some(2)))?;
    assert_eq!(two.streams.len(), 2);
    for (q, s) in two.streams.iter().enumerate() {
        let full: Vec<u32> = codes.narrow(1, q, 1)?.flatten_all()?.to_vec1()?;
        assert_eq!(
            s.flatten_all()?.to_vec1::<u32>()?,
            full,
            "{file}: codebook {q}"
        );
    }

    // The same weights under the transformers names: every key maps back, the model is the same.
    let n_enc = config.encoder_rates.len();
    let n_dec = config.decoder_rates.len();
    for (k, _) in &keys {
        let hf = to_hf(k, n_enc, n_dec);
        assert_eq!(
            hf_key_to_original(&hf, n_enc, n_dec).as_deref(),
            Some(k.as_str()),
            "{file}: {k} -> {hf}"
        );
    }
    let hf_state = StateDict {
        source: "random full-size DAC, transformers layout".into(),
        tensors: state
            .tensors
            .iter()
            .map(|(k, v)| (to_hf(k, n_enc, n_dec), v.clone()))
            .collect(),
    };
    assert_eq!(
        codec::models::detect_family_from_weights(&hf_state),
        Some("dac")
    );
    let (hf_model, unused) = Dac::load(&config, hf_state, file, &Device::Cpu)?;
    assert!(unused.is_empty(), "{file}: unused HF keys {unused:?}");
    assert_eq!(
        hf_model.info().fingerprint,
        model.info().fingerprint,
        "{file}: fingerprint"
    );
    let hf_codes: Vec<u32> = hf_model.encode(&audio)?.flatten_all()?.to_vec1()?;
    assert_eq!(
        hf_codes,
        codes.flatten_all()?.to_vec1::<u32>()?,
        "{file}: HF codes"
    );
    drop((model, hf_model));

    // Without a config the architecture (and sample rate) is read off the shapes.
    assert_eq!(
        codec::models::detect_family_from_weights(&state),
        Some("dac")
    );
    assert_eq!(
        codec::models::dac::infer_config(&state)?,
        config,
        "{file}: inferred"
    );

    // A missing key is named; so is half of a weight-norm pair, and a misshaped key.
    let n = config.decoder_rates.len();
    for key in [
        format!("decoder.model.{n}.block.3.block.1.bias"),
        "encoder.block.2.block.4.weight_v".to_string(),
        "quantizer.quantizers.1.codebook.weight".to_string(),
        "encoder.block.3.block.3.alpha".to_string(),
    ] {
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
fn full_16khz_checkpoint_keys_load_and_run() -> anyhow::Result<()> {
    check_full_size("full-16khz-keys.json", DacConfig::dac_16khz(), 16)
}

#[test]
fn full_24khz_checkpoint_keys_load_and_run() -> anyhow::Result<()> {
    check_full_size("full-24khz-keys.json", DacConfig::dac_24khz(), 24)
}

#[test]
fn full_44khz_checkpoint_keys_load_and_run() -> anyhow::Result<()> {
    check_full_size("full-44khz-keys.json", DacConfig::dac_44khz(), 44)
}

//! The S3Tokenizer loader takes state dicts with exactly the keys and shapes of the published
//! v2 and v3 models (the reference's key manifests in `../shared/fixtures/s3tokenizer`, laid out
//! as `onnx2torch` derives them from the ONNX graphs), uses every key, reads the architecture
//! off the shapes, and names a missing key; v1's two layouts (absolute positions, a VQ codebook;
//! 50 and 25 Hz) likewise, their stride given. Weights are random, made here; v2 and v1 run a
//! short encode at full size.

mod support;

use codec::models::s3tokenizer::{self, S3Tokenizer, S3TokenizerConfig};
use codec::{Codec, Device, Tensor};

use support::manifest::manifest_or_skip;
use support::random_weights::{noise, num_params, random_state_dict};

fn check(file: &str, config: &S3TokenizerConfig, seed: u64) -> Option<S3Tokenizer> {
    let manifest = manifest_or_skip("s3tokenizer", file)?;
    assert_eq!(
        num_params(&manifest.keys),
        manifest.n_params,
        "{file}: n_params"
    );
    let json = serde_json::to_string(&serde_json::json!({
        "name": "speech_tokenizer",
        "config": manifest.config.clone().expect("manifest config"),
    }))
    .unwrap();
    assert_eq!(
        &S3TokenizerConfig::from_reference_json(&json, file).unwrap(),
        config
    );
    let state = random_state_dict(&manifest.keys, seed, file).unwrap();
    assert_eq!(
        codec::models::detect_family_from_weights(&state),
        Some("s3tokenizer")
    );
    assert_eq!(&s3tokenizer::infer_config(&state).unwrap(), config);
    let key = "encoder.blocks.1.attn.fsmn_block.weight";
    let mut broken = state.clone();
    assert!(broken.tensors.remove(key).is_some());
    let err = match S3Tokenizer::load(config, broken, "broken", &Device::Cpu) {
        Ok(_) => panic!("{file}: loading without {key} succeeded"),
        Err(e) => format!("{:#}", anyhow::Error::new(e)),
    };
    assert!(err.contains(key), "{file}: {err}");
    let (model, unused) = S3Tokenizer::load(config, state, file, &Device::Cpu).unwrap();
    assert!(unused.is_empty(), "{file}: unused keys {unused:?}");
    Some(model)
}

#[test]
fn published_v2_keys_load_and_encode() {
    let Some(model) = check(
        "full-v2-25hz-keys.json",
        &S3TokenizerConfig::s3tokenizer_v2(),
        2,
    ) else {
        return;
    };
    // 1 s of noise: 100 mel frames, 25 tokens of 6561.
    let audio = Tensor::from_vec(noise(16000, 0.3, 5), (1, 1, 16000), &Device::Cpu).unwrap();
    let codes = model.encode(&audio).unwrap();
    assert_eq!(codes.dims(), &[1, 1, 25]);
    let v: Vec<u32> = codes.flatten_all().unwrap().to_vec1().unwrap();
    assert!(v.iter().all(|&c| c < 6561));
    let err = model.decode(&codes).unwrap_err().to_string();
    assert!(err.contains("encode only"), "{err}");
}

#[test]
fn published_v3_keys_load() {
    check(
        "full-v3-25hz-keys.json",
        &S3TokenizerConfig::s3tokenizer_v3(),
        3,
    );
}

#[test]
fn published_v1_keys_load_and_encode() {
    for (file, config, tokens) in [
        (
            "full-v1-50hz-keys.json",
            S3TokenizerConfig::s3tokenizer_v1_50hz(),
            50,
        ),
        (
            "full-v1-25hz-keys.json",
            S3TokenizerConfig::s3tokenizer_v1_25hz(),
            25,
        ),
    ] {
        let Some(manifest) = manifest_or_skip("s3tokenizer", file) else {
            return;
        };
        assert_eq!(
            num_params(&manifest.keys),
            manifest.n_params,
            "{file}: n_params"
        );
        let name = if file.contains("25hz") {
            "speech_tokenizer_v1_25hz"
        } else {
            "speech_tokenizer_v1"
        };
        let json = serde_json::json!({"name": name, "config": manifest.config.clone().unwrap()});
        assert_eq!(
            S3TokenizerConfig::from_reference_json(&json.to_string(), file).unwrap(),
            config,
            "{file}"
        );
        let state = random_state_dict(&manifest.keys, 1, file).unwrap();
        assert_eq!(
            codec::models::detect_family_from_weights(&state),
            Some("s3tokenizer"),
            "{file}"
        );
        // The shapes give everything but the first convolution's stride.
        let err = s3tokenizer::infer_config(&state).unwrap_err().to_string();
        assert!(err.contains("50 Hz"), "{file}: {err}");
        assert_eq!(
            s3tokenizer::infer_with_stride(&state, Some(config.conv1_stride)).unwrap(),
            config,
            "{file}"
        );
        let (model, unused) = S3Tokenizer::load(&config, state, file, &Device::Cpu).unwrap();
        assert!(unused.is_empty(), "{file}: unused keys {unused:?}");
        // 1 s of noise: 100 mel frames, 50 or 25 tokens of 4096.
        let audio = Tensor::from_vec(noise(16000, 0.3, 5), (1, 1, 16000), &Device::Cpu).unwrap();
        let codes = model.encode(&audio).unwrap();
        assert_eq!(codes.dims(), &[1, 1, tokens], "{file}");
        let v: Vec<u32> = codes.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().all(|&c| c < 4096), "{file}");
    }
}

//! kyutai/mimi's `model.safetensors` (the Hugging Face transformers `MimiModel` layout) loads:
//! every key of the transformers manifest `tests/data/mimi-transformers-keys.json` (made by
//! `tests/data/mimi_transformers_keys.py` from `transformers.MimiModel(MimiConfig())`, see
//! there) maps into the full-size published architecture, with random values, and none is left
//! unused; the mapped state dict has exactly moshi's keys and shapes
//! (`../shared/fixtures/mimi/full-keys.json`, when present).

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use codec::models::mimi::{self, Mimi, MimiConfig};
use codec::{Codec, Device, Tensor};

use support::manifest::{manifest_or_skip, read_manifest};
use support::random_weights::{default_init, noise, random_state_dict_with, Init};

fn transformers_manifest() -> support::manifest::Manifest {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/mimi-transformers-keys.json");
    read_manifest(&path).expect("the committed transformers key manifest")
}

#[test]
fn transformers_keys_load_into_the_published_architecture() -> anyhow::Result<()> {
    let manifest = transformers_manifest();
    assert_eq!(manifest.keys.len(), 350);
    let state = random_state_dict_with(
        &manifest.keys,
        5,
        "random transformers Mimi",
        |name, shape| {
            if name.ends_with(".cluster_usage") {
                Init::Uniform(0.5, 1.5)
            } else if name.ends_with(".initialized") {
                Init::Constant(1.0)
            } else {
                default_init(name, shape)
            }
        },
    )
    .expect("random state dict");
    assert!(mimi::is_hf_layout(&state));
    assert_eq!(
        codec::models::detect_family_from_weights(&state),
        Some("mimi")
    );
    let config = MimiConfig::mimi();
    assert_eq!(mimi::infer_config(&state)?, config);
    let (model, unused) = Mimi::load(&config, state.clone(), "kyutai/mimi", &Device::Cpu)?;
    assert!(unused.is_empty(), "unused keys {unused:?}");

    // Mapped, the keys and shapes are moshi's (the codebooks' flags dropped by both).
    let mapped = mimi::inference_weights(state)?;
    let got: BTreeMap<String, Vec<usize>> = mapped
        .tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.dims().to_vec()))
        .collect();
    if let Some(moshi) = manifest_or_skip("mimi", "full-keys.json") {
        let want: BTreeMap<String, Vec<usize>> = moshi
            .keys
            .into_iter()
            .filter(|(k, _)| !k.ends_with("._initialized"))
            .collect();
        assert_eq!(got, want, "mapped keys and shapes");
    }

    // It runs: two frames of noise.
    let audio = Tensor::from_vec(noise(3840, 0.3, 3), (1, 1, 3840), &Device::Cpu)?;
    let codes = model.encode(&audio)?;
    assert_eq!(codes.dims(), &[1, 32, 2]);
    assert_eq!(model.decode(&codes)?.dims(), &[1, 1, 3840]);
    Ok(())
}

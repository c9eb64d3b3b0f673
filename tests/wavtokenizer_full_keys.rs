//! The loader accepts a state dict with exactly the keys and shapes of the published full-size
//! WavTokenizer checkpoints (the reference's key manifests in `../shared/fixtures/wavtokenizer`),
//! ignores training-only entries, uses every inference key, and names the key at fault when one
//! is missing or misshaped. Weights are random, made here; the models run a short encode/decode.

mod support;

use std::path::PathBuf;

use codec::models::wavtokenizer::{WavTokenizer, WavTokenizerConfig};
use codec::weights::StateDict;
use codec::{Codec, Device, Tensor};

use support::random_weights::{noise, num_params, random_state_dict};
use support::wavtokenizer_keys::wavtokenizer_keys;

type Keys = Vec<(String, Vec<usize>)>;

/// Entries a real Lightning checkpoint carries besides the generator; inference must skip them
/// (including weight-norm pairs, which must not be folded or complained about).
const TRAINING_ONLY: &[(&str, &[usize])] = &[
    ("multiperioddisc.x.weight", &[8, 4]),
    (
        "multiperioddisc.discriminators.0.convs.0.weight_g",
        &[32, 1, 1, 1],
    ),
    (
        "multiperioddisc.discriminators.0.convs.0.weight_v",
        &[32, 1, 5, 1],
    ),
    ("multiresddisc.discriminators.0.emb.weight", &[4, 32]),
    ("melspec_loss.mel.fb", &[641, 100]),
    ("melspec_loss.mel.window", &[1024]),
];

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/wavtokenizer")
}

struct Manifest {
    n_params: usize,
    keys: Keys,
}

/// Read a key manifest, or say why it cannot be used (the test is then skipped).
fn read_manifest(file: &str) -> Result<Manifest, String> {
    let path = fixtures_dir().join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    let n_params = doc["n_params"].as_u64().ok_or("manifest has no n_params")? as usize;
    let entries = doc["keys"].as_array().ok_or("manifest has no keys array")?;
    let keys = entries
        .iter()
        .map(|e| {
            let name = e[0].as_str().ok_or("key entry without a name")?.to_string();
            let shape = e[1]
                .as_array()
                .ok_or("key entry without a shape")?
                .iter()
                .map(|d| {
                    d.as_u64()
                        .map(|d| d as usize)
                        .ok_or("non-integer dimension")
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((name, shape))
        })
        .collect::<Result<Keys, &str>>()?;
    Ok(Manifest { n_params, keys })
}

/// The manifest, or `None` (with `SKIPPED`) when the file is absent; a failure when it is
/// absent under `CODEC_REQUIRE_FIXTURES` (as `.ci/run` sets) or present but broken.
fn manifest_or_skip(file: &str) -> Option<Manifest> {
    if !support::manifest::present_or_skip(&fixtures_dir().join(file)) {
        return None;
    }
    match read_manifest(file) {
        Ok(m) => Some(m),
        Err(reason) => panic!("broken key manifest: {reason}"),
    }
}

/// The manifest's keys plus the training-only extras, with random values.
fn full_state_dict(manifest: &Manifest, seed: u64) -> StateDict {
    let mut keys = manifest.keys.clone();
    for (name, shape) in TRAINING_ONLY {
        keys.push((name.to_string(), shape.to_vec()));
    }
    random_state_dict(&keys, seed, "random full-size checkpoint").expect("random state dict")
}

/// Load `state`, expecting failure; the error's message.
fn load_error(config: &WavTokenizerConfig, state: StateDict) -> String {
    match WavTokenizer::load(config, state, "broken", &Device::Cpu) {
        Ok(_) => panic!("loading a broken state dict succeeded"),
        Err(e) => {
            let msg = format!("{:#}", anyhow::Error::new(e));
            println!("expected error: {msg}");
            msg
        }
    }
}

fn check_full_size(file: &str, config: WavTokenizerConfig, seed: u64) -> anyhow::Result<()> {
    let Some(manifest) = manifest_or_skip(file) else {
        return Ok(());
    };
    assert_eq!(
        num_params(&manifest.keys),
        manifest.n_params,
        "{file}: n_params"
    );
    let state = full_state_dict(&manifest, seed);

    // Every key accepted, every inference key used, training-only ones dropped.
    let (model, unused) = WavTokenizer::load(&config, state.clone(), file, &Device::Cpu)?;
    assert!(unused.is_empty(), "{file}: unused keys {unused:?}");
    assert_eq!(model.config(), &config);

    // A short encode/decode at full size: 1 s of noise plus a partial frame.
    let hop = config.head.hop_length;
    let samples = config.sample_rate as usize + 123;
    let audio = Tensor::from_vec(
        noise(samples, 0.3, seed ^ 0xA5A5),
        (1, 1, samples),
        &Device::Cpu,
    )?;
    let codes = model.encode(&audio)?;
    let frames = samples.div_ceil(hop);
    assert_eq!(
        codes.dims(),
        &[1, config.num_quantizers, frames],
        "{file}: code shape"
    );
    let max = codes.flatten_all()?.max(0)?.to_scalar::<u32>()?;
    assert!(
        (max as usize) < config.codebook_size,
        "{file}: code {max} out of range"
    );
    let decoded = model.decode(&codes)?;
    assert_eq!(
        decoded.dims(),
        &[1, 1, frames * hop],
        "{file}: decoded shape"
    );
    let values = decoded.flatten_all()?.to_vec1::<f32>()?;
    assert!(
        values.iter().all(|v| v.is_finite()),
        "{file}: non-finite output"
    );
    assert!(values.iter().any(|&v| v != 0.0), "{file}: silent output");
    drop(model);

    // A missing inference key is named.
    let key = "backbone.convnext.3.pwconv1.weight";
    let mut broken = state.clone();
    assert!(broken.tensors.remove(key).is_some());
    let msg = load_error(&config, broken);
    assert!(
        msg.contains(key),
        "{file}: error for missing {key} does not name it: {msg}"
    );

    // Half of a weight-norm pair missing is named too.
    let key = "feature_extractor.encodec.encoder.model.12.conv.conv.weight_v";
    let mut broken = state.clone();
    assert!(broken.tensors.remove(key).is_some());
    let msg = load_error(&config, broken);
    assert!(
        msg.contains(key),
        "{file}: error for missing {key} does not name it: {msg}"
    );

    // A misshaped key is named (here transposed, a typical conversion slip).
    let key = "head.out.weight";
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
fn full_75token_checkpoint_keys_load_and_run() -> anyhow::Result<()> {
    check_full_size(
        "full-75token-keys.json",
        WavTokenizerConfig::frame75_24khz(),
        75,
    )
}

#[test]
fn full_40token_checkpoint_keys_load_and_run() -> anyhow::Result<()> {
    check_full_size(
        "full-40token-keys.json",
        WavTokenizerConfig::frame40_24khz(),
        40,
    )
}

/// The key list the benches build from a config matches the reference's manifest (less the
/// SEANet decoder, which inference never reads), so random models there are faithful too.
fn check_generated_keys(file: &str, config: WavTokenizerConfig) {
    let Some(manifest) = manifest_or_skip(file) else {
        return;
    };
    let mut expected: Keys = manifest
        .keys
        .into_iter()
        .filter(|(k, _)| !k.starts_with("feature_extractor.encodec.decoder."))
        .collect();
    let mut generated = wavtokenizer_keys(&config);
    expected.sort();
    generated.sort();
    let missing: Vec<_> = expected.iter().filter(|k| !generated.contains(k)).collect();
    let extra: Vec<_> = generated.iter().filter(|k| !expected.contains(k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{file}: generated keys differ from the manifest\n  missing: {missing:?}\n  extra: {extra:?}"
    );
}

#[test]
fn generated_keys_match_75token_manifest() {
    check_generated_keys(
        "full-75token-keys.json",
        WavTokenizerConfig::frame75_24khz(),
    );
}

#[test]
fn generated_keys_match_40token_manifest() {
    check_generated_keys(
        "full-40token-keys.json",
        WavTokenizerConfig::frame40_24khz(),
    );
}

//! The EnCodec loader accepts state dicts with exactly the keys and shapes of the published
//! 24 kHz and 48 kHz checkpoints (the reference's key manifests in `../shared/fixtures/encodec`),
//! in the original package's layout and renamed to the Hugging Face transformers layout, drops
//! the codebooks' training statistics, uses every other key, and names the key at fault when
//! one is missing. Weights are random, made here; the models run a short encode/decode at full
//! size (the 48 kHz one over two segments, with scales and the overlap-add).

mod support;

use codec::models::encodec::{self, Encodec, EncodecConfig};
use codec::weights::StateDict;
use codec::{CodeStreams, Codec, Device, EncodeOptions, Tensor};

use support::manifest::{manifest_or_skip, Keys, Manifest};
use support::random_weights::{noise, num_params, random_state_dict};

/// The transformers name of an original-package key, written out from transformers'
/// `EncodecModel` (independently of the loader's inverse):
///
/// - `EncodecConv1d` holds `conv` (the `nn.Conv1d`, weight-normed as `weight_g`/`weight_v`) and,
///   with `time_group_norm`, `norm` (the `GroupNorm`), where the package nests
///   `conv.conv` / `conv.norm` (`SConv1d` → `NormConv1d`);
/// - `EncodecConvTranspose1d` holds `conv` and `norm` where the package has
///   `convtr.convtr` / `convtr.norm`;
/// - `EncodecResnetBlock` holds `block.{1,3}` (`EncodecConv1d`s) and `shortcut`;
/// - `EncodecLSTM` holds `lstm`;
/// - the encoder's and decoder's `nn.Sequential` `model` is the `nn.ModuleList` `layers`, same
///   indices;
/// - `EncodecVectorQuantization` holds `codebook` where the package has `_codebook`, and the
///   residual quantizer's `layers` sit directly under `quantizer` (the package's under
///   `quantizer.vq`).
fn to_hf(key: &str) -> String {
    if let Some(rest) = key.strip_prefix("quantizer.vq.layers.") {
        return format!(
            "quantizer.layers.{}",
            rest.replacen("._codebook.", ".codebook.", 1)
        );
    }
    let key = key
        .replacen("encoder.model.", "encoder.layers.", 1)
        .replacen("decoder.model.", "decoder.layers.", 1);
    key.replace(".conv.conv.", ".conv.")
        .replace(".conv.norm.", ".norm.")
        .replace(".convtr.convtr.", ".conv.")
        .replace(".convtr.norm.", ".norm.")
}

/// The training statistics of the codebooks, which inference drops.
fn is_training_stat(key: &str) -> bool {
    key.ends_with(".embed_avg") || key.ends_with(".cluster_size") || key.ends_with(".inited")
}

fn random_state(manifest: &Manifest, seed: u64, hf: bool) -> StateDict {
    let keys: Keys = manifest
        .keys
        .iter()
        .map(|(k, s)| (if hf { to_hf(k) } else { k.clone() }, s.clone()))
        .collect();
    let source = if hf {
        "random full-size EnCodec (transformers layout)"
    } else {
        "random full-size EnCodec"
    };
    random_state_dict(&keys, seed, source).expect("random state dict")
}

fn load(config: &EncodecConfig, state: StateDict, what: &str) -> Encodec {
    let (model, unused) =
        Encodec::load(config, state, what, &Device::Cpu).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(unused.is_empty(), "{what}: unused keys {unused:?}");
    assert_eq!(model.config(), config);
    model
}

fn load_error(config: &EncodecConfig, state: StateDict) -> String {
    match Encodec::load(config, state, "broken", &Device::Cpu) {
        Ok(_) => panic!("loading a broken state dict succeeded"),
        Err(e) => format!("{:#}", anyhow::Error::new(e)),
    }
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Keys, parameters, both layouts, missing keys.
fn check_keys(file: &str, config: &EncodecConfig, seed: u64) -> Option<(Encodec, Encodec)> {
    let manifest = manifest_or_skip("encodec", file)?;
    // `n_params` counts parameters; the codebooks are buffers.
    let params: Keys = manifest
        .keys
        .iter()
        .filter(|(k, _)| !k.starts_with("quantizer."))
        .cloned()
        .collect();
    assert_eq!(num_params(&params), manifest.n_params, "{file}: n_params");
    let state = random_state(&manifest, seed, false);
    let model = load(config, state.clone(), file);

    // What inference keeps: everything but the codebook statistics, weight norm folded.
    let kept = encodec::inference_weights(state.clone()).unwrap();
    let expected: std::collections::BTreeSet<String> = manifest
        .keys
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| !is_training_stat(k))
        .map(|k| {
            k.replace(".weight_g", ".weight")
                .replace(".weight_v", ".weight")
        })
        .collect();
    let got: std::collections::BTreeSet<String> = kept.tensors.keys().cloned().collect();
    assert_eq!(got, expected, "{file}: inference keys");

    // The transformers layout: every key renamed, the same model (same fingerprint).
    let hf_state = random_state(&manifest, seed, true);
    assert!(hf_state.tensors.keys().all(|k| !k.contains(".model.")));
    let hf_model = load(config, hf_state.clone(), &format!("{file} (transformers)"));
    assert_eq!(
        hf_model.info().fingerprint,
        model.info().fingerprint,
        "{file}: both layouts give the same weights"
    );
    assert_eq!(
        codec::models::detect_family_from_weights(&hf_state),
        Some("encodec")
    );
    assert_eq!(
        codec::models::detect_family_from_weights(&state),
        Some("encodec")
    );
    assert_eq!(&encodec::infer_config(&state).unwrap(), config);
    assert_eq!(&encodec::infer_config(&hf_state).unwrap(), config);

    // Missing keys are named (in the original layout's spelling).
    for key in [
        "decoder.model.1.lstm.weight_hh_l1",
        "quantizer.vq.layers.5._codebook.embed",
    ] {
        let mut broken = state.clone();
        assert!(broken.tensors.remove(key).is_some(), "{key}");
        let msg = load_error(config, broken);
        assert!(msg.contains(key), "{file}: error for missing {key}: {msg}");
    }
    Some((model, hf_model))
}

#[test]
fn full_24khz_keys_load_in_both_layouts_and_run() -> anyhow::Result<()> {
    let config = EncodecConfig::encodec_24khz();
    let Some((model, hf_model)) = check_keys("full-24khz-keys.json", &config, 24) else {
        return Ok(());
    };
    // Half of a weight-norm pair missing is named.
    let manifest = manifest_or_skip("encodec", "full-24khz-keys.json").unwrap();
    let key = "decoder.model.6.convtr.convtr.weight_v";
    let mut broken = random_state(&manifest, 24, false);
    assert!(broken.tensors.remove(key).is_some());
    let msg = load_error(&config, broken);
    assert!(msg.contains(key), "error for missing {key}: {msg}");

    // 1 s plus a partial frame of noise, at 6 kbit/s (8 codebooks) and with all 32.
    let samples: usize = 24000 + 123;
    let frames = samples.div_ceil(320);
    let audio = Tensor::from_vec(noise(samples, 0.3, 7), (1, 1, samples), &Device::Cpu)?;
    let six = EncodeOptions::new(Some(8));
    let codes = model.encode_with(&audio, &six)?;
    assert!(codes.scales.is_none());
    let stacked = codes.stacked()?;
    assert_eq!(stacked.dims(), &[1, 8, frames]);
    let all = model.encode(&audio)?;
    assert_eq!(all.dims(), &[1, 32, frames]);
    // Residual VQ: the first 8 of 32 codebooks are the 8-codebook codes.
    assert_eq!(
        all.narrow(1, 0, 8)?.flatten_all()?.to_vec1::<u32>()?,
        stacked.flatten_all()?.to_vec1::<u32>()?
    );
    assert_eq!(
        hf_model
            .encode_with(&audio, &six)?
            .stacked()?
            .flatten_all()?
            .to_vec1::<u32>()?,
        stacked.flatten_all()?.to_vec1::<u32>()?,
        "transformers layout encodes the same"
    );
    let decoded = model.decode_streams(&codes)?;
    assert_eq!(decoded.dims(), &[1, 1, frames * 320]);
    let v = values(&decoded);
    assert!(v.iter().all(|x| x.is_finite()) && v.iter().any(|&x| x != 0.0));
    Ok(())
}

#[test]
fn full_48khz_keys_load_in_both_layouts_and_run_segmented() -> anyhow::Result<()> {
    let config = EncodecConfig::encodec_48khz();
    let Some((model, hf_model)) = check_keys("full-48khz-keys.json", &config, 48) else {
        return Ok(());
    };
    assert_eq!(model.info().channels, 2);
    assert_eq!(model.info().frame_rate, 150.0);
    assert_eq!(model.info().codebooks_for_bandwidth(3.0), Some(2));
    assert_eq!(model.info().codebooks_for_bandwidth(24.0), Some(16));

    // 1.2 s of stereo noise: segments of 48000 and 9600 samples starting 47520 apart.
    let samples = 57_120;
    assert_eq!(config.segments(samples), vec![(0, 48000), (47520, 9600)]);
    let split = config.frames_per_segment(samples);
    assert_eq!(split, vec![150, 30]);
    let frames: usize = split.iter().sum();
    let mut stereo = noise(samples, 0.3, 48);
    stereo.extend(noise(samples, 0.1, 49));
    let audio = Tensor::from_vec(stereo, (1, 2, samples), &Device::Cpu)?;
    let opts = EncodeOptions::new(Some(4));
    let codes = model.encode_with(&audio, &opts)?;
    assert_eq!(codes.streams.len(), 4);
    assert!(codes.streams.iter().all(|s| s.dims() == [1, frames]));
    let scales = codes
        .scales
        .clone()
        .expect("a normalising model returns scales");
    assert_eq!(scales.dims(), &[1, 2]);
    // Each scale is the segment's RMS (of the channel mean), plus 1e-8.
    let mono: Vec<f32> = values(&audio.mean(1)?);
    for (i, &(off, len)) in config.segments(samples).iter().enumerate() {
        let rms = (mono[off..off + len].iter().map(|x| x * x).sum::<f32>() / len as f32).sqrt();
        let s = values(&scales)[i];
        assert!(
            (s - rms).abs() < 1e-5 * rms,
            "segment {i}: scale {s} vs RMS {rms}"
        );
    }
    assert_eq!(
        values(&hf_model.encode_with(&audio, &opts)?.scales.unwrap()),
        values(&scales)
    );
    assert_eq!(config.segment_frames(frames)?, split);

    let decoded = model.decode_streams(&codes)?;
    // Overlap-add of 150 and 30 frames: 47520 + 30 * 320 samples.
    assert_eq!(decoded.dims(), &[1, 2, 47520 + 30 * 320]);
    let v = values(&decoded);
    assert!(v.iter().all(|x| x.is_finite()) && v.iter().any(|&x| x != 0.0));

    // The scales are needed, and must fit the segments.
    let no_scales = CodeStreams {
        streams: codes.streams.clone(),
        scales: None,
    };
    let err = model.decode_streams(&no_scales).unwrap_err().to_string();
    assert!(err.contains("scales"), "{err}");
    let wrong = CodeStreams {
        streams: codes.streams.clone(),
        scales: Some(Tensor::ones((1, 3), codec::DType::F32, &Device::Cpu)?),
    };
    assert!(model.decode_streams(&wrong).is_err());
    // A prefix of the codebooks decodes too.
    let prefix = CodeStreams {
        streams: codes.streams[..2].to_vec(),
        scales: Some(scales),
    };
    assert_eq!(model.decode_streams(&prefix)?.dims(), decoded.dims());
    Ok(())
}

/// Every key of both manifests has a transformers name that the loader maps back to it.
#[test]
fn transformers_names_map_back_to_every_key() {
    for file in ["full-24khz-keys.json", "full-48khz-keys.json"] {
        let Some(manifest) = manifest_or_skip("encodec", file) else {
            return;
        };
        let hf: Vec<String> = manifest.keys.iter().map(|(k, _)| to_hf(k)).collect();
        let upsampling = encodec::hf_decoder_upsampling_layers(&hf);
        assert_eq!(upsampling, vec![3, 6, 9, 12], "{file}");
        for ((orig, _), hf_key) in manifest.keys.iter().zip(&hf) {
            assert_ne!(
                orig, hf_key,
                "{file}: {orig} has a transformers name of its own"
            );
            assert_eq!(
                encodec::hf_key_to_original(hf_key, &upsampling).as_deref(),
                Some(orig.as_str()),
                "{file}: {hf_key}"
            );
        }
    }
}

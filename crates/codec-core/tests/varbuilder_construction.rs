//! Models built from a plain candle `VarBuilder` (`Model::new`) are the models the tracked
//! loader builds: same fingerprint, same codes, same audio.

mod common;

use candle_nn::VarBuilder;
use codec_core::models::dac::{self, Dac, DacConfig};
use codec_core::models::tinycodec::{TinyCodec, TinyCodecConfig};
use codec_core::weights::{convert_to_safetensors, StateDict};
use codec_core::{load_model, Codec, DType, Device, ModelCard, ModelSpec, Tensor};

/// A second of deterministic, speech-like test signal at `rate`.
fn signal(rate: usize) -> Tensor {
    let x: Vec<f32> = (0..rate)
        .map(|i| {
            let t = i as f32 / rate as f32;
            0.3 * (2.0 * std::f32::consts::PI * 220.0 * t).sin()
                + 0.1 * (2.0 * std::f32::consts::PI * 1375.0 * t).sin()
        })
        .collect();
    Tensor::from_vec(x, (1, 1, rate), &Device::Cpu).unwrap()
}

fn assert_same_model(a: &dyn Codec, b: &dyn Codec) {
    assert_eq!(a.info().fingerprint, b.info().fingerprint);
    let audio = signal(a.info().sample_rate as usize);
    let (ca, cb) = (a.encode(&audio).unwrap(), b.encode(&audio).unwrap());
    assert_eq!(
        ca.flatten_all().unwrap().to_vec1::<u32>().unwrap(),
        cb.flatten_all().unwrap().to_vec1::<u32>().unwrap()
    );
    let (ya, yb) = (a.decode(&ca).unwrap(), b.decode(&cb).unwrap());
    let diff = (ya - yb)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(diff, 0.0);
}

#[test]
fn tinycodec_from_buffered_safetensors_is_the_loaded_model() {
    let card = ModelCard::find("tinycodec-24khz").unwrap();
    let bytes = card.embedded_weights().expect("embedded weights");
    // The shipped file is float16; `new` reads it as f32 whatever the VarBuilder's dtype.
    let vb =
        VarBuilder::from_buffered_safetensors(bytes.to_vec(), DType::F16, &Device::Cpu).unwrap();
    let built = TinyCodec::new(&TinyCodecConfig::tinycodec_24khz(), vb, &card.name).unwrap();
    let loaded = load_model(&ModelSpec::Card(Box::new(card)), &Device::Cpu).unwrap();
    assert_same_model(&built, loaded.as_ref());
}

#[test]
fn dac_from_mmaped_safetensors_is_the_loaded_model() {
    let Some(dir) = common::fixture_dir("dac") else {
        return;
    };
    let checkpoint = dir.join("weights.pth");
    let state = StateDict::load(&checkpoint).unwrap();
    let json = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let config = DacConfig::from_reference_json(&json, "config.json").unwrap();
    // What `codec convert` writes: inference weights in DAC's own layout.
    let converted = std::env::temp_dir().join(format!("dac-vb-{}.safetensors", std::process::id()));
    let weights = dac::inference_weights(state.clone()).unwrap();
    convert_to_safetensors(&weights.tensors, &converted).unwrap();
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(&[&converted], DType::F32, &Device::Cpu).unwrap()
    };
    let built = Dac::new(&config, vb, "dac-fixture").unwrap();
    let (loaded, unused) = Dac::load(&config, state, "dac-fixture", &Device::Cpu).unwrap();
    std::fs::remove_file(&converted).ok();
    assert!(unused.is_empty(), "{unused:?}");
    assert_same_model(&built, &loaded);
}

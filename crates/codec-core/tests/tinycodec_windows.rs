//! tinycodec processes long clips in windows (bounded memory); the windows must not show:
//! codes and audio equal one pass over the whole clip.

use codec_core::audio::{prepare_mono, read_audio};
use codec_core::models::tinycodec::{TinyCodec, TinyCodecConfig};
use codec_core::weights::StateDict;
use codec_core::{Codec, Device, ModelCard, Tensor};

fn model(window_frames: usize) -> TinyCodec {
    let card = ModelCard::find("tinycodec-24khz").expect("card");
    let bytes = card.embedded_weights().expect("embedded weights");
    let state = StateDict::from_safetensors_bytes(bytes, "embedded").unwrap();
    let (model, unused) = TinyCodec::load(
        &TinyCodecConfig::tinycodec_24khz(),
        state,
        &card.name,
        &Device::Cpu,
    )
    .unwrap();
    assert!(unused.is_empty(), "{unused:?}");
    model.with_window_frames(window_frames)
}

#[test]
fn windows_give_the_single_pass_codes_and_audio() {
    let clip = read_audio(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/jfk.flac"
    ))
    .unwrap();
    let mono = prepare_mono(&clip, 24_000).unwrap().samples;
    // 3 copies (33 s) and an odd length, so the last window is partial and ends mid-frame.
    let mut samples = [mono.clone(), mono.clone(), mono].concat();
    samples.truncate(samples.len() - 123);
    let n = samples.len();
    let audio = Tensor::from_vec(samples, (1, 1, n), &Device::Cpu).unwrap();

    let whole = model(1_000_000);
    let windowed = model(150); // 3 s windows: 11 of them, each with its context
    let codes = whole.encode(&audio).unwrap();
    let codes_w = windowed.encode(&audio).unwrap();
    assert_eq!(codes.dims(), codes_w.dims());
    let a: Vec<u32> = codes.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<u32> = codes_w.flatten_all().unwrap().to_vec1().unwrap();
    let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    assert_eq!(differ, 0, "{differ} of {} codes differ", a.len());

    let out: Vec<f32> = whole
        .decode(&codes)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let out_w: Vec<f32> = windowed
        .decode(&codes)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(out.len(), out_w.len());
    let max_diff = out
        .iter()
        .zip(&out_w)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert_eq!(max_diff, 0.0, "windowed decode differs by up to {max_diff}");
}

//! Model-specific options through the dynamic API (`Codec::options` / `set_option`).

use codec_core::{load_model, Device, ModelSpec, Tensor};

#[test]
fn options_are_listed_set_and_checked() {
    let mut model =
        load_model(&ModelSpec::parse("tinycodec-24khz").unwrap(), &Device::Cpu).unwrap();
    let options = model.options();
    assert_eq!(options.len(), 1);
    assert_eq!(options[0].name, "window_frames");

    let x: Vec<f32> = (0..24_000).map(|i| (i as f32 * 0.01).sin() * 0.3).collect();
    let audio = Tensor::from_vec(x, (1, 1, 24_000), &Device::Cpu).unwrap();
    let whole = model
        .encode(&audio)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<u32>()
        .unwrap();
    model.set_option("window_frames", "7").unwrap();
    assert_eq!(model.options()[0].value, "7");
    let windowed = model
        .encode(&audio)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<u32>()
        .unwrap();
    assert_eq!(whole, windowed, "the window changes memory, not codes");

    let err = model
        .set_option("window_frames", "0")
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 or more"), "{err}");
    let err = model.set_option("no_such", "1").unwrap_err().to_string();
    assert!(err.contains("window_frames"), "{err}");

    let mut lyra = load_model(&ModelSpec::parse("lyra-v2").unwrap(), &Device::Cpu).unwrap();
    assert!(lyra.options().is_empty());
    let err = lyra
        .set_option("decoder_noise", "false")
        .unwrap_err()
        .to_string();
    assert!(err.contains("has no options"), "{err}");
}

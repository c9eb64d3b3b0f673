//! Streams own what they need: they outlive the model value they came from, move to another
//! thread, and `finish` completes the last frame as batch encoding does.

use codec_core::{load_model, Device, ModelSpec, Tensor};

fn signal(samples: usize, rate: f32) -> Vec<f32> {
    (0..samples)
        .map(|i| {
            let t = i as f32 / rate;
            0.3 * (2.0 * std::f32::consts::PI * 180.0 * t).sin()
                + 0.05 * (2.0 * std::f32::consts::PI * 2300.0 * t).sin()
        })
        .collect()
}

#[test]
fn streams_outlive_the_model_and_finish_like_batch_encoding() {
    let model = load_model(&ModelSpec::parse("lyra-v2").unwrap(), &Device::Cpu).unwrap();
    let rate = model.info().sample_rate as f32;
    // 1.01 s: the last frame is partial.
    let samples = signal(16_160, rate);
    let clip = Tensor::from_vec(samples.clone(), (1, 1, samples.len()), &Device::Cpu).unwrap();
    let batch_codes = model.encode(&clip).unwrap();
    let batch_audio = model.decode(&batch_codes).unwrap();

    let mut encoder = model.streaming_encoder(1, &Default::default()).unwrap();
    let mut decoder = model.streaming_decoder(1).unwrap();
    drop(model);
    let (codes, audio) = std::thread::spawn(move || {
        let mut frames = Vec::new();
        for piece in samples.chunks(999) {
            let t = Tensor::from_vec(piece.to_vec(), (1, 1, piece.len()), &Device::Cpu).unwrap();
            frames.extend(encoder.push_audio(&t).unwrap());
        }
        frames.extend(encoder.finish().unwrap());
        let codes = Tensor::cat(&frames, 2).unwrap();
        let audio = decoder.push_codes(&codes).unwrap().unwrap();
        assert!(decoder.finish().unwrap().is_none());
        (codes, audio)
    })
    .join()
    .unwrap();
    assert_eq!(
        codes.flatten_all().unwrap().to_vec1::<u32>().unwrap(),
        batch_codes.flatten_all().unwrap().to_vec1::<u32>().unwrap()
    );
    assert_eq!(
        audio.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        batch_audio.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
}

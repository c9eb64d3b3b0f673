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

/// Resetting one stream of a batch restarts that stream only: it then gives what a fresh
/// stream gives, and the other streams go on as if nothing happened.
#[test]
fn one_stream_of_a_batch_resets_alone() {
    let model = load_model(&ModelSpec::parse("lyra-v2").unwrap(), &Device::Cpu).unwrap();
    let rate = model.info().sample_rate as f32;
    let frame = 320;
    let a = signal(frame * 20, rate);
    let b: Vec<f32> = a.iter().rev().copied().collect();
    let clip = |x: &[f32]| Tensor::from_vec(x.to_vec(), (1, 1, x.len()), &Device::Cpu).unwrap();
    let pair = |x: &[f32], y: &[f32]| Tensor::cat(&[clip(x), clip(y)], 0).unwrap();
    let codes = |t: Tensor| t.to_vec3::<u32>().unwrap();

    let mut enc = model.streaming_encoder(2, &Default::default()).unwrap();
    let first = codes(
        enc.push_audio(&pair(&a[..frame * 8], &b[..frame * 8]))
            .unwrap()
            .unwrap(),
    );
    enc.reset_item(1).unwrap();
    // Item 0 goes on with `a`; item 1 starts `a` afresh.
    let second = codes(
        enc.push_audio(&pair(&a[frame * 8..], &a[..frame * 12]))
            .unwrap()
            .unwrap(),
    );

    let alone = |x: &[f32]| {
        let mut e = model.streaming_encoder(1, &Default::default()).unwrap();
        codes(e.push_audio(&clip(x)).unwrap().unwrap())
    };
    let whole_a = alone(&a);
    let whole_b = alone(&b[..frame * 8]);
    let fresh_a = alone(&a[..frame * 12]);
    for book in 0..whole_a[0].len() {
        assert_eq!(
            first[0][book],
            whole_a[0][book][..8],
            "item 0 before the reset"
        );
        assert_eq!(first[1][book], whole_b[0][book], "item 1 before the reset");
        assert_eq!(second[0][book], whole_a[0][book][8..], "item 0 goes on");
        assert_eq!(second[1][book], fresh_a[0][book], "item 1 starts afresh");
    }
    // Mid-frame, a reset would misalign the batch: refused.
    enc.push_audio(&pair(&a[..100], &a[..100])).unwrap();
    assert!(enc.reset_item(0).is_err());
    assert!(enc.reset_item(5).is_err());
}

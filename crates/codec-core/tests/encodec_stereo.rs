//! A small stereo, normalising, segmented EnCodec (the 48 kHz model's design at toy size, random
//! weights) through the file-level pipeline: channel handling, per-segment scales in token
//! files, and decoding back to the original length and channels.

use candle_nn::{VarBuilder, VarMap};
use codec_core::audio::AudioClip;
use codec_core::models::encodec::{Encodec, EncodecConfig};
use codec_core::nn::seanet::{SeanetDecoder, SeanetEncoder};
use codec_core::pipeline::{self, DecodeOptions, OutputRate};
use codec_core::quant::ResidualVq;
use codec_core::tokfile::TokenFile;
use codec_core::weights::StateDict;
use codec_core::{Codec, DType, Device, EncodeOptions, Tensor};

/// The 48 kHz design, small: 4 kHz, hop 8, 1 s segments overlapping by 1%, 4 codebooks of 16.
fn toy_config() -> EncodecConfig {
    let mut cfg = EncodecConfig::encodec_48khz();
    cfg.sample_rate = 4000;
    cfg.seanet.ratios = vec![4, 2];
    cfg.seanet.n_filters = 4;
    cfg.seanet.dimension = 8;
    cfg.seanet.lstm = 1;
    cfg.codebook_size = 16;
    cfg.num_quantizers = 4;
    // 500 frames/s x 4 bits = 2 kbit/s per codebook.
    cfg.bandwidths = vec![4.0, 8.0];
    cfg.validate("toy").unwrap();
    cfg
}

/// Random weights with every key the model reads (found by building it on a `VarMap`).
fn toy_model() -> Encodec {
    let cfg = toy_config();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    SeanetEncoder::new(&cfg.seanet, vb.pp("encoder")).unwrap();
    SeanetDecoder::new(&cfg.seanet, 1.0, vb.pp("decoder")).unwrap();
    ResidualVq::new(
        cfg.num_quantizers,
        cfg.codebook_size,
        cfg.seanet.dimension,
        vb.pp("quantizer.vq"),
    )
    .unwrap();
    let tensors = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let t = v.as_tensor();
            let r = Tensor::randn(0f32, 0.3, t.shape(), &Device::Cpu).unwrap();
            // Group norm gains near 1, everything else random.
            let r = if k.ends_with(".norm.weight") {
                r.affine(0.1, 1.0).unwrap()
            } else {
                r
            };
            (k.clone(), r)
        })
        .collect();
    let state = StateDict {
        source: "toy".into(),
        tensors,
    };
    let (model, unused) = Encodec::load(&cfg, state, "toy-encodec", &Device::Cpu).unwrap();
    assert!(unused.is_empty(), "{unused:?}");
    model
}

fn tone(n: usize, rate: u32, freq: f32, amp: f32) -> Vec<f32> {
    (0..n)
        .map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
        .collect()
}

#[test]
fn stereo_model_through_the_pipeline() {
    let model = toy_model();
    let info = model.info().clone();
    assert_eq!((info.channels, info.frame_rate), (2, 500.0));
    assert_eq!(info.codebooks_for_bandwidth(4.0), Some(2));
    let cfg = toy_config();

    // 2.5 s of stereo at the model's rate: 3 segments.
    let n = 10_000;
    let clip = AudioClip {
        sample_rate: 4000,
        channels: vec![tone(n, 4000, 220.0, 0.5), tone(n, 4000, 330.0, 0.05)],
    };
    let options = EncodeOptions::new(Some(2));
    let encoded = pipeline::encode_audio_with(&model, &clip, &options).unwrap();
    assert!(encoded.notes.is_empty(), "{:?}", encoded.notes);
    let t = &encoded.tokens;
    assert_eq!(t.header.channels, 2);
    assert_eq!(t.streams.len(), 2);
    let split = cfg.frames_per_segment(n);
    assert_eq!(split.len(), 3);
    assert_eq!(t.scales.len(), 3);
    assert_eq!(t.num_frames(), split.iter().sum::<usize>());
    assert!((t.bitrate() - 4000.0).abs() < 1e-9);
    // The scales are the segments' RMS of the channel mean.
    let mono = clip.to_mono();
    for (i, (off, len)) in cfg.segments(n).into_iter().enumerate() {
        let rms = (mono[off..off + len].iter().map(|x| x * x).sum::<f32>() / len as f32).sqrt();
        assert!((t.scales[i] - rms).abs() < 1e-5 * rms, "segment {i}");
    }

    // The same as the library on the tensor.
    let input = Tensor::from_vec(clip.channels.concat(), (1, 2, n), &Device::Cpu).unwrap();
    let direct = model.encode_with(&input, &options).unwrap();
    assert_eq!(
        direct.streams[1]
            .flatten_all()
            .unwrap()
            .to_vec1::<u32>()
            .unwrap(),
        t.streams[1].codes
    );

    // Token file round trip, then decoding: 2 channels, the original length.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("toy.tok");
    t.write(&path).unwrap();
    let back = TokenFile::read(&path).unwrap();
    assert_eq!(&back, t);
    let decoded = pipeline::decode_tokens(&model, &back, &DecodeOptions::default()).unwrap();
    assert_eq!(decoded.sample_rate, 4000);
    assert_eq!(decoded.channels.len(), 2);
    assert!(decoded.channels.iter().all(|c| c.len() == n));
    assert!(decoded.channels.iter().flatten().all(|x| x.is_finite()));
    let same = model.decode_streams(&direct).unwrap();
    assert_eq!(same.dims()[..2], [1, 2]);
    let same: Vec<Vec<f32>> = same.squeeze(0).unwrap().to_vec2().unwrap();
    for (a, b) in decoded.channels.iter().zip(&same) {
        assert_eq!(a[..], b[..n]);
    }

    // Without scales the model refuses.
    let mut no_scales = back.clone();
    no_scales.scales.clear();
    let err = pipeline::decode_tokens(&model, &no_scales, &DecodeOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("scales"), "{err}");
}

#[test]
fn stereo_model_takes_mono_and_many_channels() {
    let model = toy_model();
    // Mono at another rate: resampled, then on both channels.
    let mono = AudioClip::mono(8000, tone(9000, 8000, 200.0, 0.3));
    let encoded = pipeline::encode_audio(&model, &mono).unwrap();
    assert!(encoded.notes.iter().any(|n| n.contains("resampled")));
    assert!(encoded.notes.iter().any(|n| n.contains("both channels")));
    assert_eq!(encoded.tokens.header.original_length, 9000);
    assert_eq!(encoded.tokens.header.original_sample_rate, 8000);
    let options = DecodeOptions {
        output_rate: OutputRate::Original,
        ..DecodeOptions::default()
    };
    let decoded = pipeline::decode_tokens(&model, &encoded.tokens, &options).unwrap();
    assert_eq!(decoded.sample_rate, 8000);
    assert_eq!(decoded.channels.len(), 2);
    assert!(decoded.channels.iter().all(|c| c.len() == 9000));

    // Both channels of a mono input carry the same signal: the model sees L = R.
    let same = AudioClip {
        sample_rate: 4000,
        channels: vec![tone(5000, 4000, 200.0, 0.3); 2],
    };
    let from_mono =
        pipeline::encode_audio(&model, &AudioClip::mono(4000, same.channels[0].clone())).unwrap();
    let from_stereo = pipeline::encode_audio(&model, &same).unwrap();
    assert_eq!(from_mono.tokens.streams, from_stereo.tokens.streams);

    // Three channels: mixed down to mono, then on both channels.
    let three = AudioClip {
        sample_rate: 4000,
        channels: vec![
            tone(5000, 4000, 200.0, 0.3),
            tone(5000, 4000, 300.0, 0.3),
            tone(5000, 4000, 400.0, 0.3),
        ],
    };
    let encoded = pipeline::encode_audio(&model, &three).unwrap();
    assert!(
        encoded.notes.iter().any(|n| n.contains("mixed 3 channels")),
        "{:?}",
        encoded.notes
    );
    assert_eq!(encoded.tokens.header.channels, 2);
}

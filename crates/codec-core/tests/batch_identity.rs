//! Batching never changes a result: for every family, each clip of a mixed-length batch gets
//! the codes a lone encode gives, and each token file of a batch the audio a lone decode gives
//! (bit for bit: equal-length items share one call, nothing is padded), in batches of 1 to 8.

mod common;

use codec_core::audio::AudioClip;
use codec_core::batch::{decode_batch, encode_batch};
use codec_core::pipeline::{decode_tokens, encode_audio_with, DecodeOptions};
use codec_core::tokfile::TokenFile;
use codec_core::{load_model, Codec, Device, EncodeOptions, Error, ModelSpec};

/// Speech from a fixture, cut into clips of these lengths (seconds) at the file's rate; equal
/// lengths share a model call, the others run alone, and a clip at another rate is resampled.
const LENGTHS_S: [f64; 8] = [0.5, 0.3, 0.5, 0.77, 0.5, 0.3, 0.41, 0.5];

fn speech(path: &std::path::Path) -> AudioClip {
    codec_core::audio::read_audio(path).unwrap()
}

fn clips(source: &AudioClip, count: usize) -> Vec<AudioClip> {
    let rate = source.sample_rate;
    let samples = &source.channels[0];
    let mut out: Vec<AudioClip> = LENGTHS_S[..count]
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let n = (s * rate as f64) as usize;
            let start = (i * rate as usize / 7) % (samples.len() - n);
            AudioClip::mono(rate, samples[start..start + n].to_vec())
        })
        .collect();
    if count > 3 {
        // One clip at another rate, resampled on the way in as the pipeline does.
        let c = &out[3].channels[0];
        let n = c.len() * 2 / 3;
        out[3] = AudioClip::mono(rate * 2 / 3, c[..n].to_vec());
    }
    out
}

fn assert_tokens_equal(what: &str, batch: &TokenFile, alone: &TokenFile) {
    assert_eq!(batch.header, alone.header, "{what}: header");
    assert_eq!(batch.streams, alone.streams, "{what}: codes");
    let bits = |s: &[f32]| s.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&batch.scales), bits(&alone.scales), "{what}: scales");
}

fn assert_audio_equal(what: &str, batch: &AudioClip, alone: &AudioClip) {
    assert_eq!(batch.sample_rate, alone.sample_rate, "{what}: rate");
    assert_eq!(
        batch.channels.len(),
        alone.channels.len(),
        "{what}: channels"
    );
    for (b, a) in batch.channels.iter().zip(&alone.channels) {
        assert_eq!(b.len(), a.len(), "{what}: length");
        let differ = b
            .iter()
            .zip(a)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count();
        assert_eq!(
            differ,
            0,
            "{what}: {differ} samples differ (SNR {:.1} dB)",
            common::snr_db(a, b)
        );
    }
}

/// Batches of 1 to 8 through `model`: codes and audio equal to one item at a time.
fn check_model(model: &dyn Codec, source: &AudioClip, options: &EncodeOptions) {
    let name = model.info().name.clone();
    for count in 1..=8 {
        let items = clips(source, count);
        let batch = encode_batch(model, &items, options).unwrap();
        assert_eq!(batch.len(), count);
        let tokens: Vec<TokenFile> = batch.iter().map(|e| e.tokens.clone()).collect();
        for (i, (b, clip)) in batch.iter().zip(&items).enumerate() {
            let alone = encode_audio_with(model, clip, options).unwrap();
            assert_tokens_equal(
                &format!("{name} batch {count} item {i}"),
                &b.tokens,
                &alone.tokens,
            );
            assert_eq!(b.notes, alone.notes);
        }
        let decoded = decode_batch(model, &tokens, &DecodeOptions::default()).unwrap();
        for (i, (d, t)) in decoded.iter().zip(&tokens).enumerate() {
            let alone = decode_tokens(model, t, &DecodeOptions::default()).unwrap();
            assert_audio_equal(&format!("{name} decode batch {count} item {i}"), d, &alone);
        }
    }
    eprintln!("{name}: batches of 1 to 8 equal one at a time");
}

fn fixture_model(folder: &str) -> Option<(Box<dyn Codec>, std::path::PathBuf)> {
    let dir = common::fixture_dir(folder)?;
    let model = load_model(
        &ModelSpec::parse(dir.to_str().unwrap()).unwrap(),
        &Device::Cpu,
    )
    .unwrap_or_else(|e| panic!("{folder}: {e}"));
    Some((model, dir))
}

fn check_fixture(folder: &str, wav: &str, options: EncodeOptions) {
    let Some((model, dir)) = fixture_model(folder) else {
        return;
    };
    let source = speech(&dir.join(wav));
    check_model(model.as_ref(), &source, &options);
}

#[test]
fn dac() {
    check_fixture("dac", "speech_a.wav", EncodeOptions::new(Some(4)));
}

#[test]
fn encodec() {
    check_fixture("encodec", "speech_a.wav", EncodeOptions::default());
}

#[test]
fn mimi() {
    check_fixture("mimi", "speech_a.wav", EncodeOptions::new(Some(8)));
}

#[test]
fn snac() {
    check_fixture("snac/snac24", "../speech_a.wav", EncodeOptions::default());
}

#[test]
fn qwen3_tts() {
    check_fixture(
        "qwen3-tts-tokenizer",
        "speech_a.wav",
        EncodeOptions::default(),
    );
}

#[test]
fn speechtokenizer() {
    check_fixture("speechtokenizer", "speech_a.wav", EncodeOptions::default());
}

#[test]
fn wavtokenizer() {
    check_fixture("wavtokenizer", "speech_a.wav", EncodeOptions::default());
}

#[test]
fn lyra_and_tinycodec_built_in() {
    let Some(dir) = common::fixture_dir("dac") else {
        return;
    };
    let source = speech(&dir.join("speech_a.wav"));
    for name in ["lyra-v2", "tinycodec-24khz"] {
        let model = load_model(&ModelSpec::parse(name).unwrap(), &Device::Cpu).unwrap();
        check_model(model.as_ref(), &source, &EncodeOptions::default());
    }
}

/// X-Codec2 here decodes only: batches of token files of mixed lengths.
#[test]
fn xcodec2_decode() {
    let Some((model, _)) = fixture_model("xcodec2-decoder") else {
        return;
    };
    let info = model.info().clone();
    let size = info.codebook_sizes[0];
    let tokens: Vec<TokenFile> = [30usize, 17, 30, 9, 30]
        .iter()
        .enumerate()
        .map(|(i, &frames)| {
            let codes: Vec<f64> = (0..frames)
                .map(|t| ((t * 7919 + i * 104_729) % size as usize) as f64)
                .collect();
            let array = codec_core::npy::NpyArray {
                shape: vec![1, frames],
                values: codes,
            };
            codec_core::pipeline::import_codes(&info, &array, "generated").unwrap()
        })
        .collect();
    let decoded = decode_batch(model.as_ref(), &tokens, &DecodeOptions::default()).unwrap();
    for (i, (d, t)) in decoded.iter().zip(&tokens).enumerate() {
        let alone = decode_tokens(model.as_ref(), t, &DecodeOptions::default()).unwrap();
        assert_audio_equal(&format!("xcodec2 item {i}"), d, &alone);
    }
}

/// A bad item fails the call, and the error says which one.
#[test]
fn a_bad_item_is_named() {
    let model = load_model(&ModelSpec::parse("tinycodec-24khz").unwrap(), &Device::Cpu).unwrap();
    let good = AudioClip::mono(24_000, vec![0.1; 4800]);
    let empty = AudioClip::mono(24_000, Vec::new());
    let err = encode_batch(
        model.as_ref(),
        &[good.clone(), empty],
        &EncodeOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::BatchItem { index: 1, .. }), "{err}");
    assert!(err.to_string().starts_with("batch item 1: "), "{err}");

    let mut tokens = encode_batch(model.as_ref(), &[good], &EncodeOptions::default())
        .unwrap()
        .remove(0)
        .tokens;
    tokens.header.fingerprint ^= 1;
    let err = decode_batch(model.as_ref(), &[tokens], &DecodeOptions::default()).unwrap_err();
    assert!(matches!(err, Error::BatchItem { index: 0, .. }), "{err}");
    assert!(encode_batch(model.as_ref(), &[], &EncodeOptions::default())
        .unwrap()
        .is_empty());
}

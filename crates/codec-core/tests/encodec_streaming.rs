//! EnCodec 24 kHz streams: on `../shared/fixtures/encodec` (the published 24 kHz architecture
//! with fewer channels), streamed codes and audio against our own batch `encode_with` /
//! `decode` of the same frames.
//!
//! - streaming encode, audio pushed in pieces of 1, 7, 13 samples up to several frames: the
//!   streamed latent is the batch latent up to float32 rounding (~4e-4 on latents of norm ~30),
//!   the codes at 2 codebooks equal the batch codes at every whole frame; at 8 codebooks every
//!   frame that differs does so at a codebook the batch latent decides by less than that
//!   rounding (this test model's deep codebooks are that fine: see `encodec_parity.rs`). The
//!   first codes come out once 7 frames (2240 samples) are in, when the reflect padding of the
//!   encoder's last convolution can mirror its next 6 latent frames; after that a frame's codes
//!   come out as soon as its last sample is pushed (see `Encodec`'s docs on streaming);
//! - streaming decode, one frame per push and in groups: nothing until 7 frames are in, then
//!   320 samples per frame, equal to batch decoding of the same codes (SNR >= 60 dB);
//! - a batch of two streams keeps them apart, and `reset` starts over;
//! - the 48 kHz model (non-causal, segments, normalisation) says it cannot stream.

mod common;

use std::path::Path;

use codec_core::models::encodec::{Encodec, EncodecConfig};
use codec_core::streaming::cat_pieces;
use codec_core::weights::StateDict;
use codec_core::{
    Codec, Device, EncodeOptions, StreamingDecoder, StreamingEncoder, StreamingModule, Tensor,
};

const FRAME: usize = 320;
/// Frames the stream needs before its first output (reflect padding, kernel 7 at 75 Hz).
const STARTUP: usize = 7;
/// Push sizes for streaming encode, cycled: single samples, a few, under a frame, several.
const PIECES: &[usize] = &[1, 7, 13, 1, 320, 1000, 7, 2239, 319, 641];

fn load(dir: &Path) -> Encodec {
    let json = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let cfg = EncodecConfig::from_reference_json(&json, "config.json").unwrap();
    let state = StateDict::load(&dir.join("model.th")).unwrap();
    let (model, unused) = Encodec::load(&cfg, state, "fixture", &Device::Cpu).unwrap();
    assert!(unused.is_empty(), "unused keys: {unused:?}");
    model
}

fn read_wav_i16(path: &Path) -> Vec<f32> {
    let mut r = hound::WavReader::open(path).unwrap();
    r.samples::<i16>()
        .map(|s| s.unwrap() as f32 / 32768.0)
        .collect()
}

fn rows(t: &Tensor) -> Vec<Vec<Vec<u32>>> {
    t.to_dtype(codec_core::DType::U32)
        .unwrap()
        .to_vec3::<u32>()
        .unwrap()
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn out_frames(t: &Option<Tensor>) -> usize {
    t.as_ref().map_or(0, |t| t.dim(2).unwrap())
}

/// Frames out once `samples` samples are in.
fn frames_ready(samples: usize) -> usize {
    let frames = samples / FRAME;
    if frames >= STARTUP {
        frames
    } else {
        0
    }
}

/// Codebook entries in f64, `[codebook][entry][dim]`.
fn codebooks(dir: &Path) -> Vec<Vec<Vec<f64>>> {
    let state = StateDict::load(&dir.join("model.th")).unwrap();
    let weights = codec_core::models::encodec::inference_weights(state).unwrap();
    (0..)
        .map_while(|i| {
            weights
                .tensors
                .get(&format!("quantizer.vq.layers.{i}._codebook.embed"))
        })
        .map(|e| {
            e.to_vec2::<f32>()
                .unwrap()
                .into_iter()
                .map(|row| row.into_iter().map(f64::from).collect())
                .collect()
        })
        .collect()
}

/// `[1, d, frames]` → per-frame vectors.
fn frames_of(latent: &Tensor) -> Vec<Vec<f64>> {
    let rows = latent
        .squeeze(0)
        .unwrap()
        .t()
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    rows.into_iter()
        .map(|row| row.into_iter().map(f64::from).collect())
        .collect()
}

fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

/// Compare streamed codes with batch codes `[1, n_q, frames]`. Where a frame differs, its first
/// differing codebook must be one the batch latent decides by less than the streamed latent
/// deviates from it: this test model's encoder ends in a convolution whose large weights cancel
/// (see `encodec_parity.rs`), so float32 rounding moves its latent by ~1e-4 whenever the
/// arithmetic is grouped differently (pieces instead of the whole clip), and the deeper test
/// codebooks separate their entries by less than that. Returns the differing frames per
/// first differing codebook.
fn check_codes(
    books: &[Vec<Vec<f64>>],
    streamed: &Tensor,
    batch: &Tensor,
    streamed_latent: &[Vec<f64>],
    batch_latent: &[Vec<f64>],
    what: &str,
) -> Vec<usize> {
    let (got, want) = (&rows(streamed)[0], &rows(batch)[0]);
    let n_q = want.len();
    let mut per_codebook = vec![0; n_q];
    for t in 0..want[0].len() {
        let want_t: Vec<u32> = want.iter().map(|w| w[t]).collect();
        let Some(k) = (0..n_q).find(|&k| got[k][t] != want_t[k]) else {
            continue;
        };
        per_codebook[k] += 1;
        let mut residual = batch_latent[t].clone();
        for (cb, &c) in books.iter().zip(&want_t).take(k) {
            residual
                .iter_mut()
                .zip(&cb[c as usize])
                .for_each(|(r, e)| *r -= e);
        }
        let (e_batch, e_stream) = (&books[k][want_t[k] as usize], &books[k][got[k][t] as usize]);
        let margin = dist2(&residual, e_stream) - dist2(&residual, e_batch);
        let boundary = margin / (2.0 * dist2(e_batch, e_stream).sqrt());
        let deviation = dist2(&batch_latent[t], &streamed_latent[t]).sqrt();
        assert!(
            k >= 2 && boundary <= deviation * 1.001 + 1e-9,
            "{what}: codebook {k} frame {t}: streamed code {} != batch {} (decided by \
             {boundary:.2e}, streamed latent deviates by {deviation:.2e})",
            got[k][t],
            want_t[k]
        );
    }
    per_codebook
}

/// Push `audio` `[b, 1, n]` in pieces of the [`PIECES`] sizes (cycled, from `start`) and
/// concatenate the codes, checking when they come out.
fn stream_encode(enc: &mut dyn StreamingEncoder, audio: &Tensor, start: usize) -> Tensor {
    let len = audio.dim(2).unwrap();
    let (mut pos, mut i, mut out) = (0, start, None);
    while pos < len {
        let n = PIECES[i % PIECES.len()].min(len - pos);
        let codes = enc.push_audio(&audio.narrow(2, pos, n).unwrap()).unwrap();
        out = cat_pieces(out, codes).unwrap();
        pos += n;
        i += 1;
        assert_eq!(out_frames(&out), frames_ready(pos), "after {pos} samples");
    }
    out.expect("some codes")
}

/// Decode `codes` `[b, k, frames]` pushing `groups` frames at a time (cycled).
fn stream_decode(dec: &mut dyn StreamingDecoder, codes: &Tensor, groups: &[usize]) -> Tensor {
    let frames = codes.dim(2).unwrap();
    let (mut pos, mut i, mut out) = (0, 0, None);
    while pos < frames {
        let n = groups[i % groups.len()].min(frames - pos);
        let audio = dec.push_codes(&codes.narrow(2, pos, n).unwrap()).unwrap();
        out = cat_pieces(out, audio).unwrap();
        pos += n;
        i += 1;
        let want = if pos >= STARTUP { pos * FRAME } else { 0 };
        let got = out.as_ref().map_or(0, |t| t.dim(2).unwrap());
        assert_eq!(got, want, "audio after {pos} frames");
    }
    out.unwrap()
}

#[test]
fn streamed_codes_and_audio_equal_batch_on_whole_frames() {
    let Some(dir) = common::fixture_dir("encodec") else {
        return;
    };
    let model = load(&dir);
    let books = codebooks(&dir);
    assert!(model.supports_streaming());
    for case in ["speech_a", "speech_b_odd"] {
        let samples = read_wav_i16(&dir.join(format!("{case}.wav")));
        let len = samples.len();
        let whole = len / FRAME;
        let audio = Tensor::from_vec(samples, (1, 1, len), &Device::Cpu).unwrap();
        // The latents: batch over the whole clip, streamed in pieces through the same layers.
        let batch_latent = model.encode_latent(&audio).unwrap();
        let batch_latent = frames_of(&batch_latent.narrow(2, 0, whole).unwrap());
        let mut layers = model.streaming_latent_encoder().unwrap();
        let mut latent = None;
        let mut pos = 0;
        for &n in PIECES.iter().cycle() {
            if pos >= len {
                break;
            }
            let n = n.min(len - pos);
            let piece = audio.narrow(2, pos, n).unwrap();
            latent = cat_pieces(latent, layers.step(Some(&piece)).unwrap()).unwrap();
            pos += n;
        }
        let streamed_latent = frames_of(&latent.unwrap());
        let deviation = streamed_latent
            .iter()
            .zip(&batch_latent)
            .map(|(a, b)| dist2(a, b).sqrt())
            .fold(0.0, f64::max);
        let scale = batch_latent
            .iter()
            .map(|a| dist2(a, &vec![0.0; a.len()]).sqrt());
        let scale = scale.fold(0.0, f64::max);
        println!("{case}: streamed latent deviates from batch by at most {deviation:.1e} (latent norm up to {scale:.1})");
        assert!(
            deviation < 1e-3 * scale,
            "{case}: latent deviation {deviation}"
        );
        for nq in [2, 8] {
            let opts = EncodeOptions::new(Some(nq));
            let what = format!("{case} nq{nq}");
            // Batch codes of the whole clip; streaming sees only its whole frames.
            let batch = model.encode_with(&audio, &opts).unwrap().stacked().unwrap();
            let batch = batch.narrow(2, 0, whole).unwrap();
            let mut enc = model.streaming_encoder(1, &opts).unwrap();
            assert_eq!(enc.frame_size(), FRAME);
            assert_eq!(
                enc.startup_frames() + 1,
                STARTUP,
                "{what}: start-up reported"
            );
            let streamed = stream_encode(enc.as_mut(), &audio, 0);
            assert_eq!(streamed.dims(), &[1, nq, whole], "{what}");
            let diff = check_codes(
                &books,
                &streamed,
                &batch,
                &streamed_latent,
                &batch_latent,
                &what,
            );
            println!(
                "{what}: {whole} frames streamed; frames whose codes differ from batch, by \
                 first differing codebook (all within the latent's float32 deviation): {diff:?}"
            );
            if nq == 2 {
                assert_eq!(rows(&streamed), rows(&batch), "{what}: streamed codes");
            }
            enc.reset();
            let again = stream_encode(enc.as_mut(), &audio, 4);
            check_codes(
                &books,
                &again,
                &batch,
                &streamed_latent,
                &batch_latent,
                &what,
            );

            // Decoding: batch decode of the same whole frames against streaming.
            let want = f32s(&model.decode(&batch).unwrap());
            let mut dec = model.streaming_decoder(1).unwrap();
            assert_eq!(dec.frame_size(), FRAME);
            assert_eq!(dec.startup_frames() + 1, STARTUP, "start-up reported");
            for groups in [&[1][..], &[3, 1, 8, 2]] {
                dec.reset();
                let got = f32s(&stream_decode(dec.as_mut(), &batch, groups));
                let snr = common::snr_db(&want, &got);
                println!(
                    "{what}: streamed decode of the batch codes ({groups:?} frames per push) \
                     vs batch decode, {whole} frames: SNR {snr:.1} dB"
                );
                // Measured 114.9 dB at the lowest; asserted 12+ dB under it so a regression fails.
                assert!(snr >= 100.0, "{what}: streamed audio SNR {snr:.1} dB");
            }
        }
    }
}

#[test]
fn a_batch_of_streams_keeps_them_apart() {
    let Some(dir) = common::fixture_dir("encodec") else {
        return;
    };
    let model = load(&dir);
    let a = read_wav_i16(&dir.join("speech_a.wav"));
    let b = read_wav_i16(&dir.join("speech_b_odd.wav"));
    let len = a.len().min(b.len()) / FRAME * FRAME;
    let mut both = a[..len].to_vec();
    both.extend_from_slice(&b[..len]);
    let audio = Tensor::from_vec(both, (2, 1, len), &Device::Cpu).unwrap();
    // Two codebooks: decided far beyond the float32 noise of this test model's latent (see
    // `check_codes`), so streamed and batch codes are equal exactly.
    let opts = EncodeOptions::new(Some(2));
    let mut enc = model.streaming_encoder(2, &opts).unwrap();
    let codes = stream_encode(enc.as_mut(), &audio, 2);
    let all = EncodeOptions::default();
    let mut dec = model.streaming_decoder(2).unwrap();
    let batch_codes = model.encode_with(&audio, &all).unwrap().stacked().unwrap();
    let out = stream_decode(dec.as_mut(), &batch_codes, &[2, 5, 1]);
    for i in 0..2 {
        let one = audio.narrow(0, i, 1).unwrap();
        let want = model.encode_with(&one, &opts).unwrap().stacked().unwrap();
        let got = codes.narrow(0, i, 1).unwrap();
        assert_eq!(rows(&got), rows(&want), "stream {i}: codes");
        let want_codes = batch_codes.narrow(0, i, 1).unwrap();
        let want_audio = f32s(&model.decode(&want_codes).unwrap());
        let snr = common::snr_db(&want_audio, &f32s(&out.narrow(0, i, 1).unwrap()));
        println!("stream {i} of a batch of 2: codes equal, audio SNR {snr:.1} dB");
        // Measured 114.9 dB at the lowest; asserted 12+ dB under it so a regression fails.
        assert!(snr >= 100.0, "stream {i}: SNR {snr:.1} dB");
    }
    // A push of another batch size is refused.
    let one = audio.narrow(0, 0, 1).unwrap();
    assert!(enc.push_audio(&one).is_err());
}

#[test]
fn only_the_causal_unsegmented_model_streams() {
    assert!(EncodecConfig::encodec_24khz().can_stream());
    let c48 = EncodecConfig::encodec_48khz();
    assert!(!c48.can_stream());
    // Causal, but with segments or normalisation: the decoder's overlap-add and the per-segment
    // scale look ahead.
    let mut segmented = EncodecConfig::encodec_24khz();
    segmented.segment = Some(1.0);
    assert!(!segmented.can_stream());
    let mut normalised = EncodecConfig::encodec_24khz();
    normalised.normalize = true;
    assert!(!normalised.can_stream());
}

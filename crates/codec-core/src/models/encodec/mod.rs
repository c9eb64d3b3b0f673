//! EnCodec (Défossez et al. 2022): SEANet encoder, residual VQ with up to 32 codebooks of 1024
//! entries, SEANet decoder. Two published models:
//!
//! - 24 kHz mono, causal, weight norm, 75 frames/s, bandwidths 1.5/3/6/12/24 kbit/s
//!   (2/4/8/16/32 codebooks), the whole clip encoded at once;
//! - 48 kHz stereo, non-causal, `GroupNorm(1, C)` after every convolution ("time_group_norm"),
//!   150 frames/s, bandwidths 3/6/12/24 kbit/s (2/4/8/16 codebooks), audio cut into 1 s segments
//!   overlapping by 1%, each normalised by its RMS (the scale is kept beside the codes) and the
//!   decoded segments cross-faded (`_linear_overlap_add`).
//!
//! This follows the original `encodec` package (`EncodecModel.encode` / `decode`); the Hugging
//! Face transformers port pads and segments 48 kHz input differently.
//!
//! # Weights
//!
//! The original package's `.th` state dict: `encoder.model.*`, `decoder.model.*` (SEANet, weight
//! norm as `weight_g`/`weight_v`, or `conv.norm.*` group norms), `quantizer.vq.layers.N._codebook.*`.
//! The transformers layout (`facebook/encodec_24khz`, `facebook/encodec_48khz`
//! `model.safetensors`: `encoder.layers.*`, `decoder.layers.*`, `quantizer.layers.N.codebook.*`)
//! is renamed to it at load ([`map_hf_keys`]). The codebooks' k-means/EMA statistics
//! (`embed_avg`, `cluster_size`, `inited`) are training state and dropped.
//!
//! # Codes of a segmented model
//!
//! For an input of `L` samples the reference encodes segments starting at `0, stride, 2 stride,
//! ... < L` (`stride = int((1 - overlap) * segment_samples)`), segment `i` holding
//! `min(segment_samples, L - i stride)` samples and giving `ceil(len / hop)` frames. Here the
//! frames of consecutive segments are concatenated per codebook, so each stream is one sequence
//! `[batch, Σ frames_i]`, and [`CodeStreams::scales`] is `[batch, segments]` (token files store it
//! as `scales`). The split back into segments is a function of `L`, and since the total frame
//! count grows strictly with each new segment, also of the total frame count alone, which is what
//! [`EncodecConfig::segment_frames`] inverts when decoding.

mod config;
mod weights;

pub use config::*;
pub use weights::*;

use std::sync::Arc;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

use super::{CheckpointFamily, Score};
use crate::codec::{CodeStreams, Codec, CodecInfo, EncodeOptions};
use crate::error::CodesProblem;
use crate::long_form::LongForm;
pub use crate::nn::seanet::hf_decoder_upsampling_layers;
use crate::nn::seanet::{SeanetDecoder, SeanetEncoder};
use crate::quant::ResidualVq;
use crate::streaming::{
    StackCodec, StackDecoder, StackEncoder, StreamingDecoder, StreamingEncoder, StreamingModule,
};
use crate::weights::{build_fingerprinted, load_tracked, StateDict};
use crate::{Error, Result};

/// Prefixes of the inference weights in the original package's state dict.
const ENCODER: &str = "encoder";
const DECODER: &str = "decoder";
const QUANTIZER: &str = "quantizer.vq";

/// A loaded EnCodec model.
///
/// # Streaming
///
/// A model whose config [can stream](EncodecConfig::can_stream) (the 24 kHz one) hands out
/// [`StreamingEncoder`]s and [`StreamingDecoder`]s with frames of 320 samples: the batch
/// networks themselves, stepped ([`SeanetEncoder`]'s streaming mode, with the LSTM's state
/// carried between pieces). The reference `encodec` package has no streaming mode; the paper puts all
/// padding before the first step, and so do these layers, with EnCodec's *reflect* padding: the
/// left context of each convolution mirrors the input's first samples. That needs a few samples
/// beyond the first output's window at the very start only, so:
///
/// - the streamed codes equal [`Codec::encode_with`]'s codes of the same audio, frame for frame
///   (up to float32 rounding), but the first codes come out once 7 frames (2240 samples,
///   93 ms) are in, when the encoder's last convolution (kernel 7 at 75 Hz) can mirror its 6
///   following latent frames; from then on every frame's codes come out as soon as its last
///   sample is pushed;
/// - the streamed audio equals [`Codec::decode`]'s; the decoder's first convolution waits for 7
///   code frames in the same way, then gives 320 samples per frame pushed;
/// - a stream shorter than 7 frames gives nothing;
/// - the last frame: streaming only ever sees whole frames, so a clip that ends inside a frame
///   has that frame completed by whoever feeds the stream (`codec encode --stream` pads it with
///   zeros), where batch encoding reflect-pads the partial frame inside each strided convolution
///   (`get_extra_padding_for_conv1d`): codes of that last frame may differ, every earlier frame
///   is the same. On the decoding side batch and streaming agree to the end: both drop the
///   `kernel - stride` samples the transposed convolutions would add after the last frame.
#[derive(Clone)]
pub struct Encodec {
    info: CodecInfo,
    config: EncodecConfig,
    device: Device,
    /// Shared, so that streams (which clone the model) do not copy the networks; a stream
    /// steps a clone of its own (fresh state, the same weights).
    encoder: Arc<SeanetEncoder>,
    quantizer: ResidualVq,
    decoder: Arc<SeanetDecoder>,
}

impl Encodec {
    /// Build the model from a state dict (either layout, checkpoint or converted safetensors).
    ///
    /// Every inference tensor must be present with the right shape; the error names the one
    /// that is not. Returns the model and the keys it did not use (should be empty).
    pub fn load(
        config: &EncodecConfig,
        state: StateDict,
        name: &str,
        device: &Device,
    ) -> Result<(Self, Vec<String>)> {
        let state = inference_weights(state)?;
        load_tracked(state, device, |vb| Self::new(config, vb, name))
    }

    /// Build the model from a `VarBuilder` over inference weights in the original package's
    /// layout, weight norm folded (what [`inference_weights`] returns and `codec convert`
    /// writes), read as f32. A missing or misshaped tensor is an error naming it.
    pub fn new(config: &EncodecConfig, vb: VarBuilder, name: &str) -> Result<Self> {
        config.validate(name)?;
        let device = vb.device().clone();
        let ((encoder, quantizer, decoder), fingerprint) = build_fingerprinted(vb, name, |vb| {
            let encoder = SeanetEncoder::new(&config.seanet, vb.pp(ENCODER))?;
            let quantizer = ResidualVq::new(
                config.num_quantizers,
                config.codebook_size,
                config.seanet.dimension,
                vb.pp(QUANTIZER),
            )?;
            let decoder =
                SeanetDecoder::new(&config.seanet, config.trim_right_ratio, vb.pp(DECODER))?;
            Ok((encoder, quantizer, decoder))
        })?;
        let frame_rate = config.frame_rate();
        let info = CodecInfo {
            name: name.to_string(),
            family: "encodec".into(),
            sample_rate: config.sample_rate,
            channels: config.seanet.channels as u16,
            frame_rate,
            codebook_sizes: vec![config.codebook_size as u32; config.num_quantizers],
            codebook_frame_rates: vec![frame_rate; config.num_quantizers],
            bandwidths_kbps: config.bandwidths.clone(),
            fingerprint,
        };
        let model = Self {
            info,
            config: config.clone(),
            device: device.clone(),
            encoder: Arc::new(encoder),
            quantizer,
            decoder: Arc::new(decoder),
        };
        Ok(model)
    }

    /// The architecture.
    pub fn config(&self) -> &EncodecConfig {
        &self.config
    }

    /// Audio `[batch, channels, samples]` → encoder latent `[batch, dimension, frames]` (no
    /// segmenting or normalisation).
    pub fn encode_latent(&self, audio: &Tensor) -> Result<Tensor> {
        Ok(self.encoder.forward(audio)?)
    }

    /// The SEANet encoder (audio → latent) with a fresh stream state, for a model that can
    /// stream: what [`Codec::streaming_encoder`] steps before the quantizer.
    pub fn streaming_latent_encoder(&self) -> Option<SeanetEncoder> {
        self.supports_streaming()
            .then(|| fresh(self.encoder.as_ref()))
    }

    /// Encoder latent `[batch, dimension, frames]` → codes `[batch, n_q, frames]` with the first
    /// `n_q` codebooks.
    pub fn quantize_latent(&self, latent: &Tensor, n_q: usize) -> Result<Tensor> {
        Ok(self.quantizer.encode(latent, n_q)?)
    }

    /// One segment `[batch, channels, n]` → codes `[batch, n_q, frames]` and, for normalising
    /// models, its scale `[batch, 1]` (`_encode_frame`).
    fn encode_segment(&self, x: &Tensor, n_q: usize) -> Result<(Tensor, Option<Tensor>)> {
        let (x, scale) = if self.config.normalize {
            let mono = x.mean_keepdim(1)?;
            let volume = mono.sqr()?.mean_keepdim(2)?.sqrt()?;
            let scale = (volume + 1e-8)?;
            (x.broadcast_div(&scale)?, Some(scale.flatten_from(1)?))
        } else {
            (x.clone(), None)
        };
        let latent = self.encoder.forward(&x)?;
        Ok((self.quantizer.encode(&latent, n_q)?, scale))
    }

    /// Codes `[batch, k, frames]` of one segment → audio `[batch, channels, frames * hop]`,
    /// times `scale` `[batch]` when given (`_decode_frame`).
    fn decode_segment(&self, codes: &Tensor, scale: Option<&Tensor>) -> Result<Tensor> {
        let latent = self.quantizer.decode(codes)?;
        let out = self.decoder.forward(&latent)?;
        Ok(match scale {
            Some(s) => out.broadcast_mul(&s.reshape((s.dim(0)?, 1, 1))?)?,
            None => out,
        })
    }

    fn check_audio(&self, audio: &Tensor) -> Result<()> {
        let dims = audio.dims();
        let c = self.config.seanet.channels;
        if dims.len() != 3 || dims[1] != c || dims[2] == 0 {
            return Err(Error::audio_shape(
                &self.info.name,
                format!("[batch, {c}, samples > 0]"),
                dims,
            ));
        }
        Ok(())
    }

    fn check_codes(&self, codes: &Tensor) -> Result<()> {
        crate::codec::check_stacked_codes(
            codes,
            self.config.num_quantizers,
            self.config.codebook_size,
            &self.info.name,
        )
    }

    fn num_codebooks(&self, options: &EncodeOptions) -> Result<usize> {
        options.codebooks_for(&self.info, self.config.num_quantizers)
    }
}

impl StackCodec for Encodec {
    fn stream_frame_size(&self) -> usize {
        self.config.hop_length()
    }

    /// Reflect padding: the encoder's last convolution mirrors its `last_kernel_size - 1`
    /// following latent frames, the decoder's first its `kernel_size - 1` following code frames.
    fn stream_startup_frames(&self) -> (usize, usize) {
        let s = &self.config.seanet;
        (s.last_kernel_size - 1, s.kernel_size - 1)
    }

    fn stream_device(&self) -> &Device {
        &self.device
    }

    fn check_stream_audio(&self, audio: &Tensor) -> Result<()> {
        self.check_audio(audio)
    }

    fn latent_to_codes(&self, latent: &Tensor, n_q: usize) -> Result<Tensor> {
        Ok(self.quantizer.encode(latent, n_q)?)
    }

    fn codes_to_latent(&self, codes: &Tensor) -> Result<Tensor> {
        self.check_codes(codes)?;
        let codes = codes.to_device(&self.device)?.to_dtype(DType::U32)?;
        Ok(self.quantizer.decode(&codes)?)
    }
}

/// The reference's `_linear_overlap_add`: segments `[batch, channels, len_i]` starting `stride`
/// samples apart, cross-faded with triangular weights (normalised by their sum at each sample).
fn linear_overlap_add(frames: &[Tensor], stride: usize) -> Result<Tensor> {
    let last = frames
        .last()
        .ok_or(Error::InvalidCodes(CodesProblem::NoFrames))?;
    let (batch, channels, first_len) = frames[0].dims3()?;
    let total = stride * (frames.len() - 1) + last.dim(2)?;
    // torch.linspace(0, 1, first_len + 2)[1:-1] in f32, as torch computes it (from both ends).
    let steps = first_len + 2;
    let step = 1.0f32 / (steps - 1) as f32;
    let weight: Vec<f32> = (1..=first_len)
        .map(|i| {
            let t = if i < steps / 2 {
                step * i as f32
            } else {
                1.0 - step * (steps - 1 - i) as f32
            };
            0.5 - (t - 0.5).abs()
        })
        .collect();
    let rows = batch * channels;
    let mut out = vec![0f32; rows * total];
    let mut sum_weight = vec![0f32; total];
    for (i, frame) in frames.iter().enumerate() {
        let len = frame.dim(2)?;
        if len > first_len {
            return Err(Error::InvalidCodes(CodesProblem::Segments {
                frames: frames.len(),
                problem: format!(
                    "segment {i} ({len} samples) is longer than the first ({first_len})"
                ),
            }));
        }
        let offset = i * stride;
        let data = frame
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        for r in 0..rows {
            let src = &data[r * len..(r + 1) * len];
            let dst = &mut out[r * total + offset..r * total + offset + len];
            for ((d, &s), &w) in dst.iter_mut().zip(src).zip(&weight) {
                *d += w * s;
            }
        }
        for (d, &w) in sum_weight[offset..offset + len].iter_mut().zip(&weight) {
            *d += w;
        }
    }
    for row in out.chunks_mut(total) {
        for (x, &w) in row.iter_mut().zip(&sum_weight) {
            *x /= w;
        }
    }
    Ok(Tensor::from_vec(
        out,
        (batch, channels, total),
        frames[0].device(),
    )?)
}

impl Codec for Encodec {
    /// Long inputs of a streaming model (24 kHz) through its streaming encoder and decoder:
    /// the codes of one pass (its LSTM sees the whole clip, so windows could not give them).
    /// The 48 kHz model normalises 1 s segments and takes its input whole.
    fn long_form(&self) -> LongForm {
        if self.supports_streaming() {
            LongForm::Streamed
        } else {
            LongForm::Whole
        }
    }

    fn info(&self) -> &CodecInfo {
        &self.info
    }

    fn device(&self) -> &Device {
        &self.device
    }

    /// Codes with every codebook, the segments' frames concatenated. The per-segment scales of a
    /// normalising model (48 kHz) are not part of the result: use [`Codec::encode_with`].
    fn encode(&self, audio: &Tensor) -> Result<Tensor> {
        self.encode_with(audio, &EncodeOptions::default())?
            .stacked()
    }

    /// Decode codes of a model that does not normalise; a normalising model (48 kHz) needs its
    /// scales: use [`Codec::decode_streams`].
    fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        self.decode_streams(&CodeStreams::from_stacked(codes)?)
    }

    fn encode_with(&self, audio: &Tensor, options: &EncodeOptions) -> Result<CodeStreams> {
        self.check_audio(audio)?;
        let n_q = self.num_codebooks(options)?;
        let audio = audio.to_device(&self.device)?.to_dtype(DType::F32)?;
        let mut codes = Vec::new();
        let mut scales = Vec::new();
        for (offset, len) in self.config.segments(audio.dim(2)?) {
            let (c, s) = self.encode_segment(&audio.narrow(2, offset, len)?, n_q)?;
            codes.push(c);
            scales.extend(s);
        }
        let codes = Tensor::cat(&codes, 2)?;
        let mut streams = CodeStreams::from_stacked(&codes)?;
        if !scales.is_empty() {
            streams.scales = Some(Tensor::cat(&scales, 1)?);
        }
        Ok(streams)
    }

    fn decode_streams(&self, codes: &CodeStreams) -> Result<Tensor> {
        let stacked = codes.stacked()?;
        self.check_codes(&stacked)?;
        let stacked = stacked.to_device(&self.device)?.to_dtype(DType::U32)?;
        let (batch, _, total) = stacked.dims3()?;
        let split = self.config.segment_frames(total)?;
        let scales = match (&codes.scales, self.config.normalize) {
            (Some(s), true) => {
                if s.dims() != [batch, split.len()] {
                    return Err(Error::InvalidCodes(CodesProblem::ScalesShape {
                        frames: total,
                        segments: split.len(),
                        expected: vec![batch, split.len()],
                        got: s.dims().to_vec(),
                    }));
                }
                Some(s.to_device(&self.device)?.to_dtype(DType::F32)?)
            }
            (None, true) => {
                return Err(Error::InvalidCodes(CodesProblem::MissingScales {
                    model: self.info.name.clone(),
                }))
            }
            (Some(_), false) => {
                return Err(Error::InvalidCodes(CodesProblem::UnexpectedScales {
                    model: self.info.name.clone(),
                }))
            }
            (None, false) => None,
        };
        let mut decoded = Vec::with_capacity(split.len());
        let mut start = 0;
        for (i, &frames) in split.iter().enumerate() {
            let seg = stacked.narrow(2, start, frames)?;
            let scale = scales
                .as_ref()
                .map(|s| s.narrow(1, i, 1)?.flatten_all())
                .transpose()?;
            decoded.push(self.decode_segment(&seg, scale.as_ref())?);
            start += frames;
        }
        match self.config.segment_stride() {
            Some(stride) if decoded.len() > 1 => linear_overlap_add(&decoded, stride),
            _ => Ok(decoded.remove(0)),
        }
    }

    fn supports_streaming(&self) -> bool {
        self.config.can_stream()
    }

    fn streaming_encoder(
        &self,
        batch: usize,
        options: &EncodeOptions,
    ) -> Result<Box<dyn StreamingEncoder>> {
        let Some(encoder) = self.streaming_latent_encoder() else {
            return Err(crate::codec::not_streaming(&self.info));
        };
        let n_q = self.num_codebooks(options)?;
        Ok(Box::new(StackEncoder::new(
            self.clone(),
            encoder,
            batch,
            n_q,
        )))
    }

    fn streaming_decoder(&self, batch: usize) -> Result<Box<dyn StreamingDecoder>> {
        if !self.supports_streaming() {
            return Err(crate::codec::not_streaming(&self.info));
        }
        Ok(Box::new(StackDecoder::new(
            self.clone(),
            fresh(self.decoder.as_ref()),
            batch,
        )))
    }
}

/// A copy of `network` (the same weights) to step a new stream with.
fn fresh<M: StreamingModule + Clone>(network: &M) -> M {
    let mut copy = network.clone();
    copy.reset_state();
    copy
}

/// The encodec family's entry in the registry.
pub static FAMILY: CheckpointFamily<EncodecConfig, Encodec> = CheckpointFamily {
    name: "encodec",
    weights_score: |weights| Score::shared_layout_if(looks_like_encodec(weights)),
    config_score: |text| Score::shared_layout_if(is_reference_config(text)),
    inference_weights,
    from_reference: EncodecConfig::from_reference_json,
    infer: infer_config,
    card_facts: EncodecConfig::card_facts,
    load: Encodec::load,
    onnx: None,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelCard;

    #[test]
    fn published_configs_are_valid() {
        for cfg in [
            EncodecConfig::encodec_24khz(),
            EncodecConfig::encodec_48khz(),
        ] {
            cfg.validate("test").unwrap();
        }
        let c24 = EncodecConfig::encodec_24khz();
        assert_eq!(c24.frame_rate(), 75.0);
        assert_eq!(c24.codebooks_for_bandwidth(1.5), 2);
        assert_eq!(c24.codebooks_for_bandwidth(24.0), 32);
        let c48 = EncodecConfig::encodec_48khz();
        assert_eq!(c48.frame_rate(), 150.0);
        assert_eq!(c48.codebooks_for_bandwidth(3.0), 2);
        assert_eq!(c48.codebooks_for_bandwidth(24.0), 16);
        assert_eq!(c48.segment_length(), Some(48000));
        assert_eq!(c48.segment_stride(), Some(47520));
    }

    #[test]
    fn segments_follow_the_reference_loop() {
        let c = EncodecConfig::encodec_48khz();
        assert_eq!(c.segments(100), vec![(0, 100)]);
        assert_eq!(c.segments(47520), vec![(0, 47520)]);
        assert_eq!(c.segments(47600), vec![(0, 47600), (47520, 80)]);
        assert_eq!(c.segments(48000), vec![(0, 48000), (47520, 480)]);
        assert_eq!(
            c.segments(100_000),
            vec![(0, 48000), (47520, 48000), (95040, 4960)]
        );
        assert_eq!(EncodecConfig::encodec_24khz().segments(7), vec![(0, 7)]);
    }

    #[test]
    fn segment_frames_invert_every_length() {
        let c = EncodecConfig::encodec_48khz();
        // Every length up to a bit over three segments, at a coarse step plus the boundaries.
        let mut lens: Vec<usize> = (1..150_000).step_by(37).collect();
        for k in 1..4 {
            for d in [0usize, 1, 160, 161, 320, 321, 480, 481] {
                lens.push(k * 47520 + d);
                lens.push(k * 47520 - d.min(47519));
            }
        }
        for len in lens {
            let split = c.frames_per_segment(len);
            let total: usize = split.iter().sum();
            assert_eq!(c.segment_frames(total).unwrap(), split, "length {len}");
        }
        assert_eq!(
            EncodecConfig::encodec_24khz().segment_frames(225).unwrap(),
            vec![225]
        );
    }

    #[test]
    fn overlap_add_matches_reference_weights() {
        // Two constant segments: where both cover a sample, the weighted mean of 1 and 3.
        let dev = Device::Cpu;
        let a = Tensor::ones((1, 1, 10), DType::F32, &dev).unwrap();
        let b = (Tensor::ones((1, 1, 6), DType::F32, &dev).unwrap() * 3.0).unwrap();
        let out = linear_overlap_add(&[a, b], 8).unwrap();
        let v = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v.len(), 14);
        assert!(v[..8].iter().all(|&x| (x - 1.0).abs() < 1e-6));
        // t = linspace(0, 1, 12)[1:-1]; weights of a at 8, 9 and of b at 0, 1.
        let w = |i: usize| 0.5 - (i as f32 / 11.0 - 0.5).abs();
        for (j, &x) in v[8..10].iter().enumerate() {
            let (wa, wb) = (w(9 + j), w(1 + j));
            assert!((x - (wa + 3.0 * wb) / (wa + wb)).abs() < 1e-6);
        }
        assert!(v[10..].iter().all(|&x| (x - 3.0).abs() < 1e-6));
    }

    #[test]
    fn package_and_transformers_json_configs() {
        let fixture = r#"{"sample_rate": 24000, "channels": 1, "causal": true,
            "norm": "weight_norm", "n_filters": 8, "dimension": 32, "ratios": [8, 5, 4, 2],
            "n_residual_layers": 1, "lstm": 2, "n_q": 32, "bins": 1024,
            "target_bandwidths": [1.5, 3.0, 6.0, 12.0, 24.0]}"#;
        let cfg = EncodecConfig::from_reference_json(fixture, "config.json").unwrap();
        let mut want = EncodecConfig::encodec_24khz();
        want.seanet.n_filters = 8;
        want.seanet.dimension = 32;
        assert_eq!(cfg, want);
        let typo = fixture.replace("\"lstm\"", "\"lstms\"");
        let err = EncodecConfig::from_reference_json(&typo, "config.json").unwrap_err();
        assert!(err.to_string().contains("lstms"), "{err}");

        // transformers' EncodecConfig as in facebook/encodec_48khz's config.json.
        let hf = r#"{"architectures": ["EncodecModel"], "audio_channels": 2,
            "chunk_length_s": 1.0, "codebook_dim": 128, "codebook_size": 1024, "compress": 2,
            "dilation_growth_rate": 2, "hidden_size": 128, "kernel_size": 7,
            "last_kernel_size": 7, "model_type": "encodec", "norm_type": "time_group_norm",
            "normalize": true, "num_filters": 32, "num_lstm_layers": 2,
            "num_residual_layers": 1, "overlap": 0.01, "pad_mode": "reflect",
            "residual_kernel_size": 3, "sampling_rate": 48000,
            "target_bandwidths": [3.0, 6.0, 12.0, 24.0], "trim_right_ratio": 1.0,
            "upsampling_ratios": [8, 5, 4, 2], "use_causal_conv": false,
            "use_conv_shortcut": true, "torch_dtype": "float32"}"#;
        let cfg = EncodecConfig::from_reference_json(hf, "config.json").unwrap();
        assert_eq!(cfg, EncodecConfig::encodec_48khz());
    }

    #[test]
    fn config_round_trips_through_toml() {
        for cfg in [
            EncodecConfig::encodec_24khz(),
            EncodecConfig::encodec_48khz(),
        ] {
            let text = toml::to_string(&cfg).unwrap();
            let back: EncodecConfig = toml::from_str(&text).unwrap();
            assert_eq!(back, cfg);
        }
    }

    #[test]
    fn hf_keys_map_to_original() {
        let up = [3, 6, 9, 12];
        let cases = [
            (
                "encoder.layers.0.conv.weight_g",
                "encoder.model.0.conv.conv.weight_g",
            ),
            (
                "encoder.layers.1.block.1.conv.weight_v",
                "encoder.model.1.block.1.conv.conv.weight_v",
            ),
            (
                "encoder.layers.1.block.3.norm.weight",
                "encoder.model.1.block.3.conv.norm.weight",
            ),
            (
                "encoder.layers.1.shortcut.conv.bias",
                "encoder.model.1.shortcut.conv.conv.bias",
            ),
            (
                "encoder.layers.13.lstm.weight_ih_l0",
                "encoder.model.13.lstm.weight_ih_l0",
            ),
            (
                "decoder.layers.3.conv.bias",
                "decoder.model.3.convtr.convtr.bias",
            ),
            (
                "decoder.layers.3.norm.weight",
                "decoder.model.3.convtr.norm.weight",
            ),
            (
                "decoder.layers.15.conv.weight_g",
                "decoder.model.15.conv.conv.weight_g",
            ),
            (
                "decoder.layers.0.conv.parametrizations.weight.original0",
                "decoder.model.0.conv.conv.parametrizations.weight.original0",
            ),
            (
                "quantizer.layers.7.codebook.embed",
                "quantizer.vq.layers.7._codebook.embed",
            ),
        ];
        for (hf, orig) in cases {
            assert_eq!(hf_key_to_original(hf, &up).as_deref(), Some(orig), "{hf}");
        }
        assert_eq!(
            hf_key_to_original("encoder.model.0.conv.conv.bias", &up),
            None
        );
    }

    #[test]
    fn published_encodec_cards_match_named_configs() {
        let cfg = |n: &str| -> EncodecConfig {
            ModelCard::find(n).unwrap().architecture.try_into().unwrap()
        };
        assert_eq!(cfg("encodec-24khz"), EncodecConfig::encodec_24khz());
        assert_eq!(cfg("encodec-48khz"), EncodecConfig::encodec_48khz());
        for (name, repo) in [
            ("encodec-24khz", "facebook/encodec_24khz"),
            ("encodec-48khz", "facebook/encodec_48khz"),
        ] {
            let card = ModelCard::find(name).unwrap();
            let hub = card.hub.unwrap();
            assert_eq!(
                (hub.repo.as_str(), hub.weights.as_str()),
                (repo, "model.safetensors")
            );
            assert_eq!(card.license, "MIT");
        }
    }
}

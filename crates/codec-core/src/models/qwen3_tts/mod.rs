//! Qwen3-TTS-Tokenizer-12Hz (Qwen, 2026; tokenizer v2 of Qwen3-TTS): 24 kHz mono, 12.5
//! frames/s, 16 codebooks of 2048 (1 semantic + 15 acoustic, split RVQ).
//!
//! - Encoder: transformers' `MimiModel` encoder half, as the `qwen-tts` package runs it
//!   (`MimiModel.encode`): causal SEANet (zero padding on the left, and on the right what
//!   completes the last frame, at every convolution), causal transformer (LayerNorm, layer
//!   scale, GELU MLP, RoPE) over the **whole clip** — the config's `sliding_window` is not applied
//!   by the reference's eager/sdpa attention, so every frame sees all frames before it (a clip of
//!   minutes costs attention quadratic in its length, as in the reference) — then the stride-2
//!   downsampling (replicate padding) and all RVQ stages, of which the first 16 codes are kept:
//!   `ceil(samples / 1920)` frames.
//! - Decoder: its own ([`Qwen3TtsDecoder`]), run as the reference's `chunked_decode`: pieces of
//!   300 frames, each after the first re-decoding the 25 frames before it and dropping their
//!   audio; every piece restarts (positions from 0, zero padding), so the result differs from one
//!   unchunked pass (36.6 dB on the fixture) exactly as the reference's does.
//!
//! Batches never pad (see [`crate::batch`]): the reference's batched encode lets the zero
//! padding of a shorter clip reach its last frame (it ignores the padding mask); ours gives each
//! clip its lone codes.
//!
//! # Weights
//!
//! The hub folder (Qwen/Qwen3-TTS-Tokenizer-12Hz): `config.json` (`Qwen3TTSTokenizerV2Config`),
//! `model.safetensors` (`encoder.*`: transformers' Mimi layout; `decoder.*`), and
//! `preprocessor_config.json` (not needed). See [`weights`] for the mapping.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

use super::{CheckpointFamily, Score};
use crate::codec::{
    check_mono_audio, check_stacked_codes, CodeStreams, Codec, CodecInfo, EncodeOptions,
};
use crate::long_form::{LongForm, Windowing};
use crate::nn::conv::SConv1dConfig;
use crate::nn::moshi_transformer::StreamingTransformer;
use crate::nn::seanet::SeanetEncoder;
use crate::nn::{ConvNorm, PadMode, SConv1d};
use crate::quant::{ProjectedRvq, SplitRvq};
use crate::streaming::StreamingModule;
use crate::weights::{build_fingerprinted, load_tracked, StateDict};
use crate::{Error, Result};

mod config;
mod decoder;
pub mod weights;

pub use config::*;
pub use decoder::Qwen3TtsDecoder;
pub use weights::{infer_config, inference_weights, looks_like_qwen3_tts};

/// `EuclideanCodebook`'s `epsilon`: the floor of `cluster_usage`.
const CODEBOOK_EPSILON: f64 = 1e-5;
/// The SEANet runs over windows of this many 25 Hz latent frames (10 s): memory bounded by
/// the window, the same output as one pass ([`SeanetEncoder::forward_in_windows`]).
const SEANET_WINDOW_FRAMES: usize = 250;
/// The encoder's transformer takes the latent in pieces of this many frames (its key cache
/// keeps every earlier frame, as full causal attention needs): score matrices bounded by
/// `piece x clip` instead of `clip x clip`.
const TRANSFORMER_PIECE_FRAMES: usize = 250;

/// The encoding side: SEANet, transformer, downsampling, split RVQ.
struct Encoder {
    seanet: SeanetEncoder,
    transformer: StreamingTransformer,
    downsample: SConv1d,
    quantizer: SplitRvq,
}

impl Encoder {
    /// Weights at `vb` (the checkpoint's `encoder`, in moshi's layout after
    /// [`inference_weights`]).
    fn new(config: &Qwen3TtsConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let e = &config.encoder_config;
        let dim = e.hidden_size;
        let stride = config.encode_downsample_rate / config.encoder_hop();
        let downsample = SConv1dConfig::new(2 * stride, true, PadMode::Replicate)
            .stride(stride)
            .norm(ConvNorm::None)
            .bias(false);
        let dims = [dim, e.codebook_dim, dim];
        let q = vb.pp("quantizer");
        let rvq = |n, vb| ProjectedRvq::new(n, e.codebook_size, dims, CODEBOOK_EPSILON, vb);
        Ok(Self {
            seanet: SeanetEncoder::new(&config.seanet_config(), vb.pp("encoder"))?,
            transformer: StreamingTransformer::new(
                &config.encoder_transformer_config(),
                vb.pp("encoder_transformer"),
            )?,
            downsample: SConv1d::new(dim, dim, downsample, vb.pp("downsample").pp("conv"))?,
            quantizer: SplitRvq::new(
                rvq(e.num_semantic_quantizers, q.pp("rvq_first"))?,
                rvq(
                    e.num_quantizers - e.num_semantic_quantizers,
                    q.pp("rvq_rest"),
                )?,
                e.num_semantic_quantizers,
            ),
        })
    }

    /// Audio `[batch, 1, samples]` → the SEANet's output, the transformer's (both
    /// `[batch, hidden, 25 Hz frames]`) and the quantizer's input `[batch, hidden, frames]`.
    fn stages(&self, audio: &Tensor) -> Result<[Tensor; 3]> {
        let seanet = self
            .seanet
            .forward_in_windows(audio, SEANET_WINDOW_FRAMES)?;
        let mut transformer = self.transformer.clone();
        transformer.reset_state();
        let len = seanet.dim(2)?;
        let mut pieces = Vec::with_capacity(len.div_ceil(TRANSFORMER_PIECE_FRAMES));
        for start in (0..len).step_by(TRANSFORMER_PIECE_FRAMES) {
            let n = TRANSFORMER_PIECE_FRAMES.min(len - start);
            pieces.extend(transformer.step(Some(&seanet.narrow(2, start, n)?))?);
        }
        let transformed = Tensor::cat(&pieces, 2)?;
        let latent = self.downsample.forward(&transformed)?;
        Ok([seanet, transformed, latent])
    }
}

/// A loaded Qwen3-TTS-Tokenizer-12Hz.
pub struct Qwen3Tts {
    info: CodecInfo,
    config: Qwen3TtsConfig,
    device: Device,
    encoder: Encoder,
    decoder: Qwen3TtsDecoder,
}

impl Qwen3Tts {
    /// Build the model from a state dict in the published layout (or as
    /// [`inference_weights`] leaves it). Every tensor must be present with the right shape;
    /// the error names the one that is not. Returns the model and the keys it did not use
    /// (should be empty).
    pub fn load(
        config: &Qwen3TtsConfig,
        state: StateDict,
        name: &str,
        device: &Device,
    ) -> Result<(Self, Vec<String>)> {
        let state = inference_weights(state)?;
        load_tracked(state, device, |vb| Self::new(config, vb, name))
    }

    /// Build the model from a `VarBuilder` over [`inference_weights`], read as f32.
    pub fn new(config: &Qwen3TtsConfig, vb: VarBuilder, name: &str) -> Result<Self> {
        config.validate(name)?;
        let device = vb.device().clone();
        let ((encoder, decoder), fingerprint) = build_fingerprinted(vb, name, |vb| {
            Ok((
                Encoder::new(config, vb.pp("encoder"))?,
                Qwen3TtsDecoder::new(&config.decoder_config, vb.pp("decoder"))?,
            ))
        })?;
        let frame_rate = config.frame_rate();
        let books = config.encoder_valid_num_quantizers;
        let info = CodecInfo {
            name: name.to_string(),
            family: FAMILY.name.into(),
            sample_rate: config.input_sample_rate,
            channels: 1,
            frame_rate,
            codebook_sizes: vec![config.decoder_config.codebook_size as u32; books],
            codebook_frame_rates: vec![frame_rate; books],
            bandwidths_kbps: Vec::new(),
            fingerprint,
        };
        Ok(Self {
            info,
            config: config.clone(),
            device,
            encoder,
            decoder,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &Qwen3TtsConfig {
        &self.config
    }

    /// The encoder's stages for audio `[batch, 1, samples]`: the SEANet's output, the
    /// transformer's (`[batch, hidden, 25 Hz frames]`) and the quantizer's input
    /// `[batch, hidden, frames]` (to compare with a reference's trace).
    pub fn encoder_stages(&self, audio: &Tensor) -> Result<[Tensor; 3]> {
        check_mono_audio(audio, &self.info.name)?;
        let audio = audio.to_device(&self.device)?.to_dtype(DType::F32)?;
        self.encoder.stages(&audio)
    }

    /// Quantizer input `[batch, hidden, frames]` → codes `[batch, n_q, frames]`.
    pub fn quantize_latent(&self, latent: &Tensor, n_q: usize) -> Result<Tensor> {
        Ok(self.encoder.quantizer.encode(latent, n_q)?)
    }

    /// The decoder's `forward` on one piece of codes `[batch, k, frames]`, without the
    /// chunking of [`Codec::decode`] (which is what the reference's `decode` does).
    pub fn decode_unchunked(&self, codes: &Tensor) -> Result<Tensor> {
        let codes = self.check_codes(codes)?;
        Ok(self.decoder.forward(&codes)?)
    }

    /// Why streaming is refused: the convolutions are causal, but the reference pads the
    /// clip's end at every layer and restarts the decoder every 300 frames, which a stream
    /// cannot reproduce.
    fn not_streaming(&self) -> Error {
        Error::Unsupported(format!(
            "model {} cannot stream: the reference encodes whole clips (its convolutions pad              the clip's end, its attention sees the whole clip) and decodes in restarted              300-frame pieces; encode whole files",
            self.info.name
        ))
    }

    fn check_codes(&self, codes: &Tensor) -> Result<Tensor> {
        let d = &self.config.decoder_config;
        check_stacked_codes(codes, d.num_quantizers, d.codebook_size, &self.info.name)?;
        Ok(codes.to_device(&self.device)?.to_dtype(DType::U32)?)
    }
}

impl Codec for Qwen3Tts {
    /// Encoding in approximate causal windows with the config's sliding window (250 steps,
    /// 10 s) of context on the left, what the Mimi encoder it comes from was trained with: the
    /// reference's encoder attends over the whole clip before each frame (quadratic in its
    /// length). On 60 s of real audio with the fixture's random weights, 59.7 % of codes equal
    /// one pass's (80 % of the first stream's; `tests/long_form.rs`); set `window_seconds` to
    /// `None` for one pass. Decoding is the reference's own chunked decode, already bounded.
    fn long_form(&self) -> LongForm {
        LongForm::Windowed(
            Windowing::approximate_seconds(&self.info, 10, 0)
                .causal()
                .decodes_whole(),
        )
    }

    fn info(&self) -> &CodecInfo {
        &self.info
    }

    fn device(&self) -> &Device {
        &self.device
    }

    /// Codes `[batch, 16, ceil(samples / 1920)]`.
    fn encode(&self, audio: &Tensor) -> Result<Tensor> {
        self.encode_with(audio, &EncodeOptions::default())?
            .stacked()
    }

    /// Any prefix of the 16 codebooks (fewer: coarser), as the reference's quantizer allows.
    fn encode_with(&self, audio: &Tensor, options: &EncodeOptions) -> Result<CodeStreams> {
        let n_q = options.codebooks_for(&self.info, self.config.encoder_valid_num_quantizers)?;
        // encoder_stages checks the shape (empty audio included).
        let [_, _, latent] = self.encoder_stages(audio)?;
        CodeStreams::from_stacked(&self.quantize_latent(&latent, n_q)?)
    }

    fn streaming_encoder(
        &self,
        _batch: usize,
        _options: &EncodeOptions,
    ) -> Result<Box<dyn crate::streaming::StreamingEncoder>> {
        Err(self.not_streaming())
    }

    fn streaming_decoder(
        &self,
        _batch: usize,
    ) -> Result<Box<dyn crate::streaming::StreamingDecoder>> {
        Err(self.not_streaming())
    }

    /// The reference's `chunked_decode`: audio `[batch, 1, frames * 1920]` in [-1, 1].
    fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        let codes = self.check_codes(codes)?;
        let frames = codes.dim(2)?;
        let hop = self.config.decode_upsample_rate;
        let (chunk, context) = (
            self.config.decode_chunk_frames,
            self.config.decode_left_context_frames,
        );
        let mut pieces = Vec::with_capacity(frames.div_ceil(chunk));
        let mut start = 0;
        while start < frames {
            let end = (start + chunk).min(frames);
            // The reference takes the context only when it fits entirely after frame 0.
            let ctx = if start > context { context } else { start };
            let wav = self
                .decoder
                .forward(&codes.narrow(2, start - ctx, end - start + ctx)?)?;
            pieces.push(wav.narrow(2, ctx * hop, (end - start) * hop)?);
            start = end;
        }
        Ok(Tensor::cat(&pieces, 2)?)
    }
}

/// The Qwen3-TTS-Tokenizer family's entry in the registry.
pub static FAMILY: CheckpointFamily<Qwen3TtsConfig, Qwen3Tts> = CheckpointFamily {
    name: "qwen3-tts",
    weights_score: |weights| Score::distinctive_if(looks_like_qwen3_tts(weights)),
    config_score: |text| Score::distinctive_if(is_reference_config(text)),
    inference_weights,
    from_reference: Qwen3TtsConfig::from_reference_json,
    infer: infer_config,
    card_facts: Qwen3TtsConfig::card_facts,
    load: Qwen3Tts::load,
    onnx: None,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_config_is_valid_and_round_trips() {
        let cfg = Qwen3TtsConfig::qwen3_tts_tokenizer_12hz();
        cfg.validate("test").unwrap();
        assert_eq!(cfg.frame_rate(), 12.5);
        assert_eq!(cfg.encoder_hop(), 960);
        let text = toml::to_string(&cfg).unwrap();
        let back: Qwen3TtsConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn hub_config_json_reads_with_unknown_fields_ignored() {
        let mut json = serde_json::to_value(Qwen3TtsConfig::qwen3_tts_tokenizer_12hz()).unwrap();
        json["model_type"] = "qwen3_tts_tokenizer_12hz".into();
        json["transformers_version"] = "4.57.3".into();
        json["encoder_config"]["upsample_groups"] = 512.into();
        json["decoder_config"]["semantic_codebook_size"] = 4096.into();
        let text = json.to_string();
        assert!(is_reference_config(&text));
        let cfg = Qwen3TtsConfig::from_reference_json(&text, "config.json").unwrap();
        assert_eq!(cfg, Qwen3TtsConfig::qwen3_tts_tokenizer_12hz());
        // A setting the port does not implement is refused by name.
        json["decoder_config"]["hidden_act"] = "gelu".into();
        let err = Qwen3TtsConfig::from_reference_json(&json.to_string(), "config.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("gelu"), "{err}");
        assert!(!is_reference_config(r#"{"model_type": "mimi"}"#));
    }

    #[test]
    fn inconsistent_rates_are_refused() {
        let mut cfg = Qwen3TtsConfig::qwen3_tts_tokenizer_12hz();
        cfg.decoder_config.upsample_rates = vec![8, 5, 4, 2];
        assert!(cfg.validate("cfg").is_err());
        let mut cfg = Qwen3TtsConfig::qwen3_tts_tokenizer_12hz();
        cfg.encoder_valid_num_quantizers = 8;
        assert!(cfg.validate("cfg").is_err());
        let mut cfg = Qwen3TtsConfig::qwen3_tts_tokenizer_12hz();
        cfg.decode_left_context_frames = 300;
        assert!(cfg.validate("cfg").is_err());
    }
}

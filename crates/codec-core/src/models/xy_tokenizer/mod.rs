//! XY-Tokenizer (gyt1145028706/XY-Tokenizer; the codec of MOSS-TTSD): 16 kHz speech in, an
//! 8-stage residual VQ of 1024 entries at 12.5 frames/s (1 kbit/s), decoded by a transformer
//! to mel-like frames and a Vocos vocoder.
//!
//! This follows the reference's `XY_Tokenizer` (`inference_tokenize`, `inference_detokenize`,
//! `encode`, `decode`):
//!
//! - front end ([`features`]): Whisper's 80-band log-mel of the clip padded to 30 s;
//! - two Whisper-style encoders (semantic, acoustic): conv1 (k3), conv2 (k3, stride 2), exact
//!   GELU, the checkpoint's sinusoid table, pre-LN layers (non-causal attention, no key bias),
//!   a final LayerNorm: 100 -> 50 frames/s;
//! - the semantic branch through its adapter; both concatenated (semantic first) through the
//!   pre-RVQ adapter; `ResidualDownConv` (4 frames into one, gated, plus the frames
//!   concatenated, LayerNorm): 12.5 frames/s;
//! - RVQ: weight-normed 1x1 `input_proj`, per stage the nearest of 1024 entries to the residual,
//!   `output_proj` of their sum;
//! - decoder: post-RVQ adapter, `UpConv` (ConvTranspose k4 s4), a transformer with two
//!   transposed convolutions (k3 s2, k3 s1) to 8 mel-like frames per code, Vocos (ConvNeXt,
//!   iSTFT head with "same" padding).
//!
//! Only the valid frames are computed (no 30 s padding), with the one mel frame past the clip
//! that conv1 reads. Clips over 30 s take the reference's `encode()` path: 30 s windows every
//! 20 s, the first 250 codes of each kept; decoding likewise in windows of 375 codes every
//! 250. A clip gives `len / 1280` codes (the last partial 1280 samples dropped, as `encode()`
//! does), and `codes * hop` samples back.
//!
//! # Rates
//!
//! The encoder always takes 16 kHz. The repo's release decodes to 16 kHz too; MOSS-TTSD's
//! releases of the same model decode to 24 kHz (v0.5) or 32 kHz (v0.7, v1.0). A [`Codec`] has
//! one rate, so for those the model's rate is the decoder's: [`Codec::encode`] takes audio at
//! it and resamples to 16 kHz first ([`XyTokenizer::encode_input_rate`] takes 16 kHz
//! directly). Decoded audio is at the output rate either way.
//!
//! # Weights
//!
//! `torch.save({"generator": state_dict})` (or the bare state dict), weight norm as
//! `weight_g` / `weight_v`, the vocoder as `vocos.*` (repo) or `enhanced_vocos.*` (MOSS-TTSD).
//! The RVQ's EMA / k-means state (`inited`, `cluster_size`, `embed_avg`) is training state and
//! is dropped ([`inference_weights`]).

mod config;
pub mod features;
mod model;
mod weights;

pub use config::*;
pub use weights::*;

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;

use self::features::{MelFrames, MelFrontEnd};
use self::model::{Adapter, AudioEncoder, Downsample, MelDecoder, Rvq, Vocoder};
use super::{CheckpointFamily, Score};
use crate::codec::{check_stacked_codes, CodeStreams, Codec, CodecInfo, EncodeOptions};
use crate::error::AudioProblem;
use crate::weights::{build_fingerprinted, load_tracked, StateDict};
use crate::{Error, Result};

/// Seconds of output each encode / decode window keeps (the reference's 30 s windows with
/// `overlap_seconds = 10`).
const KEPT_SECONDS: usize = 20;

/// The encoder's intermediate results for one window, time-major (`[1, frames, channels]`).
pub struct EncodeTrace {
    /// Log-mel frames `[1, n_mels, frames]`: the valid ones and the next one.
    pub mel: Tensor,
    /// Valid mel frames.
    pub mel_length: usize,
    /// Semantic encoder output `[1, t50, d]`.
    pub semantic_encoder_out: Tensor,
    /// Its adapter's output.
    pub semantic_encoder_adapter_out: Tensor,
    /// Acoustic encoder output.
    pub acoustic_encoder_out: Tensor,
    /// Pre-RVQ adapter output.
    pub pre_rvq_adapter_out: Tensor,
    /// `ResidualDownConv` output `[1, t, 4d]`: the quantizer's input.
    pub downsample_out: Tensor,
    /// `input_proj` output `[t, rvq_dim]`.
    pub rvq_input: Tensor,
    /// Each stage's input residual `[t, rvq_dim]`.
    pub rvq_residual_in: Vec<Tensor>,
    /// Each stage's chosen entry `[t, rvq_dim]`.
    pub rvq_quantized: Vec<Tensor>,
    /// `output_proj` of the stages' sum `[t, 4d]`.
    pub zq: Tensor,
    /// Codes per stage.
    pub codes: Vec<Vec<u32>>,
}

/// The decoder's intermediate results.
pub struct DecodeTrace {
    /// Entries summed, `output_proj`: `[1, t, 4d]`.
    pub quantized: Tensor,
    /// Post-RVQ adapter output `[1, t, 4d]`.
    pub post_rvq_adapter_out: Tensor,
    /// `UpConv` output `[1, 4t, d]`.
    pub upsample_out: Tensor,
    /// Mel-like frames `[1, n_mels, 8t]`.
    pub acoustic_decoder_out: Tensor,
    /// Vocos backbone output `[1, 8t, dim]`.
    pub vocos_backbone_out: Tensor,
    /// Audio `[t * hop]` at the output rate.
    pub audio: Vec<f32>,
}

/// A loaded XY-Tokenizer.
pub struct XyTokenizer {
    info: CodecInfo,
    config: XyTokenizerConfig,
    device: Device,
    frontend: MelFrontEnd,
    semantic_encoder: AudioEncoder,
    semantic_adapter: Adapter,
    acoustic_encoder: AudioEncoder,
    pre_rvq_adapter: Adapter,
    downsample: Downsample,
    quantizer: Rvq,
    post_rvq_adapter: Adapter,
    decoder: MelDecoder,
    vocoder: Vocoder,
}

impl XyTokenizer {
    /// Build the model from a checkpoint in either published layout (see [`inference_weights`]).
    /// Every tensor must be present with the right shape; the error names the one that is not.
    /// Returns the model and the keys it did not use (empty for a complete checkpoint).
    pub fn load(
        config: &XyTokenizerConfig,
        state: StateDict,
        name: &str,
        device: &Device,
    ) -> Result<(Self, Vec<String>)> {
        let state = inference_weights(state)?;
        load_tracked(state, device, |vb| Self::new(config, vb, name))
    }

    /// Build the model from a `VarBuilder` over the family's layout (vocoder under `vocos.`,
    /// weight norm folded).
    pub fn new(config: &XyTokenizerConfig, vb: VarBuilder, name: &str) -> Result<Self> {
        config.validate(name)?;
        let device = vb.device().clone();
        let (parts, fingerprint) = build_fingerprinted(vb, name, |vb| {
            Ok((
                AudioEncoder::new(&config.semantic_encoder_kwargs, vb.pp("semantic_encoder"))?,
                Adapter::new(
                    &config.semantic_encoder_adapter_kwargs,
                    vb.pp("semantic_encoder_adapter"),
                )?,
                AudioEncoder::new(&config.acoustic_encoder_kwargs, vb.pp("acoustic_encoder"))?,
                Adapter::new(&config.pre_rvq_adapter_kwargs, vb.pp("pre_rvq_adapter"))?,
                Downsample::new(
                    config.downsample_kwargs.d_model,
                    config.downsample_kwargs.avg_pooler,
                    vb.pp("downsample"),
                )?,
                Rvq::new(config, vb.pp("quantizer"))?,
                Adapter::new(&config.post_rvq_adapter_kwargs, vb.pp("post_rvq_adapter"))?,
                MelDecoder::new(config, vb.clone())?,
                Vocoder::new(config, vb.pp("vocos"))?,
            ))
        })?;
        let (
            semantic_encoder,
            semantic_adapter,
            acoustic_encoder,
            pre_rvq_adapter,
            downsample,
            quantizer,
            post_rvq_adapter,
            decoder,
            vocoder,
        ) = parts;
        let frame_rate = config.frame_rate();
        let q = &config.quantizer_kwargs;
        let info = CodecInfo {
            name: name.to_string(),
            family: FAMILY.name.into(),
            sample_rate: config.output_rate(),
            channels: 1,
            frame_rate,
            codebook_sizes: vec![q.codebook_size; q.num_quantizers],
            codebook_frame_rates: vec![frame_rate; q.num_quantizers],
            bandwidths_kbps: Vec::new(),
            fingerprint,
        };
        let fe = &config.feature_extractor_kwargs;
        Ok(Self {
            info,
            frontend: MelFrontEnd::new(
                config.input_sample_rate,
                fe.n_fft,
                fe.hop_length,
                fe.feature_size,
                config.window_samples(),
            ),
            config: config.clone(),
            device,
            semantic_encoder,
            semantic_adapter,
            acoustic_encoder,
            pre_rvq_adapter,
            downsample,
            quantizer,
            post_rvq_adapter,
            decoder,
            vocoder,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &XyTokenizerConfig {
        &self.config
    }

    /// The front end's mel filterbank, `[n_mels][n_fft / 2 + 1]`.
    pub fn mel_filters(&self) -> &[f32] {
        self.frontend.filters()
    }

    fn too_short(&self) -> Error {
        Error::InvalidAudio(AudioProblem::TooShort {
            model: self.info.name.clone(),
        })
    }

    fn mel_tensor(&self, mel: &MelFrames) -> Result<Tensor> {
        Ok(Tensor::from_slice(
            &mel.values,
            (
                1,
                self.config.feature_extractor_kwargs.feature_size,
                mel.frames,
            ),
            &self.device,
        )?)
    }

    /// Every stage of one window (at most 30 s of 16 kHz samples), `n_q` stages of the RVQ.
    pub fn encode_trace(&self, samples: &[f32], n_q: usize) -> Result<EncodeTrace> {
        let mel = self.frontend.frames(samples);
        let t50 = mel.valid / self.config.semantic_encoder_kwargs.stride_size;
        if t50 < self.config.downsample_kwargs.avg_pooler {
            return Err(self.too_short());
        }
        let mel_t = self.mel_tensor(&mel)?;
        let semantic = self.semantic_encoder.forward(&mel_t, t50)?;
        let semantic_adapted = self.semantic_adapter.forward(&semantic)?;
        let acoustic = self.acoustic_encoder.forward(&mel_t, t50)?;
        let both = Tensor::cat(&[&semantic_adapted, &acoustic], 2)?;
        let pre = self.pre_rvq_adapter.forward(&both)?;
        let down = self.downsample.forward(&pre)?;
        let q = self
            .quantizer
            .encode(&down.squeeze(0)?, n_q.min(self.quantizer.stages()))?;
        Ok(EncodeTrace {
            mel: mel_t,
            mel_length: mel.valid,
            semantic_encoder_out: semantic,
            semantic_encoder_adapter_out: semantic_adapted,
            acoustic_encoder_out: acoustic,
            pre_rvq_adapter_out: pre,
            downsample_out: down,
            rvq_input: q.rvq_input,
            rvq_residual_in: q.residuals,
            rvq_quantized: q.chosen,
            zq: q.zq,
            codes: q.codes,
        })
    }

    /// Codes `[n_q][len / 1280]` of one clip of 16 kHz samples (the model's input rate), any
    /// length, as the reference's `encode()`: windows of 30 s starting every 20 s, the first
    /// 20 s of codes of each kept (a clip under 20 s is one window).
    pub fn encode_input_rate(&self, samples: &[f32], n_q: usize) -> Result<Vec<Vec<u32>>> {
        let hop = self.config.input_hop();
        let frames = samples.len() / hop;
        if frames == 0 {
            return Err(self.too_short());
        }
        let n_q = n_q.clamp(1, self.quantizer.stages());
        let window = self.config.window_samples();
        let kept_samples = KEPT_SECONDS * self.config.input_sample_rate as usize;
        let kept_codes = kept_samples / hop;
        let mut codes = vec![Vec::with_capacity(frames + kept_codes); n_q];
        for start in (0..samples.len()).step_by(kept_samples) {
            let end = (start + window).min(samples.len());
            let piece = &samples[start..end];
            // A piece too short for one code gives none (the reference's zero-length codes).
            let mel_frames = piece
                .len()
                .div_ceil(self.config.feature_extractor_kwargs.hop_length);
            let t50 = mel_frames / self.config.semantic_encoder_kwargs.stride_size;
            if t50 < self.config.downsample_kwargs.avg_pooler {
                continue;
            }
            let got = self.encode_trace(piece, n_q)?.codes;
            let keep = kept_codes.min(got[0].len());
            for (all, stage) in codes.iter_mut().zip(&got) {
                all.extend_from_slice(&stage[..keep]);
            }
        }
        for stage in &mut codes {
            stage.truncate(frames);
        }
        Ok(codes)
    }

    /// Every decoder stage of one window of codes (at most 30 s of them), `[n_q][frames]`.
    pub fn decode_trace(&self, codes: &[Vec<u32>]) -> Result<DecodeTrace> {
        let zq = self.quantizer.decode(codes, &self.device)?.unsqueeze(0)?;
        let post = self.post_rvq_adapter.forward(&zq)?;
        let up = self.decoder.upsample(&post)?;
        let mel = self.decoder.forward(&up)?;
        let backbone = self.vocoder.backbone.forward(&mel, 0)?;
        let audio = self
            .vocoder
            .head
            .forward(&backbone)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok(DecodeTrace {
            quantized: zq,
            post_rvq_adapter_out: post,
            upsample_out: up,
            acoustic_decoder_out: mel,
            vocos_backbone_out: backbone,
            audio,
        })
    }

    /// Audio at the output rate of one clip's codes `[n_q][frames]`, any length: windows of
    /// 375 codes every 250 beyond one window, the first 250 codes' audio of each kept, as the
    /// reference's `decode()`.
    pub fn decode_codes(&self, codes: &[Vec<u32>]) -> Result<Vec<f32>> {
        let frames = codes.first().map_or(0, Vec::len);
        let window = self.config.window_codes();
        let kept = KEPT_SECONDS * self.config.input_sample_rate as usize / self.config.input_hop();
        let hop = self.config.output_hop();
        let mut out = Vec::with_capacity(frames * hop);
        for start in (0..frames).step_by(kept) {
            let end = (start + window).min(frames);
            let piece: Vec<Vec<u32>> = codes.iter().map(|s| s[start..end].to_vec()).collect();
            let audio = self.decode_trace(&piece)?.audio;
            let keep = (end - start).min(kept) * hop;
            out.extend_from_slice(&audio[..keep.min(audio.len())]);
        }
        Ok(out)
    }

    /// One item's samples at the model's rate as 16 kHz.
    fn to_input_rate(&self, samples: &[f32]) -> Result<Vec<f32>> {
        let (from, to) = (self.config.output_rate(), self.config.input_sample_rate);
        if from == to {
            Ok(samples.to_vec())
        } else {
            crate::audio::resample(samples, from, to)
        }
    }

    fn encode_n(&self, audio: &Tensor, n_q: usize) -> Result<Tensor> {
        crate::codec::encode_each_item(audio, &self.info.name, |samples| {
            let samples = self.to_input_rate(samples)?;
            let codes = self.encode_input_rate(&samples, n_q)?;
            let frames = codes[0].len();
            let flat: Vec<u32> = codes.into_iter().flatten().collect();
            Ok(Tensor::from_vec(flat, (1, n_q, frames), &self.device)?)
        })
    }
}

impl Codec for XyTokenizer {
    fn info(&self) -> &CodecInfo {
        &self.info
    }

    fn device(&self) -> &Device {
        &self.device
    }

    /// Codes `[batch, 8, len / 1280]` (at 16 kHz), each item encoded on its own (the log-mel
    /// floor is per clip, as the reference computes it).
    fn encode(&self, audio: &Tensor) -> Result<Tensor> {
        self.encode_n(audio, self.quantizer.stages())
    }

    fn encode_with(&self, audio: &Tensor, options: &EncodeOptions) -> Result<CodeStreams> {
        let n = options.codebooks_for(&self.info, self.quantizer.stages())?;
        CodeStreams::from_stacked(&self.encode_n(audio, n)?)
    }

    /// Audio `[batch, 1, frames * hop]` from codes `[batch, 1..=8, frames]` (a prefix of the
    /// stages sums those), each item decoded on its own (the reference's batched decode pads
    /// shorter items with code 0, which reaches into their last frames).
    fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        let q = &self.config.quantizer_kwargs;
        check_stacked_codes(
            codes,
            q.num_quantizers,
            q.codebook_size as usize,
            &self.info.name,
        )?;
        let codes = codes
            .to_dtype(candle_core::DType::U32)?
            .to_device(&Device::Cpu)?
            .to_vec3::<u32>()?;
        let items = codes
            .iter()
            .map(|item| {
                let audio = self.decode_codes(item)?;
                let n = audio.len();
                Ok(Tensor::from_vec(audio, (1, 1, n), &self.device)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&items, 0)?)
    }
}

/// The XY-Tokenizer family's entry in the registry.
pub static FAMILY: CheckpointFamily<XyTokenizerConfig, XyTokenizer> = CheckpointFamily {
    name: "xy-tokenizer",
    weights_score: |weights| Score::distinctive_if(looks_like_xy_tokenizer(weights)),
    config_score: |text| Score::distinctive_if(is_reference_config(text)),
    inference_weights,
    from_reference: XyTokenizerConfig::from_reference_yaml,
    infer: infer_config,
    card_facts: XyTokenizerConfig::card_facts,
    load: XyTokenizer::load,
    onnx: None,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelCard;

    #[test]
    fn published_configs() {
        for (card, cfg, rate, hop) in [
            (
                "xy-tokenizer",
                XyTokenizerConfig::xy_tokenizer(),
                16000,
                1280,
            ),
            (
                "xy-tokenizer-ttsd-v0",
                XyTokenizerConfig::xy_tokenizer_ttsd_v0(),
                24000,
                1920,
            ),
            (
                "xy-tokenizer-32k",
                XyTokenizerConfig::xy_tokenizer_32k(),
                32000,
                2560,
            ),
        ] {
            cfg.validate(card).unwrap();
            assert_eq!(cfg.frame_rate(), 12.5);
            assert_eq!(cfg.input_hop(), 1280);
            assert_eq!(cfg.output_hop(), hop);
            assert_eq!(cfg.output_rate(), rate);
            assert_eq!(cfg.window_codes(), 375);
            let card = ModelCard::find(card).unwrap();
            let from_card: XyTokenizerConfig = card.architecture.clone().try_into().unwrap();
            assert_eq!(from_card, cfg);
        }
        let mut bad = XyTokenizerConfig::xy_tokenizer();
        bad.vocos_kwargs.hop_size = 240;
        assert!(bad.validate("bad").is_err());
        let mut bad = XyTokenizerConfig::xy_tokenizer();
        bad.semantic_encoder_kwargs.encoder_attention_heads = 7;
        assert!(bad.validate("bad").is_err());
        let mut bad = XyTokenizerConfig::xy_tokenizer();
        bad.semantic_encoder_kwargs.encoder_layers = 1 << 20;
        assert!(bad.validate("bad").is_err());
    }
}

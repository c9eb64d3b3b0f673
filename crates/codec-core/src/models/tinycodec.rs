//! tinycodec: the project's own small codec (see `training/ARCHITECTURE.md`).
//!
//! STFT log-magnitude features → Vocos (ConvNeXt) encoder → residual FSQ (a ladder of bitrates,
//! any prefix of the stages decodes) → Vocos decoder → iSTFT head. 24 kHz mono, 50 frames/s.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

use crate::nn::linear::Linear;
use serde::{Deserialize, Serialize};

use super::{no_config_file, CardFacts, CheckpointFamily, Score};
use crate::codec::{
    bad_option_value, unknown_option, CodeStreams, Codec, CodecInfo, EncodeOptions, ModelOption,
};
use crate::dsp::{hann_window, IstftPadding, Stft};
use crate::long_form::WindowPlan;
use crate::nn::vocos::{IstftHead, VocosBackbone, VocosConfig};
use crate::quant::ResidualFsq;
use crate::weights::{build_fingerprinted, load_tracked, StateDict};
use crate::{Error, Result};

/// Residual FSQ settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsqConfig {
    /// Levels per dimension.
    pub levels: usize,
    /// Dimensions quantized.
    pub dims: usize,
    /// Residual stages (codebooks).
    pub stages: usize,
    /// Scale of each stage relative to the one before.
    pub stage_scale: f64,
}

/// Architecture of a tinycodec model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TinyCodecConfig {
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Samples per code frame.
    pub hop_length: usize,
    /// FFT size of the STFT front end and the iSTFT head.
    pub n_fft: usize,
    /// Magnitudes below this are clamped before the log of the encoder features.
    pub feature_floor: f64,
    /// The encoder backbone.
    pub encoder: VocosConfig,
    /// The residual FSQ.
    pub quantizer: FsqConfig,
    /// The decoder backbone.
    pub decoder: VocosConfig,
    /// Stages used when the caller does not say (the single-stream mode).
    pub default_stages: usize,
}

impl TinyCodecConfig {
    /// The shipped 24 kHz model.
    pub fn tinycodec_24khz() -> Self {
        Self {
            sample_rate: 24000,
            hop_length: 480,
            n_fft: 1920,
            feature_floor: 1e-2,
            encoder: VocosConfig {
                input_channels: 961,
                dim: 256,
                intermediate_dim: 768,
                num_layers: 4,
                adanorm_num_embeddings: None,
                pos_net: false,
            },
            quantizer: FsqConfig {
                levels: 5,
                dims: 5,
                stages: 4,
                stage_scale: 4.0,
            },
            decoder: VocosConfig {
                input_channels: 5,
                dim: 320,
                intermediate_dim: 960,
                num_layers: 8,
                adanorm_num_embeddings: None,
                pos_net: false,
            },
            default_stages: 1,
        }
    }

    /// Code frames per second.
    pub fn frame_rate(&self) -> f64 {
        self.sample_rate as f64 / self.hop_length as f64
    }

    /// Check that the sizes fit together; errors name `source`.
    pub fn validate(&self, source: &str) -> Result<()> {
        let bad = |m: &str| Err(Error::config(source, m));
        if !self.n_fft.is_multiple_of(self.hop_length) {
            return bad("n_fft must be a multiple of hop_length");
        }
        if self.encoder.input_channels != self.n_fft / 2 + 1 {
            return bad("encoder input_channels must be n_fft / 2 + 1");
        }
        if self.decoder.input_channels != self.quantizer.dims {
            return bad("decoder input_channels must equal the quantizer's dims");
        }
        if self.quantizer.levels.is_multiple_of(2) || self.quantizer.levels < 3 {
            return bad("quantizer levels must be odd and at least 3");
        }
        if self.feature_floor.is_nan() || self.feature_floor <= 0.0 {
            return bad("feature_floor must be positive");
        }
        if self.default_stages == 0 || self.default_stages > self.quantizer.stages {
            return bad("default_stages must be between 1 and the number of stages");
        }
        Ok(())
    }
}

/// Clips longer than this many frames (60 s) are encoded and decoded in windows of it, so that
/// memory stays bounded on any length; the results equal a single pass (see [`crate::long_form`]).
pub const WINDOW_FRAMES: usize = 3000;

/// Frames of context on each side of a window when encoding: the encoder's receptive field is
/// 17 frames (its STFT frame reaches 2 frames out, the 7-tap embedding and the four 7-tap
/// ConvNeXt convolutions 3 frames each), so every frame of a window's core sees exactly the
/// samples it would see in one pass over the clip.
const ENCODE_CONTEXT: usize = 24;
/// The same for decoding: 3 + 8 × 3 frames of convolutions, then the iSTFT's 4-frame overlap.
const DECODE_CONTEXT: usize = 40;

/// The option name of [`TinyCodec::with_window_frames`] in [`Codec::set_option`].
const WINDOW_OPTION: &str = "window_frames";

/// A loaded tinycodec model.
pub struct TinyCodec {
    info: CodecInfo,
    /// Frames per window on long clips ([`WINDOW_FRAMES`] unless set).
    window_frames: usize,
    config: TinyCodecConfig,
    device: Device,
    stft: Stft,
    encoder: VocosBackbone,
    encoder_proj: Linear,
    quantizer: ResidualFsq,
    decoder: VocosBackbone,
    head: IstftHead,
}

impl TinyCodec {
    /// Build from a state dict (the shipped float16 safetensors, loaded as float32). Returns
    /// the model and the keys it did not use (should be empty).
    pub fn load(
        config: &TinyCodecConfig,
        state: StateDict,
        name: &str,
        device: &Device,
    ) -> Result<(Self, Vec<String>)> {
        let state = inference_weights(state)?;
        load_tracked(state, device, |vb| Self::new(config, vb, name))
    }

    /// Build from a `VarBuilder` over [`inference_weights`]' layout (see [`crate::weights`]).
    pub fn new(config: &TinyCodecConfig, vb: VarBuilder, name: &str) -> Result<Self> {
        config.validate(name)?;
        let device = vb.device().clone();
        let ((encoder, encoder_proj, decoder, head), fingerprint) =
            build_fingerprinted(vb, name, |vb| {
                let encoder = VocosBackbone::new(&config.encoder, vb.pp("encoder"))?;
                let encoder_proj = crate::nn::linear::linear(
                    config.encoder.dim,
                    config.quantizer.dims,
                    vb.pp("encoder_proj"),
                )?;
                let decoder = VocosBackbone::new(&config.decoder, vb.pp("decoder"))?;
                let head = IstftHead::new(
                    config.decoder.dim,
                    config.n_fft,
                    config.hop_length,
                    IstftPadding::Same,
                    vb.pp("head"),
                )?;
                Ok((encoder, encoder_proj, decoder, head))
            })?;
        let stft = Stft::new(
            config.n_fft,
            config.hop_length,
            &hann_window(config.n_fft),
            &device,
        )?;
        let q = &config.quantizer;
        let quantizer = ResidualFsq::new(q.levels, q.dims, q.stages, q.stage_scale);
        let info = CodecInfo {
            name: name.to_string(),
            family: "tinycodec".into(),
            sample_rate: config.sample_rate,
            channels: 1,
            frame_rate: config.frame_rate(),
            codebook_sizes: vec![quantizer.codebook_size() as u32; q.stages],
            codebook_frame_rates: vec![config.frame_rate(); q.stages],
            bandwidths_kbps: Vec::new(),
            fingerprint,
        };
        let model = Self {
            info,
            window_frames: WINDOW_FRAMES,
            config: config.clone(),
            device: device.clone(),
            stft,
            encoder,
            encoder_proj,
            quantizer,
            decoder,
            head,
        };
        Ok(model)
    }

    /// The architecture.
    pub fn config(&self) -> &TinyCodecConfig {
        &self.config
    }

    /// Process clips longer than `frames` frames in windows of that many (at least 1); the
    /// codes and audio do not depend on it, only the memory does (default [`WINDOW_FRAMES`]).
    pub fn with_window_frames(mut self, frames: usize) -> Self {
        self.window_frames = frames.max(1);
        self
    }

    /// Audio `[batch, 1, samples]` → latent before the quantizer `[batch, frames, dims]`,
    /// a window at a time on long clips.
    pub fn encode_latent(&self, audio: &Tensor) -> Result<Tensor> {
        crate::codec::check_mono_audio(audio, &self.info.name)?;
        let hop = self.config.hop_length;
        let len = audio.dim(2)?;
        let plan = WindowPlan {
            units: len.div_ceil(hop),
            window: self.window_frames,
            context: ENCODE_CONTEXT,
            right_context: ENCODE_CONTEXT,
        };
        let mut pieces = Vec::new();
        for win in plan.windows() {
            // Whole hops from the window's first frame: its frames are the clip's frames.
            let (s0, s1) = (win.run.start * hop, (win.run.end * hop).min(len));
            let latent = self.encode_latent_once(&audio.narrow(2, s0, s1 - s0)?)?;
            pieces.push(latent.narrow(1, win.core_offset(), win.core.len())?);
        }
        Ok(Tensor::cat(&pieces, 1)?)
    }

    /// [`encode_latent`](Self::encode_latent) in one pass.
    fn encode_latent_once(&self, audio: &Tensor) -> Result<Tensor> {
        let x = audio
            .to_device(&self.device)?
            .to_dtype(DType::F32)?
            .squeeze(1)?;
        let (re, im) = self.stft.forward_same(&x)?;
        let mag = (re.sqr()? + im.sqr()?)?.sqrt()?;
        let features = mag
            .maximum(self.config.feature_floor)?
            .log()?
            .transpose(1, 2)?
            .contiguous()?; // [b, bins, f]
        let h = self.encoder.forward(&features, 0)?;
        Ok(self.encoder_proj.forward(&h)?)
    }

    /// Quantized latent `[batch, frames, dims]` → audio `[batch, 1, frames * hop]`, a window
    /// at a time on long clips.
    pub fn decode_latent(&self, latent: &Tensor) -> Result<Tensor> {
        let hop = self.config.hop_length;
        let plan = WindowPlan {
            units: latent.dim(1)?,
            window: self.window_frames,
            context: DECODE_CONTEXT,
            right_context: DECODE_CONTEXT,
        };
        let mut pieces = Vec::new();
        for win in plan.windows() {
            let audio =
                self.decode_latent_once(&latent.narrow(1, win.run.start, win.run.len())?)?;
            pieces.push(audio.narrow(2, win.core_offset() * hop, win.core.len() * hop)?);
        }
        Ok(Tensor::cat(&pieces, 2)?)
    }

    /// [`decode_latent`](Self::decode_latent) in one pass.
    fn decode_latent_once(&self, latent: &Tensor) -> Result<Tensor> {
        let x = self
            .decoder
            .forward(&latent.transpose(1, 2)?.contiguous()?, 0)?;
        Ok(self.head.forward(&x)?.unsqueeze(1)?)
    }

    fn check_codes(&self, codes: &Tensor) -> Result<()> {
        crate::codec::check_stacked_codes(
            codes,
            self.config.quantizer.stages,
            self.quantizer.codebook_size(),
            &self.info.name,
        )
    }
}

impl Codec for TinyCodec {
    fn options(&self) -> Vec<ModelOption> {
        vec![ModelOption::new(
            WINDOW_OPTION,
            "frames per window on long clips (1 or more): memory only, the results do not \
             depend on it",
            self.window_frames,
        )]
    }

    fn set_option(&mut self, name: &str, value: &str) -> Result<()> {
        if name != WINDOW_OPTION {
            return Err(unknown_option(&self.info, &self.options(), name));
        }
        self.window_frames = value
            .parse::<usize>()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| bad_option_value(name, value, "a number of frames, 1 or more"))?;
        Ok(())
    }

    // Measured bit-identical in batches of 1 to 8 (tests/batch_identity.rs).
    fn batch_invariant(&self) -> bool {
        true
    }

    fn info(&self) -> &CodecInfo {
        &self.info
    }

    fn device(&self) -> &Device {
        &self.device
    }

    /// Encodes with every stage; [`Codec::encode_with`] picks fewer.
    fn encode(&self, audio: &Tensor) -> Result<Tensor> {
        let z = self.encode_latent(audio)?;
        Ok(self.quantizer.encode(&z, self.config.quantizer.stages)?)
    }

    fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        self.check_codes(codes)?;
        let codes = codes.to_device(&self.device)?;
        let latent = self.quantizer.decode(&codes)?;
        self.decode_latent(&latent)
    }

    fn encode_with(&self, audio: &Tensor, options: &EncodeOptions) -> Result<CodeStreams> {
        let stages = options.codebooks_for(&self.info, self.config.default_stages)?;
        let z = self.encode_latent(audio)?;
        CodeStreams::from_stacked(&self.quantizer.encode(&z, stages)?)
    }
}

/// The shipped checkpoint's inference weights: its float16 tensors as float32 (it holds
/// nothing else).
pub fn inference_weights(mut state: StateDict) -> Result<StateDict> {
    state.to_dtype(DType::F32)?;
    Ok(state)
}

/// Whether a state dict holds a tinycodec model.
pub fn looks_like_tinycodec(state: &StateDict) -> bool {
    let has = |p: &str| state.tensors.keys().any(|k| k.starts_with(p));
    has("encoder_proj.") && has("decoder.convnext.")
}

impl TinyCodecConfig {
    /// Validate the config (errors name `source`) and say what a card of it must state.
    pub fn card_facts(&self, source: &str) -> Result<CardFacts> {
        self.validate(source)?;
        let q = &self.quantizer;
        let size = ResidualFsq::new(q.levels, q.dims, q.stages, q.stage_scale).codebook_size();
        Ok(CardFacts {
            sample_rate: self.sample_rate,
            frame_rate: self.frame_rate(),
            codebooks: Some(vec![size as u32; q.stages]),
            codebook_frame_rates: None,
        })
    }
}

/// The tinycodec family (the project's own model): no config format but its card, so a
/// checkpoint without one gets the shipped architecture.
pub static FAMILY: CheckpointFamily<TinyCodecConfig, TinyCodec> = CheckpointFamily {
    name: "tinycodec",
    weights_score: |weights| Score::distinctive_if(looks_like_tinycodec(weights)),
    config_score: no_config_file,
    inference_weights,
    from_reference: |_, _| Ok(TinyCodecConfig::tinycodec_24khz()),
    infer: |_| Ok(TinyCodecConfig::tinycodec_24khz()),
    card_facts: TinyCodecConfig::card_facts,
    load: TinyCodec::load,
    onnx: None,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelCard;

    #[test]
    fn tinycodec_card_is_the_shipped_config() {
        let card = ModelCard::find("tinycodec-24khz").unwrap();
        let cfg: TinyCodecConfig = card.architecture.clone().try_into().unwrap();
        assert_eq!(cfg, TinyCodecConfig::tinycodec_24khz());
        cfg.validate("card").unwrap();
        assert_eq!(cfg.frame_rate(), card.frame_rate);
        assert_eq!(card.codebooks, vec![3125; 4]);
        assert_eq!(
            card.embedded.as_deref(),
            Some("tinycodec-24khz.safetensors")
        );
    }
}

//! SNAC, the Multi-Scale Neural Audio Codec (Siuzdak et al. 2024, `snac` 1.2.1): DAC's
//! convolutional design with depthwise residual convolutions, local windowed attention at the
//! latent rate (32 and 44 kHz models), noise injection in the decoder, and a residual VQ whose
//! codebooks run at different frame rates (the coarsest first: strides `[4, 2, 1]` or
//! `[8, 4, 2, 1]` of the latent rate).
//!
//! Checkpoint keys (`pytorch_model.bin`, a plain `state_dict`; weight norm as
//! `parametrizations.weight.original0/1`, or `weight_g`/`weight_v` from older PyTorch):
//! - `encoder.block.0` conv 1 → `encoder_dim`; `encoder.block.{1..=n}` encoder blocks;
//!   `encoder.block.{n+1}` local attention (if any); then a depthwise conv, kernel 7;
//! - `quantizer.quantizers.{i}.{in_proj,out_proj,codebook}`;
//! - `decoder.model.0` depthwise conv kernel 7 and `decoder.model.1` conv 1x1 to `decoder_dim`
//!   (or one dense conv kernel 7 without `depthwise`); local attention (if any); decoder blocks
//!   (Snake, transposed conv with `output_padding = stride % 2`, noise block, three depthwise
//!   residual units); Snake; conv to one channel, kernel 7; tanh.

mod config;
mod weights;

pub use config::*;
pub use weights::*;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

use super::{CheckpointFamily, Score};
use crate::codec::check_mono_audio;
use crate::codec::{
    bad_option_value, unknown_option, CodeStreams, Codec, CodecInfo, EncodeOptions, ModelOption,
};
use crate::error::CodesProblem;
use crate::long_form::{LongForm, Windowing};
use crate::models::dac::blocks::{DecoderBlock, DecoderBlockSpec, EncoderBlock};
use crate::models::dac::{check_stream, pad_to_multiple};
use crate::nn::local_attention::LocalMha;
use crate::nn::snake::Snake1d;
use crate::nn::torch_conv::{Conv, ConvSpec};
use crate::quant::FactorizedRvq;
use crate::weights::StateDict;
use crate::weights::{build_fingerprinted, load_tracked};
use crate::{Error, Result};

struct SnacEncoder {
    conv_in: Conv,
    blocks: Vec<EncoderBlock>,
    attn: Option<LocalMha>,
    conv_out: Conv,
}

impl SnacEncoder {
    fn new(cfg: &SnacConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let vb = vb.pp("block");
        let conv_in = Conv::new(ConvSpec::new(1, cfg.encoder_dim, 7).padding(3), vb.pp(0))?;
        let mut dim = cfg.encoder_dim;
        let mut blocks = Vec::with_capacity(cfg.encoder_rates.len());
        for (i, &stride) in cfg.encoder_rates.iter().enumerate() {
            let groups = if cfg.depthwise { dim } else { 1 };
            blocks.push(EncoderBlock::new(
                dim,
                dim * 2,
                stride,
                groups,
                vb.pp(i + 1),
            )?);
            dim *= 2;
        }
        let mut idx = cfg.encoder_rates.len() + 1;
        let attn = match cfg.attn_window_size {
            Some(w) => {
                idx += 1;
                Some(LocalMha::new(dim, w, vb.pp(idx - 1))?)
            }
            None => None,
        };
        let groups = if cfg.depthwise { dim } else { 1 };
        let conv_out = Conv::new(
            ConvSpec::new(dim, dim, 7).padding(3).groups(groups),
            vb.pp(idx),
        )?;
        Ok(Self {
            conv_in,
            blocks,
            attn,
            conv_out,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = self.conv_in.forward(x)?;
        for b in &self.blocks {
            x = b.forward(&x)?;
        }
        if let Some(a) = &self.attn {
            x = a.forward(&x)?;
        }
        self.conv_out.forward(&x)
    }
}

struct SnacDecoder {
    convs_in: Vec<Conv>,
    attn: Option<LocalMha>,
    blocks: Vec<DecoderBlock>,
    snake: Snake1d,
    conv_out: Conv,
}

impl SnacDecoder {
    fn new(cfg: &SnacConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let vb = vb.pp("model");
        let latent = cfg.latent_dim();
        let ch = cfg.decoder_dim;
        let convs_in = if cfg.depthwise {
            vec![
                Conv::new(
                    ConvSpec::new(latent, latent, 7).padding(3).groups(latent),
                    vb.pp(0),
                )?,
                Conv::new(ConvSpec::new(latent, ch, 1), vb.pp(1))?,
            ]
        } else {
            vec![Conv::new(
                ConvSpec::new(latent, ch, 7).padding(3),
                vb.pp(0),
            )?]
        };
        let mut idx = convs_in.len();
        let attn = match cfg.attn_window_size {
            Some(w) => {
                idx += 1;
                Some(LocalMha::new(ch, w, vb.pp(idx - 1))?)
            }
            None => None,
        };
        let mut blocks = Vec::with_capacity(cfg.decoder_rates.len());
        for (i, &stride) in cfg.decoder_rates.iter().enumerate() {
            let output_dim = ch >> (i + 1);
            let spec = DecoderBlockSpec {
                input_dim: ch >> i,
                output_dim,
                stride,
                output_padding: stride % 2,
                noise: cfg.noise,
                groups: if cfg.depthwise { output_dim } else { 1 },
            };
            blocks.push(DecoderBlock::new(spec, vb.pp(idx))?);
            idx += 1;
        }
        let out_dim = ch >> cfg.decoder_rates.len();
        let snake = Snake1d::new(out_dim, vb.pp(idx))?;
        let conv_out = Conv::new(ConvSpec::new(out_dim, 1, 7).padding(3), vb.pp(idx + 1))?;
        Ok(Self {
            convs_in,
            attn,
            blocks,
            snake,
            conv_out,
        })
    }

    fn forward(&self, z: &Tensor, noise: bool) -> candle_core::Result<Tensor> {
        let mut x = z.clone();
        for c in &self.convs_in {
            x = c.forward(&x)?;
        }
        if let Some(a) = &self.attn {
            x = a.forward(&x)?;
        }
        for b in &self.blocks {
            x = b.forward(&x, noise)?;
        }
        self.conv_out.forward(&self.snake.forward(&x)?)?.tanh()
    }
}

/// The option name of [`Snac::set_decoder_noise`] in [`Codec::set_option`].
const DECODER_NOISE: &str = "decoder_noise";

/// A loaded SNAC model.
///
/// Through [`Codec::encode_with`] / [`Codec::decode_streams`] its codes are one stream per
/// codebook, each at its own frame rate (coarsest first). [`Codec::encode`] and
/// [`Codec::decode`] use the stacked form `[batch, codebooks, frames]` at the finest rate,
/// each coarse code repeated over the frames it covers (decode reads every `stride`-th).
///
/// The decoder's noise blocks multiply fresh random noise into the activations at every decode,
/// as the reference does, so decoding is not reproducible; [`Snac::set_decoder_noise`] turns
/// the noise off for deterministic output.
pub struct Snac {
    info: CodecInfo,
    config: SnacConfig,
    device: Device,
    encoder: SnacEncoder,
    quantizer: FactorizedRvq,
    decoder: SnacDecoder,
    decoder_noise: bool,
}

impl Snac {
    /// Build the model from a state dict (weight norm folded or not). Every inference tensor must
    /// be present with the right shape; the error names the one that is not. Returns the model
    /// and the keys it did not use (should be empty).
    pub fn load(
        config: &SnacConfig,
        state: StateDict,
        name: &str,
        device: &Device,
    ) -> Result<(Self, Vec<String>)> {
        let state = inference_weights(state)?;
        load_tracked(state, device, |vb| Self::new(config, vb, name))
    }

    /// Build from a `VarBuilder` over [`inference_weights`]' layout (see [`crate::weights`]).
    pub fn new(config: &SnacConfig, vb: VarBuilder, name: &str) -> Result<Self> {
        config.validate(name)?;
        let device = vb.device().clone();
        let ((encoder, quantizer, decoder), fingerprint) = build_fingerprinted(vb, name, |vb| {
            let encoder = SnacEncoder::new(config, vb.pp("encoder"))?;
            let quantizer = FactorizedRvq::new(
                config.latent_dim(),
                config.codebook_size,
                config.codebook_dim,
                &config.vq_strides,
                vb.pp("quantizer"),
            )?;
            let decoder = SnacDecoder::new(config, vb.pp("decoder"))?;
            Ok((encoder, quantizer, decoder))
        })?;
        let n = config.vq_strides.len();
        let info = CodecInfo {
            name: name.to_string(),
            family: "snac".into(),
            sample_rate: config.sample_rate,
            channels: 1,
            frame_rate: config.frame_rate(),
            codebook_sizes: vec![config.codebook_size as u32; n],
            codebook_frame_rates: config.codebook_frame_rates(),
            bandwidths_kbps: Vec::new(),
            fingerprint,
        };
        let model = Self {
            info,
            config: config.clone(),
            device: device.clone(),
            encoder,
            quantizer,
            decoder,
            decoder_noise: true,
        };
        Ok(model)
    }

    /// The architecture.
    pub fn config(&self) -> &SnacConfig {
        &self.config
    }

    /// Whether the decoder's noise blocks add random noise (on by default, as in the reference).
    pub fn decoder_noise(&self) -> bool {
        self.decoder_noise
    }

    /// Turn the decoder's noise on or off; off gives deterministic decoding.
    pub fn set_decoder_noise(&mut self, on: bool) {
        self.decoder_noise = on;
    }

    /// [`Snac::set_decoder_noise`] in builder form.
    pub fn with_decoder_noise(mut self, on: bool) -> Self {
        self.decoder_noise = on;
        self
    }

    /// Audio `[batch, 1, samples]` → latent `[batch, latent_dim, frames]`, after padding the
    /// audio on the right to a multiple of `hop * lcm(first stride, window)` (the reference's
    /// `preprocess`).
    pub fn encode_latent(&self, audio: &Tensor) -> Result<Tensor> {
        check_mono_audio(audio, "SNAC")?;
        let audio = audio.to_device(&self.device)?.to_dtype(DType::F32)?;
        let audio = pad_to_multiple(&audio, self.config.pad_multiple())?;
        Ok(self.encoder.forward(&audio)?)
    }

    /// Latent `[batch, latent_dim, frames]` → audio `[batch, 1, frames * hop]`.
    pub fn decode_latent(&self, z: &Tensor) -> Result<Tensor> {
        Ok(self.decoder.forward(z, self.decoder_noise)?)
    }

    fn encode_streams(&self, audio: &Tensor, n: usize) -> Result<Vec<Tensor>> {
        let z = self.encode_latent(audio)?;
        Ok(self.quantizer.encode(&z, n)?)
    }

    fn decode_stream_list(&self, streams: &[Tensor]) -> Result<Tensor> {
        let strides = &self.config.vq_strides;
        if streams.is_empty() || streams.len() > strides.len() {
            return Err(Error::InvalidCodes(CodesProblem::Codebooks {
                model: self.info.name.clone(),
                given: streams.len(),
                available: strides.len(),
            }));
        }
        let codes = streams
            .iter()
            .enumerate()
            .map(|(i, s)| check_stream(&s.to_device(&self.device)?, i, self.config.codebook_size))
            .collect::<Result<Vec<_>>>()?;
        let (batch, t0) = codes[0].dims2()?;
        let frames = t0 * strides[0];
        for (i, c) in codes.iter().enumerate() {
            let (b, t) = c.dims2()?;
            if b != batch || t * strides[i] != frames {
                return Err(Error::InvalidCodes(CodesProblem::StreamShape {
                    stream: i,
                    expected: format!(
                        "[{batch}, {}]: at stride {} to match stream 0 ({t0} frames at stride {})",
                        frames / strides[i],
                        strides[i],
                        strides[0]
                    ),
                    got: vec![b, t],
                }));
            }
        }
        if let Some(w) = self.config.attn_window_size {
            if !frames.is_multiple_of(w) {
                return Err(Error::InvalidCodes(CodesProblem::FrameMultiple {
                    frames,
                    multiple: w,
                    why: format!(
                        "the attention window, in latent frames: the finest stream needs a \
                         multiple of {} frames",
                        self.config.frame_multiple()
                    ),
                }));
            }
        }
        let z = self.quantizer.decode(&codes)?;
        self.decode_latent(&z)
    }
}

impl Codec for Snac {
    /// Exact windows of the padding multiple (whole frames of the coarsest stream and whole
    /// local-attention windows, which the model aligns to the clip's start). The receptive
    /// fields: the convolutions reach about 12 frames each side, a local-attention layer its
    /// own window; 16 frames plus two attention windows of context cover both, and
    /// `tests/long_form.rs` holds the windows to one pass's codes bit for bit and its audio
    /// to float32 rounding.
    fn long_form(&self) -> LongForm {
        let unit = self.config.pad_multiple();
        let frames = 16 + 2 * self.config.attn_window_size.unwrap_or(0);
        let context = (frames * self.config.hop_length()).div_ceil(unit);
        // Windows of at most 15 s: the decoder's activations at 24 kHz take about 50 MiB per
        // second of audio, so 30 s windows would peak past 1.5 GB (benches/long_inputs.sh).
        let cap = 15 * self.config.sample_rate as usize;
        LongForm::Windowed(Windowing::exact(unit, context, context).max_window(cap))
    }

    fn options(&self) -> Vec<ModelOption> {
        vec![ModelOption::new(
            DECODER_NOISE,
            "true (the reference's default: random noise in the decoder blocks, so decoding \
             is not reproducible) or false",
            self.decoder_noise,
        )]
    }

    fn set_option(&mut self, name: &str, value: &str) -> Result<()> {
        if name != DECODER_NOISE {
            return Err(unknown_option(&self.info, &self.options(), name));
        }
        self.decoder_noise = value
            .parse()
            .map_err(|_| bad_option_value(name, value, "true or false"))?;
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

    /// Every codebook, stacked at the finest frame rate (coarse codes repeated).
    fn encode(&self, audio: &Tensor) -> Result<Tensor> {
        let streams = self.encode_streams(audio, self.config.vq_strides.len())?;
        let repeated = streams
            .iter()
            .zip(&self.config.vq_strides)
            .map(|(s, &stride)| {
                let (b, t) = s.dims2()?;
                s.unsqueeze(2)?
                    .broadcast_as((b, t, stride))?
                    .reshape((b, t * stride))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::stack(&repeated, 1)?)
    }

    /// Codes stacked at the finest frame rate, as [`Codec::encode`] gives them: codebook `i`
    /// is read every `stride_i` frames.
    fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        let dims = codes.dims();
        let strides = &self.config.vq_strides;
        if dims.len() != 3 || dims[1] == 0 || dims[1] > strides.len() {
            return Err(Error::codes_shape(
                &self.info.name,
                format!("[batch, 1..={}, frames]", strides.len()),
                dims,
            ));
        }
        let frames = dims[2];
        let streams = (0..dims[1])
            .map(|i| {
                let s = strides[i];
                if !frames.is_multiple_of(s) {
                    return Err(Error::InvalidCodes(CodesProblem::FrameMultiple {
                        frames,
                        multiple: s,
                        why: format!("codebook {i}'s stride"),
                    }));
                }
                let idx: Vec<u32> = (0..frames / s).map(|t| (t * s) as u32).collect();
                let idx = Tensor::new(idx, codes.device())?;
                Ok(codes.narrow(1, i, 1)?.squeeze(1)?.index_select(&idx, 1)?)
            })
            .collect::<Result<Vec<_>>>()?;
        self.decode_stream_list(&streams)
    }

    fn encode_with(&self, audio: &Tensor, options: &EncodeOptions) -> Result<CodeStreams> {
        let n = options.codebooks_for(&self.info, self.config.vq_strides.len())?;
        Ok(CodeStreams {
            streams: self.encode_streams(audio, n)?,
            scales: None,
        })
    }

    fn decode_streams(&self, codes: &CodeStreams) -> Result<Tensor> {
        self.decode_stream_list(&codes.streams)
    }
}

/// The snac family's entry in the registry.
pub static FAMILY: CheckpointFamily<SnacConfig, Snac> = CheckpointFamily {
    name: "snac",
    weights_score: |weights| Score::distinctive_if(looks_like_snac(weights)),
    config_score: |text| Score::distinctive_if(is_reference_config(text)),
    inference_weights,
    from_reference: SnacConfig::from_reference_json,
    infer: infer_config,
    card_facts: SnacConfig::card_facts,
    load: Snac::load,
    onnx: None,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelCard;

    #[test]
    fn published_configs_are_consistent() {
        for cfg in SnacConfig::published_configs() {
            cfg.validate("test").unwrap();
        }
        let c24 = SnacConfig::snac_24khz();
        assert_eq!(c24.hop_length(), 512);
        assert_eq!(c24.pad_multiple(), 2048);
        assert_eq!(c24.codebook_frame_rates(), vec![11.71875, 23.4375, 46.875]);
        let c32 = SnacConfig::snac_32khz();
        assert_eq!(c32.hop_length(), 384);
        assert_eq!(c32.frame_multiple(), 32);
        assert_eq!(c32.pad_multiple(), 12288);
        assert_eq!(SnacConfig::snac_44khz().frame_rate(), 44100.0 / 384.0);
    }

    #[test]
    fn reads_the_reference_json() {
        let text = r#"{"sampling_rate": 24000, "encoder_dim": 48, "encoder_rates": [2, 4, 8, 8],
            "decoder_dim": 1024, "decoder_rates": [8, 8, 4, 2], "attn_window_size": null,
            "codebook_size": 4096, "codebook_dim": 8, "vq_strides": [4, 2, 1], "noise": true,
            "depthwise": true}"#;
        assert!(is_reference_config(text));
        assert!(!crate::models::dac::is_reference_config(text));
        assert_eq!(
            SnacConfig::from_reference_json(text, "t").unwrap(),
            SnacConfig::snac_24khz()
        );
        let err = SnacConfig::from_reference_json(r#"{"sampling_rate": 1}"#, "t").unwrap_err();
        assert!(err.to_string().contains("SNAC"), "{err}");
    }

    #[test]
    fn published_snac_cards_match_named_configs() {
        let cfg = |n: &str| -> SnacConfig {
            ModelCard::find(n).unwrap().architecture.try_into().unwrap()
        };
        assert_eq!(cfg("snac-24khz"), SnacConfig::snac_24khz());
        assert_eq!(cfg("snac-32khz"), SnacConfig::snac_32khz());
        assert_eq!(cfg("snac-44khz"), SnacConfig::snac_44khz());
        for (name, repo, bitrate) in [
            ("snac-24khz", "hubertsiuzdak/snac_24khz", 984.375),
            ("snac-32khz", "hubertsiuzdak/snac_32khz", 1875.0),
            ("snac-44khz", "hubertsiuzdak/snac_44khz", 2583.984375),
        ] {
            let card = ModelCard::find(name).unwrap();
            // Multi-scale: the bitrate sums each codebook at its own rate.
            assert!(
                (card.bitrate() - bitrate).abs() < 1e-6,
                "{name}: {}",
                card.bitrate()
            );
            let hub = card.hub.unwrap();
            assert_eq!(
                (hub.repo.as_str(), hub.weights.as_str()),
                (repo, "pytorch_model.bin")
            );
            assert_eq!(card.license, "MIT");
        }
    }
}

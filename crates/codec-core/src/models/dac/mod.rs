//! DAC, the Descript Audio Codec (Kumar et al. 2023, `descript-audio-codec` 1.0.0): a
//! convolutional encoder and decoder with Snake activations around a factorised,
//! L2-normalised residual VQ of up to 32 codebooks. Mono, 16, 24 or 44.1 kHz.
//!
//! Checkpoint keys, as in `dac.model.DAC` (the `state_dict` of the published `weights.pth`,
//! weight norm as `weight_g`/`weight_v`):
//! - `encoder.block.0` conv 1 → `encoder_dim`, kernel 7;
//! - `encoder.block.{1..=n}` encoder blocks (residual units, Snake, strided conv), doubling the
//!   channels each; `encoder.block.{n+1}` Snake; `encoder.block.{n+2}` conv to the latent,
//!   kernel 3;
//! - `quantizer.quantizers.{i}.{in_proj,out_proj,codebook}`;
//! - `decoder.model.0` conv latent → `decoder_dim`, kernel 7; `decoder.model.{1..=n}` decoder
//!   blocks (Snake, transposed conv, residual units), halving the channels each;
//!   `decoder.model.{n+1}` Snake; `decoder.model.{n+2}` conv to one channel, kernel 7; tanh.
//!
//! The Hugging Face `transformers` port (`descript/dac_16khz` etc., `model.safetensors`) names
//! the same tensors differently (`encoder.conv1`, `encoder.block.{i}.res_unit{j}.conv1`,
//! `decoder.block.{i}.conv_t1`, ...); [`hf_key_to_original`] maps them back at load.

pub mod blocks;
mod config;
mod weights;

pub use config::*;
pub use weights::*;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::VarBuilder;

use super::{CheckpointFamily, Score};
use crate::codec::{CodeStreams, Codec, CodecInfo, EncodeOptions};
use crate::error::CodesProblem;
use crate::long_form::{LongForm, Windowing};
use crate::nn::snake::Snake1d;
use crate::nn::torch_conv::{Conv, ConvSpec};
use crate::quant::FactorizedRvq;
use crate::weights::{build_fingerprinted, load_tracked, StateDict};
use crate::{Error, Result};
use blocks::{DecoderBlock, DecoderBlockSpec, EncoderBlock};

struct DacEncoder {
    conv_in: Conv,
    blocks: Vec<EncoderBlock>,
    snake: Snake1d,
    conv_out: Conv,
}

impl DacEncoder {
    fn new(cfg: &DacConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let vb = vb.pp("block");
        let n = cfg.encoder_rates.len();
        let conv_in = Conv::new(ConvSpec::new(1, cfg.encoder_dim, 7).padding(3), vb.pp(0))?;
        let mut dim = cfg.encoder_dim;
        let mut blocks = Vec::with_capacity(n);
        for (i, &stride) in cfg.encoder_rates.iter().enumerate() {
            blocks.push(EncoderBlock::new(dim, dim * 2, stride, 1, vb.pp(i + 1))?);
            dim *= 2;
        }
        let snake = Snake1d::new(dim, vb.pp(n + 1))?;
        let conv_out = Conv::new(
            ConvSpec::new(dim, cfg.latent_dim(), 3).padding(1),
            vb.pp(n + 2),
        )?;
        Ok(Self {
            conv_in,
            blocks,
            snake,
            conv_out,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = self.conv_in.forward(x)?;
        for b in &self.blocks {
            x = b.forward(&x)?;
        }
        self.conv_out.forward(&self.snake.forward(&x)?)
    }
}

struct DacDecoder {
    conv_in: Conv,
    blocks: Vec<DecoderBlock>,
    snake: Snake1d,
    conv_out: Conv,
}

impl DacDecoder {
    fn new(cfg: &DacConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let vb = vb.pp("model");
        let n = cfg.decoder_rates.len();
        let ch = cfg.decoder_dim;
        let conv_in = Conv::new(ConvSpec::new(cfg.latent_dim(), ch, 7).padding(3), vb.pp(0))?;
        let blocks = cfg
            .decoder_rates
            .iter()
            .enumerate()
            .map(|(i, &stride)| {
                let spec = DecoderBlockSpec {
                    input_dim: ch >> i,
                    output_dim: ch >> (i + 1),
                    stride,
                    output_padding: 0,
                    noise: false,
                    groups: 1,
                };
                DecoderBlock::new(spec, vb.pp(i + 1))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let out_dim = ch >> n;
        let snake = Snake1d::new(out_dim, vb.pp(n + 1))?;
        let conv_out = Conv::new(ConvSpec::new(out_dim, 1, 7).padding(3), vb.pp(n + 2))?;
        Ok(Self {
            conv_in,
            blocks,
            snake,
            conv_out,
        })
    }

    fn forward(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = self.conv_in.forward(z)?;
        for b in &self.blocks {
            x = b.forward(&x, false)?;
        }
        self.conv_out.forward(&self.snake.forward(&x)?)?.tanh()
    }
}

/// Check that every code of `stream` `[batch, frames > 0]` is below `size`; as u32.
pub(crate) fn check_stream(stream: &Tensor, index: usize, size: usize) -> Result<Tensor> {
    let dims = stream.dims();
    if dims.len() != 2 || dims[0] == 0 || dims[1] == 0 {
        return Err(Error::InvalidCodes(CodesProblem::StreamShape {
            stream: index,
            expected: "[batch, frames > 0]".into(),
            got: dims.to_vec(),
        }));
    }
    let s = stream.to_dtype(DType::U32)?;
    let max = s.flatten_all()?.max(0)?.to_scalar::<u32>()?;
    if max as usize >= size {
        return Err(Error::InvalidCodes(CodesProblem::OutOfRange {
            codebook: Some(index),
            code: max.into(),
            size,
        }));
    }
    Ok(s)
}

/// Pad `[batch, channels, samples]` with zeros on the right to a multiple of `multiple`.
pub(crate) fn pad_to_multiple(audio: &Tensor, multiple: usize) -> Result<Tensor> {
    let len = audio.dim(D::Minus1)?;
    let right = len.div_ceil(multiple) * multiple - len;
    Ok(audio.pad_with_zeros(D::Minus1, 0, right)?)
}

/// A loaded DAC model.
pub struct Dac {
    info: CodecInfo,
    config: DacConfig,
    device: Device,
    encoder: DacEncoder,
    quantizer: FactorizedRvq,
    decoder: DacDecoder,
}

impl Dac {
    /// Build the model from a state dict (original or `transformers` layout, weight norm folded
    /// or not). Every inference tensor must be present with the right shape; the error names
    /// the one that is not. Returns the model and the keys it did not use (should be empty).
    pub fn load(
        config: &DacConfig,
        state: StateDict,
        name: &str,
        device: &Device,
    ) -> Result<(Self, Vec<String>)> {
        let state = inference_weights(state)?;
        load_tracked(state, device, |vb| Self::new(config, vb, name))
    }

    /// Build from a `VarBuilder` over [`inference_weights`]' layout (see [`crate::weights`]).
    pub fn new(config: &DacConfig, vb: VarBuilder, name: &str) -> Result<Self> {
        config.validate(name)?;
        let device = vb.device().clone();
        let ((encoder, quantizer, decoder), fingerprint) = build_fingerprinted(vb, name, |vb| {
            let encoder = DacEncoder::new(config, vb.pp("encoder"))?;
            let quantizer = FactorizedRvq::new(
                config.latent_dim(),
                config.codebook_size,
                config.codebook_dim,
                &vec![1; config.n_codebooks],
                vb.pp("quantizer"),
            )?;
            let decoder = DacDecoder::new(config, vb.pp("decoder"))?;
            Ok((encoder, quantizer, decoder))
        })?;
        let info = CodecInfo {
            name: name.to_string(),
            family: "dac".into(),
            sample_rate: config.sample_rate,
            channels: 1,
            frame_rate: config.frame_rate(),
            codebook_sizes: vec![config.codebook_size as u32; config.n_codebooks],
            codebook_frame_rates: vec![config.frame_rate(); config.n_codebooks],
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
        };
        Ok(model)
    }

    /// The architecture.
    pub fn config(&self) -> &DacConfig {
        &self.config
    }

    /// The residual quantizer.
    pub fn quantizer(&self) -> &FactorizedRvq {
        &self.quantizer
    }

    /// Audio `[batch, 1, samples]` → latent `[batch, latent_dim, frames]`, after padding the
    /// audio on the right to a multiple of the hop (the reference's `preprocess`).
    pub fn encode_latent(&self, audio: &Tensor) -> Result<Tensor> {
        crate::codec::check_mono_audio(audio, "DAC")?;
        let audio = audio.to_device(&self.device)?.to_dtype(DType::F32)?;
        let audio = pad_to_multiple(&audio, self.config.hop_length())?;
        Ok(self.encoder.forward(&audio)?)
    }

    /// Latent `[batch, latent_dim, frames]` → audio `[batch, 1, samples]`. The length is the
    /// reference decoder's: `frames * hop` less a few samples when a stride is odd.
    pub fn decode_latent(&self, z: &Tensor) -> Result<Tensor> {
        Ok(self.decoder.forward(z)?)
    }

    /// Codes of the first `n` codebooks (1 to the model's), each `[batch, frames]`.
    fn encode_streams(&self, audio: &Tensor, n: usize) -> Result<Vec<Tensor>> {
        let z = self.encode_latent(audio)?;
        Ok(self.quantizer.encode(&z, n)?)
    }

    fn decode_stream_list(&self, streams: &[Tensor]) -> Result<Tensor> {
        if streams.is_empty() || streams.len() > self.config.n_codebooks {
            return Err(Error::InvalidCodes(CodesProblem::Codebooks {
                model: self.info.name.clone(),
                given: streams.len(),
                available: self.config.n_codebooks,
            }));
        }
        let first = streams[0].dims().to_vec();
        let codes = streams
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if s.dims() != first.as_slice() {
                    return Err(Error::InvalidCodes(CodesProblem::StreamShape {
                        stream: i,
                        expected: format!("{first:?}, as stream 0"),
                        got: s.dims().to_vec(),
                    }));
                }
                check_stream(&s.to_device(&self.device)?, i, self.config.codebook_size)
            })
            .collect::<Result<Vec<_>>>()?;
        let z = self.quantizer.decode(&codes)?;
        self.decode_latent(&z)
    }
}

impl Codec for Dac {
    /// Exact windows of whole frames. The receptive fields are about 8 frames each side in
    /// the encoder (three residual units of dilations 1, 3, 9 and the strided convolutions,
    /// summed over the strides) and about 10 in the decoder; 16 leaves margin, and
    /// `tests/long_form.rs` holds the windows to one pass's codes bit for bit and its audio
    /// to float32 rounding (138 dB).
    fn long_form(&self) -> LongForm {
        // Windows of at most 4 s: at 44.1 kHz the decoder's activations take about 117 MiB per
        // second of audio (30 s windows peaked at 4.0 GB; benches/long_inputs.sh). Decoding
        // 60 s peaked at 1190 MiB in 6 s windows and 953 MiB in 4 s ones, which keeps 30 minutes
        // (plus the 318 MB of output held) under 1.5 GB; 16 frames of context a side then cost
        // 9 % more work (6 % at 6 s).
        let cap = 4 * self.config.sample_rate as usize;
        LongForm::Windowed(Windowing::exact(self.config.hop_length(), 16, 16).max_window(cap))
    }

    fn info(&self) -> &CodecInfo {
        &self.info
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn encode(&self, audio: &Tensor) -> Result<Tensor> {
        let streams = self.encode_streams(audio, self.config.n_codebooks)?;
        Ok(Tensor::stack(&streams, 1)?)
    }

    fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        let dims = codes.dims();
        if dims.len() != 3 {
            return Err(Error::codes_shape(
                &self.info.name,
                format!("[batch, 1..={}, frames]", self.config.n_codebooks),
                dims,
            ));
        }
        self.decode_streams(&CodeStreams::from_stacked(codes)?)
    }

    fn encode_with(&self, audio: &Tensor, options: &EncodeOptions) -> Result<CodeStreams> {
        let n = options.codebooks_for(&self.info, self.config.n_codebooks)?;
        Ok(CodeStreams {
            streams: self.encode_streams(audio, n)?,
            scales: None,
        })
    }

    fn decode_streams(&self, codes: &CodeStreams) -> Result<Tensor> {
        self.decode_stream_list(&codes.streams)
    }
}

/// The dac family's entry in the registry.
pub static FAMILY: CheckpointFamily<DacConfig, Dac> = CheckpointFamily {
    name: "dac",
    weights_score: |weights| Score::shared_layout_if(looks_like_dac(weights)),
    config_score: |text| Score::distinctive_if(is_reference_config(text)),
    inference_weights,
    from_reference: DacConfig::from_reference_json,
    infer: infer_config,
    card_facts: DacConfig::card_facts,
    load: Dac::load,
    onnx: None,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelCard;

    #[test]
    fn published_configs_are_consistent() {
        for cfg in DacConfig::published_configs() {
            cfg.validate("test").unwrap();
            assert_eq!(cfg.latent_dim(), 1024);
        }
        assert_eq!(DacConfig::dac_16khz().frame_rate(), 50.0);
        assert_eq!(DacConfig::dac_24khz().frame_rate(), 75.0);
        assert_eq!(DacConfig::dac_44khz().frame_rate(), 44100.0 / 512.0);
    }

    #[test]
    fn reads_both_json_spellings() {
        let dac = r#"{"encoder_dim": 64, "encoder_rates": [2, 4, 5, 8], "decoder_dim": 1536,
            "decoder_rates": [8, 5, 4, 2], "n_codebooks": 32, "codebook_size": 1024,
            "codebook_dim": 8, "sample_rate": 24000, "quantizer_dropout": 0.5}"#;
        assert_eq!(
            DacConfig::from_reference_json(dac, "t").unwrap(),
            DacConfig::dac_24khz()
        );
        let hf = r#"{"model_type": "dac", "encoder_hidden_size": 64,
            "downsampling_ratios": [2, 4, 8, 8], "upsampling_ratios": [8, 8, 4, 2],
            "decoder_hidden_size": 1536, "n_codebooks": 9, "codebook_size": 1024,
            "codebook_dim": 8, "sampling_rate": 44100, "hidden_size": 1024, "hop_length": 512}"#;
        let mut cfg = DacConfig::from_reference_json(hf, "t").unwrap();
        assert_eq!(cfg.latent_dim(), 1024);
        cfg.latent_dim = None;
        assert_eq!(cfg, DacConfig::dac_44khz());
    }

    #[test]
    fn hf_keys_map_back() {
        let cases = [
            ("encoder.conv1.weight", "encoder.block.0.weight"),
            (
                "encoder.block.3.res_unit3.snake2.alpha",
                "encoder.block.4.block.2.block.2.alpha",
            ),
            (
                "encoder.block.0.snake1.alpha",
                "encoder.block.1.block.3.alpha",
            ),
            (
                "encoder.block.1.conv1.parametrizations.weight.original0",
                "encoder.block.2.block.4.parametrizations.weight.original0",
            ),
            ("encoder.snake1.alpha", "encoder.block.5.alpha"),
            ("encoder.conv2.weight_v", "encoder.block.6.weight_v"),
            ("decoder.conv1.bias", "decoder.model.0.bias"),
            (
                "decoder.block.0.snake1.alpha",
                "decoder.model.1.block.0.alpha",
            ),
            (
                "decoder.block.2.conv_t1.weight",
                "decoder.model.3.block.1.weight",
            ),
            (
                "decoder.block.3.res_unit1.conv2.bias",
                "decoder.model.4.block.2.block.3.bias",
            ),
            ("decoder.snake1.alpha", "decoder.model.5.alpha"),
            ("decoder.conv2.weight", "decoder.model.6.weight"),
            (
                "quantizer.quantizers.7.codebook.weight",
                "quantizer.quantizers.7.codebook.weight",
            ),
        ];
        for (hf, orig) in cases {
            assert_eq!(hf_key_to_original(hf, 4, 4).as_deref(), Some(orig), "{hf}");
        }
        assert_eq!(
            hf_key_to_original("encoder.block.0.res_unit4.conv1.weight", 4, 4),
            None
        );
        assert_eq!(hf_key_to_original("something.else", 4, 4), None);
    }

    #[test]
    fn published_dac_cards_match_named_configs() {
        let cfg =
            |n: &str| -> DacConfig { ModelCard::find(n).unwrap().architecture.try_into().unwrap() };
        assert_eq!(cfg("dac-16khz"), DacConfig::dac_16khz());
        assert_eq!(cfg("dac-24khz"), DacConfig::dac_24khz());
        assert_eq!(cfg("dac-44khz"), DacConfig::dac_44khz());
        for (name, repo) in [
            ("dac-16khz", "descript/dac_16khz"),
            ("dac-24khz", "descript/dac_24khz"),
            ("dac-44khz", "descript/dac_44khz"),
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

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

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::{architecture, ArchSource, CardFacts, Family, Loaded, Score};
use crate::card::ModelCard;
use crate::codec::{CodeStreams, Codec, CodecInfo, EncodeOptions};
use crate::nn::dac_blocks::{Conv, ConvSpec, DecoderBlock, DecoderBlockSpec, EncoderBlock};
use crate::nn::snake::Snake1d;
use crate::quant::FactorizedRvq;
use crate::weights::{build_tracked, StateDict};
use crate::{Error, Result};

/// Architecture of a DAC model: the arguments of `dac.model.DAC` (less training-only ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DacConfig {
    pub sample_rate: u32,
    pub encoder_dim: usize,
    pub encoder_rates: Vec<usize>,
    /// Latent channels; `encoder_dim * 2^len(encoder_rates)` when absent (as in the reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent_dim: Option<usize>,
    pub decoder_dim: usize,
    pub decoder_rates: Vec<usize>,
    pub n_codebooks: usize,
    pub codebook_size: usize,
    pub codebook_dim: usize,
}

impl DacConfig {
    fn published(sample_rate: u32, rates: [usize; 4], n_codebooks: usize) -> Self {
        let mut decoder_rates = rates.to_vec();
        decoder_rates.reverse();
        Self {
            sample_rate,
            encoder_dim: 64,
            encoder_rates: rates.to_vec(),
            latent_dim: None,
            decoder_dim: 1536,
            decoder_rates,
            n_codebooks,
            codebook_size: 1024,
            codebook_dim: 8,
        }
    }

    /// The published 16 kHz model (`weights_16khz.pth`, `descript/dac_16khz`): 50 frames/s,
    /// 12 codebooks, 6 kbit/s.
    pub fn dac_16khz() -> Self {
        Self::published(16000, [2, 4, 5, 8], 12)
    }

    /// The published 24 kHz model (`weights_24khz.pth`, `descript/dac_24khz`): 75 frames/s,
    /// 32 codebooks, 24 kbit/s.
    pub fn dac_24khz() -> Self {
        Self::published(24000, [2, 4, 5, 8], 32)
    }

    /// The published 44.1 kHz model (`weights_44khz_8kbps.pth`, `descript/dac_44khz`):
    /// 86.1 frames/s, 9 codebooks, 7.75 kbit/s.
    pub fn dac_44khz() -> Self {
        Self::published(44100, [2, 4, 8, 8], 9)
    }

    /// The published configurations.
    pub fn published_configs() -> Vec<Self> {
        vec![Self::dac_16khz(), Self::dac_24khz(), Self::dac_44khz()]
    }

    pub fn latent_dim(&self) -> usize {
        self.latent_dim
            .unwrap_or(self.encoder_dim << self.encoder_rates.len())
    }

    /// Samples per code frame.
    pub fn hop_length(&self) -> usize {
        self.encoder_rates.iter().product()
    }

    pub fn frame_rate(&self) -> f64 {
        self.sample_rate as f64 / self.hop_length() as f64
    }

    /// Read the reference's arguments from JSON: the `DAC(**kwargs)` of `descript-audio-codec`
    /// (as in a checkpoint's `metadata.kwargs`), or a `transformers` `DacConfig`
    /// (`"model_type": "dac"`, `encoder_hidden_size`, `downsampling_ratios`, ...).
    pub fn from_reference_json(text: &str, source: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::config(source, format!("not valid JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| Error::config(source, "expected a JSON object"))?;
        let int = |key: &str| -> Result<usize> {
            obj.get(key)
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
                .ok_or_else(|| Error::config(source, format!("missing or non-integer {key}")))
        };
        let list = |key: &str| -> Result<Vec<usize>> {
            obj.get(key)
                .and_then(|x| x.as_array())
                .ok_or_else(|| Error::config(source, format!("missing list {key}")))?
                .iter()
                .map(|x| {
                    x.as_u64()
                        .map(|x| x as usize)
                        .ok_or_else(|| Error::config(source, format!("non-integer in {key}")))
                })
                .collect()
        };
        let hf = obj.get("model_type").and_then(|m| m.as_str()) == Some("dac")
            || obj.contains_key("encoder_hidden_size");
        let cfg = if hf {
            let encoder_rates = list("downsampling_ratios")?;
            let decoder_rates = if obj.contains_key("upsampling_ratios") {
                list("upsampling_ratios")?
            } else {
                encoder_rates.iter().rev().copied().collect()
            };
            Self {
                sample_rate: int("sampling_rate")? as u32,
                encoder_dim: int("encoder_hidden_size")?,
                encoder_rates,
                latent_dim: obj
                    .get("hidden_size")
                    .and_then(|x| x.as_u64())
                    .map(|x| x as usize),
                decoder_dim: int("decoder_hidden_size")?,
                decoder_rates,
                n_codebooks: int("n_codebooks")?,
                codebook_size: int("codebook_size")?,
                codebook_dim: int("codebook_dim")?,
            }
        } else {
            Self {
                sample_rate: int("sample_rate")? as u32,
                encoder_dim: int("encoder_dim")?,
                encoder_rates: list("encoder_rates")?,
                latent_dim: match obj.get("latent_dim") {
                    None | Some(serde_json::Value::Null) => None,
                    Some(_) => Some(int("latent_dim")?),
                },
                decoder_dim: int("decoder_dim")?,
                decoder_rates: list("decoder_rates")?,
                n_codebooks: int("n_codebooks")?,
                codebook_size: int("codebook_size")?,
                codebook_dim: int("codebook_dim")?,
            }
        };
        cfg.validate(source)?;
        Ok(cfg)
    }

    /// Check that the parts agree with each other.
    pub fn validate(&self, source: &str) -> Result<()> {
        let bad = |m: String| Err(Error::config(source, m));
        if self.sample_rate == 0
            || self.encoder_dim == 0
            || self.decoder_dim == 0
            || self.n_codebooks == 0
            || self.codebook_size == 0
            || self.codebook_dim == 0
            || self.latent_dim() == 0
        {
            return bad("sizes and the sample rate must be positive".into());
        }
        if self.encoder_rates.is_empty() || self.encoder_rates.contains(&0) {
            return bad("encoder_rates must be a non-empty list of positive strides".into());
        }
        if self.decoder_rates.is_empty() || self.decoder_rates.contains(&0) {
            return bad("decoder_rates must be a non-empty list of positive strides".into());
        }
        let up: usize = self.decoder_rates.iter().product();
        if up != self.hop_length() {
            return bad(format!(
                "decoder_rates upsample by {up}, encoder_rates downsample by {}",
                self.hop_length()
            ));
        }
        if !self
            .decoder_dim
            .is_multiple_of(1 << self.decoder_rates.len())
        {
            return bad(format!(
                "decoder_dim {} cannot be halved {} times",
                self.decoder_dim,
                self.decoder_rates.len()
            ));
        }
        Ok(())
    }
}

/// Whether a config file's text is DAC's: the `DAC(**kwargs)` JSON (`encoder_rates`,
/// `n_codebooks`, no `vq_strides`) or a `transformers` `DacConfig`.
pub fn is_reference_config(text: &str) -> bool {
    let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(text) else {
        return false;
    };
    let hf = obj.get("model_type").and_then(|m| m.as_str()) == Some("dac");
    let original = obj.contains_key("encoder_rates")
        && obj.contains_key("n_codebooks")
        && !obj.contains_key("vq_strides");
    hf || original
}

/// Whether a state dict looks like a DAC checkpoint (original or `transformers` layout). SNAC
/// shares the layout; callers check [`crate::models::snac::looks_like_snac`] first.
pub fn looks_like_dac(state: &StateDict) -> bool {
    let has = |p: &str| state.tensors.keys().any(|k| k.starts_with(p));
    has("quantizer.quantizers.0.codebook.")
        && (has("encoder.block.") || has("encoder.conv1."))
        && (has("decoder.model.") || has("decoder.conv1."))
}

/// Whether a state dict uses the `transformers` names (`encoder.conv1`, `res_unit1`, ...).
pub fn is_hf_layout(state: &StateDict) -> bool {
    state.tensors.keys().any(|k| {
        k.starts_with("encoder.conv1.")
            || k.starts_with("decoder.conv1.")
            || k.contains(".res_unit")
            || k.contains(".conv_t1.")
    })
}

/// The original name of a `transformers` DAC key, given the number of encoder and decoder
/// blocks; `None` for a key that is not part of the HF layout.
///
/// ```
/// use codec_core::models::dac::hf_key_to_original;
/// assert_eq!(
///     hf_key_to_original("encoder.block.0.res_unit2.conv1.weight", 4, 4).as_deref(),
///     Some("encoder.block.1.block.1.block.1.weight")
/// );
/// assert_eq!(
///     hf_key_to_original("decoder.conv2.bias", 4, 4).as_deref(),
///     Some("decoder.model.6.bias")
/// );
/// ```
pub fn hf_key_to_original(key: &str, n_encoder: usize, n_decoder: usize) -> Option<String> {
    let parts: Vec<&str> = key.split('.').collect();
    let idx = |s: &str| s.parse::<usize>().ok();
    let unit = |s: &str| -> Option<usize> {
        let j = s.strip_prefix("res_unit")?.parse::<usize>().ok()?;
        (1..=3).contains(&j).then_some(j)
    };
    let layer = |s: &str| -> Option<usize> {
        match s {
            "snake1" => Some(0),
            "conv1" => Some(1),
            "snake2" => Some(2),
            "conv2" => Some(3),
            _ => None,
        }
    };
    let (stem, rest): (String, &[&str]) = match parts.as_slice() {
        ["quantizer", "quantizers", ..] => return Some(key.to_string()),
        ["encoder", "conv1", rest @ ..] => ("encoder.block.0".into(), rest),
        ["encoder", "snake1", rest @ ..] => (format!("encoder.block.{}", n_encoder + 1), rest),
        ["encoder", "conv2", rest @ ..] => (format!("encoder.block.{}", n_encoder + 2), rest),
        ["encoder", "block", i, u, l, rest @ ..] if unit(u).is_some() => (
            format!(
                "encoder.block.{}.block.{}.block.{}",
                idx(i)? + 1,
                unit(u)? - 1,
                layer(l)?
            ),
            rest,
        ),
        ["encoder", "block", i, "snake1", rest @ ..] => {
            (format!("encoder.block.{}.block.3", idx(i)? + 1), rest)
        }
        ["encoder", "block", i, "conv1", rest @ ..] => {
            (format!("encoder.block.{}.block.4", idx(i)? + 1), rest)
        }
        ["decoder", "conv1", rest @ ..] => ("decoder.model.0".into(), rest),
        ["decoder", "snake1", rest @ ..] => (format!("decoder.model.{}", n_decoder + 1), rest),
        ["decoder", "conv2", rest @ ..] => (format!("decoder.model.{}", n_decoder + 2), rest),
        ["decoder", "block", i, u, l, rest @ ..] if unit(u).is_some() => (
            format!(
                "decoder.model.{}.block.{}.block.{}",
                idx(i)? + 1,
                unit(u)? + 1,
                layer(l)?
            ),
            rest,
        ),
        ["decoder", "block", i, "snake1", rest @ ..] => {
            (format!("decoder.model.{}.block.0", idx(i)? + 1), rest)
        }
        ["decoder", "block", i, "conv_t1", rest @ ..] => {
            (format!("decoder.model.{}.block.1", idx(i)? + 1), rest)
        }
        _ => return None,
    };
    if rest.is_empty() {
        return None;
    }
    Some(format!("{stem}.{}", rest.join(".")))
}

/// Number of `{prefix}{i}.` blocks among the keys (one past the largest index).
fn count_blocks<'a>(keys: impl Iterator<Item = &'a String>, prefix: &str) -> usize {
    keys.filter_map(|k| {
        k.strip_prefix(prefix)?
            .split('.')
            .next()?
            .parse::<usize>()
            .ok()
    })
    .map(|i| i + 1)
    .max()
    .unwrap_or(0)
}

/// Rename a `transformers` state dict to the original layout (keys it does not know are kept).
pub fn from_hf_layout(state: StateDict) -> StateDict {
    let n_enc = count_blocks(state.tensors.keys(), "encoder.block.");
    let n_dec = count_blocks(state.tensors.keys(), "decoder.block.");
    let tensors = state
        .tensors
        .into_iter()
        .map(|(k, v)| (hf_key_to_original(&k, n_enc, n_dec).unwrap_or(k), v))
        .collect();
    StateDict {
        source: state.source,
        tensors,
    }
}

/// The inference weights in the original layout, weight norm folded, f32: what
/// [`Dac::load`] consumes and `codec convert` writes.
pub fn inference_weights(state: StateDict) -> Result<StateDict> {
    let mut state = if is_hf_layout(&state) {
        from_hf_layout(state)
    } else {
        state
    };
    state.fold_weight_norm()?;
    state.to_dtype(DType::F32)?;
    Ok(state)
}

/// Infer the architecture from a checkpoint's shapes. The sample rate is not in the weights:
/// it is taken from the published model of the same architecture, or the load fails.
pub fn infer_config(state: &StateDict) -> Result<DacConfig> {
    let src = state.source.clone();
    let state = inference_weights(state.clone())?;
    let dims = |key: &str| -> Result<Vec<usize>> {
        state
            .tensors
            .get(key)
            .map(|t| t.dims().to_vec())
            .ok_or_else(|| {
                Error::config(
                    &src,
                    format!("cannot infer the architecture: {key} is missing"),
                )
            })
    };
    let keys = || state.tensors.keys();
    let n_enc = count_blocks(keys(), "encoder.block.").saturating_sub(3);
    let n_dec = count_blocks(keys(), "decoder.model.").saturating_sub(3);
    let encoder_rates = (1..=n_enc)
        .map(|i| Ok(dims(&format!("encoder.block.{i}.block.4.weight"))?[2] / 2))
        .collect::<Result<Vec<_>>>()?;
    let decoder_rates = (1..=n_dec)
        .map(|i| Ok(dims(&format!("decoder.model.{i}.block.1.weight"))?[2] / 2))
        .collect::<Result<Vec<_>>>()?;
    let encoder_dim = dims("encoder.block.0.weight")?[0];
    let latent = dims(&format!("encoder.block.{}.weight", n_enc + 2))?[0];
    let codebook = dims("quantizer.quantizers.0.codebook.weight")?;
    let mut cfg = DacConfig {
        sample_rate: 0,
        encoder_dim,
        encoder_rates,
        latent_dim: (latent != encoder_dim << n_enc).then_some(latent),
        decoder_dim: dims("decoder.model.0.weight")?[0],
        decoder_rates,
        n_codebooks: count_blocks(keys(), "quantizer.quantizers."),
        codebook_size: codebook[0],
        codebook_dim: codebook[1],
    };
    let same_arch = DacConfig::published_configs().into_iter().find(|p| {
        DacConfig {
            sample_rate: 0,
            ..p.clone()
        } == cfg
    });
    match same_arch {
        Some(p) => cfg.sample_rate = p.sample_rate,
        None => {
            return Err(Error::config(
                &src,
                "the sample rate of this DAC architecture is not in the weights and it matches \
                 no published model; put the reference's config.json beside the weights",
            ))
        }
    }
    cfg.validate(&src)?;
    Ok(cfg)
}

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

/// Check audio `[batch, 1, samples > 0]`.
pub(crate) fn check_mono_audio(family: &str, audio: &Tensor) -> Result<()> {
    let dims = audio.dims();
    if dims.len() != 3 || dims[1] != 1 || dims[2] == 0 || dims[0] == 0 {
        return Err(Error::InvalidAudio(format!(
            "{family} takes audio shaped [batch, 1, samples] with samples > 0, got {dims:?}"
        )));
    }
    Ok(())
}

/// Check that every code of `stream` `[batch, frames > 0]` is below `size`; as u32.
pub(crate) fn check_stream(stream: &Tensor, index: usize, size: usize) -> Result<Tensor> {
    let dims = stream.dims();
    if dims.len() != 2 || dims[0] == 0 || dims[1] == 0 {
        return Err(Error::InvalidCodes(format!(
            "codebook stream {index} must be shaped [batch, frames > 0], got {dims:?}"
        )));
    }
    let s = stream.to_dtype(DType::U32)?;
    let max = s.flatten_all()?.max(0)?.to_scalar::<u32>()?;
    if max as usize >= size {
        return Err(Error::InvalidCodes(format!(
            "code {max} in codebook {index} is out of range for a codebook of {size} entries"
        )));
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
        config.validate(name)?;
        let state = inference_weights(state)?;
        let ((encoder, quantizer, decoder), fingerprint, unused) =
            build_tracked(state, device, |vb| {
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
        Ok((model, unused))
    }

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
        check_mono_audio("DAC", audio)?;
        let audio = audio.to_device(&self.device)?.to_dtype(DType::F32)?;
        let audio = pad_to_multiple(&audio, self.config.hop_length())?;
        Ok(self.encoder.forward(&audio)?)
    }

    /// Latent `[batch, latent_dim, frames]` → audio `[batch, 1, samples]`. The length is the
    /// reference decoder's: `frames * hop` less a few samples when a stride is odd.
    pub fn decode_latent(&self, z: &Tensor) -> Result<Tensor> {
        Ok(self.decoder.forward(z)?)
    }

    /// Codes of the first `n` codebooks, each `[batch, frames]`.
    fn encode_streams(&self, audio: &Tensor, n: usize) -> Result<Vec<Tensor>> {
        if n == 0 || n > self.config.n_codebooks {
            return Err(Error::InvalidCodes(format!(
                "{n} codebooks requested, model {} has 1 to {}",
                self.info.name, self.config.n_codebooks
            )));
        }
        let z = self.encode_latent(audio)?;
        Ok(self.quantizer.encode(&z, n)?)
    }

    fn decode_stream_list(&self, streams: &[Tensor]) -> Result<Tensor> {
        if streams.is_empty() || streams.len() > self.config.n_codebooks {
            return Err(Error::InvalidCodes(format!(
                "{} codebooks given, model {} takes 1 to {}",
                streams.len(),
                self.info.name,
                self.config.n_codebooks
            )));
        }
        let first = streams[0].dims().to_vec();
        let codes = streams
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if s.dims() != first.as_slice() {
                    return Err(Error::InvalidCodes(format!(
                        "codebook stream {i} is shaped {:?}, stream 0 {first:?}",
                        s.dims()
                    )));
                }
                check_stream(&s.to_device(&self.device)?, i, self.config.codebook_size)
            })
            .collect::<Result<Vec<_>>>()?;
        let z = self.quantizer.decode(&codes)?;
        self.decode_latent(&z)
    }
}

impl Codec for Dac {
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
            return Err(Error::InvalidCodes(format!(
                "expected codes shaped [batch, 1..={}, frames], got {dims:?}",
                self.config.n_codebooks
            )));
        }
        self.decode_streams(&CodeStreams::from_stacked(codes)?)
    }

    fn encode_with(&self, audio: &Tensor, options: &EncodeOptions) -> Result<CodeStreams> {
        let n = options.num_codebooks.unwrap_or(self.config.n_codebooks);
        Ok(CodeStreams {
            streams: self.encode_streams(audio, n)?,
            scales: None,
        })
    }

    fn decode_streams(&self, codes: &CodeStreams) -> Result<Tensor> {
        self.decode_stream_list(&codes.streams)
    }
}

/// The dac family.
pub struct DacFamily;

/// The registry's entry for this family.
pub static FAMILY: DacFamily = DacFamily;

impl Family for DacFamily {
    fn name(&self) -> &'static str {
        "dac"
    }

    fn weights_score(&self, weights: &StateDict) -> Score {
        if looks_like_dac(weights) {
            Score::SHARED_LAYOUT
        } else {
            Score::NONE
        }
    }

    fn config_score(&self, text: &str) -> Score {
        Score::distinctive_if(is_reference_config(text))
    }

    fn inference_weights(&self, state: StateDict) -> Result<StateDict> {
        inference_weights(state)
    }

    fn load(
        &self,
        arch: ArchSource<'_>,
        weights: StateDict,
        name: &str,
        device: &Device,
    ) -> Result<Loaded> {
        let config: DacConfig =
            arch.read(name, &weights, DacConfig::from_reference_json, infer_config)?;
        let (model, unused) = Dac::load(&config, weights, name, device)?;
        Ok(Loaded::new(model, unused))
    }

    fn check_card(&self, card: &ModelCard) -> Result<()> {
        let cfg: DacConfig = architecture(&card.architecture, &card.name)?;
        cfg.validate(&card.name)?;
        CardFacts {
            sample_rate: cfg.sample_rate,
            frame_rate: cfg.frame_rate(),
            codebooks: Some(vec![cfg.codebook_size as u32; cfg.n_codebooks]),
            codebook_frame_rates: None,
        }
        .check(card)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

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

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::{architecture, ArchSource, CardFacts, Family, Loaded, Score};
use crate::card::ModelCard;
use crate::codec::{CodeStreams, Codec, CodecInfo, EncodeOptions};
pub use crate::nn::seanet::hf_decoder_upsampling_layers;
use crate::nn::seanet::{hf_seanet_key_to_original, SeanetConfig, SeanetDecoder, SeanetEncoder};
use crate::nn::streaming_seanet::{self, StreamingSeanetDecoder, StreamingSeanetEncoder};
use crate::nn::{ConvNorm, PadMode};
use crate::quant::ResidualVq;
use crate::streaming::{
    StackDecoder, StackEncoder, StreamCodes, StreamingDecoder, StreamingEncoder,
};
use crate::weights::{fingerprint, StateDict, TrackingBackend};
use crate::{Error, Result};

/// Prefixes of the inference weights in the original package's state dict.
const ENCODER: &str = "encoder";
const DECODER: &str = "decoder";
const QUANTIZER: &str = "quantizer.vq";

fn default_overlap() -> f64 {
    0.01
}

fn default_trim_right_ratio() -> f64 {
    1.0
}

/// Architecture of an EnCodec model (the arguments of the reference's `EncodecModel._get_model`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncodecConfig {
    pub sample_rate: u32,
    /// The SEANet encoder's hyperparameters; the decoder mirrors them (EnCodec builds both from
    /// the same arguments). `channels` is the audio's channel count.
    pub seanet: SeanetConfig,
    /// Entries per codebook (`bins`), a power of two.
    pub codebook_size: usize,
    /// Codebooks of the residual VQ (`n_q`).
    pub num_quantizers: usize,
    /// Target bandwidths in kbit/s (`target_bandwidths`), each selecting a prefix of the codebooks.
    pub bandwidths: Vec<f64>,
    /// Normalise each segment by its RMS before encoding and scale back after decoding.
    #[serde(default)]
    pub normalize: bool,
    /// Segment length in seconds (48 kHz: 1.0); absent: the whole clip in one piece.
    #[serde(default)]
    pub segment: Option<f64>,
    /// Overlap of consecutive segments, as a share of the segment length.
    #[serde(default = "default_overlap")]
    pub overlap: f64,
    /// Causal decoder: share of a transposed convolution's extra samples trimmed on the right.
    #[serde(default = "default_trim_right_ratio")]
    pub trim_right_ratio: f64,
}

impl EncodecConfig {
    /// The SEANet both published models use (EnCodec's `SEANetEncoder` defaults).
    fn published_seanet(channels: usize, causal: bool, norm: ConvNorm) -> SeanetConfig {
        SeanetConfig {
            channels,
            dimension: 128,
            n_filters: 32,
            n_residual_layers: 1,
            ratios: vec![8, 5, 4, 2],
            kernel_size: 7,
            residual_kernel_size: 3,
            last_kernel_size: 7,
            dilation_base: 2,
            causal,
            pad_mode: PadMode::Reflect,
            true_skip: false,
            compress: 2,
            lstm: 2,
            norm,
        }
    }

    /// The published 24 kHz mono model (`encodec_model_24khz`, `encodec_24khz-d7cc33bc.th`).
    pub fn encodec_24khz() -> Self {
        Self {
            sample_rate: 24000,
            seanet: Self::published_seanet(1, true, ConvNorm::WeightNorm),
            codebook_size: 1024,
            num_quantizers: 32,
            bandwidths: vec![1.5, 3.0, 6.0, 12.0, 24.0],
            normalize: false,
            segment: None,
            overlap: 0.01,
            trim_right_ratio: 1.0,
        }
    }

    /// The published 48 kHz stereo model (`encodec_model_48khz`, `encodec_48khz-7e698e3e.th`).
    pub fn encodec_48khz() -> Self {
        Self {
            sample_rate: 48000,
            seanet: Self::published_seanet(2, false, ConvNorm::TimeGroupNorm),
            codebook_size: 1024,
            num_quantizers: 16,
            bandwidths: vec![3.0, 6.0, 12.0, 24.0],
            normalize: true,
            segment: Some(1.0),
            overlap: 0.01,
            trim_right_ratio: 1.0,
        }
    }

    /// Samples per code frame.
    pub fn hop_length(&self) -> usize {
        self.seanet.hop_length()
    }

    /// Whether the model can stream (see [`Encodec`]'s streaming section): a causal SEANet
    /// without group norm, the whole clip as one segment, no normalisation, and transposed
    /// convolutions trimmed on the right only.
    pub fn can_stream(&self) -> bool {
        streaming_seanet::can_stream(&self.seanet)
            && self.segment.is_none()
            && !self.normalize
            && self.trim_right_ratio == 1.0
    }

    /// Code frames per second.
    pub fn frame_rate(&self) -> f64 {
        self.sample_rate as f64 / self.hop_length() as f64
    }

    /// Codebooks the reference uses at `kbps` (`get_num_quantizers_for_bandwidth`:
    /// `floor(kbps * 1000 / (log2(bins) * ceil(frame_rate)))`, at least 1, at most `n_q`).
    pub fn codebooks_for_bandwidth(&self, kbps: f64) -> usize {
        let per_codebook = (self.codebook_size as f64).log2()
            * (self.sample_rate as f64 / self.hop_length() as f64).ceil();
        ((kbps * 1000.0 / per_codebook).floor() as usize).clamp(1, self.num_quantizers)
    }

    /// Samples per segment (`segment_length`), or `None` for whole-clip models.
    pub fn segment_length(&self) -> Option<usize> {
        self.segment.map(|s| (s * self.sample_rate as f64) as usize)
    }

    /// Samples between segment starts (`segment_stride`), or `None` for whole-clip models.
    pub fn segment_stride(&self) -> Option<usize> {
        self.segment_length()
            .map(|len| (((1.0 - self.overlap) * len as f64) as usize).max(1))
    }

    /// The `(offset, length)` sample ranges the reference encodes separately for a clip of `len`
    /// samples: one range for whole-clip models.
    pub fn segments(&self, len: usize) -> Vec<(usize, usize)> {
        match (self.segment_length(), self.segment_stride()) {
            (Some(seg), Some(stride)) => (0..len)
                .step_by(stride)
                .map(|off| (off, seg.min(len - off)))
                .collect(),
            _ => vec![(0, len)],
        }
    }

    /// Code frames of each segment of a clip of `len` samples.
    pub fn frames_per_segment(&self, len: usize) -> Vec<usize> {
        let hop = self.hop_length();
        self.segments(len)
            .into_iter()
            .map(|(_, n)| n.div_ceil(hop))
            .collect()
    }

    /// Split `total_frames` concatenated code frames back into the frames of each segment: the
    /// split of the clip lengths that encode to that many frames (see the module docs).
    pub fn segment_frames(&self, total_frames: usize) -> Result<Vec<usize>> {
        let bad = |m: String| Err(Error::InvalidCodes(m));
        if total_frames == 0 {
            return bad("no code frames".into());
        }
        if self.segment.is_none() {
            return Ok(vec![total_frames]);
        }
        let total = |len: usize| self.frames_per_segment(len).iter().sum::<usize>();
        // The frame count never decreases with the length; find the lengths giving `total_frames`.
        let first_at_least = |target: usize| {
            let (mut lo, mut hi) = (1usize, target * self.hop_length() * 2 + 1);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if total(mid) >= target {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            lo
        };
        let shortest = first_at_least(total_frames);
        if total(shortest) != total_frames {
            return bad(format!(
                "{total_frames} frames is no whole number of segments of this model \
                 (a clip of {shortest} samples gives {})",
                total(shortest)
            ));
        }
        let longest = first_at_least(total_frames + 1) - 1;
        let split = self.frames_per_segment(shortest);
        if self.frames_per_segment(longest) != split {
            return bad(format!(
                "{total_frames} frames split into segments in more than one way"
            ));
        }
        Ok(split)
    }

    /// Read a `config.json` beside a checkpoint: either the reference package's `_get_model`
    /// arguments with the SEANet's (`sample_rate`, `channels`, `causal`, `norm`, `n_filters`,
    /// `dimension`, `ratios`, `n_residual_layers`, `lstm`, `n_q`, `bins`, `target_bandwidths`,
    /// optionally `normalize`, `segment`, `overlap`, ...), or a transformers `EncodecConfig`
    /// (`"model_type": "encodec"`).
    pub fn from_reference_json(text: &str, source: &str) -> Result<Self> {
        let doc: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::config(source, format!("not valid JSON: {e}")))?;
        let obj = doc
            .as_object()
            .ok_or_else(|| Error::config(source, "expected a JSON object"))?;
        let cfg = if obj.get("model_type").and_then(|v| v.as_str()) == Some("encodec") {
            Self::from_transformers_json(obj, source)?
        } else {
            Self::from_package_json(obj, source)?
        };
        cfg.validate(source)?;
        Ok(cfg)
    }

    fn from_package_json(
        obj: &serde_json::Map<String, serde_json::Value>,
        source: &str,
    ) -> Result<Self> {
        const KNOWN: &[&str] = &[
            "sample_rate",
            "channels",
            "causal",
            "norm",
            "n_filters",
            "dimension",
            "ratios",
            "n_residual_layers",
            "lstm",
            "n_q",
            "bins",
            "target_bandwidths",
            "normalize",
            "audio_normalize",
            "segment",
            "overlap",
            "kernel_size",
            "residual_kernel_size",
            "last_kernel_size",
            "dilation_base",
            "pad_mode",
            "true_skip",
            "compress",
            "trim_right_ratio",
        ];
        if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(Error::config(
                source,
                format!(
                    "unknown EnCodec setting '{k}' (known: {})",
                    KNOWN.join(", ")
                ),
            ));
        }
        let j = Json { obj, source };
        let norm = j.norm("norm")?.unwrap_or(ConvNorm::WeightNorm);
        let dflt = Self::published_seanet(1, true, norm);
        let seanet = SeanetConfig {
            channels: j.usize_or("channels", 1)?,
            dimension: j.usize_or("dimension", dflt.dimension)?,
            n_filters: j.usize_or("n_filters", dflt.n_filters)?,
            n_residual_layers: j.usize_or("n_residual_layers", dflt.n_residual_layers)?,
            ratios: j.usizes("ratios")?.unwrap_or(dflt.ratios),
            kernel_size: j.usize_or("kernel_size", dflt.kernel_size)?,
            residual_kernel_size: j.usize_or("residual_kernel_size", dflt.residual_kernel_size)?,
            last_kernel_size: j.usize_or("last_kernel_size", dflt.last_kernel_size)?,
            dilation_base: j.usize_or("dilation_base", dflt.dilation_base)?,
            // `SEANetEncoder` is non-causal by default, `_get_model` causal.
            causal: j.bool_or("causal", true)?,
            pad_mode: j.pad_mode("pad_mode")?.unwrap_or(PadMode::Reflect),
            true_skip: j.bool_or("true_skip", false)?,
            compress: j.usize_or("compress", dflt.compress)?,
            lstm: j.usize_or("lstm", dflt.lstm)?,
            norm,
        };
        let bandwidths = j
            .floats("target_bandwidths")?
            .ok_or_else(|| Error::config(source, "missing target_bandwidths"))?;
        let sample_rate = j.usize_or("sample_rate", 24000)? as u32;
        let codebook_size = j.usize_or("bins", 1024)?;
        let num_quantizers = match obj.get("n_q") {
            Some(_) => j.usize_or("n_q", 0)?,
            None => default_num_quantizers(sample_rate, &seanet, codebook_size, &bandwidths),
        };
        let normalize = if obj.contains_key("normalize") {
            j.bool_or("normalize", false)?
        } else {
            j.bool_or("audio_normalize", false)?
        };
        Ok(Self {
            sample_rate,
            seanet,
            codebook_size,
            num_quantizers,
            bandwidths,
            normalize,
            segment: j.float("segment")?,
            overlap: j.float("overlap")?.unwrap_or(default_overlap()),
            trim_right_ratio: j.float("trim_right_ratio")?.unwrap_or(1.0),
        })
    }

    fn from_transformers_json(
        obj: &serde_json::Map<String, serde_json::Value>,
        source: &str,
    ) -> Result<Self> {
        let j = Json { obj, source };
        let norm = j.norm("norm_type")?.unwrap_or(ConvNorm::WeightNorm);
        let dflt = Self::published_seanet(1, true, norm);
        let seanet = SeanetConfig {
            channels: j.usize_or("audio_channels", 1)?,
            dimension: j.usize_or("hidden_size", dflt.dimension)?,
            n_filters: j.usize_or("num_filters", dflt.n_filters)?,
            n_residual_layers: j.usize_or("num_residual_layers", dflt.n_residual_layers)?,
            ratios: j.usizes("upsampling_ratios")?.unwrap_or(dflt.ratios),
            kernel_size: j.usize_or("kernel_size", dflt.kernel_size)?,
            residual_kernel_size: j.usize_or("residual_kernel_size", dflt.residual_kernel_size)?,
            last_kernel_size: j.usize_or("last_kernel_size", dflt.last_kernel_size)?,
            dilation_base: j.usize_or("dilation_growth_rate", dflt.dilation_base)?,
            causal: j.bool_or("use_causal_conv", true)?,
            pad_mode: j.pad_mode("pad_mode")?.unwrap_or(PadMode::Reflect),
            true_skip: !j.bool_or("use_conv_shortcut", true)?,
            compress: j.usize_or("compress", dflt.compress)?,
            lstm: j.usize_or("num_lstm_layers", dflt.lstm)?,
            norm,
        };
        let bandwidths = j
            .floats("target_bandwidths")?
            .ok_or_else(|| Error::config(source, "missing target_bandwidths"))?;
        let sample_rate = j.usize_or("sampling_rate", 24000)? as u32;
        let codebook_size = j.usize_or("codebook_size", 1024)?;
        let num_quantizers =
            default_num_quantizers(sample_rate, &seanet, codebook_size, &bandwidths);
        Ok(Self {
            sample_rate,
            seanet,
            codebook_size,
            num_quantizers,
            bandwidths,
            normalize: j.bool_or("normalize", false)?,
            segment: j.float("chunk_length_s")?,
            overlap: j.float("overlap")?.unwrap_or(default_overlap()),
            trim_right_ratio: j.float("trim_right_ratio")?.unwrap_or(1.0),
        })
    }

    /// Check that the parts agree with each other.
    pub fn validate(&self, source: &str) -> Result<()> {
        let bad = |m: String| Err(Error::config(source, m));
        let s = &self.seanet;
        if self.sample_rate == 0 || self.num_quantizers == 0 || s.ratios.is_empty() {
            return bad("sample_rate, num_quantizers and ratios must be non-empty/positive".into());
        }
        if !(1..=2).contains(&s.channels) {
            return bad(format!("EnCodec takes 1 or 2 channels, not {}", s.channels));
        }
        if s.ratios.contains(&0) || s.n_filters == 0 || s.dimension == 0 || s.compress == 0 {
            return bad("ratios, n_filters, dimension and compress must be positive".into());
        }
        if !self.codebook_size.is_power_of_two() {
            return bad(format!(
                "codebook_size {} is not a power of two",
                self.codebook_size
            ));
        }
        if s.causal && s.norm == ConvNorm::TimeGroupNorm {
            return bad("time_group_norm does not support causal convolutions".into());
        }
        if !(0.0..=1.0).contains(&self.trim_right_ratio)
            || (!s.causal && self.trim_right_ratio != 1.0)
        {
            return bad(format!(
                "trim_right_ratio {} must be in [0, 1], and 1 for a non-causal model",
                self.trim_right_ratio
            ));
        }
        if let Some(seg) = self.segment {
            if !(seg > 0.0 && seg.is_finite()) || self.segment_length() < Some(1) {
                return bad(format!("segment {seg} s is not a positive length"));
            }
            if !(0.0..1.0).contains(&self.overlap) {
                return bad(format!("overlap {} must be in [0, 1)", self.overlap));
            }
        }
        for &bw in &self.bandwidths {
            if !(bw > 0.0 && bw.is_finite()) {
                return bad(format!("bandwidth {bw} kbit/s is not positive"));
            }
            let per = self.frame_rate() * (self.codebook_size as f64).log2() / 1000.0;
            let n = (bw / per).round();
            if (n * per - bw).abs() > 1e-6 || n < 1.0 || n as usize > self.num_quantizers {
                return bad(format!(
                    "bandwidth {bw} kbit/s is not a whole number of codebooks of {per} kbit/s \
                     within the {} codebooks",
                    self.num_quantizers
                ));
            }
        }
        Ok(())
    }
}

/// `_get_model`'s `n_q`: enough codebooks for the largest bandwidth.
fn default_num_quantizers(
    sample_rate: u32,
    seanet: &SeanetConfig,
    codebook_size: usize,
    bandwidths: &[f64],
) -> usize {
    let frame_rate = (sample_rate as f64 / seanet.hop_length().max(1) as f64).ceil();
    let max_bw = bandwidths.iter().cloned().fold(0.0, f64::max);
    let bits = (codebook_size.max(2) as f64).log2();
    ((1000.0 * max_bw) / (frame_rate * bits)).floor() as usize
}

/// Typed access to a JSON config object, with errors naming the file and key.
struct Json<'a> {
    obj: &'a serde_json::Map<String, serde_json::Value>,
    source: &'a str,
}

impl Json<'_> {
    fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn err(&self, key: &str, what: &str) -> Error {
        Error::config(self.source, format!("{key} must be {what}"))
    }

    fn usize_or(&self, key: &str, default: usize) -> Result<usize> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .map(|x| x as usize)
                .ok_or_else(|| self.err(key, "a non-negative integer")),
        }
    }

    fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.err(key, "true or false")),
        }
    }

    fn float(&self, key: &str) -> Result<Option<f64>> {
        self.get(key)
            .map(|v| v.as_f64().ok_or_else(|| self.err(key, "a number")))
            .transpose()
    }

    fn floats(&self, key: &str) -> Result<Option<Vec<f64>>> {
        self.get(key)
            .map(|v| {
                v.as_array()
                    .and_then(|a| a.iter().map(|x| x.as_f64()).collect::<Option<Vec<_>>>())
                    .ok_or_else(|| self.err(key, "a list of numbers"))
            })
            .transpose()
    }

    fn usizes(&self, key: &str) -> Result<Option<Vec<usize>>> {
        self.get(key)
            .map(|v| {
                v.as_array()
                    .and_then(|a| {
                        a.iter()
                            .map(|x| x.as_u64().map(|x| x as usize))
                            .collect::<Option<Vec<_>>>()
                    })
                    .ok_or_else(|| self.err(key, "a list of non-negative integers"))
            })
            .transpose()
    }

    fn norm(&self, key: &str) -> Result<Option<ConvNorm>> {
        self.get(key)
            .map(|v| match v.as_str() {
                Some("weight_norm") => Ok(ConvNorm::WeightNorm),
                Some("time_group_norm") => Ok(ConvNorm::TimeGroupNorm),
                Some("none") => Ok(ConvNorm::None),
                _ => Err(self.err(key, "weight_norm, time_group_norm or none")),
            })
            .transpose()
    }

    fn pad_mode(&self, key: &str) -> Result<Option<PadMode>> {
        self.get(key)
            .map(|v| match v.as_str() {
                Some("reflect") => Ok(PadMode::Reflect),
                Some("constant") | Some("zero") => Ok(PadMode::Zero),
                _ => Err(self.err(key, "reflect or constant")),
            })
            .transpose()
    }
}

/// Whether a state dict uses the transformers layout (`encoder.layers.*`, ...).
pub fn is_hf_layout(state: &StateDict) -> bool {
    state.tensors.keys().any(|k| {
        k.starts_with("encoder.layers.")
            || k.starts_with("decoder.layers.")
            || k.starts_with("quantizer.layers.")
    })
}

/// The original package's name of a transformers-layout key, or `None` when the key is not one
/// of the transformers `EncodecModel`'s (it is then kept as it is).
///
/// `upsampling` lists the decoder layer indices holding transposed convolutions; see
/// [`hf_decoder_upsampling_layers`]. The renaming (after transformers'
/// `convert_encodec_checkpoint_to_pytorch.py`, read backwards):
///
/// | transformers | original |
/// |---|---|
/// | `{encoder,decoder}.layers.I.conv.*` | `….model.I.conv.conv.*` (`convtr.convtr.*` for upsampling) |
/// | `{encoder,decoder}.layers.I.norm.*` | `….model.I.conv.norm.*` (`convtr.norm.*`) |
/// | `….layers.I.block.J.{conv,norm}.*` | `….model.I.block.J.conv.{conv,norm}.*` |
/// | `….layers.I.shortcut.{conv,norm}.*` | `….model.I.shortcut.conv.{conv,norm}.*` |
/// | `….layers.I.lstm.*` | `….model.I.lstm.*` |
/// | `quantizer.layers.N.codebook.*` | `quantizer.vq.layers.N._codebook.*` |
pub fn hf_key_to_original(key: &str, upsampling: &[usize]) -> Option<String> {
    if let Some(rest) = key.strip_prefix("quantizer.layers.") {
        let (n, rest) = rest.split_once('.')?;
        let rest = rest.strip_prefix("codebook.")?;
        return Some(format!("quantizer.vq.layers.{n}._codebook.{rest}"));
    }
    hf_seanet_key_to_original(key, upsampling)
}

/// Rename a transformers-layout state dict to the original package's layout (a no-op for one
/// already in it).
pub fn map_hf_keys(state: StateDict) -> StateDict {
    if !is_hf_layout(&state) {
        return state;
    }
    let upsampling = hf_decoder_upsampling_layers(state.tensors.keys());
    let tensors = state
        .tensors
        .into_iter()
        .map(|(k, v)| (hf_key_to_original(&k, &upsampling).unwrap_or(k), v))
        .collect();
    StateDict {
        source: state.source,
        tensors,
    }
}

/// Keep only the inference weights (original layout), fold weight norm, f32.
///
/// The result is what `codec convert` writes, and what [`Encodec::load`] consumes.
pub fn inference_weights(state: StateDict) -> Result<StateDict> {
    let mut state = map_hf_keys(state);
    state.retain(|k| {
        let model = [ENCODER, DECODER, QUANTIZER]
            .iter()
            .any(|p| k.starts_with(&format!("{p}.")));
        // k-means/EMA statistics of the codebooks are training state.
        let stats =
            k.ends_with(".cluster_size") || k.ends_with(".embed_avg") || k.ends_with(".inited");
        model && !stats
    });
    state.fold_weight_norm()?;
    state.to_dtype(DType::F32)?;
    Ok(state)
}

/// Whether a `config.json` is EnCodec's: a transformers `EncodecConfig`
/// (`"model_type": "encodec"`) or the package's arguments (`target_bandwidths` with `n_q` or
/// `bins`, see [`EncodecConfig::from_reference_json`]).
pub fn is_reference_config(text: &str) -> bool {
    let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(text) else {
        return false;
    };
    match obj.get("model_type").and_then(|m| m.as_str()) {
        Some(model_type) => model_type == "encodec",
        None => {
            obj.contains_key("target_bandwidths")
                && (obj.contains_key("n_q") || obj.contains_key("bins"))
        }
    }
}

/// Whether a state dict looks like an EnCodec model, in either layout.
pub fn looks_like_encodec(state: &StateDict) -> bool {
    let has = |p: &str| state.tensors.keys().any(|k| k.starts_with(p));
    (has("encoder.model.") && has("decoder.model.") && has("quantizer.vq.layers."))
        || (has("encoder.layers.") && has("decoder.layers.") && has("quantizer.layers."))
}

/// The published architecture whose shapes a checkpoint has, for a checkpoint given without a
/// config (the sample rate and segmenting cannot be read off the weights).
pub fn infer_config(state: &StateDict) -> Result<EncodecConfig> {
    let state = inference_weights(state.clone())?;
    let src = state.source.as_str();
    let dims = |k: &str| state.tensors.get(k).map(|t| t.dims().to_vec());
    let first = dims("encoder.model.0.conv.conv.weight");
    let embed = dims(&format!("{QUANTIZER}.layers.0._codebook.embed"));
    let n_q = (0..)
        .take_while(|i| {
            state
                .tensors
                .contains_key(&format!("{QUANTIZER}.layers.{i}._codebook.embed"))
        })
        .count();
    let group_norm = state
        .tensors
        .contains_key("encoder.model.0.conv.norm.weight");
    for cfg in [
        EncodecConfig::encodec_24khz(),
        EncodecConfig::encodec_48khz(),
    ] {
        let s = &cfg.seanet;
        let fits = first.as_deref() == Some(&[s.n_filters, s.channels, s.kernel_size][..])
            && embed.as_deref() == Some(&[cfg.codebook_size, s.dimension][..])
            && n_q == cfg.num_quantizers
            && group_norm == (s.norm == ConvNorm::TimeGroupNorm);
        if fits {
            return Ok(cfg);
        }
    }
    Err(Error::config(
        src,
        format!(
            "the weights (first conv {first:?}, codebooks {n_q} x {embed:?}, group norm: \
             {group_norm}) match neither published EnCodec model; put a config.json beside them"
        ),
    ))
}

/// A loaded EnCodec model.
///
/// # Streaming
///
/// A model whose config [can stream](EncodecConfig::can_stream) (the 24 kHz one) hands out
/// [`StreamingEncoder`]s and [`StreamingDecoder`]s with frames of 320 samples, built from the
/// same weights as streaming layers ([`StreamingSeanetEncoder`], with the LSTM's state carried
/// between pieces). The reference `encodec` package has no streaming mode; the paper puts all
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
pub struct Encodec {
    info: CodecInfo,
    config: EncodecConfig,
    device: Device,
    encoder: SeanetEncoder,
    quantizer: ResidualVq,
    decoder: SeanetDecoder,
    /// The streaming encoder and decoder stacks (fresh state), for a model that can stream.
    streaming: Option<(StreamingSeanetEncoder, StreamingSeanetDecoder)>,
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
        config.validate(name)?;
        let state = inference_weights(state)?;
        let fingerprint = fingerprint(&state.tensors)?;
        let source = state.source.clone();
        let all_keys: Vec<String> = state.tensors.keys().cloned().collect();
        let (backend, used) = TrackingBackend::new(state.tensors);
        let vb = VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone());
        let wrap = |e: candle_core::Error| Error::weights(&source, e.to_string());
        let encoder = SeanetEncoder::new(&config.seanet, vb.pp(ENCODER)).map_err(wrap)?;
        let quantizer = ResidualVq::new(
            config.num_quantizers,
            config.codebook_size,
            config.seanet.dimension,
            vb.pp(QUANTIZER),
        )
        .map_err(wrap)?;
        let decoder = SeanetDecoder::new(&config.seanet, config.trim_right_ratio, vb.pp(DECODER))
            .map_err(wrap)?;
        let streaming = if config.can_stream() {
            Some((
                StreamingSeanetEncoder::new(&config.seanet, vb.pp(ENCODER)).map_err(wrap)?,
                StreamingSeanetDecoder::new(&config.seanet, vb.pp(DECODER)).map_err(wrap)?,
            ))
        } else {
            None
        };
        let used = used.lock().expect("poisoned key set").clone();
        let mut unused: Vec<String> = all_keys.into_iter().filter(|k| !used.contains(k)).collect();
        unused.sort();
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
            encoder,
            quantizer,
            decoder,
            streaming,
        };
        Ok((model, unused))
    }

    pub fn config(&self) -> &EncodecConfig {
        &self.config
    }

    /// Audio `[batch, channels, samples]` → encoder latent `[batch, dimension, frames]` (no
    /// segmenting or normalisation).
    pub fn encode_latent(&self, audio: &Tensor) -> Result<Tensor> {
        Ok(self.encoder.forward(audio)?)
    }

    /// The streaming SEANet encoder (audio → latent, fresh state) of a model that can stream:
    /// what [`Codec::streaming_encoder`] runs before the quantizer.
    pub fn streaming_latent_encoder(&self) -> Option<StreamingSeanetEncoder> {
        self.streaming.as_ref().map(|(e, _)| e.clone())
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
            return Err(Error::InvalidAudio(format!(
                "EnCodec model {} takes audio shaped [batch, {c}, samples] with samples > 0, got {dims:?}",
                self.info.name
            )));
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
        let n_q = options.num_codebooks.unwrap_or(self.config.num_quantizers);
        if n_q == 0 || n_q > self.config.num_quantizers {
            return Err(Error::InvalidCodes(format!(
                "{n_q} codebooks requested, model {} has 1 to {}",
                self.info.name, self.config.num_quantizers
            )));
        }
        Ok(n_q)
    }
}

impl StreamCodes for Encodec {
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
        .ok_or_else(|| Error::InvalidCodes("no segments to decode".into()))?;
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
            return Err(Error::InvalidCodes(format!(
                "segment {i} ({len} samples) is longer than the first ({first_len})"
            )));
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
                    return Err(Error::InvalidCodes(format!(
                        "{total} frames make {} segments, which need scales shaped [{batch}, {}], got {:?}",
                        split.len(),
                        split.len(),
                        s.dims()
                    )));
                }
                Some(s.to_device(&self.device)?.to_dtype(DType::F32)?)
            }
            (None, true) => {
                return Err(Error::InvalidCodes(format!(
                    "model {} normalises its input: decoding needs the per-segment scales \
                     (CodeStreams::scales, a token file's scales)",
                    self.info.name
                )))
            }
            (Some(_), false) => {
                return Err(Error::InvalidCodes(format!(
                    "model {} does not use per-segment scales, but scales were given",
                    self.info.name
                )))
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
        self.streaming.is_some()
    }

    fn streaming_encoder(
        &self,
        batch: usize,
        options: &EncodeOptions,
    ) -> Result<Box<dyn StreamingEncoder + '_>> {
        let Some((encoder, _)) = &self.streaming else {
            return Err(crate::codec::not_streaming(&self.info));
        };
        let n_q = self.num_codebooks(options)?;
        Ok(Box::new(StackEncoder::new(
            self,
            encoder.clone(),
            batch,
            n_q,
        )))
    }

    fn streaming_decoder(&self, batch: usize) -> Result<Box<dyn StreamingDecoder + '_>> {
        let Some((_, decoder)) = &self.streaming else {
            return Err(crate::codec::not_streaming(&self.info));
        };
        Ok(Box::new(StackDecoder::new(self, decoder.clone(), batch)))
    }
}

/// The encodec family.
pub struct EncodecFamily;

/// The registry's entry for this family.
pub static FAMILY: EncodecFamily = EncodecFamily;

impl Family for EncodecFamily {
    fn name(&self) -> &'static str {
        "encodec"
    }

    fn weights_score(&self, weights: &StateDict) -> Score {
        if looks_like_encodec(weights) {
            Score::SHARED_LAYOUT
        } else {
            Score::NONE
        }
    }

    fn config_score(&self, text: &str) -> Score {
        if is_reference_config(text) {
            Score::SHARED_LAYOUT
        } else {
            Score::NONE
        }
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
        let config: EncodecConfig = arch.read(
            name,
            &weights,
            EncodecConfig::from_reference_json,
            infer_config,
        )?;
        let (model, unused) = Encodec::load(&config, weights, name, device)?;
        Ok(Loaded::new(model, unused))
    }

    fn check_card(&self, card: &ModelCard) -> Result<()> {
        let cfg: EncodecConfig = architecture(&card.architecture, &card.name)?;
        cfg.validate(&card.name)?;
        // Every bandwidth is the bitrate of a prefix of the codebooks.
        for &kbps in &cfg.bandwidths {
            let n = cfg.codebooks_for_bandwidth(kbps);
            let bits = cfg.frame_rate() * n as f64 * (cfg.codebook_size as f64).log2();
            if (bits - kbps * 1000.0).abs() > 1e-6 {
                return Err(Error::config(
                    &card.name,
                    format!("{kbps} kbit/s is not the bitrate of a whole number of codebooks"),
                ));
            }
        }
        CardFacts {
            sample_rate: cfg.sample_rate,
            frame_rate: cfg.frame_rate(),
            codebooks: Some(vec![cfg.codebook_size as u32; cfg.num_quantizers]),
            codebook_frame_rates: None,
        }
        .check(card)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

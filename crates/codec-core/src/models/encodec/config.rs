//! EnCodec's architecture: the reference's `_get_model` arguments, a transformers
//! `config.json`, or a card.

use serde::{Deserialize, Serialize};

use crate::error::CodesProblem;
use crate::models::CardFacts;
use crate::nn::seanet::SeanetConfig;
use crate::nn::{ConvNorm, PadMode};
use crate::{Error, Result};

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
    /// Sample rate in Hz.
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
            bidirectional_lstm: false,
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

    /// Whether the model can stream (see [`Encodec`](super::Encodec)'s streaming section): a causal SEANet
    /// without group norm, the whole clip as one segment, no normalisation, and transposed
    /// convolutions trimmed on the right only.
    pub fn can_stream(&self) -> bool {
        crate::nn::seanet::can_stream(&self.seanet)
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
        let bad = |problem: String| {
            Err(Error::InvalidCodes(CodesProblem::Segments {
                frames: total_frames,
                problem,
            }))
        };
        if total_frames == 0 {
            return Err(Error::InvalidCodes(CodesProblem::NoFrames));
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
                "no whole number of segments of this model (a clip of {shortest} samples gives \
                 {})",
                total(shortest)
            ));
        }
        let longest = first_at_least(total_frames + 1) - 1;
        let split = self.frames_per_segment(shortest);
        if self.frames_per_segment(longest) != split {
            return bad("they split into segments in more than one way".into());
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
            bidirectional_lstm: false,
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
            bidirectional_lstm: false,
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

impl EncodecConfig {
    /// Validate the config (errors name `source`) and say what a card of it must state.
    pub fn card_facts(&self, source: &str) -> Result<CardFacts> {
        self.validate(source)?;
        // Every bandwidth is the bitrate of a prefix of the codebooks.
        for &kbps in &self.bandwidths {
            let n = self.codebooks_for_bandwidth(kbps);
            let bits = self.frame_rate() * n as f64 * (self.codebook_size as f64).log2();
            if (bits - kbps * 1000.0).abs() > 1e-6 {
                return Err(Error::config(
                    source,
                    format!("{kbps} kbit/s is not the bitrate of a whole number of codebooks"),
                ));
            }
        }
        Ok(CardFacts {
            sample_rate: self.sample_rate,
            frame_rate: self.frame_rate(),
            codebooks: Some(vec![self.codebook_size as u32; self.num_quantizers]),
            codebook_frame_rates: None,
        })
    }
}

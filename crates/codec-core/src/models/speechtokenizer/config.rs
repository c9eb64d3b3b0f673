//! SpeechTokenizer's architecture: the reference's `config.json` (the fields
//! `SpeechTokenizer.__init__` reads) or a card.

use serde::{Deserialize, Serialize};

use crate::models::CardFacts;
use crate::nn::seanet::SeanetConfig;
use crate::nn::{ConvNorm, PadMode};
use crate::{Error, Result};

/// Largest values a config may give, so that a corrupt file cannot size a runaway model
/// (the published model uses 64 filters, 1024 dimensions, 8 x 1024 codebooks).
const MAX_CHANNELS: usize = 1 << 14;
const MAX_QUANTIZERS: usize = 64;
const MAX_CODEBOOK: usize = 1 << 20;
const MAX_LAYERS: usize = 16;

/// Architecture of a SpeechTokenizer model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeechTokenizerConfig {
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// The SEANet encoder (`bidirectional_lstm` set for the published model); the decoder
    /// mirrors it with a unidirectional LSTM, as the reference builds it.
    pub seanet: SeanetConfig,
    /// Width of the distillation head (`transform`, HuBERT's width): a Linear from
    /// `seanet.dimension` to this, or none when the two are equal (the reference's
    /// `nn.Identity`).
    pub semantic_dimension: usize,
    /// Entries per codebook.
    pub codebook_size: usize,
    /// Codebooks of the residual VQ.
    pub num_quantizers: usize,
}

impl SpeechTokenizerConfig {
    /// The SEANet the reference builds from its config (the `SEANetEncoder` defaults for
    /// everything the config does not name).
    fn seanet(n_filters: usize, dimension: usize, ratios: Vec<usize>) -> SeanetConfig {
        SeanetConfig {
            channels: 1,
            dimension,
            n_filters,
            n_residual_layers: 1,
            ratios,
            kernel_size: 7,
            residual_kernel_size: 3,
            last_kernel_size: 7,
            dilation_base: 2,
            causal: false,
            pad_mode: PadMode::Reflect,
            true_skip: false,
            compress: 2,
            lstm: 2,
            bidirectional_lstm: true,
            norm: ConvNorm::WeightNorm,
        }
    }

    /// The published `speechtokenizer_hubert_avg` model (hub `fnlp/SpeechTokenizer`): 16 kHz,
    /// 50 frames/s, 8 codebooks of 1024 entries, 1024-dim latents, a 768-wide semantic head.
    pub fn speechtokenizer_hubert_avg() -> Self {
        Self {
            sample_rate: 16000,
            seanet: Self::seanet(64, 1024, vec![8, 5, 4, 2]),
            semantic_dimension: 768,
            codebook_size: 1024,
            num_quantizers: 8,
        }
    }

    /// Samples per frame.
    pub fn hop_length(&self) -> usize {
        self.seanet.hop_length()
    }

    /// Frames per second.
    pub fn frame_rate(&self) -> f64 {
        self.sample_rate as f64 / self.hop_length() as f64
    }

    /// The config from the reference's `config.json`: the fields `SpeechTokenizer.__init__`
    /// reads (`n_filters`, `strides`, `dimension`, `semantic_dimension`, `bidirectional`,
    /// `dilation_base`, `residual_kernel_size`, `n_residual_layers`, `lstm_layers`,
    /// `activation`, `codebook_size`, `n_q`, `sample_rate`), every one required as the
    /// reference requires it. The published file also holds training settings, which are
    /// ignored.
    pub fn from_reference_json(text: &str, source: &str) -> Result<Self> {
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::config(source, e.to_string()))?;
        let field = |key: &str| {
            json.get(key)
                .ok_or_else(|| Error::config(source, format!("`{key}` is missing")))
        };
        let int = |key: &str| -> Result<usize> {
            field(key)?
                .as_u64()
                .map(|v| v as usize)
                .ok_or_else(|| Error::config(source, format!("`{key}` must be a whole number")))
        };
        let activation = field("activation")?.as_str().unwrap_or_default();
        if activation != "ELU" {
            return Err(Error::config(
                source,
                format!("activation {activation:?}: only the published ELU is supported"),
            ));
        }
        let ratios = field("strides")?
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|v| v.as_u64().map(|v| v as usize))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| Error::config(source, "`strides` must be a list of whole numbers"))?;
        let bidirectional = field("bidirectional")?
            .as_bool()
            .ok_or_else(|| Error::config(source, "`bidirectional` must be true or false"))?;
        let mut seanet = Self::seanet(int("n_filters")?, int("dimension")?, ratios);
        seanet.bidirectional_lstm = bidirectional;
        seanet.dilation_base = int("dilation_base")?;
        seanet.residual_kernel_size = int("residual_kernel_size")?;
        seanet.n_residual_layers = int("n_residual_layers")?;
        seanet.lstm = int("lstm_layers")?;
        let sample_rate = u32::try_from(int("sample_rate")?)
            .map_err(|_| Error::config(source, "`sample_rate` is out of range"))?;
        let config = Self {
            sample_rate,
            seanet,
            semantic_dimension: int("semantic_dimension")?,
            codebook_size: int("codebook_size")?,
            num_quantizers: int("n_q")?,
        };
        config.validate(source)?;
        Ok(config)
    }

    /// Check that the values are usable and within bounds.
    pub fn validate(&self, source: &str) -> Result<()> {
        let bad = |m: String| Err(Error::config(source, m));
        let s = &self.seanet;
        if self.sample_rate == 0 || s.ratios.is_empty() || s.ratios.contains(&0) {
            return bad("sample_rate and strides must be positive and non-empty".into());
        }
        if s.channels != 1 {
            return bad(format!(
                "SpeechTokenizer is mono, not {} channels",
                s.channels
            ));
        }
        let widths = [s.n_filters, s.dimension, self.semantic_dimension];
        if widths.iter().any(|&w| w == 0 || w > MAX_CHANNELS) || s.compress == 0 {
            return bad(format!(
                "n_filters, dimension and semantic_dimension must be in 1..={MAX_CHANNELS}"
            ));
        }
        let deep = s.n_filters.checked_shl(s.ratios.len() as u32);
        if s.ratios.len() > MAX_LAYERS || deep.is_none_or(|c| c > MAX_CHANNELS) {
            return bad(format!(
                "{} strides double {} filters past {MAX_CHANNELS} channels",
                s.ratios.len(),
                s.n_filters
            ));
        }
        if s.lstm > MAX_LAYERS || s.n_residual_layers > MAX_LAYERS {
            return bad(format!(
                "lstm_layers and n_residual_layers must be at most {MAX_LAYERS}"
            ));
        }
        if !(1..=MAX_QUANTIZERS).contains(&self.num_quantizers)
            || !(2..=MAX_CODEBOOK).contains(&self.codebook_size)
        {
            return bad(format!(
                "n_q must be in 1..={MAX_QUANTIZERS} and codebook_size in 2..={MAX_CODEBOOK}"
            ));
        }
        if s.causal {
            return bad("SpeechTokenizer's SEANet is non-causal".into());
        }
        Ok(())
    }

    /// Validate the config (errors name `source`) and say what a card of it must state.
    pub fn card_facts(&self, source: &str) -> Result<CardFacts> {
        self.validate(source)?;
        Ok(CardFacts {
            sample_rate: self.sample_rate,
            frame_rate: self.frame_rate(),
            codebooks: Some(vec![self.codebook_size as u32; self.num_quantizers]),
            codebook_frame_rates: None,
        })
    }
}

/// Whether a `config.json` is SpeechTokenizer's: its model fields `semantic_dimension`,
/// `strides` and `n_q`.
pub fn is_reference_config(text: &str) -> bool {
    let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(text) else {
        return false;
    };
    ["semantic_dimension", "strides", "n_q"]
        .iter()
        .all(|k| obj.contains_key(*k))
}

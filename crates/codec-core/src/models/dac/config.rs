//! DAC's architecture: the arguments of `dac.model.DAC`, a transformers `DacConfig`, or a card.

use serde::{Deserialize, Serialize};

use crate::models::CardFacts;
use crate::{Error, Result};

/// Architecture of a DAC model: the arguments of `dac.model.DAC` (less training-only ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DacConfig {
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channels of the encoder's first convolution.
    pub encoder_dim: usize,
    /// Downsampling factor of each encoder block.
    pub encoder_rates: Vec<usize>,
    /// Latent channels; `encoder_dim * 2^len(encoder_rates)` when absent (as in the reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent_dim: Option<usize>,
    /// Channels of the decoder's first convolution.
    pub decoder_dim: usize,
    /// Upsampling factor of each decoder block.
    pub decoder_rates: Vec<usize>,
    /// Codebooks of the residual quantizer.
    pub n_codebooks: usize,
    /// Entries per codebook.
    pub codebook_size: usize,
    /// Dimensions of the factorised codebook space.
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

    /// Latent channels: `latent_dim`, or `encoder_dim * 2^len(encoder_rates)`.
    pub fn latent_dim(&self) -> usize {
        self.latent_dim
            .unwrap_or(self.encoder_dim << self.encoder_rates.len())
    }

    /// Samples per code frame.
    pub fn hop_length(&self) -> usize {
        self.encoder_rates.iter().product()
    }

    /// Code frames per second.
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

impl DacConfig {
    /// Validate the config (errors name `source`) and say what a card of it must state.
    pub fn card_facts(&self, source: &str) -> Result<CardFacts> {
        self.validate(source)?;
        Ok(CardFacts {
            sample_rate: self.sample_rate,
            frame_rate: self.frame_rate(),
            codebooks: Some(vec![self.codebook_size as u32; self.n_codebooks]),
            codebook_frame_rates: None,
        })
    }
}

//! SNAC's architecture: the arguments of `snac.SNAC` (its `config.json`), or a card.

use serde::{Deserialize, Serialize};

use crate::models::CardFacts;
use crate::{Error, Result};

/// Architecture of a SNAC model: the arguments of `snac.SNAC` (its `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnacConfig {
    /// Sample rate in Hz.
    #[serde(alias = "sampling_rate")]
    pub sample_rate: u32,
    /// Channels of the encoder's first convolution.
    pub encoder_dim: usize,
    /// Downsampling factor of each encoder block.
    pub encoder_rates: Vec<usize>,
    /// Latent channels; `encoder_dim * 2^len(encoder_rates)` when absent. The reference's
    /// encoder always produces that many, so any other value is rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent_dim: Option<usize>,
    /// Channels of the decoder's first convolution.
    pub decoder_dim: usize,
    /// Upsampling factor of each decoder block.
    pub decoder_rates: Vec<usize>,
    /// Window of the local attention after the encoder and before the decoder blocks; no
    /// attention when absent (`null` in the reference's JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attn_window_size: Option<usize>,
    /// Entries per codebook.
    pub codebook_size: usize,
    /// Dimensions of the factorised codebook space.
    pub codebook_dim: usize,
    /// Temporal stride of each codebook, coarsest first.
    pub vq_strides: Vec<usize>,
    /// Noise blocks in the decoder.
    pub noise: bool,
    /// Depthwise residual convolutions and in/out convolutions.
    pub depthwise: bool,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl SnacConfig {
    /// The published 24 kHz speech model (`hubertsiuzdak/snac_24khz`): 12, 23 and 47 Hz
    /// codebooks, 0.98 kbit/s, no attention.
    pub fn snac_24khz() -> Self {
        Self {
            sample_rate: 24000,
            encoder_dim: 48,
            encoder_rates: vec![2, 4, 8, 8],
            latent_dim: None,
            decoder_dim: 1024,
            decoder_rates: vec![8, 8, 4, 2],
            attn_window_size: None,
            codebook_size: 4096,
            codebook_dim: 8,
            vq_strides: vec![4, 2, 1],
            noise: true,
            depthwise: true,
        }
    }

    fn music(sample_rate: u32) -> Self {
        Self {
            sample_rate,
            encoder_dim: 64,
            encoder_rates: vec![2, 3, 8, 8],
            latent_dim: None,
            decoder_dim: 1536,
            decoder_rates: vec![8, 8, 3, 2],
            attn_window_size: Some(32),
            codebook_size: 4096,
            codebook_dim: 8,
            vq_strides: vec![8, 4, 2, 1],
            noise: true,
            depthwise: true,
        }
    }

    /// The published 32 kHz music and sound model (`hubertsiuzdak/snac_32khz`): 10, 21, 42 and
    /// 83 Hz codebooks, 1.9 kbit/s.
    pub fn snac_32khz() -> Self {
        Self::music(32000)
    }

    /// The published 44.1 kHz music and sound model (`hubertsiuzdak/snac_44khz`): 14, 29, 57
    /// and 115 Hz codebooks, 2.6 kbit/s.
    pub fn snac_44khz() -> Self {
        Self::music(44100)
    }

    /// The three published variants (24, 32, 44.1 kHz).
    pub fn published_configs() -> Vec<Self> {
        vec![Self::snac_24khz(), Self::snac_32khz(), Self::snac_44khz()]
    }

    /// Latent channels: `latent_dim`, or `encoder_dim * 2^len(encoder_rates)`.
    pub fn latent_dim(&self) -> usize {
        self.latent_dim
            .unwrap_or(self.encoder_dim << self.encoder_rates.len())
    }

    /// Samples per frame of the finest codebook (the latent rate).
    pub fn hop_length(&self) -> usize {
        self.encoder_rates.iter().product()
    }

    /// Frames per second of the finest codebook.
    pub fn frame_rate(&self) -> f64 {
        self.sample_rate as f64 / self.hop_length() as f64
    }

    /// Frames per second of each codebook, coarsest first.
    pub fn codebook_frame_rates(&self) -> Vec<f64> {
        self.vq_strides
            .iter()
            .map(|&s| self.frame_rate() / s as f64)
            .collect()
    }

    /// Latent frames must be a multiple of this: `lcm(first stride, attention window)`.
    pub fn frame_multiple(&self) -> usize {
        let s = self.vq_strides.first().copied().unwrap_or(1);
        let w = self.attn_window_size.unwrap_or(1);
        s / gcd(s, w) * w
    }

    /// Input samples must be a multiple of this (the reference's `preprocess` pads to it).
    pub fn pad_multiple(&self) -> usize {
        self.hop_length() * self.frame_multiple()
    }

    /// Read the reference's `config.json` (the `SNAC(**config)` arguments).
    pub fn from_reference_json(text: &str, source: &str) -> Result<Self> {
        let cfg: Self = serde_json::from_str(text)
            .map_err(|e| Error::config(source, format!("not a SNAC config: {e}")))?;
        cfg.validate(source)?;
        Ok(cfg)
    }

    /// Check that the parts agree with each other.
    pub fn validate(&self, source: &str) -> Result<()> {
        let bad = |m: String| Err(Error::config(source, m));
        if self.sample_rate == 0
            || self.encoder_dim == 0
            || self.decoder_dim == 0
            || self.codebook_size == 0
            || self.codebook_dim == 0
        {
            return bad("sizes and the sample rate must be positive".into());
        }
        if self.encoder_rates.is_empty() || self.encoder_rates.contains(&0) {
            return bad("encoder_rates must be a non-empty list of positive strides".into());
        }
        if self.decoder_rates.is_empty() || self.decoder_rates.contains(&0) {
            return bad("decoder_rates must be a non-empty list of positive strides".into());
        }
        if self.vq_strides.is_empty() || self.vq_strides.contains(&0) {
            return bad("vq_strides must be a non-empty list of positive strides".into());
        }
        if self
            .vq_strides
            .iter()
            .any(|&s| !self.frame_multiple().is_multiple_of(s))
        {
            return bad(format!(
                "every vq stride must divide the first ({:?})",
                self.vq_strides
            ));
        }
        let up: usize = self.decoder_rates.iter().product();
        if up != self.hop_length() {
            return bad(format!(
                "decoder_rates upsample by {up}, encoder_rates downsample by {}",
                self.hop_length()
            ));
        }
        if self.latent_dim() != self.encoder_dim << self.encoder_rates.len() {
            return bad(format!(
                "latent_dim {} differs from the encoder's {} channels",
                self.latent_dim(),
                self.encoder_dim << self.encoder_rates.len()
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
        if let Some(w) = self.attn_window_size {
            let dh = crate::nn::local_attention::DIM_HEAD;
            if w == 0
                || !self.latent_dim().is_multiple_of(dh)
                || !self.decoder_dim.is_multiple_of(dh)
            {
                return bad(format!(
                    "attention needs a positive window and channel counts that are multiples of \
                     {dh} (latent {}, decoder {})",
                    self.latent_dim(),
                    self.decoder_dim
                ));
            }
        }
        Ok(())
    }
}

impl SnacConfig {
    /// Validate the config (errors name `source`) and say what a card of it must state.
    pub fn card_facts(&self, source: &str) -> Result<CardFacts> {
        self.validate(source)?;
        Ok(CardFacts {
            sample_rate: self.sample_rate,
            frame_rate: self.frame_rate(),
            codebooks: Some(vec![self.codebook_size as u32; self.vq_strides.len()]),
            codebook_frame_rates: Some(self.codebook_frame_rates()),
        })
    }
}

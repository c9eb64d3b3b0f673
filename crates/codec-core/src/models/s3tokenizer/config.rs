//! S3Tokenizer's architecture: a card, or the reference package's `ModelConfig` fields.

use serde::{Deserialize, Serialize};

use crate::models::CardFacts;
use crate::{Error, Result};

/// Width of an attention head: the reference's rotary table is built for 64.
pub const HEAD_DIM: usize = 64;
/// FSQ: 8 values of 3 levels each.
pub const CODEBOOK_SIZE: u32 = 6561;

/// Bounds that keep a corrupt config from sizing a runaway model (published: 1280 wide, 20
/// heads, 6 or 12 blocks).
const MAX_WIDTH: usize = 1 << 13;
const MAX_LAYERS: usize = 64;

/// Architecture of an S3Tokenizer v2 / v3 model (`S3TokenizerV2`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3TokenizerConfig {
    /// Sample rate in Hz (16000).
    pub sample_rate: u32,
    /// Mel bands of the front end (`n_mels`, 128).
    pub n_mels: usize,
    /// STFT size of the front end (400).
    pub n_fft: usize,
    /// STFT hop in samples (160: 100 mel frames/s).
    pub hop_length: usize,
    /// Width of the transformer (`n_audio_state`).
    pub d_model: usize,
    /// Attention heads (`n_audio_head`), each 64 wide.
    pub num_heads: usize,
    /// Blocks (`n_audio_layer`).
    pub num_layers: usize,
    /// Kernel of the FSMN memory (31).
    pub fsmn_kernel: usize,
    /// Epsilon of the LayerNorms.
    pub layer_norm_eps: f64,
    /// Longest input encoded in one piece, in mel frames (30 s); longer inputs go in windows of
    /// this many frames.
    pub window_frames: usize,
    /// Mel frames between the starts of consecutive windows (26 s).
    pub window_hop_frames: usize,
}

impl S3TokenizerConfig {
    /// The published `speech_tokenizer_v2_25hz` (CosyVoice 2, Chatterbox): 6 blocks.
    pub fn s3tokenizer_v2() -> Self {
        Self {
            sample_rate: 16000,
            n_mels: 128,
            n_fft: 400,
            hop_length: 160,
            d_model: 1280,
            num_heads: 20,
            num_layers: 6,
            fsmn_kernel: 31,
            layer_norm_eps: 1e-5,
            window_frames: 3000,
            window_hop_frames: 2600,
        }
    }

    /// The published `speech_tokenizer_v3_25hz` (CosyVoice 3): the v2 structure with 12 blocks.
    pub fn s3tokenizer_v3() -> Self {
        Self {
            num_layers: 12,
            ..Self::s3tokenizer_v2()
        }
    }

    /// Samples per token: the two stride-2 convolutions over the mel frames.
    pub fn hop_samples(&self) -> usize {
        self.hop_length * 4
    }

    /// Tokens per second.
    pub fn frame_rate(&self) -> f64 {
        self.sample_rate as f64 / self.hop_samples() as f64
    }

    /// Tokens of `mel_frames` mel frames: `L -> (L - 1) / 2 + 1`, twice.
    pub fn tokens_for_mel_frames(mel_frames: usize) -> usize {
        let half = |l: usize| if l == 0 { 0 } else { (l - 1) / 2 + 1 };
        half(half(mel_frames))
    }

    /// Tokens of an utterance of `samples` samples, through the long path past one window
    /// (what [`S3Tokenizer::encode`](super::S3Tokenizer) returns).
    pub fn tokens_for_samples(&self, samples: usize) -> usize {
        let frames = samples / self.hop_length;
        if frames <= self.window_frames {
            return Self::tokens_for_mel_frames(frames);
        }
        let margin = self.merge_margin_tokens();
        let starts: Vec<usize> = (0..frames).step_by(self.window_hop_frames).collect();
        starts
            .iter()
            .enumerate()
            .map(|(i, &start)| {
                let n = Self::tokens_for_mel_frames(self.window_frames.min(frames - start));
                let from = if i == 0 { 0 } else { margin };
                let to = if i + 1 == starts.len() {
                    n
                } else {
                    n.saturating_sub(margin)
                };
                to.saturating_sub(from)
            })
            .sum()
    }

    /// Tokens dropped at each side of a window's overlap with its neighbour when long inputs
    /// are merged (half the overlap: 50 tokens, 2 s).
    pub fn merge_margin_tokens(&self) -> usize {
        (self.window_frames - self.window_hop_frames) / 8
    }

    /// The config from the reference's `ModelConfig` fields, given either as that object or
    /// as `{"name": ..., "config": {...}}` (what the fixtures hold). `n_audio_state`,
    /// `n_audio_head` and `n_audio_layer` are required; a v1 model (`name` with `v1`, or a
    /// 4096-entry codebook) is not supported.
    pub fn from_reference_json(text: &str, source: &str) -> Result<Self> {
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::config(source, e.to_string()))?;
        let name = json.get("name").and_then(|n| n.as_str()).unwrap_or("");
        let fields = json.get("config").unwrap_or(&json);
        let int = |key: &str| -> Result<usize> {
            fields
                .get(key)
                .and_then(|v| v.as_u64())
                .map(|v| v as usize)
                .ok_or_else(|| Error::config(source, format!("`{key}` missing or not a number")))
        };
        let codebook = fields.get("n_codebook_size").and_then(|v| v.as_u64());
        if name.contains("v1") || codebook == Some(4096) {
            return Err(Error::config(
                source,
                "S3Tokenizer v1 (a 4096-entry codebook, absolute positions) is not supported; \
                 v2 and v3 are",
            ));
        }
        let mut config = Self::s3tokenizer_v2();
        config.d_model = int("n_audio_state")?;
        config.num_heads = int("n_audio_head")?;
        config.num_layers = int("n_audio_layer")?;
        if let Some(n_mels) = fields.get("n_mels").and_then(|v| v.as_u64()) {
            config.n_mels = n_mels as usize;
        }
        config.validate(source)?;
        Ok(config)
    }

    /// Check that the values are usable and within bounds.
    pub fn validate(&self, source: &str) -> Result<()> {
        let bad = |m: String| Err(Error::config(source, m));
        if self.sample_rate == 0 || self.hop_length == 0 || self.n_fft < 2 || self.n_mels == 0 {
            return bad("sample_rate, hop_length, n_fft and n_mels must be positive".into());
        }
        if self.n_mels > 1024 || self.n_fft > 1 << 16 {
            return bad("n_mels must be at most 1024 and n_fft at most 65536".into());
        }
        if self.num_heads == 0 || self.d_model != self.num_heads * HEAD_DIM {
            return bad(format!(
                "d_model {} must be num_heads {} x {HEAD_DIM} (the rotary table's width)",
                self.d_model, self.num_heads
            ));
        }
        if self.d_model > MAX_WIDTH || self.num_layers == 0 || self.num_layers > MAX_LAYERS {
            return bad(format!(
                "d_model at most {MAX_WIDTH}, 1 to {MAX_LAYERS} blocks"
            ));
        }
        if self.fsmn_kernel == 0 || self.fsmn_kernel.is_multiple_of(2) || self.fsmn_kernel > 1023 {
            return bad(format!("fsmn_kernel {} must be odd", self.fsmn_kernel));
        }
        // Positions run up to a window's tokens; the rotary table has 2048.
        if self.window_frames == 0
            || self.window_hop_frames == 0
            || self.window_hop_frames > self.window_frames
            || Self::tokens_for_mel_frames(self.window_frames) > 2048
        {
            return bad(format!(
                "window_frames {} (at most 8192) and window_hop_frames {} (1 to window_frames)",
                self.window_frames, self.window_hop_frames
            ));
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps < 1.0) {
            return bad(format!("layer_norm_eps {}", self.layer_norm_eps));
        }
        Ok(())
    }

    /// Validate the config (errors name `source`) and say what a card of it must state.
    pub fn card_facts(&self, source: &str) -> Result<CardFacts> {
        self.validate(source)?;
        Ok(CardFacts {
            sample_rate: self.sample_rate,
            frame_rate: self.frame_rate(),
            codebooks: Some(vec![CODEBOOK_SIZE]),
            codebook_frame_rates: None,
        })
    }
}

/// Whether a `config.json` holds S3Tokenizer's `ModelConfig` (`n_audio_state`, at the top or
/// under `config`).
pub fn is_reference_config(text: &str) -> bool {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(text) else {
        return false;
    };
    let fields = json.get("config").unwrap_or(&json);
    fields.get("n_audio_state").is_some() && fields.get("n_audio_layer").is_some()
}

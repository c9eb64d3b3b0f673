//! S3Tokenizer's architecture: a card, or the reference package's `ModelConfig` fields.

use serde::{Deserialize, Serialize};

use crate::models::CardFacts;
use crate::{Error, Result};

/// Width of an attention head: the reference's rotary table is built for 64.
pub const HEAD_DIM: usize = 64;
/// FSQ: 8 values of 3 levels each.
pub const CODEBOOK_SIZE: u32 = 6561;
/// v1's VQ codebook as published.
pub const V1_CODEBOOK_SIZE: u32 = 4096;
/// Positions in v2's rotary table (`precompute_freqs_cis(64, 1024 * 2)`).
pub const ROTARY_POSITIONS: usize = 2048;

/// Bounds that keep a corrupt config from sizing a runaway model (published: 1280 wide, 20
/// heads, 6 or 12 blocks).
const MAX_WIDTH: usize = 1 << 13;
const MAX_LAYERS: usize = 64;
const MAX_CODEBOOK: u32 = 1 << 16;
const MAX_POSITIONS: usize = 1 << 14;

/// The two S3Tokenizer structures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum S3Variant {
    /// v1 (CosyVoice 1, `S3Tokenizer`): Whisper's encoder (absolute sinusoid positions from the
    /// checkpoint, plain attention) and a Euclidean VQ codebook over the L2-normalised output.
    #[serde(rename = "v1")]
    V1,
    /// v2 (CosyVoice 2, Chatterbox; v3 is this structure with 12 blocks): FSMN memory, rotary
    /// attention, FSQ of 6561 codes.
    #[default]
    #[serde(rename = "v2")]
    V2,
}

fn default_conv1_stride() -> usize {
    2
}

fn default_codebook_size() -> u32 {
    CODEBOOK_SIZE
}

fn default_fsmn_kernel() -> usize {
    31
}

fn default_audio_ctx() -> usize {
    1500
}

/// Architecture of an S3Tokenizer model: v1 (`S3Tokenizer`), v2 / v3 (`S3TokenizerV2`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3TokenizerConfig {
    /// Which structure (`v2` when absent).
    #[serde(default)]
    pub variant: S3Variant,
    /// Stride of the first convolution: 2 (25 tokens/s), or 1 for v1's 50 Hz model.
    #[serde(default = "default_conv1_stride")]
    pub conv1_stride: usize,
    /// Codes: 6561 (v2's FSQ), v1's codebook rows (4096).
    #[serde(default = "default_codebook_size")]
    pub codebook_size: u32,
    /// v1: rows of the absolute position table (`n_audio_ctx`); a window's tokens must fit.
    #[serde(default = "default_audio_ctx")]
    pub audio_ctx: usize,
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
    /// Kernel of the FSMN memory (31; v2 only).
    #[serde(default = "default_fsmn_kernel")]
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
            variant: S3Variant::V2,
            conv1_stride: 2,
            codebook_size: CODEBOOK_SIZE,
            audio_ctx: 1500,
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

    /// The published `speech_tokenizer_v1` (CosyVoice 1): 50 tokens/s of 4096.
    pub fn s3tokenizer_v1_50hz() -> Self {
        Self {
            variant: S3Variant::V1,
            conv1_stride: 1,
            codebook_size: V1_CODEBOOK_SIZE,
            ..Self::s3tokenizer_v2()
        }
    }

    /// The published `speech_tokenizer_v1_25hz` (CosyVoice-300M-25Hz): v1 with a stride-2
    /// first convolution, 25 tokens/s.
    pub fn s3tokenizer_v1_25hz() -> Self {
        Self {
            conv1_stride: 2,
            ..Self::s3tokenizer_v1_50hz()
        }
    }

    /// Samples per token: the two convolutions' strides over the mel frames.
    pub fn hop_samples(&self) -> usize {
        self.hop_length * self.conv1_stride * 2
    }

    /// Tokens per second.
    pub fn frame_rate(&self) -> f64 {
        self.sample_rate as f64 / self.hop_samples() as f64
    }

    /// Tokens of `mel_frames` mel frames: `L -> (L - 1) / s + 1` through each convolution.
    pub fn tokens_for_mel_frames(&self, mel_frames: usize) -> usize {
        conv_frames(self.conv1_frames(mel_frames), 2)
    }

    /// Frames after the first convolution.
    pub fn conv1_frames(&self, mel_frames: usize) -> usize {
        conv_frames(mel_frames, self.conv1_stride)
    }

    /// Positions a window's tokens may reach: v2's rotary table, v1's position rows.
    pub fn max_positions(&self) -> usize {
        match self.variant {
            S3Variant::V1 => self.audio_ctx,
            S3Variant::V2 => ROTARY_POSITIONS,
        }
    }

    /// Tokens of an utterance of `samples` samples, through the long path past one window
    /// (what [`S3Tokenizer::encode`](super::S3Tokenizer) returns).
    pub fn tokens_for_samples(&self, samples: usize) -> usize {
        let frames = samples / self.hop_length;
        if frames <= self.window_frames {
            return self.tokens_for_mel_frames(frames);
        }
        let margin = self.merge_margin_tokens();
        let starts: Vec<usize> = (0..frames).step_by(self.window_hop_frames).collect();
        starts
            .iter()
            .enumerate()
            .map(|(i, &start)| {
                let n = self.tokens_for_mel_frames(self.window_frames.min(frames - start));
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
    /// are merged (half the overlap, 2 s: 50 tokens at 25 Hz, 100 at 50 Hz).
    pub fn merge_margin_tokens(&self) -> usize {
        (self.window_frames - self.window_hop_frames) / 2 / (self.conv1_stride * 2)
    }

    /// The config from the reference's `ModelConfig` fields, given either as that object or
    /// as `{"name": ..., "config": {...}}` (what the fixtures hold). `n_audio_state`,
    /// `n_audio_head` and `n_audio_layer` are required. A v1 model (`name` with `v1`) takes
    /// its first convolution's stride from the name as the reference does (2 for
    /// `speech_tokenizer_v1_25hz`, else 1), its codebook from `n_codebook_size`.
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
        let v1 = name.contains("v1");
        if !v1 && codebook == Some(V1_CODEBOOK_SIZE as u64) {
            return Err(Error::config(
                source,
                "a 4096-entry codebook is S3Tokenizer v1's, whose first convolution's stride \
                 only its `name` tells (speech_tokenizer_v1: 50 Hz, speech_tokenizer_v1_25hz: \
                 25 Hz): give the name",
            ));
        }
        let mut config = if !v1 {
            Self::s3tokenizer_v2()
        } else if name == "speech_tokenizer_v1_25hz" {
            Self::s3tokenizer_v1_25hz()
        } else {
            Self::s3tokenizer_v1_50hz()
        };
        if v1 {
            if let Some(size) = codebook {
                config.codebook_size = u32::try_from(size).unwrap_or(u32::MAX);
            }
            if let Some(ctx) = fields.get("n_audio_ctx").and_then(|v| v.as_u64()) {
                config.audio_ctx = usize::try_from(ctx).unwrap_or(usize::MAX);
            }
        }
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
                "d_model {} must be num_heads {} x {HEAD_DIM} (the published head width)",
                self.d_model, self.num_heads
            ));
        }
        if !matches!(self.conv1_stride, 1 | 2) {
            return bad(format!("conv1_stride {} must be 1 or 2", self.conv1_stride));
        }
        match self.variant {
            S3Variant::V2 if self.codebook_size != CODEBOOK_SIZE || self.conv1_stride != 2 => {
                return bad(format!(
                    "v2 has FSQ's {CODEBOOK_SIZE} codes and conv1_stride 2 (got {} and {})",
                    self.codebook_size, self.conv1_stride
                ));
            }
            S3Variant::V1
                if self.codebook_size < 2
                    || self.codebook_size > MAX_CODEBOOK
                    || self.audio_ctx == 0
                    || self.audio_ctx > MAX_POSITIONS =>
            {
                return bad(format!(
                    "v1 codebook_size {} (2 to {MAX_CODEBOOK}) and audio_ctx {} (1 to \
                     {MAX_POSITIONS})",
                    self.codebook_size, self.audio_ctx
                ));
            }
            _ => {}
        }
        if self.d_model > MAX_WIDTH || self.num_layers == 0 || self.num_layers > MAX_LAYERS {
            return bad(format!(
                "d_model at most {MAX_WIDTH}, 1 to {MAX_LAYERS} blocks"
            ));
        }
        let fsmn_ok = !self.fsmn_kernel.is_multiple_of(2) && self.fsmn_kernel <= 1023;
        if self.variant == S3Variant::V2 && !fsmn_ok {
            return bad(format!("fsmn_kernel {} must be odd", self.fsmn_kernel));
        }
        // Positions run up to a window's tokens.
        if self.window_frames == 0
            || self.window_hop_frames == 0
            || self.window_hop_frames > self.window_frames
            || self.tokens_for_mel_frames(self.window_frames) > self.max_positions()
        {
            return bad(format!(
                "window_frames {} (its tokens within the {} positions) and window_hop_frames {} \
                 (1 to window_frames)",
                self.window_frames,
                self.max_positions(),
                self.window_hop_frames
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
            codebooks: Some(vec![self.codebook_size]),
            codebook_frame_rates: None,
        })
    }
}

/// Frames out of a k3, padding-1 convolution of `stride` over `frames` frames.
fn conv_frames(frames: usize, stride: usize) -> usize {
    if frames == 0 {
        0
    } else {
        (frames - 1) / stride + 1
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

//! The `Codec` trait that every model family implements.

use candle_core::{Device, Tensor};

use crate::Result;

/// Static facts about a loaded codec.
#[derive(Debug, Clone, PartialEq)]
pub struct CodecInfo {
    /// Model name as it appears in token files (the card name, or a name derived from files).
    pub name: String,
    /// Family, e.g. `wavtokenizer`.
    pub family: String,
    /// Sample rate the model consumes and produces, in Hz.
    pub sample_rate: u32,
    /// Audio channels the model consumes and produces.
    pub channels: u16,
    /// Code frames per second (of the finest stream for multi-scale models).
    pub frame_rate: f64,
    /// Size of each codebook (number of entries), in stream order.
    pub codebook_sizes: Vec<u32>,
    /// A fingerprint of the model's inference weights (xxh3-64), recorded in token files.
    pub fingerprint: u64,
}

impl CodecInfo {
    /// Samples per code frame.
    pub fn hop_length(&self) -> usize {
        (self.sample_rate as f64 / self.frame_rate).round() as usize
    }

    /// Bits per second at full codebook use: frames/s × Σ log2(codebook size).
    pub fn bitrate(&self) -> f64 {
        self.frame_rate
            * self
                .codebook_sizes
                .iter()
                .map(|&n| (n as f64).log2())
                .sum::<f64>()
    }
}

/// A neural audio codec: audio to discrete codes and back.
///
/// Shapes are batch-first:
/// - audio: `[batch, channels, samples]`, `f32`, at [`CodecInfo::sample_rate`];
/// - codes: `[batch, codebooks, frames]`, `u32`.
pub trait Codec: Send + Sync {
    /// Facts about the model.
    fn info(&self) -> &CodecInfo;

    /// The device the model's weights live on.
    fn device(&self) -> &Device;

    /// Encode audio `[batch, channels, samples]` into codes `[batch, codebooks, frames]`.
    fn encode(&self, audio: &Tensor) -> Result<Tensor>;

    /// Decode codes `[batch, codebooks, frames]` into audio `[batch, channels, samples]`.
    fn decode(&self, codes: &Tensor) -> Result<Tensor>;
}

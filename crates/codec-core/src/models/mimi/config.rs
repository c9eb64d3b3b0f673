//! Mimi's architecture: moshi's config dict, in a `config.json` or a card.

use serde::{Deserialize, Serialize};

use crate::models::CardFacts;
use crate::nn::moshi_transformer::StreamingTransformerConfig;
use crate::nn::seanet::SeanetConfig;
use crate::nn::{ConvNorm, PadMode};
use crate::{Error, Result};

fn default_one() -> usize {
    1
}

/// The SEANet's activation (moshi's `activation`); Mimi uses ELU with alpha 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// `ELU`.
    #[serde(rename = "ELU")]
    Elu,
}

/// The transformer MLP's gating (moshi's `gating`); Mimi's has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gating {
    /// A plain GELU MLP.
    None,
}

/// The transformer's normalisation (moshi's `norm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransformerNorm {
    /// LayerNorm with bias, eps 1e-5.
    LayerNorm,
}

/// The transformer's positions (moshi's `positional_embedding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionalEmbedding {
    /// Rotary embeddings on queries and keys, interleaved pairs.
    Rope,
}

/// moshi's SEANet arguments (`_seanet_kwargs`), as in a Mimi `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MimiSeanetConfig {
    /// Audio channels (1).
    pub channels: usize,
    /// Latent channels.
    pub dimension: usize,
    /// Causal convolutions (true).
    pub causal: bool,
    /// Channels of the first convolution.
    pub n_filters: usize,
    /// Residual blocks per ratio.
    pub n_residual_layers: usize,
    /// `ELU` (alpha 1), the only one Mimi uses.
    pub activation: Activation,
    /// Channel reduction inside residual blocks.
    pub compress: usize,
    /// Dilation growth between residual blocks.
    pub dilation_base: usize,
    /// Only matters with a normalisation; Mimi has none.
    #[serde(default)]
    pub disable_norm_outer_blocks: usize,
    /// Kernel of the first convolution.
    pub kernel_size: usize,
    /// Kernel of the residual blocks.
    pub residual_kernel_size: usize,
    /// Kernel of the last convolution.
    pub last_kernel_size: usize,
    /// `none` (published) or `weight_norm` (folded at load).
    pub norm: ConvNorm,
    /// `constant` (zeros).
    pub pad_mode: PadMode,
    /// Upsampling ratios as listed; the encoder applies them in reverse.
    pub ratios: Vec<usize>,
    /// Identity skip connections in residual blocks.
    pub true_skip: bool,
}

/// The split residual quantizer's arguments (`_quantizer_kwargs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MimiQuantizerConfig {
    /// Codebook vectors' dimension.
    pub dimension: usize,
    /// Codebooks in all, semantic ones included.
    pub n_q: usize,
    /// Entries per codebook.
    pub bins: usize,
    /// Latent channels in (the SEANet's `dimension`).
    pub input_dimension: usize,
    /// Latent channels out.
    pub output_dimension: usize,
    /// Codebooks of `rvq_first` (moshi's `n_q_semantic`, 1).
    #[serde(default = "default_one")]
    pub n_q_semantic: usize,
}

/// The transformers' arguments (`_transformer_kwargs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MimiTransformerConfig {
    /// Width of the residual stream.
    pub d_model: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Layers.
    pub num_layers: usize,
    /// Causal attention (true).
    pub causal: bool,
    /// Initial layer scale; `None` for no layer scale.
    #[serde(default)]
    pub layer_scale: Option<f64>,
    /// Steps of attention context.
    pub context: usize,
    /// `[batch, channels, time]` in and out (true for Mimi).
    #[serde(default)]
    pub conv_layout: bool,
    /// RoPE maximum period.
    pub max_period: f64,
    /// `none`: a plain GELU MLP.
    pub gating: Gating,
    /// `layer_norm`.
    pub norm: TransformerNorm,
    /// `rope`.
    pub positional_embedding: PositionalEmbedding,
    /// Hidden width of the MLP.
    pub dim_feedforward: usize,
    /// Channels in.
    pub input_dimension: usize,
    /// Channels out (one output).
    pub output_dimensions: Vec<usize>,
}

/// Architecture of a Mimi model: moshi's config dict (`sample_rate`, `channels`, `frame_rate`,
/// `seanet`, `quantizer`, `transformer`), the same in a `config.json` and in a card's
/// `[architecture]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MimiConfig {
    /// Audio sample rate, Hz.
    pub sample_rate: u32,
    /// Audio channels (1).
    pub channels: usize,
    /// Code frames per second (12.5).
    pub frame_rate: f64,
    /// Encoder / decoder convolutions.
    pub seanet: MimiSeanetConfig,
    /// The split residual quantizer.
    pub quantizer: MimiQuantizerConfig,
    /// Both transformers (encoder and decoder side).
    pub transformer: MimiTransformerConfig,
}

impl MimiConfig {
    /// The published model (moshi's `_seanet_kwargs` etc., `kyutai/mimi`).
    pub fn mimi() -> Self {
        Self {
            sample_rate: 24000,
            channels: 1,
            frame_rate: 12.5,
            seanet: MimiSeanetConfig {
                channels: 1,
                dimension: 512,
                causal: true,
                n_filters: 64,
                n_residual_layers: 1,
                activation: Activation::Elu,
                compress: 2,
                dilation_base: 2,
                disable_norm_outer_blocks: 0,
                kernel_size: 7,
                residual_kernel_size: 3,
                last_kernel_size: 3,
                norm: ConvNorm::None,
                pad_mode: PadMode::Zero,
                ratios: vec![8, 6, 5, 4],
                true_skip: true,
            },
            quantizer: MimiQuantizerConfig {
                dimension: 256,
                n_q: 32,
                bins: 2048,
                input_dimension: 512,
                output_dimension: 512,
                n_q_semantic: 1,
            },
            transformer: MimiTransformerConfig {
                d_model: 512,
                num_heads: 8,
                num_layers: 8,
                causal: true,
                layer_scale: Some(0.01),
                context: 250,
                conv_layout: true,
                max_period: 10000.0,
                gating: Gating::None,
                norm: TransformerNorm::LayerNorm,
                positional_embedding: PositionalEmbedding::Rope,
                dim_feedforward: 2048,
                input_dimension: 512,
                output_dimensions: vec![512],
            },
        }
    }

    /// Read moshi's config dict from JSON (a `config.json` beside the weights).
    pub fn from_reference_json(text: &str, source: &str) -> Result<Self> {
        let cfg: Self = serde_json::from_str(text)
            .map_err(|e| Error::config(source, format!("not a Mimi config: {e}")))?;
        cfg.validate(source)?;
        Ok(cfg)
    }

    /// The SEANet as the shared blocks describe it.
    pub fn seanet_config(&self) -> SeanetConfig {
        let s = &self.seanet;
        SeanetConfig {
            channels: s.channels,
            dimension: s.dimension,
            n_filters: s.n_filters,
            n_residual_layers: s.n_residual_layers,
            ratios: s.ratios.clone(),
            kernel_size: s.kernel_size,
            residual_kernel_size: s.residual_kernel_size,
            last_kernel_size: s.last_kernel_size,
            dilation_base: s.dilation_base,
            causal: s.causal,
            pad_mode: s.pad_mode,
            true_skip: s.true_skip,
            compress: s.compress,
            lstm: 0,
            bidirectional_lstm: false,
            norm: ConvNorm::None,
        }
    }

    pub(super) fn transformer_config(&self) -> StreamingTransformerConfig {
        let t = &self.transformer;
        StreamingTransformerConfig {
            d_model: t.d_model,
            num_heads: t.num_heads,
            num_layers: t.num_layers,
            dim_feedforward: t.dim_feedforward,
            context: t.context,
            max_period: t.max_period,
            layer_scale: t.layer_scale.is_some(),
            input_dimension: t.input_dimension,
            output_dimension: t.output_dimensions.first().copied().unwrap_or(t.d_model),
            rope_rotate_half: false,
        }
    }

    /// Samples per SEANet latent frame (the product of the ratios).
    pub fn encoder_hop_length(&self) -> usize {
        self.seanet.ratios.iter().product()
    }

    /// Latent frames per code frame (the down/upsampling stride, 2).
    pub fn resample_stride(&self) -> usize {
        let encoder_rate = self.sample_rate as f64 / self.encoder_hop_length().max(1) as f64;
        (encoder_rate / self.frame_rate).round() as usize
    }

    /// Samples per code frame (1920).
    pub fn frame_size(&self) -> usize {
        self.encoder_hop_length() * self.resample_stride()
    }

    /// Check that the parts agree with each other and are what this port implements.
    pub fn validate(&self, source: &str) -> Result<()> {
        let bad = |m: String| Err(Error::config(source, m));
        let s = &self.seanet;
        let q = &self.quantizer;
        let t = &self.transformer;
        if self.channels != 1 || s.channels != 1 {
            return bad(format!("Mimi is mono, not {} channels", self.channels));
        }
        if !s.causal || !t.causal {
            return bad("only the causal Mimi is supported".into());
        }
        if s.norm == ConvNorm::TimeGroupNorm {
            return bad("seanet norm time_group_norm (none or weight_norm)".into());
        }
        if s.pad_mode != PadMode::Zero {
            return bad(format!("seanet pad_mode {:?} (only constant)", s.pad_mode));
        }
        if s.ratios.is_empty() || s.ratios.contains(&0) || s.n_filters == 0 || s.compress == 0 {
            return bad("ratios, n_filters and compress must be positive".into());
        }
        if self.frame_rate.is_nan() || self.frame_rate <= 0.0 {
            return bad(format!("frame_rate {} must be positive", self.frame_rate));
        }
        let stride = self.resample_stride();
        let encoder_rate = self.sample_rate as f64 / self.encoder_hop_length() as f64;
        if stride < 2 || (encoder_rate / stride as f64 - self.frame_rate).abs() > 1e-9 {
            return bad(format!(
                "frame_rate {} must be the SEANet's {encoder_rate} Hz divided by an integer >= 2",
                self.frame_rate
            ));
        }
        if q.input_dimension != s.dimension
            || q.output_dimension != s.dimension
            || t.input_dimension != s.dimension
            || t.output_dimensions.len() != 1
            || t.output_dimensions[0] != s.dimension
        {
            return bad(format!(
                "quantizer and transformer dimensions must equal the SEANet's {}",
                s.dimension
            ));
        }
        if q.n_q_semantic == 0 || q.n_q <= q.n_q_semantic || q.bins == 0 || q.dimension == 0 {
            return bad(format!(
                "quantizer: n_q {} must exceed n_q_semantic {} (>= 1), bins and dimension positive",
                q.n_q, q.n_q_semantic
            ));
        }
        if t.num_heads == 0
            || !t.d_model.is_multiple_of(t.num_heads)
            || !(t.d_model / t.num_heads).is_multiple_of(2)
        {
            return bad(format!(
                "transformer: d_model {} must split into {} heads of even size",
                t.d_model, t.num_heads
            ));
        }
        if t.context == 0 || !t.conv_layout {
            return bad("transformer: context must be positive, conv_layout true".into());
        }
        Ok(())
    }
}

impl MimiConfig {
    /// Validate the config (errors name `source`) and say what a card of it must state.
    pub fn card_facts(&self, source: &str) -> Result<CardFacts> {
        self.validate(source)?;
        Ok(CardFacts {
            sample_rate: self.sample_rate,
            frame_rate: self.frame_rate,
            codebooks: Some(vec![self.quantizer.bins as u32; self.quantizer.n_q]),
            codebook_frame_rates: None,
        })
    }
}

//! X-Codec2's encoder (`XCodec2Model.encode_code`, `xcodec2` 0.1.5): 16 kHz audio → the
//! latent its FSQ quantizes.
//!
//! - semantic path: the SeamlessM4T fbank front end ([`Fbank`]), w2v-BERT 2.0 up to layer 16
//!   (`hidden_states[16]`: [`W2vBert`]), the `SemanticEncoder` (conv k3; `relu(x) + block(x)`,
//!   the reference's in-place ReLU making the skip add `relu(x)`; conv k3);
//! - acoustic path: BigCodec's encoder (`CodecEnc`: conv k7, five blocks of three dilated
//!   residual units with anti-aliased SnakeBeta and a strided conv, anti-aliased SnakeBeta, conv
//!   k3), weight norm folded at load;
//! - both cut to the shorter, concatenated `[semantic, acoustic]` on channels, `fc_prior`.
//!
//! The framing (the reference pads the clip with `hop - len % hop` zeros, a whole hop for an
//! exact multiple; the front end also gets 160 zeros on each side) gives `len / hop + 1` frames.
//! NeuCodec's `encode_code` gives its front end no side padding ([`Framing::Neucodec`]): one
//! frame fewer.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

use crate::nn::linear::Linear;
use serde::{Deserialize, Serialize};

use crate::dsp::fbank::{Fbank, FRAME_SHIFT, NUM_MEL_BINS, STRIDE};
use crate::nn::alias_free::AntiAliasedSnake;
use crate::nn::conv::conv1d_in_chunks;
use crate::nn::conv1d::{Conv1d, Conv1dConfig};
use crate::nn::w2v_bert::{W2vBert, W2vBertConfig};

/// The w2v-BERT hidden state the reference takes (`hidden_states[16]`): layers after it are
/// stored in the checkpoint but never run.
pub const SEMANTIC_LAYER: usize = 16;

/// How the clip is framed for the semantic front end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// X-Codec2: the padded clip plus 160 zeros on each side: `len / hop + 1` frames.
    Xcodec2,
    /// NeuCodec: the padded clip as it is: one frame fewer.
    Neucodec,
}

/// The encoder's architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XCodec2EncoderConfig {
    /// w2v-BERT's width (1024), also the `SemanticEncoder`'s.
    pub semantic_hidden: usize,
    /// w2v-BERT's attention heads (16).
    pub semantic_heads: usize,
    /// w2v-BERT's FFN width (4096).
    pub semantic_intermediate: usize,
    /// Channels of the acoustic encoder's first conv (`ngf`, 48).
    pub acoustic_ngf: usize,
    /// Strides of its blocks (`[2, 2, 4, 4, 5]`: hop 320).
    pub acoustic_ratios: Vec<usize>,
    /// Dilations of each block's residual units (`[1, 3, 9]`).
    pub acoustic_dilations: Vec<usize>,
    /// Channels out of the acoustic encoder (1024).
    pub acoustic_dim: usize,
    /// The front end's framing.
    pub framing: Framing,
}

impl XCodec2EncoderConfig {
    /// The published X-Codec2 encoder.
    pub fn xcodec2() -> Self {
        Self {
            semantic_hidden: 1024,
            semantic_heads: 16,
            semantic_intermediate: 4096,
            acoustic_ngf: 48,
            acoustic_ratios: vec![2, 2, 4, 4, 5],
            acoustic_dilations: vec![1, 3, 9],
            acoustic_dim: 1024,
            framing: Framing::Xcodec2,
        }
    }

    /// Input samples per code frame (the acoustic strides' product).
    pub fn hop(&self) -> usize {
        self.acoustic_ratios.iter().product()
    }

    /// w2v-BERT's settings (facebook/w2v-bert-2.0's, at this width).
    pub fn w2v_bert(&self) -> W2vBertConfig {
        W2vBertConfig {
            hidden_size: self.semantic_hidden,
            num_heads: self.semantic_heads,
            intermediate_size: self.semantic_intermediate,
            num_layers: SEMANTIC_LAYER,
            ..W2vBertConfig::w2v_bert_2_layer_16()
        }
    }

    /// Problems with the values, if any.
    pub fn problem(&self) -> Option<String> {
        let widths = [
            self.semantic_hidden,
            self.semantic_intermediate,
            self.acoustic_ngf,
            self.acoustic_dim,
        ];
        if widths.iter().any(|&w| w == 0 || w > 1 << 14) {
            return Some("encoder widths must be 1 to 16384".into());
        }
        if self.semantic_heads == 0 || !self.semantic_hidden.is_multiple_of(self.semantic_heads) {
            return Some(format!(
                "semantic_hidden {} must split into {} heads",
                self.semantic_hidden, self.semantic_heads
            ));
        }
        let ratios_ok = !self.acoustic_ratios.is_empty()
            && self.acoustic_ratios.len() <= 8
            && self.acoustic_ratios.iter().all(|&r| (1..=16).contains(&r));
        let dilations_ok = !self.acoustic_dilations.is_empty()
            && self.acoustic_dilations.len() <= 8
            && self
                .acoustic_dilations
                .iter()
                .all(|&d| (1..=64).contains(&d));
        if !ratios_ok || !dilations_ok || self.acoustic_ngf << self.acoustic_ratios.len() > 1 << 14
        {
            return Some("acoustic ratios 1 to 16 and dilations 1 to 64, at most 8 each".into());
        }
        if !self.hop().is_multiple_of(STRIDE * FRAME_SHIFT) {
            return Some(format!(
                "the hop {} must be a multiple of the front end's {} samples per step",
                self.hop(),
                STRIDE * FRAME_SHIFT
            ));
        }
        None
    }
}

/// `nn.Conv1d` with symmetric zero padding, weights at `vb.{weight,bias}`.
fn conv(
    in_c: usize,
    out_c: usize,
    kernel: usize,
    cfg: Conv1dConfig,
    bias: bool,
    vb: VarBuilder,
) -> Result<Conv1d> {
    let weight = vb.get((out_c, in_c, kernel), "weight")?;
    let bias = if bias {
        Some(vb.get(out_c, "bias")?)
    } else {
        None
    };
    Ok(Conv1d::new(weight, bias, cfg))
}

fn padded(padding: usize) -> Conv1dConfig {
    Conv1dConfig {
        padding,
        ..Default::default()
    }
}

/// `vq.module.ResidualUnit`: anti-aliased SnakeBeta, conv k7 (dilated, "same"), anti-aliased
/// SnakeBeta, conv k1, + input.
#[derive(Debug, Clone)]
struct ResidualUnit {
    act1: AntiAliasedSnake,
    conv1: Conv1d,
    act2: AntiAliasedSnake,
    conv2: Conv1d,
}

impl ResidualUnit {
    fn new(dim: usize, dilation: usize, vb: VarBuilder) -> Result<Self> {
        let b = vb.pp("block");
        let dilated = Conv1dConfig {
            padding: 3 * dilation,
            dilation,
            ..Default::default()
        };
        Ok(Self {
            act1: AntiAliasedSnake::new(dim, b.pp(0))?,
            conv1: conv(dim, dim, 7, dilated, true, b.pp(1))?,
            act2: AntiAliasedSnake::new(dim, b.pp(2))?,
            conv2: conv(dim, dim, 1, padded(0), true, b.pp(3))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = conv1d_in_chunks(&self.conv1, &self.act1.forward(x)?)?;
        let y = conv1d_in_chunks(&self.conv2, &self.act2.forward(&y)?)?;
        x + y
    }
}

/// `vq.module.EncoderBlock`: residual units at half the width, anti-aliased SnakeBeta, strided
/// conv (kernel `2s`, padding `ceil(s / 2)`) doubling the channels.
#[derive(Debug, Clone)]
struct EncoderBlock {
    units: Vec<ResidualUnit>,
    act: AntiAliasedSnake,
    down: Conv1d,
}

impl EncoderBlock {
    fn new(dim: usize, stride: usize, dilations: &[usize], vb: VarBuilder) -> Result<Self> {
        let half = dim / 2;
        let b = vb.pp("block");
        let units = dilations
            .iter()
            .enumerate()
            .map(|(i, &d)| ResidualUnit::new(half, d, b.pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let n = dilations.len();
        let strided = Conv1dConfig {
            padding: stride.div_ceil(2),
            stride,
            ..Default::default()
        };
        Ok(Self {
            units,
            act: AntiAliasedSnake::new(half, b.pp(n))?,
            down: conv(half, dim, 2 * stride, strided, true, b.pp(n + 1))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for unit in &self.units {
            h = unit.forward(&h)?;
        }
        conv1d_in_chunks(&self.down, &self.act.forward(&h)?)
    }
}

/// `CodecEncoder_Transformer` as X-Codec2 uses it (`CodecEnc`): audio `[batch, 1, samples]` →
/// `[batch, acoustic_dim, samples / hop]`.
#[derive(Debug, Clone)]
struct AcousticEncoder {
    first: Conv1d,
    blocks: Vec<EncoderBlock>,
    final_act: AntiAliasedSnake,
    last: Conv1d,
}

impl AcousticEncoder {
    fn new(cfg: &XCodec2EncoderConfig, vb: VarBuilder) -> Result<Self> {
        let cb = vb.pp("conv_blocks");
        let mut dim = cfg.acoustic_ngf;
        let first = conv(1, dim, 7, padded(3), true, cb.pp(0))?;
        let mut blocks = Vec::with_capacity(cfg.acoustic_ratios.len());
        for (i, &stride) in cfg.acoustic_ratios.iter().enumerate() {
            dim *= 2;
            blocks.push(EncoderBlock::new(
                dim,
                stride,
                &cfg.acoustic_dilations,
                cb.pp(i + 1),
            )?);
        }
        let fb = vb.pp("conv_final_block");
        Ok(Self {
            first,
            blocks,
            final_act: AntiAliasedSnake::new(dim, fb.pp(0))?,
            last: conv(dim, cfg.acoustic_dim, 3, padded(1), true, fb.pp(1))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = conv1d_in_chunks(&self.first, x)?;
        for block in &self.blocks {
            h = block.forward(&h)?;
        }
        conv1d_in_chunks(&self.last, &self.final_act.forward(&h)?)
    }
}

/// `vq.module.SemanticEncoder`.
#[derive(Debug, Clone)]
struct SemanticEncoder {
    initial: Conv1d,
    conv1: Conv1d,
    conv2: Conv1d,
    last: Conv1d,
}

impl SemanticEncoder {
    fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        let rb = vb.pp("residual_blocks");
        Ok(Self {
            initial: conv(dim, dim, 3, padded(1), false, vb.pp("initial_conv"))?,
            conv1: conv(dim, dim, 3, padded(1), true, rb.pp(1))?,
            conv2: conv(dim, dim, 3, padded(1), true, rb.pp(3))?,
            last: conv(dim, dim, 3, padded(1), false, vb.pp("final_conv"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // The reference's block starts with an in-place ReLU, which also rewrites the skip.
        let x = conv1d_in_chunks(&self.initial, x)?.relu()?;
        let y = conv1d_in_chunks(&self.conv2, &conv1d_in_chunks(&self.conv1, &x)?.relu()?)?;
        conv1d_in_chunks(&self.last, &(x + y)?)
    }
}

/// What the encoder computes on the way to the latent, for checking against a trace.
#[derive(Debug, Clone)]
pub struct EncoderStages {
    /// The front end's output `[1, steps, 160]`.
    pub input_features: Tensor,
    /// w2v-BERT's `hidden_states[16]` `[1, steps, semantic_hidden]`.
    pub semantic_hidden: Tensor,
    /// The `SemanticEncoder`'s output `[1, semantic_hidden, steps]`.
    pub semantic_encoded: Tensor,
    /// The acoustic encoder's output `[1, acoustic_dim, frames]`.
    pub acoustic_encoded: Tensor,
    /// `fc_prior`'s output, the FSQ's input `[1, vq_dim, frames]`.
    pub latent: Tensor,
}

/// The encoder: weights at the checkpoint's root (`semantic_model.*`, `SemanticEncoder_module.*`,
/// `CodecEnc.*`, `fc_prior.*`).
#[derive(Debug, Clone)]
pub struct XCodec2Encoder {
    config: XCodec2EncoderConfig,
    fbank: Fbank,
    semantic_model: W2vBert,
    semantic_encoder: SemanticEncoder,
    acoustic: AcousticEncoder,
    fc_prior: Linear,
}

impl XCodec2Encoder {
    /// Build from `vb`; the FSQ's input is `vq_dim` wide (semantic plus acoustic channels).
    pub fn new(
        cfg: &XCodec2EncoderConfig,
        sample_rate: u32,
        vq_dim: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        if let Some(problem) = cfg.problem() {
            candle_core::bail!("X-Codec2 encoder: {problem}")
        }
        let fused = cfg.semantic_hidden + cfg.acoustic_dim;
        if fused != vq_dim {
            candle_core::bail!(
                "X-Codec2 encoder: semantic_hidden + acoustic_dim = {fused} must equal vq_dim {vq_dim}"
            )
        }
        Ok(Self {
            config: cfg.clone(),
            fbank: Fbank::new(sample_rate),
            semantic_model: W2vBert::new(&cfg.w2v_bert(), vb.pp("semantic_model"))?,
            semantic_encoder: SemanticEncoder::new(
                cfg.semantic_hidden,
                vb.pp("SemanticEncoder_module"),
            )?,
            acoustic: AcousticEncoder::new(cfg, vb.pp("CodecEnc"))?,
            fc_prior: crate::nn::linear::linear(fused, vq_dim, vb.pp("fc_prior"))?,
        })
    }

    /// The clip padded as the reference pads it: `hop - len % hop` zeros at the end.
    fn padded(&self, samples: &[f32]) -> Vec<f32> {
        let hop = self.config.hop();
        let mut wav = samples.to_vec();
        wav.resize(samples.len() + hop - samples.len() % hop, 0.0);
        wav
    }

    /// The stages for one clip's samples.
    pub fn stages(&self, samples: &[f32], device: &candle_core::Device) -> Result<EncoderStages> {
        let wav = self.padded(samples);
        let side = match self.config.framing {
            Framing::Xcodec2 => FRAME_SHIFT,
            Framing::Neucodec => 0,
        };
        let mut fe = vec![0.0f32; side];
        fe.extend_from_slice(&wav);
        fe.extend(std::iter::repeat_n(0.0, side));
        let (features, steps) = self.fbank.features(&fe);
        if steps == 0 {
            candle_core::bail!("the clip is too short for the front end")
        }
        let input_features = Tensor::from_vec(features, (1, steps, STRIDE * NUM_MEL_BINS), device)?;
        let semantic_hidden = self.semantic_model.forward(&input_features)?;
        let semantic_encoded = self
            .semantic_encoder
            .forward(&semantic_hidden.transpose(1, 2)?.contiguous()?)?;
        let n = wav.len();
        let acoustic_encoded = self
            .acoustic
            .forward(&Tensor::from_vec(wav, (1, 1, n), device)?)?;
        let frames = semantic_encoded
            .dim(D::Minus1)?
            .min(acoustic_encoded.dim(D::Minus1)?);
        let both = Tensor::cat(
            &[
                semantic_encoded.narrow(D::Minus1, 0, frames)?,
                acoustic_encoded.narrow(D::Minus1, 0, frames)?,
            ],
            1,
        )?;
        let latent = self
            .fc_prior
            .forward(&both.transpose(1, 2)?)?
            .transpose(1, 2)?
            .contiguous()?;
        Ok(EncoderStages {
            input_features,
            semantic_hidden,
            semantic_encoded,
            acoustic_encoded,
            latent,
        })
    }

    /// The FSQ's input for one clip: `[1, vq_dim, frames]`.
    pub fn latent(&self, samples: &[f32], device: &candle_core::Device) -> Result<Tensor> {
        Ok(self.stages(samples, device)?.latent)
    }

    /// Code frames of a clip of `samples` samples.
    pub fn frames_for(&self, samples: usize) -> usize {
        let frames = samples / self.config.hop() + 1;
        match self.config.framing {
            Framing::Xcodec2 => frames,
            Framing::Neucodec => frames - 1,
        }
    }
}

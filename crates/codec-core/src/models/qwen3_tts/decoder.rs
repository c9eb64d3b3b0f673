//! Qwen3-TTS-Tokenizer-12Hz's decoder (`Qwen3TTSTokenizerV2Decoder`): codes → 24 kHz audio.
//!
//! Split RVQ (sum of each RVQ's entries through its 1x1 output projection) → causal conv k3 →
//! `pre_transformer` (Linear in; per layer RMSNorm, sliding-window causal attention with
//! transformers' RoPE, layer scale, RMSNorm, SwiGLU, layer scale; RMSNorm; Linear out) → per
//! `upsampling_ratios` a transposed convolution and a causal ConvNeXt block → causal conv k7 →
//! per `upsample_rates` a SnakeBeta, a transposed convolution (kernel `2r`, stride `r`, the last
//! `r` samples cut) and three residual units (dilations 1, 3, 9) → SnakeBeta → causal conv k7
//! to one channel → clamp to [-1, 1]. Every convolution pads causally (zeros on the left, and
//! on the right only what completes the last frame).

use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

use crate::nn::linear::Linear;

use super::config::Qwen3TtsDecoderConfig;
use crate::nn::conv::{SConv1dConfig, SConvTranspose1dConfig};
use crate::nn::norm::{layer_norm, LayerNorm};
use crate::nn::roformer::{RmsNorm, RotaryEmbedding};
use crate::nn::{ConvNorm, DepthwiseConv1d, PadMode, SConv1d, SConvTranspose1d, Snake1d};
use crate::quant::{ProjectedRvq, SplitRvq};

/// `EuclideanCodebook`'s `epsilon`: the floor of `cluster_usage`.
const CODEBOOK_EPSILON: f64 = 1e-5;
/// Kernel of the ConvNeXt blocks' depthwise convolution.
const CONVNEXT_KERNEL: usize = 7;
/// Dilations of each upsampling block's residual units.
const DILATIONS: [usize; 3] = [1, 3, 9];

/// `Qwen3TTSTokenizerV2CausalConvNet`: weights at `vb.conv.{weight,bias}`.
fn causal_conv(
    in_c: usize,
    out_c: usize,
    kernel: usize,
    dilation: usize,
    vb: VarBuilder,
) -> Result<SConv1d> {
    let cfg = SConv1dConfig::new(kernel, true, PadMode::Zero)
        .norm(ConvNorm::None)
        .dilation(dilation);
    SConv1d::at(in_c, out_c, cfg, vb.pp("conv"))
}

/// `Qwen3TTSTokenizerV2CausalTransConvNet`: `T` frames → `T * stride` samples (the
/// `kernel - stride` extra ones cut on the right); weights at `vb.conv.*`.
fn causal_conv_transpose(
    in_c: usize,
    out_c: usize,
    kernel: usize,
    stride: usize,
    vb: VarBuilder,
) -> Result<SConvTranspose1d> {
    let cfg = SConvTranspose1dConfig::new(kernel, stride, true).norm(ConvNorm::None);
    SConvTranspose1d::at(in_c, out_c, cfg, vb.pp("conv"))
}

/// Attention with separate q/k/v projections (fused here into one matrix), `heads * head_dim`
/// wide, each query seeing itself and the `window - 1` steps before it.
#[derive(Debug, Clone)]
struct WindowedAttention {
    qkv: Linear,
    o_proj: Linear,
    heads: usize,
    head_dim: usize,
    window: usize,
}

impl WindowedAttention {
    fn new(cfg: &Qwen3TtsDecoderConfig, vb: VarBuilder) -> Result<Self> {
        let (h, d, inner) = (
            cfg.num_attention_heads,
            cfg.head_dim,
            cfg.num_attention_heads * cfg.head_dim,
        );
        let proj = |name: &str| vb.pp(name).get((inner, cfg.hidden_size), "weight");
        let qkv = Tensor::cat(&[proj("q_proj")?, proj("k_proj")?, proj("v_proj")?], 0)?;
        Ok(Self {
            qkv: Linear::new(qkv, None),
            o_proj: crate::nn::linear::linear_no_bias(inner, cfg.hidden_size, vb.pp("o_proj"))?,
            heads: h,
            head_dim: d,
            window: cfg.sliding_window,
        })
    }

    /// `x`: `[batch, time, hidden]`, positions from 0.
    fn forward(&self, x: &Tensor, rope: &RotaryEmbedding, mask: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (h, d) = (self.heads, self.head_dim);
        let qkv = self.qkv.forward(x)?.reshape((b, t, 3, h, d))?;
        let part = |i: usize| qkv.narrow(2, i, 1)?.squeeze(2)?.contiguous();
        let q = rope.forward(&part(0)?)?.transpose(1, 2)?.contiguous()?;
        let k = rope.forward(&part(1)?)?.transpose(1, 2)?.contiguous()?;
        let v = part(2)?.transpose(1, 2)?.contiguous()?;
        let scale = (d as f64).powf(-0.5);
        let w = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(mask)?;
        let y = candle_nn::ops::softmax_last_dim(&w)?.matmul(&v)?;
        let y = y.transpose(1, 2)?.reshape((b, t, h * d))?;
        self.o_proj.forward(&y)
    }

    /// `[1, 1, t, t]`: 0 where query `i` sees key `j` (`i - window < j <= i`), `-inf` elsewhere.
    fn mask(&self, t: usize, device: &candle_core::Device) -> Result<Tensor> {
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| {
                (0..t).map(move |j| {
                    if j <= i && i - j < self.window {
                        0.0
                    } else {
                        f32::NEG_INFINITY
                    }
                })
            })
            .collect();
        Tensor::from_vec(mask, (1, 1, t, t), device)
    }
}

/// One `Qwen3TTSTokenizerV2DecoderTransformerLayer`.
#[derive(Debug, Clone)]
struct TransformerLayer {
    input_norm: RmsNorm,
    attn: WindowedAttention,
    attn_scale: Tensor,
    post_norm: RmsNorm,
    /// `gate_proj` and `up_proj` stacked: one product for both.
    gate_up: Linear,
    down: Linear,
    mlp_scale: Tensor,
    intermediate: usize,
}

impl TransformerLayer {
    fn new(cfg: &Qwen3TtsDecoderConfig, vb: VarBuilder) -> Result<Self> {
        let (hid, inter) = (cfg.hidden_size, cfg.intermediate_size);
        let mlp = vb.pp("mlp");
        let w = |name: &str| mlp.pp(name).get((inter, hid), "weight");
        let gate_up = Tensor::cat(&[w("gate_proj")?, w("up_proj")?], 0)?;
        Ok(Self {
            input_norm: RmsNorm::new(hid, cfg.rms_norm_eps, vb.pp("input_layernorm"))?,
            attn: WindowedAttention::new(cfg, vb.pp("self_attn"))?,
            attn_scale: vb.pp("self_attn_layer_scale").get(hid, "scale")?,
            post_norm: RmsNorm::new(hid, cfg.rms_norm_eps, vb.pp("post_attention_layernorm"))?,
            gate_up: Linear::new(gate_up, None),
            down: crate::nn::linear::linear_no_bias(inter, hid, mlp.pp("down_proj"))?,
            mlp_scale: vb.pp("mlp_layer_scale").get(hid, "scale")?,
            intermediate: inter,
        })
    }

    fn forward(&self, x: &Tensor, rope: &RotaryEmbedding, mask: &Tensor) -> Result<Tensor> {
        let a = self
            .attn
            .forward(&self.input_norm.forward(x)?, rope, mask)?;
        let x = (x + a.broadcast_mul(&self.attn_scale)?)?;
        let gu = self.gate_up.forward(&self.post_norm.forward(&x)?)?;
        let gate = gu.narrow(D::Minus1, 0, self.intermediate)?.silu()?;
        let up = gu.narrow(D::Minus1, self.intermediate, self.intermediate)?;
        let m = self.down.forward(&(gate * up)?)?;
        &x + m.broadcast_mul(&self.mlp_scale)?
    }
}

/// `pre_transformer`: `[batch, time, latent]` → the same shape.
#[derive(Debug, Clone)]
struct PreTransformer {
    input_proj: Linear,
    layers: Vec<TransformerLayer>,
    norm: RmsNorm,
    output_proj: Linear,
    rope: RotaryEmbedding,
}

impl PreTransformer {
    fn new(cfg: &Qwen3TtsDecoderConfig, vb: VarBuilder) -> Result<Self> {
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| TransformerLayer::new(cfg, vb.pp("layers").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            input_proj: crate::nn::linear::linear(
                cfg.latent_dim,
                cfg.hidden_size,
                vb.pp("input_proj"),
            )?,
            layers,
            norm: RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, vb.pp("norm"))?,
            output_proj: crate::nn::linear::linear(
                cfg.hidden_size,
                cfg.latent_dim,
                vb.pp("output_proj"),
            )?,
            rope: RotaryEmbedding::new(cfg.head_dim, cfg.rope_theta)?.rotate_half(),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let t = x.dim(1)?;
        let mut x = self.input_proj.forward(x)?;
        if let Some(first) = self.layers.first() {
            let mask = first.attn.mask(t, x.device())?;
            for layer in &self.layers {
                x = layer.forward(&x, &self.rope, &mask)?;
            }
        }
        self.output_proj.forward(&self.norm.forward(&x)?)
    }
}

/// `Qwen3TTSTokenizerV2ConvNeXtBlock`: causal depthwise conv k7, LayerNorm (eps 1e-6),
/// Linear 4x, exact GELU, Linear, gamma, + input.
#[derive(Debug, Clone)]
struct ConvNextBlock {
    dwconv: DepthwiseConv1d,
    norm: LayerNorm,
    pwconv1: Linear,
    pwconv2: Linear,
    gamma: Tensor,
}

impl ConvNextBlock {
    fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            // Padded on the left before it (causal), so no padding of its own.
            dwconv: DepthwiseConv1d::new(dim, CONVNEXT_KERNEL, 0, vb.pp("dwconv").pp("conv"))?,
            norm: layer_norm(dim, 1e-6, vb.pp("norm"))?,
            pwconv1: crate::nn::linear::linear(dim, 4 * dim, vb.pp("pwconv1"))?,
            pwconv2: crate::nn::linear::linear(4 * dim, dim, vb.pp("pwconv2"))?,
            gamma: vb.get(dim, "gamma")?,
        })
    }

    /// `x`: `[batch, dim, time]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = x.pad_with_zeros(D::Minus1, CONVNEXT_KERNEL - 1, 0)?;
        let h = self.dwconv.forward(&h)?.transpose(1, 2)?.contiguous()?;
        let h = self.pwconv1.forward(&self.norm.forward(&h)?)?.gelu_erf()?;
        let h = self.pwconv2.forward(&h)?.broadcast_mul(&self.gamma)?;
        x + h.transpose(1, 2)?
    }
}

/// `Qwen3TTSTokenizerV2DecoderDecoderResidualUnit`.
#[derive(Debug, Clone)]
struct ResidualUnit {
    act1: Snake1d,
    conv1: SConv1d,
    act2: Snake1d,
    conv2: SConv1d,
}

impl ResidualUnit {
    fn new(dim: usize, dilation: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            act1: Snake1d::beta(dim, vb.pp("act1"))?,
            conv1: causal_conv(dim, dim, 7, dilation, vb.pp("conv1"))?,
            act2: Snake1d::beta(dim, vb.pp("act2"))?,
            conv2: causal_conv(dim, dim, 1, 1, vb.pp("conv2"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(&self.act1.forward(x)?)?;
        let h = self.conv2.forward(&self.act2.forward(&h)?)?;
        h + x
    }
}

/// `Qwen3TTSTokenizerV2DecoderDecoderBlock`: SnakeBeta, upsampling, three residual units.
#[derive(Debug, Clone)]
struct UpsampleBlock {
    act: Snake1d,
    up: SConvTranspose1d,
    units: Vec<ResidualUnit>,
}

impl UpsampleBlock {
    fn new(in_dim: usize, rate: usize, vb: VarBuilder) -> Result<Self> {
        let out_dim = in_dim / 2;
        let block = vb.pp("block");
        let units = DILATIONS
            .iter()
            .enumerate()
            .map(|(i, &d)| ResidualUnit::new(out_dim, d, block.pp(i + 2)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            act: Snake1d::beta(in_dim, block.pp(0))?,
            up: causal_conv_transpose(in_dim, out_dim, 2 * rate, rate, block.pp(1))?,
            units,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.up.forward(&self.act.forward(x)?)?;
        for unit in &self.units {
            h = unit.forward(&h)?;
        }
        Ok(h)
    }
}

/// The decoder, weights at `decoder.*` as published.
#[derive(Debug, Clone)]
pub struct Qwen3TtsDecoder {
    quantizer: SplitRvq,
    pre_conv: SConv1d,
    pre_transformer: PreTransformer,
    upsample: Vec<(SConvTranspose1d, ConvNextBlock)>,
    first: SConv1d,
    blocks: Vec<UpsampleBlock>,
    final_act: Snake1d,
    last: SConv1d,
}

impl Qwen3TtsDecoder {
    /// Build the decoder `cfg` describes from `vb` (the checkpoint's `decoder`).
    pub fn new(cfg: &Qwen3TtsDecoderConfig, vb: VarBuilder) -> Result<Self> {
        let dims = [cfg.codebook_dim, cfg.codebook_dim / 2, cfg.codebook_dim];
        let q = vb.pp("quantizer");
        let rvq = |n, vb| ProjectedRvq::new(n, cfg.codebook_size, dims, CODEBOOK_EPSILON, vb);
        let quantizer = SplitRvq::new(
            rvq(cfg.num_semantic_quantizers, q.pp("rvq_first"))?,
            rvq(
                cfg.num_quantizers - cfg.num_semantic_quantizers,
                q.pp("rvq_rest"),
            )?,
            cfg.num_semantic_quantizers,
        );
        let latent = cfg.latent_dim;
        let upsample = cfg
            .upsampling_ratios
            .iter()
            .enumerate()
            .map(|(i, &r)| {
                let vb = vb.pp("upsample").pp(i);
                Ok((
                    causal_conv_transpose(latent, latent, r, r, vb.pp(0))?,
                    ConvNextBlock::new(latent, vb.pp(1))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let dec = vb.pp("decoder");
        let blocks = cfg
            .upsample_rates
            .iter()
            .enumerate()
            .map(|(i, &r)| UpsampleBlock::new(cfg.decoder_dim >> i, r, dec.pp(i + 1)))
            .collect::<Result<Vec<_>>>()?;
        let n = cfg.upsample_rates.len();
        let out_dim = cfg.decoder_dim >> n;
        Ok(Self {
            quantizer,
            pre_conv: causal_conv(cfg.codebook_dim, latent, 3, 1, vb.pp("pre_conv"))?,
            pre_transformer: PreTransformer::new(cfg, vb.pp("pre_transformer"))?,
            upsample,
            first: causal_conv(latent, cfg.decoder_dim, 7, 1, dec.pp(0))?,
            blocks,
            final_act: Snake1d::beta(out_dim, dec.pp(n + 1))?,
            last: causal_conv(out_dim, 1, 7, 1, dec.pp(n + 2))?,
        })
    }

    /// The decoder's `forward` on one piece: codes `[batch, k, frames]` (u32, `k` up to
    /// `num_quantizers`) → audio `[batch, 1, frames * hop]` in [-1, 1], positions and padding
    /// starting afresh.
    pub fn forward(&self, codes: &Tensor) -> Result<Tensor> {
        let h = self.quantizer.decode(codes)?;
        let h = self.pre_conv.forward(&h)?.transpose(1, 2)?.contiguous()?;
        let mut h = self
            .pre_transformer
            .forward(&h)?
            .transpose(1, 2)?
            .contiguous()?;
        for (up, block) in &self.upsample {
            h = block.forward(&up.forward(&h)?)?;
        }
        let mut wav = self.first.forward(&h)?;
        for block in &self.blocks {
            wav = block.forward(&wav)?;
        }
        let wav = self.last.forward(&self.final_act.forward(&wav)?)?;
        wav.clamp(-1f32, 1f32)
    }
}

//! The Vocos backbone: ConvNeXt blocks over a frame sequence, optionally with WavTokenizer's
//! `pos_net` (ResNet and self-attention blocks with GroupNorm) and AdaLayerNorm conditioning.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{GroupNorm, VarBuilder};

use crate::nn::linear::Linear;
use realfft::num_complex::Complex;
use serde::{Deserialize, Serialize};

use super::conv::{conv1d, DepthwiseConv1d};
use super::conv1d::Conv1d;
use super::kernels::{attention_f32, AttentionShape};
use super::linear::matmul_t;
use super::norm::{layer_norm, AdaLayerNorm, LayerNorm};
use super::roformer::{RopePositions, RotaryEmbedding, TransformerBlock};
use crate::dsp::{with_cpu_slice, Istft, IstftPadding};

mod cpu;
use cpu::{BiasGelu, BiasScaleResidual, NormParams, RowSum};

/// Hyperparameters of a Vocos backbone, named as in the reference `VocosBackbone`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocosConfig {
    /// Channels in.
    pub input_channels: usize,
    /// Width of the ConvNeXt blocks.
    pub dim: usize,
    /// Hidden width of their MLPs.
    pub intermediate_dim: usize,
    /// ConvNeXt blocks.
    pub num_layers: usize,
    /// Number of conditioning ids for AdaLayerNorm; `None` for plain LayerNorm.
    pub adanorm_num_embeddings: Option<usize>,
    /// WavTokenizer's `pos_net` (2 ResNet blocks, attention, 2 ResNet blocks, GroupNorm).
    pub pos_net: bool,
}

const EPS: f64 = 1e-6;
const GROUPS: usize = 32;

/// LayerNorm or AdaLayerNorm, as the config says.
enum Norm {
    Plain(LayerNorm),
    Ada(AdaLayerNorm),
}

impl Norm {
    fn new(dim: usize, cfg: &VocosConfig, vb: VarBuilder) -> Result<Self> {
        Ok(match cfg.adanorm_num_embeddings {
            Some(n) => Norm::Ada(AdaLayerNorm::new(n, dim, EPS, vb)?),
            None => Norm::Plain(layer_norm(dim, EPS, vb)?),
        })
    }
    fn forward(&self, x: &Tensor, cond: usize) -> Result<Tensor> {
        match self {
            Norm::Plain(n) => n.forward(x),
            Norm::Ada(n) => n.forward(x, cond),
        }
    }

    /// The affine parameters for `cond`, for the fused CPU passes.
    fn params(&self, cond: usize) -> Result<NormParams> {
        let (weight, bias, eps) = match self {
            Norm::Plain(n) => {
                let (w, b, eps) = n.parts();
                (w.clone(), b.clone(), eps)
            }
            Norm::Ada(n) => n.parts(cond)?,
        };
        Ok(NormParams {
            weight: weight.to_dtype(DType::F32)?.to_vec1()?,
            bias: bias.to_dtype(DType::F32)?.to_vec1()?,
            eps,
        })
    }
}

/// A ConvNeXt block's small parameters as float32 vectors, for the fused CPU passes.
struct BlockCpu {
    /// Depthwise taps `[kernel][dim]`.
    taps: Vec<f32>,
    dw_bias: Vec<f32>,
    bias1: Vec<f32>,
    bias2: Vec<f32>,
    gamma: Option<Vec<f32>>,
}

/// ConvNeXt block: depthwise conv, norm, MLP with GELU, layer scale, residual.
struct ConvNextBlock {
    dwconv: DepthwiseConv1d,
    norm: Norm,
    pwconv1: Linear,
    pwconv2: Linear,
    gamma: Option<Tensor>,
    /// Set when the weights are float32 on the CPU.
    cpu: Option<BlockCpu>,
}

const DW_KERNEL: usize = 7;
const DW_PADDING: usize = 3;

impl ConvNextBlock {
    fn new(cfg: &VocosConfig, vb: VarBuilder) -> Result<Self> {
        let dim = cfg.dim;
        let dwconv = DepthwiseConv1d::new(dim, DW_KERNEL, DW_PADDING, vb.pp("dwconv"))?;
        let norm = Norm::new(dim, cfg, vb.pp("norm"))?;
        let pwconv1 = crate::nn::linear::linear(dim, cfg.intermediate_dim, vb.pp("pwconv1"))?;
        let pwconv2 = crate::nn::linear::linear(cfg.intermediate_dim, dim, vb.pp("pwconv2"))?;
        let gamma = if vb.contains_tensor("gamma") {
            Some(vb.get(dim, "gamma")?)
        } else {
            None
        };
        let cpu = if vb.device().is_cpu() && vb.dtype() == DType::F32 {
            let bias = |l: &Linear| -> Result<Vec<f32>> {
                match l.bias() {
                    Some(b) => b.to_vec1(),
                    None => Ok(vec![0f32; l.weight().dim(0)?]),
                }
            };
            let dw = vb.pp("dwconv");
            Some(BlockCpu {
                taps: dw
                    .get((dim, 1, DW_KERNEL), "weight")?
                    .reshape((dim, DW_KERNEL))?
                    .t()?
                    .flatten_all()?
                    .to_vec1()?,
                dw_bias: dw.get(dim, "bias")?.to_vec1()?,
                bias1: bias(&pwconv1)?,
                bias2: bias(&pwconv2)?,
                gamma: gamma.as_ref().map(|g| g.to_vec1()).transpose()?,
            })
        } else {
            None
        };
        Ok(Self {
            dwconv,
            norm,
            pwconv1,
            pwconv2,
            gamma,
            cpu,
        })
    }

    /// [`ConvNextBlock::forward`] on `x` `[batch, time, dim]` (contiguous float32 on the CPU)
    /// → `[batch, time, dim]`, with fused passes around the two matmuls: the same numbers.
    fn forward_cpu(&self, cpu: &BlockCpu, x: &Tensor, cond: usize) -> Result<Tensor> {
        let (batch, time, dim) = x.dims3()?;
        let norm = self.norm.params(cond)?;
        let h = with_cpu_slice::<f32, _>(x, |x| {
            Ok(cpu::dwconv_layer_norm(
                x,
                time,
                dim,
                &cpu.taps,
                &cpu.dw_bias,
                DW_PADDING,
                &norm,
                RowSum::of_transposed(time, dim),
            ))
        })?;
        // As `Linear::forward` runs a contiguous 3-d input: one 2-d product.
        let h = Tensor::from_vec(h, (batch, time, dim), &Device::Cpu)?;
        let u = matmul_t(&h, self.pwconv1.weight())?;
        u.inplace_op1(&BiasGelu { bias: &cpu.bias1 })?;
        let v = matmul_t(&u.reshape((batch, time, ()))?, self.pwconv2.weight())?;
        with_cpu_slice::<f32, _>(x, |x| {
            v.inplace_op1(&BiasScaleResidual {
                bias: &cpu.bias2,
                gamma: cpu.gamma.as_deref(),
                residual: x,
            })
        })?;
        v.reshape((batch, time, dim))
    }

    /// `x`: `[batch, dim, time]`.
    fn forward(&self, x: &Tensor, cond: usize) -> Result<Tensor> {
        let y = self.dwconv.forward(x)?.transpose(1, 2)?;
        let y = self.norm.forward(&y, cond)?;
        let y = self.pwconv1.forward(&y)?.gelu_erf()?;
        let mut y = self.pwconv2.forward(&y)?;
        if let Some(g) = &self.gamma {
            y = y.broadcast_mul(g)?;
        }
        x + y.transpose(1, 2)?
    }
}

/// GroupNorm(32, eps 1e-6), weights at `vb.{weight,bias}`.
fn group_norm(dim: usize, vb: VarBuilder) -> Result<GroupNorm> {
    candle_nn::group_norm(GROUPS, dim, EPS, vb)
}

/// `pos_net` ResNet block: (GroupNorm, swish, conv k3) twice, plus the input.
struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv1d,
    norm2: GroupNorm,
    conv2: Conv1d,
}

impl ResnetBlock {
    fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: group_norm(dim, vb.pp("norm1"))?,
            conv1: conv1d(dim, dim, 3, 1, vb.pp("conv1"))?,
            norm2: group_norm(dim, vb.pp("norm2"))?,
            conv2: conv1d(dim, dim, 3, 1, vb.pp("conv2"))?,
        })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(&self.norm1.forward(x)?.silu()?)?;
        let h = self.conv2.forward(&self.norm2.forward(&h)?.silu()?)?;
        x + h
    }
}

/// `pos_net` self-attention block over all frames (single head, 1x1 conv projections).
struct AttnBlock {
    norm: GroupNorm,
    q: Conv1d,
    k: Conv1d,
    v: Conv1d,
    proj_out: Conv1d,
    dim: usize,
}

impl AttnBlock {
    fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm: group_norm(dim, vb.pp("norm"))?,
            q: conv1d(dim, dim, 1, 0, vb.pp("q"))?,
            k: conv1d(dim, dim, 1, 0, vb.pp("k"))?,
            v: conv1d(dim, dim, 1, 0, vb.pp("v"))?,
            proj_out: conv1d(dim, dim, 1, 0, vb.pp("proj_out"))?,
            dim,
        })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.norm.forward(x)?;
        let q = self.q.forward(&h)?.transpose(1, 2)?.contiguous()?; // [b, t, c]
        let k = self.k.forward(&h)?; // [b, c, t]
        let v = self.v.forward(&h)?; // [b, c, t]
        let scale = (self.dim as f64).powf(-0.5);
        if x.device().is_cpu() && x.dtype() == DType::F32 {
            // One head over all channels, blocked over the queries (no [b, t, t] scores).
            let (b, c, t) = k.dims3()?;
            let shape = AttentionShape {
                items: b,
                queries: t,
                keys: t,
                head_dim: c,
            };
            let k = k.transpose(1, 2)?.contiguous()?;
            let v = v.transpose(1, 2)?.contiguous()?;
            let y = with_cpu_slice::<f32, _>(&q, |q| {
                with_cpu_slice::<f32, _>(&k, |k| {
                    with_cpu_slice::<f32, _>(&v, |v| {
                        Ok(attention_f32(q, k, v, shape, scale as f32))
                    })
                })
            })?;
            let h = Tensor::from_vec(y, (b, t, c), x.device())?.transpose(1, 2)?;
            return x + self.proj_out.forward(&h.contiguous()?)?;
        }
        let w = (q.matmul(&k)? * scale)?; // [b, t(q), t(k)]
        let w = candle_nn::ops::softmax_last_dim(&w)?;
        let h = v.matmul(&w.transpose(1, 2)?.contiguous()?)?; // [b, c, t(q)]
        x + self.proj_out.forward(&h)?
    }
}

enum PosLayer {
    Resnet(ResnetBlock),
    Attn(AttnBlock),
    Norm(GroupNorm),
}

/// Vocos backbone: features `[batch, input_channels, frames]` → `[batch, frames, dim]`.
pub struct VocosBackbone {
    embed: Conv1d,
    pos_net: Vec<PosLayer>,
    norm: Norm,
    convnext: Vec<ConvNextBlock>,
    final_layer_norm: LayerNorm,
}

impl VocosBackbone {
    /// The backbone `cfg` describes, with weights at `vb`.
    pub fn new(cfg: &VocosConfig, vb: VarBuilder) -> Result<Self> {
        let dim = cfg.dim;
        let embed = conv1d(cfg.input_channels, dim, 7, 3, vb.pp("embed"))?;
        let pos_net = if cfg.pos_net {
            let p = vb.pp("pos_net");
            vec![
                PosLayer::Resnet(ResnetBlock::new(dim, p.pp(0))?),
                PosLayer::Resnet(ResnetBlock::new(dim, p.pp(1))?),
                PosLayer::Attn(AttnBlock::new(dim, p.pp(2))?),
                PosLayer::Resnet(ResnetBlock::new(dim, p.pp(3))?),
                PosLayer::Resnet(ResnetBlock::new(dim, p.pp(4))?),
                PosLayer::Norm(group_norm(dim, p.pp(5))?),
            ]
        } else {
            Vec::new()
        };
        let norm = Norm::new(dim, cfg, vb.pp("norm"))?;
        let convnext = (0..cfg.num_layers)
            .map(|i| ConvNextBlock::new(cfg, vb.pp("convnext").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let final_layer_norm = layer_norm(dim, EPS, vb.pp("final_layer_norm"))?;
        Ok(Self {
            embed,
            pos_net,
            norm,
            convnext,
            final_layer_norm,
        })
    }

    /// `cond` is the AdaLayerNorm id (WavTokenizer's bandwidth id); ignored without AdaLayerNorm.
    ///
    /// On the CPU (float32) the ConvNeXt blocks run fused passes around their matmuls, with
    /// the same numbers as the candle ops.
    pub fn forward(&self, x: &Tensor, cond: usize) -> Result<Tensor> {
        let mut x = self.embed.forward(x)?;
        for layer in &self.pos_net {
            x = match layer {
                PosLayer::Resnet(r) => r.forward(&x)?,
                PosLayer::Attn(a) => a.forward(&x)?,
                PosLayer::Norm(n) => n.forward(&x)?,
            };
        }
        let cpu: Option<Vec<&BlockCpu>> = self.convnext.iter().map(|b| b.cpu.as_ref()).collect();
        match cpu {
            Some(cpu) if x.device().is_cpu() && x.dtype() == DType::F32 => {
                self.forward_convnext_cpu(&x, &cpu, cond)
            }
            _ => self.forward_convnext(&x, cond),
        }
    }

    /// Norm, ConvNeXt blocks and the final norm, with fused CPU passes: `x` `[b, dim, t]`.
    fn forward_convnext_cpu(&self, x: &Tensor, cpu: &[&BlockCpu], cond: usize) -> Result<Tensor> {
        let (batch, dim, time) = x.dims3()?;
        let norm = self.norm.params(cond)?;
        let x = x.transpose(1, 2)?.contiguous()?;
        let x = with_cpu_slice::<f32, _>(&x, |x| {
            Ok(cpu::layer_norm(
                x,
                dim,
                &norm,
                RowSum::of_transposed(time, dim),
            ))
        })?;
        let mut x = Tensor::from_vec(x, (batch, time, dim), &Device::Cpu)?;
        for (block, cpu) in self.convnext.iter().zip(cpu) {
            x = block.forward_cpu(cpu, &x, cond)?;
        }
        let (weight, bias, eps) = self.final_layer_norm.parts();
        let norm = NormParams {
            weight: weight.to_vec1()?,
            bias: bias.to_vec1()?,
            eps,
        };
        let x = with_cpu_slice::<f32, _>(&x, |x| {
            Ok(cpu::layer_norm(x, dim, &norm, RowSum::Contiguous))
        })?;
        Tensor::from_vec(x, (batch, time, dim), &Device::Cpu)
    }

    /// Norm, ConvNeXt blocks and the final norm from candle ops: `x` `[b, dim, t]`.
    fn forward_convnext(&self, x: &Tensor, cond: usize) -> Result<Tensor> {
        let x = self.norm.forward(&x.transpose(1, 2)?, cond)?;
        let mut x = x.transpose(1, 2)?;
        for block in &self.convnext {
            x = block.forward(&x, cond)?;
        }
        self.final_layer_norm
            .forward(&x.transpose(1, 2)?.contiguous()?)
    }
}

/// Vocos' iSTFT head: a linear layer to log-magnitude and phase, then an inverse STFT.
///
/// Weights: `out.{weight,bias}` (`[n_fft + 2, dim]`) and the synthesis window `istft.window`.
pub struct IstftHead {
    out: Linear,
    istft: Istft,
    bins: usize,
}

impl IstftHead {
    /// An iSTFT head from `dim` channels, with weights at `vb` (`out.*`).
    pub fn new(
        dim: usize,
        n_fft: usize,
        hop: usize,
        padding: IstftPadding,
        vb: VarBuilder,
    ) -> Result<Self> {
        let out = crate::nn::linear::linear(dim, n_fft + 2, vb.pp("out"))?;
        let window = vb
            .pp("istft")
            .get(n_fft, "window")?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?;
        let istft = Istft::new(n_fft, hop, padding, &window, vb.device())?;
        Ok(Self {
            out,
            istft,
            bins: n_fft / 2 + 1,
        })
    }

    /// `[batch, frames, dim]` → `[batch, frames * hop]` (with "same" padding).
    ///
    /// On the CPU (float32) the magnitude and phase go straight into the inverse FFT, with the
    /// same numbers as the candle ops.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.device().is_cpu() && x.dtype() == DType::F32 && self.out.weight().dtype() == DType::F32
        {
            return self.forward_cpu(x);
        }
        self.forward_candle(x)
    }

    /// [`IstftHead::forward`] from candle ops (any device).
    fn forward_candle(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.out.forward(x)?;
        // Vocos clips the magnitude at 1e2 after the exponential.
        let mag = x.narrow(2, 0, self.bins)?.exp()?.minimum(1e2)?;
        let phase = x.narrow(2, self.bins, self.bins)?;
        let re = (&mag * phase.cos()?)?;
        let im = (&mag * phase.sin()?)?;
        self.istft.forward(&re, &im)
    }

    fn forward_cpu(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, frames, _) = x.dims3()?;
        let bins = self.bins;
        // `Linear::forward` on a contiguous 3-d input: one 2-d product, then the bias.
        let y = matmul_t(&x.contiguous()?, self.out.weight())?;
        let bias = match self.out.bias() {
            Some(b) => b.to_vec1::<f32>()?,
            None => vec![0f32; 2 * bins],
        };
        with_cpu_slice::<f32, _>(&y, |y| {
            self.istft.synthesize::<f32>(batch, frames, |t, spec| {
                let row = &y[t * 2 * bins..(t + 1) * 2 * bins];
                let (mag, phase) = row.split_at(bins);
                let (bias_mag, bias_phase) = bias.split_at(bins);
                for k in 0..bins {
                    let m = (mag[k] + bias_mag[k]).exp();
                    // candle's `minimum`: `if v1 > v2 { v2 } else { v1 }`.
                    let m = if m > 1e2 { 1e2 } else { m };
                    let p = phase[k] + bias_phase[k];
                    spec[k] = Complex::new((m * p.cos()) as f64, (m * p.sin()) as f64);
                }
            })
        })
    }
}

/// Hyperparameters of X-Codec2's transformer Vocos backbone, named as in the reference
/// (`vq.codec_decoder_vocos.VocosBackbone`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerVocosConfig {
    /// Width.
    pub hidden_dim: usize,
    /// Transformer blocks.
    pub depth: usize,
    /// Attention heads.
    pub heads: usize,
    /// Size of the rotary embedding; torchtune requires it to equal the head size.
    pub pos_meb_dim: usize,
}

/// X-Codec2's (and NeuCodec's) Vocos backbone: embed conv (k7), `prior_net` (2 ResNet blocks
/// with GroupNorm), transformer blocks (RMSNorm, fused qkv, rotary embedding over the head
/// index as the reference applies it), `post_net` (2 ResNet blocks), LayerNorm.
///
/// Weights: `embed`, `prior_net.{0,1}`, `transformers.N`, `post_net.{0,1}`, `final_layer_norm`.
pub struct TransformerVocosBackbone {
    embed: Conv1d,
    prior_net: Vec<ResnetBlock>,
    transformers: Vec<TransformerBlock>,
    post_net: Vec<ResnetBlock>,
    final_layer_norm: LayerNorm,
}

impl TransformerVocosBackbone {
    /// The backbone `cfg` describes, with weights at `vb`.
    pub fn new(cfg: &TransformerVocosConfig, vb: VarBuilder) -> Result<Self> {
        let dim = cfg.hidden_dim;
        let embed = conv1d(dim, dim, 7, 3, vb.pp("embed"))?;
        let resnets = |name: &str| {
            (0..2)
                .map(|i| ResnetBlock::new(dim, vb.pp(name).pp(i)))
                .collect::<Result<Vec<_>>>()
        };
        let prior_net = resnets("prior_net")?;
        // One torchtune module shared by every block (`RotaryPositionalEmbeddings(pos_meb_dim)`).
        let rope = RotaryEmbedding::new(cfg.pos_meb_dim, 10_000.0)?;
        let transformers = (0..cfg.depth)
            .map(|i| {
                TransformerBlock::new(
                    dim,
                    cfg.heads,
                    Some((rope.clone(), RopePositions::Heads)),
                    vb.pp("transformers").pp(i),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let post_net = resnets("post_net")?;
        let final_layer_norm = layer_norm(dim, EPS, vb.pp("final_layer_norm"))?;
        Ok(Self {
            embed,
            prior_net,
            transformers,
            post_net,
            final_layer_norm,
        })
    }

    /// Features `[batch, hidden_dim, frames]` → `[batch, frames, hidden_dim]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.embed.forward(x)?;
        for block in &self.prior_net {
            x = block.forward(&x)?;
        }
        let mut x = x.transpose(1, 2)?.contiguous()?;
        for block in &self.transformers {
            x = block.forward(&x)?;
        }
        let mut x = x.transpose(1, 2)?.contiguous()?;
        for block in &self.post_net {
            x = block.forward(&x)?;
        }
        self.final_layer_norm
            .forward(&x.transpose(1, 2)?.contiguous()?)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Random weights for a Vocos backbone (and an iSTFT head under `head`).
    fn weights(cfg: &VocosConfig, n_fft: usize, seed: u64) -> Result<HashMap<String, Tensor>> {
        let dev = Device::Cpu;
        let (c, i) = (cfg.dim, cfg.intermediate_dim);
        let mut shapes: Vec<(String, Vec<usize>)> = vec![
            ("embed.weight".into(), vec![c, cfg.input_channels, 7]),
            ("embed.bias".into(), vec![c]),
            ("final_layer_norm.weight".into(), vec![c]),
            ("final_layer_norm.bias".into(), vec![c]),
            ("head.out.weight".into(), vec![n_fft + 2, c]),
            ("head.out.bias".into(), vec![n_fft + 2]),
        ];
        let mut norm = |prefix: String| match cfg.adanorm_num_embeddings {
            Some(n) => {
                shapes.push((format!("{prefix}.scale.weight"), vec![n, c]));
                shapes.push((format!("{prefix}.shift.weight"), vec![n, c]));
            }
            None => {
                shapes.push((format!("{prefix}.weight"), vec![c]));
                shapes.push((format!("{prefix}.bias"), vec![c]));
            }
        };
        norm("norm".into());
        for l in 0..cfg.num_layers {
            norm(format!("convnext.{l}.norm"));
        }
        for l in 0..cfg.num_layers {
            let p = format!("convnext.{l}");
            shapes.push((format!("{p}.dwconv.weight"), vec![c, 1, 7]));
            shapes.push((format!("{p}.dwconv.bias"), vec![c]));
            shapes.push((format!("{p}.pwconv1.weight"), vec![i, c]));
            shapes.push((format!("{p}.pwconv1.bias"), vec![i]));
            shapes.push((format!("{p}.pwconv2.weight"), vec![c, i]));
            shapes.push((format!("{p}.pwconv2.bias"), vec![c]));
            shapes.push((format!("{p}.gamma"), vec![c]));
        }
        let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let mut out = HashMap::new();
        for (name, shape) in shapes {
            let n: usize = shape.iter().product();
            let fan_in = if shape.len() > 1 {
                shape[1..].iter().product()
            } else {
                1
            };
            let scale = if name.ends_with("gamma") {
                0.5
            } else if shape.len() > 1 {
                2.0 * (3.0 / fan_in as f32).sqrt()
            } else {
                0.4
            };
            let offset = if name.ends_with("norm.weight") || name.ends_with("scale.weight") {
                1.0
            } else {
                0.0
            };
            let v: Vec<f32> = (0..n).map(|_| offset + scale * next()).collect();
            out.insert(name, Tensor::from_vec(v, shape, &dev)?);
        }
        let window = crate::dsp::hann_window(n_fft);
        out.insert(
            "head.istft.window".into(),
            Tensor::from_vec(window, n_fft, &dev)?,
        );
        Ok(out)
    }

    fn input(channels: usize, frames: usize, seed: u64) -> Result<Tensor> {
        let v: Vec<f32> = (0..2 * channels * frames)
            .map(|i| {
                let x = (i as u64).wrapping_mul(seed | 1) % 1000;
                (x as f32 / 100.0 - 5.0) * if i % 7 == 0 { 3.0 } else { 0.3 }
            })
            .collect();
        Tensor::from_vec(v, (2, channels, frames), &Device::Cpu)
    }

    fn assert_bit_identical(a: &Tensor, b: &Tensor, what: &str) -> Result<()> {
        assert_eq!(a.dims(), b.dims(), "{what}: shapes");
        let a: Vec<f32> = a.flatten_all()?.to_vec1()?;
        let b: Vec<f32> = b.flatten_all()?.to_vec1()?;
        let differing = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count();
        assert_eq!(
            differing,
            0,
            "{what}: {differing} of {} values differ",
            a.len()
        );
        Ok(())
    }

    /// The fused CPU passes give bit for bit what the candle ops give, with plain and
    /// conditioned norms, and with one frame (where candle sums a transposed view as
    /// contiguous).
    #[test]
    fn fused_cpu_path_is_bit_identical_to_candle_ops() -> Result<()> {
        for (ada, frames) in [
            (None, 57),
            (Some(4), 40),
            (None, 1),
            (Some(2), 1),
            (None, 2),
        ] {
            let cfg = VocosConfig {
                input_channels: 9,
                dim: 48,
                intermediate_dim: 80,
                num_layers: 3,
                adanorm_num_embeddings: ada,
                pos_net: false,
            };
            let n_fft = 64;
            let w = weights(&cfg, n_fft, frames as u64)?;
            let vb = VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
            let backbone = VocosBackbone::new(&cfg, vb.clone())?;
            let head = IstftHead::new(cfg.dim, n_fft, 16, IstftPadding::Same, vb.pp("head"))?;
            let x = input(cfg.input_channels, frames, 31 + frames as u64)?;
            let cond = ada.map_or(0, |n| n - 1);
            let fused = backbone.forward(&x, cond)?;
            let embedded = backbone.embed.forward(&x)?;
            let reference = backbone.forward_convnext(&embedded, cond)?;
            let what = format!("backbone, ada {ada:?}, {frames} frame(s)");
            assert_bit_identical(&fused, &reference, &what)?;

            // Large log-magnitudes reach the 1e2 clamp.
            let y = (&fused * 3.0)?;
            let a = head.forward(&y)?;
            let b = head.forward_candle(&y)?;
            assert_bit_identical(&a, &b, &format!("head, {frames} frame(s)"))?;
        }
        Ok(())
    }
}

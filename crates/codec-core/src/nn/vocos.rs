//! The Vocos backbone: ConvNeXt blocks over a frame sequence, optionally with WavTokenizer's
//! `pos_net` (ResNet and self-attention blocks with GroupNorm) and AdaLayerNorm conditioning.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv1d, GroupNorm, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::conv::{conv1d, DepthwiseConv1d};
use super::norm::{layer_norm, AdaLayerNorm, LayerNorm};
use super::transformer::{RopePositions, RotaryEmbedding, TransformerBlock};
use crate::dsp::{Istft, IstftPadding};

/// Hyperparameters of a Vocos backbone, named as in the reference `VocosBackbone`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocosConfig {
    pub input_channels: usize,
    pub dim: usize,
    pub intermediate_dim: usize,
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
}

/// ConvNeXt block: depthwise conv, norm, MLP with GELU, layer scale, residual.
struct ConvNextBlock {
    dwconv: DepthwiseConv1d,
    norm: Norm,
    pwconv1: Linear,
    pwconv2: Linear,
    gamma: Option<Tensor>,
}

impl ConvNextBlock {
    fn new(cfg: &VocosConfig, vb: VarBuilder) -> Result<Self> {
        let dim = cfg.dim;
        let dwconv = DepthwiseConv1d::new(dim, 7, 3, vb.pp("dwconv"))?;
        let norm = Norm::new(dim, cfg, vb.pp("norm"))?;
        let pwconv1 = candle_nn::linear(dim, cfg.intermediate_dim, vb.pp("pwconv1"))?;
        let pwconv2 = candle_nn::linear(cfg.intermediate_dim, dim, vb.pp("pwconv2"))?;
        let gamma = if vb.contains_tensor("gamma") {
            Some(vb.get(dim, "gamma")?)
        } else {
            None
        };
        Ok(Self {
            dwconv,
            norm,
            pwconv1,
            pwconv2,
            gamma,
        })
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
        let w = (q.matmul(&k)? * (self.dim as f64).powf(-0.5))?; // [b, t(q), t(k)]
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
    pub fn forward(&self, x: &Tensor, cond: usize) -> Result<Tensor> {
        let mut x = self.embed.forward(x)?;
        for layer in &self.pos_net {
            x = match layer {
                PosLayer::Resnet(r) => r.forward(&x)?,
                PosLayer::Attn(a) => a.forward(&x)?,
                PosLayer::Norm(n) => n.forward(&x)?,
            };
        }
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
    pub fn new(
        dim: usize,
        n_fft: usize,
        hop: usize,
        padding: IstftPadding,
        vb: VarBuilder,
    ) -> Result<Self> {
        let out = candle_nn::linear(dim, n_fft + 2, vb.pp("out"))?;
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
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.out.forward(x)?;
        // Vocos clips the magnitude at 1e2 after the exponential.
        let mag = x.narrow(2, 0, self.bins)?.exp()?.minimum(1e2)?;
        let phase = x.narrow(2, self.bins, self.bins)?;
        let re = (&mag * phase.cos()?)?;
        let im = (&mag * phase.sin()?)?;
        self.istft.forward(&re, &im)
    }
}

/// Hyperparameters of X-Codec2's transformer Vocos backbone, named as in the reference
/// (`vq.codec_decoder_vocos.VocosBackbone`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerVocosConfig {
    pub hidden_dim: usize,
    /// Transformer blocks.
    pub depth: usize,
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

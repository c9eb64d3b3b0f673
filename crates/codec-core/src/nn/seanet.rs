//! The SEANet convolutional encoder used by EnCodec and WavTokenizer.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::conv::{PadMode, SConv1d, SConv1dConfig};
use super::lstm::Lstm;

/// Hyperparameters of a SEANet encoder, named as in EnCodec's `SEANetEncoder`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeanetConfig {
    pub channels: usize,
    pub dimension: usize,
    pub n_filters: usize,
    pub n_residual_layers: usize,
    /// Upsampling ratios as the reference lists them; the encoder applies them in reverse.
    pub ratios: Vec<usize>,
    pub kernel_size: usize,
    pub residual_kernel_size: usize,
    pub last_kernel_size: usize,
    pub dilation_base: usize,
    pub causal: bool,
    pub pad_mode: PadMode,
    pub true_skip: bool,
    pub compress: usize,
    pub lstm: usize,
}

impl SeanetConfig {
    /// Samples per output frame: the product of the ratios.
    pub fn hop_length(&self) -> usize {
        self.ratios.iter().product()
    }
}

struct ResnetBlock {
    conv1: SConv1d,
    conv2: SConv1d,
    shortcut: Option<SConv1d>,
}

impl ResnetBlock {
    fn new(dim: usize, dilation: usize, cfg: &SeanetConfig, vb: VarBuilder) -> Result<Self> {
        let hidden = dim / cfg.compress;
        let block = vb.pp("block");
        let c1 = SConv1dConfig::new(cfg.residual_kernel_size, cfg.causal, cfg.pad_mode)
            .dilation(dilation);
        let conv1 = SConv1d::new(dim, hidden, c1, block.pp(1))?;
        let c2 = SConv1dConfig::new(1, cfg.causal, cfg.pad_mode);
        let conv2 = SConv1d::new(hidden, dim, c2, block.pp(3))?;
        let shortcut = if cfg.true_skip {
            None
        } else {
            let c = SConv1dConfig::new(1, cfg.causal, cfg.pad_mode);
            Some(SConv1d::new(dim, dim, c, vb.pp("shortcut"))?)
        };
        Ok(Self {
            conv1,
            conv2,
            shortcut,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.conv1.forward(&x.elu(1.0)?)?;
        let y = self.conv2.forward(&y.elu(1.0)?)?;
        let skip = match &self.shortcut {
            Some(s) => s.forward(x)?,
            None => x.clone(),
        };
        skip + y
    }
}

enum Layer {
    Conv(SConv1d),
    /// ELU then convolution (the activation has its own index in the reference's Sequential).
    EluConv(SConv1d),
    Resnet(ResnetBlock),
    /// LSTM over time with a skip connection.
    Lstm(Lstm),
}

/// SEANet encoder: audio `[batch, channels, samples]` → latent `[batch, dimension, frames]`.
///
/// Weights at `model.{i}.*`, the indices of the reference's `nn.Sequential`.
pub struct SeanetEncoder {
    layers: Vec<Layer>,
}

impl SeanetEncoder {
    pub fn new(cfg: &SeanetConfig, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("model");
        let mut idx = 0;
        let mut layers = Vec::new();
        let mut mult = 1;
        let first = SConv1dConfig::new(cfg.kernel_size, cfg.causal, cfg.pad_mode);
        layers.push(Layer::Conv(SConv1d::new(
            cfg.channels,
            cfg.n_filters,
            first,
            vb.pp(idx),
        )?));
        idx += 1;
        for &ratio in cfg.ratios.iter().rev() {
            let dim = mult * cfg.n_filters;
            for j in 0..cfg.n_residual_layers {
                let dilation = cfg.dilation_base.pow(j as u32);
                layers.push(Layer::Resnet(ResnetBlock::new(
                    dim,
                    dilation,
                    cfg,
                    vb.pp(idx),
                )?));
                idx += 1;
            }
            idx += 1; // activation
            let down = SConv1dConfig::new(ratio * 2, cfg.causal, cfg.pad_mode).stride(ratio);
            layers.push(Layer::EluConv(SConv1d::new(
                dim,
                dim * 2,
                down,
                vb.pp(idx),
            )?));
            idx += 1;
            mult *= 2;
        }
        let dim = mult * cfg.n_filters;
        if cfg.lstm > 0 {
            let lstm = Lstm::new(dim, dim, cfg.lstm, vb.pp(idx).pp("lstm"))?;
            layers.push(Layer::Lstm(lstm));
            idx += 1;
        }
        idx += 1; // activation
        let last = SConv1dConfig::new(cfg.last_kernel_size, cfg.causal, cfg.pad_mode);
        layers.push(Layer::EluConv(SConv1d::new(
            dim,
            cfg.dimension,
            last,
            vb.pp(idx),
        )?));
        Ok(Self { layers })
    }
}

impl Module for SeanetEncoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for layer in &self.layers {
            x = match layer {
                Layer::Conv(c) => c.forward(&x)?,
                Layer::EluConv(c) => c.forward(&x.elu(1.0)?)?,
                Layer::Resnet(r) => r.forward(&x)?,
                Layer::Lstm(l) => {
                    let seq = x.transpose(1, 2)?.contiguous()?;
                    (l.forward(&seq)? + seq)?.transpose(1, 2)?.contiguous()?
                }
            };
        }
        Ok(x)
    }
}

//! The SEANet convolutional encoder used by EnCodec and WavTokenizer, and EnCodec's decoder.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::conv::{
    ConvNorm, PadMode, SConv1d, SConv1dConfig, SConvTranspose1d, SConvTranspose1dConfig,
};
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
    /// Normalisation of every convolution (EnCodec's `norm`); weight norm when absent.
    #[serde(default)]
    pub norm: ConvNorm,
}

impl SeanetConfig {
    /// Samples per output frame: the product of the ratios.
    pub fn hop_length(&self) -> usize {
        self.ratios.iter().product()
    }

    /// An [`SConv1dConfig`] with this network's causality, padding and normalisation.
    fn conv(&self, kernel_size: usize) -> SConv1dConfig {
        SConv1dConfig::new(kernel_size, self.causal, self.pad_mode).norm(self.norm)
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
        let c1 = cfg.conv(cfg.residual_kernel_size).dilation(dilation);
        let conv1 = SConv1d::new(dim, hidden, c1, block.pp(1))?;
        let conv2 = SConv1d::new(hidden, dim, cfg.conv(1), block.pp(3))?;
        let shortcut = if cfg.true_skip {
            None
        } else {
            Some(SConv1d::new(dim, dim, cfg.conv(1), vb.pp("shortcut"))?)
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
    /// ELU then transposed convolution (decoder upsampling).
    EluConvTr(SConvTranspose1d),
    Resnet(Box<ResnetBlock>),
    /// LSTM over time with a skip connection.
    Lstm(Lstm),
}

fn run_layers(layers: &[Layer], x: &Tensor) -> Result<Tensor> {
    let mut x = x.clone();
    for layer in layers {
        x = match layer {
            Layer::Conv(c) => c.forward(&x)?,
            Layer::EluConv(c) => c.forward(&x.elu(1.0)?)?,
            Layer::EluConvTr(c) => c.forward(&x.elu(1.0)?)?,
            Layer::Resnet(r) => r.forward(&x)?,
            Layer::Lstm(l) => {
                // EnCodec's SLSTM: over time, plus the input (skip).
                let seq = x.transpose(1, 2)?.contiguous()?;
                (l.forward(&seq)? + seq)?.transpose(1, 2)?.contiguous()?
            }
        };
    }
    Ok(x)
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
        layers.push(Layer::Conv(SConv1d::new(
            cfg.channels,
            cfg.n_filters,
            cfg.conv(cfg.kernel_size),
            vb.pp(idx),
        )?));
        idx += 1;
        for &ratio in cfg.ratios.iter().rev() {
            let dim = mult * cfg.n_filters;
            for j in 0..cfg.n_residual_layers {
                let dilation = cfg.dilation_base.pow(j as u32);
                layers.push(Layer::Resnet(Box::new(ResnetBlock::new(
                    dim,
                    dilation,
                    cfg,
                    vb.pp(idx),
                )?)));
                idx += 1;
            }
            idx += 1; // activation
            let down = cfg.conv(ratio * 2).stride(ratio);
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
        layers.push(Layer::EluConv(SConv1d::new(
            dim,
            cfg.dimension,
            cfg.conv(cfg.last_kernel_size),
            vb.pp(idx),
        )?));
        Ok(Self { layers })
    }
}

impl Module for SeanetEncoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        run_layers(&self.layers, x)
    }
}

/// SEANet decoder (EnCodec's `SEANetDecoder`, no final activation): latent
/// `[batch, dimension, frames]` → audio `[batch, channels, frames * hop_length]`.
///
/// The mirror of [`SeanetEncoder`] built from the same [`SeanetConfig`]: a convolution to
/// `2^len(ratios) * n_filters` channels, the LSTM with skip, then per ratio (in the listed order)
/// ELU + [`SConvTranspose1d`] (`kernel = 2 * ratio`, `stride = ratio`) halving the channels and
/// the residual blocks, then ELU + the last convolution to `channels`. Weights at `model.{i}.*`.
pub struct SeanetDecoder {
    layers: Vec<Layer>,
}

impl SeanetDecoder {
    /// `trim_right_ratio`: see [`SConvTranspose1dConfig::trim_right_ratio`] (EnCodec: 1.0).
    pub fn new(cfg: &SeanetConfig, trim_right_ratio: f64, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("model");
        let mut idx = 0;
        let mut layers = Vec::new();
        let mut mult = 1 << cfg.ratios.len();
        layers.push(Layer::Conv(SConv1d::new(
            cfg.dimension,
            mult * cfg.n_filters,
            cfg.conv(cfg.kernel_size),
            vb.pp(idx),
        )?));
        idx += 1;
        if cfg.lstm > 0 {
            let dim = mult * cfg.n_filters;
            let lstm = Lstm::new(dim, dim, cfg.lstm, vb.pp(idx).pp("lstm"))?;
            layers.push(Layer::Lstm(lstm));
            idx += 1;
        }
        for &ratio in &cfg.ratios {
            let dim = mult * cfg.n_filters;
            idx += 1; // activation
            let up = SConvTranspose1dConfig::new(ratio * 2, ratio, cfg.causal)
                .norm(cfg.norm)
                .trim_right_ratio(trim_right_ratio);
            layers.push(Layer::EluConvTr(SConvTranspose1d::new(
                dim,
                dim / 2,
                up,
                vb.pp(idx),
            )?));
            idx += 1;
            for j in 0..cfg.n_residual_layers {
                let dilation = cfg.dilation_base.pow(j as u32);
                layers.push(Layer::Resnet(Box::new(ResnetBlock::new(
                    dim / 2,
                    dilation,
                    cfg,
                    vb.pp(idx),
                )?)));
                idx += 1;
            }
            mult /= 2;
        }
        idx += 1; // activation
        layers.push(Layer::EluConv(SConv1d::new(
            cfg.n_filters,
            cfg.channels,
            cfg.conv(cfg.last_kernel_size),
            vb.pp(idx),
        )?));
        Ok(Self { layers })
    }
}

impl Module for SeanetDecoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        run_layers(&self.layers, x)
    }
}

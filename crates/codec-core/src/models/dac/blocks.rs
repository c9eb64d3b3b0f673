//! The convolutional blocks of DAC (Kumar et al. 2023, `dac.model.dac`), which SNAC reuses with
//! depthwise residual convolutions and noise injection: weight-normed convolutions (folded once
//! at load), residual units of Snake and dilated convolutions, strided encoder blocks and
//! transposed-convolution decoder blocks.
//!
//! Key layout, as in both references: a residual unit is `block.{0: snake, 1: conv k7 dilated,
//! 2: snake, 3: conv k1}`; an encoder block is `block.{0,1,2: residual units, 3: snake,
//! 4: strided conv}`; a decoder block is `block.{0: snake, 1: transposed conv,
//! [2: noise block,] then three residual units}`.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

use crate::nn::snake::Snake1d;
use crate::nn::torch_conv::{Conv, ConvSpec, ConvTranspose};

/// `ResidualUnit`: Snake, dilated conv (kernel 7, "same" padding), Snake, 1x1 conv, plus the
/// input (centre-cropped if the convolutions shortened it, which "same" padding never does).
#[derive(Debug, Clone)]
pub struct ResidualUnit {
    snake1: Snake1d,
    conv1: Conv,
    snake2: Snake1d,
    conv2: Conv,
}

impl ResidualUnit {
    /// `groups` of the dilated conv: 1 in DAC, `dim` (depthwise) in SNAC.
    pub fn new(dim: usize, dilation: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        let kernel = 7;
        let vb = vb.pp("block");
        let pad = ((kernel - 1) * dilation) / 2;
        Ok(Self {
            snake1: Snake1d::new(dim, vb.pp(0))?,
            conv1: Conv::new(
                ConvSpec::new(dim, dim, kernel)
                    .dilation(dilation)
                    .padding(pad)
                    .groups(groups),
                vb.pp(1),
            )?,
            snake2: Snake1d::new(dim, vb.pp(2))?,
            conv2: Conv::new(ConvSpec::new(dim, dim, 1), vb.pp(3))?,
        })
    }
}

impl Module for ResidualUnit {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.snake1.forward(x)?;
        let y = self.conv1.forward(&y)?;
        let y = self.snake2.forward(&y)?;
        let y = self.conv2.forward(&y)?;
        let (xl, yl) = (x.dim(D::Minus1)?, y.dim(D::Minus1)?);
        let pad = xl.saturating_sub(yl) / 2;
        if pad > 0 {
            x.narrow(D::Minus1, pad, xl - 2 * pad)? + y
        } else {
            x + y
        }
    }
}

/// The dilations of the three residual units in every block.
pub const DILATIONS: [usize; 3] = [1, 3, 9];

/// `EncoderBlock`: three residual units at `input_dim`, Snake, then a strided conv to
/// `output_dim` (kernel `2 * stride`, padding `ceil(stride / 2)`: `len / stride` frames out for
/// lengths divisible by the stride).
#[derive(Debug, Clone)]
pub struct EncoderBlock {
    units: Vec<ResidualUnit>,
    snake: Snake1d,
    conv: Conv,
}

impl EncoderBlock {
    /// Three residual units of `input_dim` channels (dilations 1, 3, 9; `groups` > 1: SNAC's
    /// grouped residual convolutions), Snake, and a convolution of stride `stride` to
    /// `output_dim` channels.
    pub fn new(
        input_dim: usize,
        output_dim: usize,
        stride: usize,
        groups: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let vb = vb.pp("block");
        let units = DILATIONS
            .iter()
            .enumerate()
            .map(|(i, &d)| ResidualUnit::new(input_dim, d, groups, vb.pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            units,
            snake: Snake1d::new(input_dim, vb.pp(3))?,
            conv: Conv::new(
                ConvSpec::new(input_dim, output_dim, 2 * stride)
                    .stride(stride)
                    .padding(stride.div_ceil(2)),
                vb.pp(4),
            )?,
        })
    }
}

impl Module for EncoderBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for u in &self.units {
            x = u.forward(&x)?;
        }
        self.conv.forward(&self.snake.forward(&x)?)
    }
}

/// SNAC's `NoiseBlock`: `x + noise * linear(x)`, with fresh standard normal noise `[batch, 1,
/// time]` at every call; `linear` is a 1x1 conv without bias at `vb.linear.weight`.
#[derive(Debug, Clone)]
pub struct NoiseBlock {
    linear: Conv,
}

impl NoiseBlock {
    /// A noise block of `dim` channels (SNAC's decoder).
    pub fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            linear: Conv::new(ConvSpec::new(dim, dim, 1).bias(false), vb.pp("linear"))?,
        })
    }

    /// With `enabled` false the block is the identity (noise of zero): deterministic output.
    pub fn forward(&self, x: &Tensor, enabled: bool) -> Result<Tensor> {
        if !enabled {
            return Ok(x.clone());
        }
        let (b, _, t) = x.dims3()?;
        let noise = Tensor::randn(0f32, 1f32, (b, 1, t), x.device())?.to_dtype(x.dtype())?;
        let h = self.linear.forward(x)?;
        x + h.broadcast_mul(&noise)?
    }
}

/// Options of a [`DecoderBlock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderBlockSpec {
    /// Channels in.
    pub input_dim: usize,
    /// Channels out.
    pub output_dim: usize,
    /// Upsampling factor of the transposed convolution.
    pub stride: usize,
    /// `output_padding` of the transposed conv: 0 in DAC, `stride % 2` in SNAC.
    pub output_padding: usize,
    /// A [`NoiseBlock`] after the transposed conv (SNAC).
    pub noise: bool,
    /// Groups of the residual units' dilated convs: 1, or `output_dim` for depthwise.
    pub groups: usize,
}

/// `DecoderBlock`: Snake, transposed conv (kernel `2 * stride`, padding `ceil(stride / 2)`),
/// optionally a noise block, then three residual units at `output_dim`.
#[derive(Debug, Clone)]
pub struct DecoderBlock {
    snake: Snake1d,
    conv_t: ConvTranspose,
    noise: Option<NoiseBlock>,
    units: Vec<ResidualUnit>,
}

impl DecoderBlock {
    /// A decoder block as `spec` describes it.
    pub fn new(spec: DecoderBlockSpec, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("block");
        let s = spec.stride;
        let snake = Snake1d::new(spec.input_dim, vb.pp(0))?;
        let conv_t = ConvTranspose::new(
            spec.input_dim,
            spec.output_dim,
            2 * s,
            s,
            s.div_ceil(2),
            spec.output_padding,
            vb.pp(1),
        )?;
        let mut next = 2;
        let noise = if spec.noise {
            next += 1;
            Some(NoiseBlock::new(spec.output_dim, vb.pp(2))?)
        } else {
            None
        };
        let units = DILATIONS
            .iter()
            .enumerate()
            .map(|(i, &d)| ResidualUnit::new(spec.output_dim, d, spec.groups, vb.pp(next + i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            snake,
            conv_t,
            noise,
            units,
        })
    }

    /// `noise`: whether a noise block (if any) adds its random noise.
    pub fn forward(&self, x: &Tensor, noise: bool) -> Result<Tensor> {
        let mut x = self.conv_t.forward(&self.snake.forward(x)?)?;
        if let Some(n) = &self.noise {
            x = n.forward(&x, noise)?;
        }
        for u in &self.units {
            x = u.forward(&x)?;
        }
        Ok(x)
    }
}

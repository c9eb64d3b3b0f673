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
use candle_nn::{Conv1d, Conv1dConfig, VarBuilder};

use super::conv::DepthwiseConv1d;
use super::snake::Snake1d;

/// The arguments of a PyTorch `nn.Conv1d` with zero padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    pub in_c: usize,
    pub out_c: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
    pub bias: bool,
}

impl ConvSpec {
    /// Stride 1, no padding, no dilation, one group, with bias.
    pub fn new(in_c: usize, out_c: usize, kernel: usize) -> Self {
        Self {
            in_c,
            out_c,
            kernel,
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
            bias: true,
        }
    }
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }
    pub fn dilation(mut self, dilation: usize) -> Self {
        self.dilation = dilation;
        self
    }
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
}

/// A convolution (weights at `vb.{weight,bias}`, weight norm already folded). Depthwise ones
/// (`groups == channels`) run as [`DepthwiseConv1d`], far faster than a grouped convolution.
#[derive(Debug, Clone)]
pub enum Conv {
    Dense(Conv1d),
    Depthwise(DepthwiseConv1d),
}

impl Conv {
    pub fn new(spec: ConvSpec, vb: VarBuilder) -> Result<Self> {
        let depthwise = spec.groups > 1
            && spec.groups == spec.in_c
            && spec.in_c == spec.out_c
            && spec.stride == 1
            && spec.bias;
        if depthwise {
            let conv = DepthwiseConv1d::new(spec.in_c, spec.kernel, spec.padding, vb)?
                .with_dilation(spec.dilation);
            return Ok(Conv::Depthwise(conv));
        }
        if spec.groups == 0
            || !spec.in_c.is_multiple_of(spec.groups)
            || !spec.out_c.is_multiple_of(spec.groups)
        {
            candle_core::bail!(
                "conv {} -> {} channels cannot be split into {} groups",
                spec.in_c,
                spec.out_c,
                spec.groups
            )
        }
        let weight = vb.get((spec.out_c, spec.in_c / spec.groups, spec.kernel), "weight")?;
        let bias = if spec.bias {
            Some(vb.get(spec.out_c, "bias")?)
        } else {
            None
        };
        let cfg = Conv1dConfig {
            padding: spec.padding,
            stride: spec.stride,
            dilation: spec.dilation,
            groups: spec.groups,
            cudnn_fwd_algo: None,
        };
        Ok(Conv::Dense(Conv1d::new(weight, bias, cfg)))
    }
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Conv::Dense(c) => super::conv::conv1d_in_chunks(c, x),
            Conv::Depthwise(c) => c.forward(x),
        }
    }
}

/// A PyTorch `nn.ConvTranspose1d` (weight `[in, out, kernel]` at `vb.weight`, bias at
/// `vb.bias`) with its `padding` and `output_padding`.
///
/// Computed without padding (candle's fast col2im path on CPU), then cut to the samples PyTorch
/// keeps: `padding` off the front, and the length `(len - 1) * stride - 2 * padding + kernel +
/// output_padding`.
#[derive(Debug, Clone)]
pub struct ConvTranspose {
    weight: Tensor,
    /// `[1, out, 1]`.
    bias: Option<Tensor>,
    kernel: usize,
    stride: usize,
    padding: usize,
    output_padding: usize,
}

impl ConvTranspose {
    pub fn new(
        in_c: usize,
        out_c: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        output_padding: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = vb.get((in_c, out_c, kernel), "weight")?.contiguous()?;
        let bias = Some(vb.get(out_c, "bias")?.reshape((1, out_c, 1))?);
        Ok(Self {
            weight,
            bias,
            kernel,
            stride,
            padding,
            output_padding,
        })
    }

    /// Output length for `len` input frames.
    pub fn out_len(&self, len: usize) -> usize {
        ((len.max(1) - 1) * self.stride + self.kernel + self.output_padding)
            .saturating_sub(2 * self.padding)
    }
}

impl Module for ConvTranspose {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let len = x.dim(D::Minus1)?;
        let full =
            super::conv::conv_transpose1d_batched(&x.contiguous()?, &self.weight, self.stride, 1)?;
        let full_len = full.dim(D::Minus1)?;
        let out_len = self.out_len(len);
        let take = out_len.min(full_len.saturating_sub(self.padding));
        let mut y = full.narrow(D::Minus1, self.padding, take)?;
        if take < out_len {
            // `output_padding` past the computed samples: only the bias lands there.
            y = y.pad_with_zeros(D::Minus1, 0, out_len - take)?;
        }
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

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
    pub input_dim: usize,
    pub output_dim: usize,
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    /// Direct evaluation of PyTorch's ConvTranspose1d definition.
    #[allow(clippy::too_many_arguments)]
    fn reference_conv_t(
        x: &[f32],
        c_in: usize,
        len: usize,
        w: &[f32],
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
        out_pad: usize,
        bias: &[f32],
    ) -> Vec<f32> {
        let out_len = (len - 1) * stride + k + out_pad - 2 * pad;
        let mut y = vec![0f32; c_out * out_len];
        for o in 0..c_out {
            for t in 0..out_len {
                y[o * out_len + t] = bias[o];
            }
        }
        for i in 0..c_in {
            for n in 0..len {
                for o in 0..c_out {
                    for j in 0..k {
                        let pos = (n * stride + j) as isize - pad as isize;
                        if pos >= 0 && (pos as usize) < out_len {
                            y[o * out_len + pos as usize] +=
                                x[i * len + n] * w[(i * c_out + o) * k + j];
                        }
                    }
                }
            }
        }
        y
    }

    #[test]
    fn conv_transpose_matches_pytorch_definition() -> Result<()> {
        let dev = Device::Cpu;
        for (stride, out_pad) in [(2usize, 0usize), (5, 0), (3, 1), (8, 0), (1, 0)] {
            let (c_in, c_out, len, k) = (3, 2, 6, 2 * stride);
            let pad = stride.div_ceil(2);
            let x: Vec<f32> = (0..c_in * len)
                .map(|i| ((i * 7 % 11) as f32) - 5.0)
                .collect();
            let w: Vec<f32> = (0..c_in * c_out * k)
                .map(|i| ((i * 5 % 13) as f32) * 0.1 - 0.6)
                .collect();
            let bias = vec![0.25f32, -0.5];
            let mut map = HashMap::new();
            map.insert(
                "weight".to_string(),
                Tensor::from_vec(w.clone(), (c_in, c_out, k), &dev)?,
            );
            map.insert(
                "bias".to_string(),
                Tensor::from_vec(bias.clone(), c_out, &dev)?,
            );
            let vb = VarBuilder::from_tensors(map, DType::F32, &dev);
            let conv = ConvTranspose::new(c_in, c_out, k, stride, pad, out_pad, vb)?;
            let xt = Tensor::from_vec(x.clone(), (1, c_in, len), &dev)?;
            let got = conv.forward(&xt)?.flatten_all()?.to_vec1::<f32>()?;
            let want = reference_conv_t(&x, c_in, len, &w, c_out, k, stride, pad, out_pad, &bias);
            assert_eq!(got.len(), want.len(), "stride {stride}");
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-4, "stride {stride}: {a} vs {b}");
            }
        }
        Ok(())
    }

    #[test]
    fn dilated_depthwise_matches_grouped_conv() -> Result<()> {
        let dev = Device::Cpu;
        let (c, len, k, d) = (4, 40, 7, 3);
        let w: Vec<f32> = (0..c * k)
            .map(|i| ((i * 3 % 7) as f32) * 0.2 - 0.5)
            .collect();
        let b = vec![0.1f32, -0.2, 0.3, 0.0];
        let x = Tensor::from_vec(
            (0..c * len)
                .map(|i| ((i * 13 % 17) as f32) * 0.1 - 0.8)
                .collect::<Vec<f32>>(),
            (1, c, len),
            &dev,
        )?;
        let mut map = HashMap::new();
        map.insert("weight".to_string(), Tensor::from_vec(w, (c, 1, k), &dev)?);
        map.insert("bias".to_string(), Tensor::from_vec(b, c, &dev)?);
        let vb = VarBuilder::from_tensors(map, DType::F32, &dev);
        let spec = ConvSpec::new(c, c, k).dilation(d).padding(3 * d).groups(c);
        let fast = Conv::new(spec, vb.clone())?;
        assert!(matches!(fast, Conv::Depthwise(_)));
        let slow = Conv1d::new(
            vb.get((c, 1, k), "weight")?,
            Some(vb.get(c, "bias")?),
            Conv1dConfig {
                padding: 3 * d,
                stride: 1,
                dilation: d,
                groups: c,
                cudnn_fwd_algo: None,
            },
        );
        let a = fast.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
        let b = slow.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(a.len(), b.len());
        for (a, b) in a.iter().zip(&b) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        Ok(())
    }
}

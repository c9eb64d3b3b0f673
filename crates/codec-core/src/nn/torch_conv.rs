//! 1-d convolutions with the arguments and zero padding of PyTorch's `nn.Conv1d` and
//! `nn.ConvTranspose1d` (weight norm folded at load), as the DAC-style codecs use them.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::conv1d::{Conv1d, Conv1dConfig, ConvTranspose1d, ConvTranspose1dConfig};

use super::conv::DepthwiseConv1d;

/// The arguments of a PyTorch `nn.Conv1d` with zero padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    /// Channels in.
    pub in_c: usize,
    /// Channels out.
    pub out_c: usize,
    /// Kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zeros on each side.
    pub padding: usize,
    /// Dilation.
    pub dilation: usize,
    /// Groups.
    pub groups: usize,
    /// Whether it has a bias.
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
    /// Set the stride.
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }
    /// Set the padding.
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }
    /// Set the dilation.
    pub fn dilation(mut self, dilation: usize) -> Self {
        self.dilation = dilation;
        self
    }
    /// Set the groups.
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
    /// Set whether it has a bias.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
}

/// A convolution (weights at `vb.{weight,bias}`, weight norm already folded). Depthwise ones
/// (`groups == channels`) run as [`DepthwiseConv1d`], far faster than a grouped convolution.
#[derive(Debug, Clone)]
pub enum Conv {
    /// A dense or grouped convolution (candle's).
    Dense(Conv1d),
    /// A depthwise convolution (ours, faster).
    Depthwise(DepthwiseConv1d),
}

impl Conv {
    /// The convolution `spec` describes, with weights at `vb`.
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
/// `vb.bias`) with its `padding` and `output_padding`: output length `(len - 1) * stride -
/// 2 * padding + kernel + output_padding`.
#[derive(Debug, Clone)]
pub struct ConvTranspose {
    conv: ConvTranspose1d,
    kernel: usize,
    stride: usize,
    padding: usize,
    output_padding: usize,
}

impl ConvTranspose {
    /// A transposed convolution with weights at `vb`.
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
        let bias = vb.get(out_c, "bias")?;
        let cfg = ConvTranspose1dConfig {
            padding,
            output_padding,
            stride,
            dilation: 1,
            groups: 1,
        };
        Ok(Self {
            conv: ConvTranspose1d::new(weight, Some(bias), cfg)?,
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
        self.conv.forward(x)
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

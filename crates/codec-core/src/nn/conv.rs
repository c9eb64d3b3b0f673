//! 1-d convolutions with the padding rules of the reference codecs.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{GroupNorm, VarBuilder};

use super::conv1d::{
    conv1d_padded, on_fast_path, Conv1d, Conv1dConfig, ConvTranspose1d, ConvTranspose1dConfig,
};
use super::kernels::activation::elu;
use super::kernels::{depthwise_conv1d_f32, Activation, Conv1dShape};

mod stream;

use stream::{ConvStream, ConvTrStream};

/// How a convolution pads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PadMode {
    /// Mirror the signal at the edges, without repeating the edge sample (PyTorch `reflect`).
    Reflect,
    /// Pad with zeros (PyTorch `constant`).
    #[serde(alias = "constant")]
    Zero,
    /// Repeat the edge sample (PyTorch `replicate`; Mimi's downsampling convolution).
    Replicate,
}

/// The normalisation of a reference convolution (EnCodec's `norm` argument).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvNorm {
    /// No normalisation: a plain convolution.
    None,
    /// Weight norm: a plain convolution at inference, the weight folded once at load
    /// ([`crate::weights::StateDict::fold_weight_norm`]).
    #[default]
    WeightNorm,
    /// `GroupNorm(1, out_channels)` on the convolution's output (EnCodec 48 kHz), weights at
    /// `norm.{weight,bias}` beside the convolution's.
    TimeGroupNorm,
}

impl ConvNorm {
    /// The `GroupNorm(1, channels)` this normalisation adds after a convolution, if any.
    fn build(self, channels: usize, vb: VarBuilder) -> Result<Option<GroupNorm>> {
        match self {
            ConvNorm::None | ConvNorm::WeightNorm => Ok(None),
            ConvNorm::TimeGroupNorm => {
                // PyTorch's GroupNorm default eps.
                Ok(Some(candle_nn::group_norm(1, channels, 1e-5, vb)?))
            }
        }
    }
}

/// Pad the last dimension of `x` by `left` and `right` samples.
///
/// Reflect padding of a signal shorter than the padding first pads it with zeros, as
/// EnCodec's `pad1d` does, so that short inputs still work.
pub fn pad1d(x: &Tensor, left: usize, right: usize, mode: PadMode) -> Result<Tensor> {
    if left == 0 && right == 0 {
        return Ok(x.clone());
    }
    match mode {
        PadMode::Zero => x.pad_with_zeros(D::Minus1, left, right),
        PadMode::Replicate => x.pad_with_same(D::Minus1, left, right),
        PadMode::Reflect => {
            let len = x.dim(D::Minus1)?;
            let max_pad = left.max(right);
            if len <= max_pad {
                let extra = max_pad - len + 1;
                let padded = x.pad_with_zeros(D::Minus1, 0, extra)?;
                let out = reflect(&padded, left, right)?;
                let out_len = out.dim(D::Minus1)?;
                return out.narrow(D::Minus1, 0, out_len - extra);
            }
            reflect(x, left, right)
        }
    }
}

fn reflect(x: &Tensor, left: usize, right: usize) -> Result<Tensor> {
    let len = x.dim(D::Minus1)?;
    let dev = x.device();
    let mut parts = Vec::with_capacity(3);
    if left > 0 {
        let idx: Vec<u32> = (1..=left as u32).rev().collect();
        parts.push(x.index_select(&Tensor::new(idx, dev)?, D::Minus1)?);
    }
    parts.push(x.clone());
    if right > 0 {
        let idx: Vec<u32> = (0..right).map(|i| (len - 2 - i) as u32).collect();
        parts.push(x.index_select(&Tensor::new(idx, dev)?, D::Minus1)?);
    }
    Tensor::cat(&parts, D::Minus1)
}

/// EnCodec's `SConv1d`: a convolution that pads its input itself so that the output has
/// `ceil(len / stride)` frames ("same" for stride 1), causally or centred.
///
/// Weights live under `conv.conv.{weight,bias}` (weight norm already folded), and with
/// [`ConvNorm::TimeGroupNorm`] the output norm under `conv.norm.{weight,bias}`.
///
/// One layer for both modes (moshi's `StreamableConv1d`): [`Module::forward`] runs a whole
/// sequence, [`StreamingModule::step`](crate::streaming::StreamingModule::step) runs a causal one
/// piece by piece with the left context as state, on the same weights and kernels. A clone
/// shares the weights and starts from the same state.
#[derive(Debug, Clone)]
pub struct SConv1d {
    conv: Conv1d,
    norm: Option<GroupNorm>,
    kernel_size: usize,
    stride: usize,
    dilation: usize,
    causal: bool,
    pad_mode: PadMode,
    /// The streaming state (unused by `forward`).
    stream: ConvStream,
}

/// Shape and padding options of an [`SConv1d`].
#[derive(Debug, Clone, Copy)]
pub struct SConv1dConfig {
    /// Kernel size.
    pub kernel_size: usize,
    /// Stride.
    pub stride: usize,
    /// Dilation.
    pub dilation: usize,
    /// Groups (1: dense).
    pub groups: usize,
    /// All padding on the left (causal) or split around the input.
    pub causal: bool,
    /// How the padding is filled.
    pub pad_mode: PadMode,
    /// Whether the convolution has a bias.
    pub bias: bool,
    /// The normalisation (weight norm folded at load).
    pub norm: ConvNorm,
}

impl SConv1dConfig {
    /// Stride 1, dilation 1, one group, with bias, weight norm.
    pub fn new(kernel_size: usize, causal: bool, pad_mode: PadMode) -> Self {
        Self {
            kernel_size,
            stride: 1,
            dilation: 1,
            groups: 1,
            causal,
            pad_mode,
            bias: true,
            norm: ConvNorm::WeightNorm,
        }
    }
    /// Set the normalisation.
    pub fn norm(mut self, norm: ConvNorm) -> Self {
        self.norm = norm;
        self
    }
    /// Set the stride.
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }
    /// Set the dilation.
    pub fn dilation(mut self, dilation: usize) -> Self {
        self.dilation = dilation;
        self
    }
    /// Set whether the convolution has a bias.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
}

impl SConv1d {
    /// Reads `vb.conv.conv.weight` (and `.bias`), the reference's nesting of `NormConv1d`.
    pub fn new(in_c: usize, out_c: usize, cfg: SConv1dConfig, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("conv");
        let norm = cfg.norm.build(out_c, vb.pp("norm"))?;
        Ok(Self {
            norm,
            ..Self::at(in_c, out_c, cfg, vb.pp("conv"))?
        })
    }

    /// The same padding with the weights at `vb.{weight,bias}` and no output norm: the flat
    /// layout of transformers' and Qwen's causal convolutions (`….conv.weight`).
    pub fn at(in_c: usize, out_c: usize, cfg: SConv1dConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.groups == 0
            || !in_c.is_multiple_of(cfg.groups)
            || !out_c.is_multiple_of(cfg.groups)
            || cfg.stride == 0
            || cfg.kernel_size == 0
            || cfg.dilation == 0
        {
            candle_core::bail!(
                "conv1d: bad shape (in {in_c}, out {out_c}, groups {}, kernel {}, stride {}, \
                 dilation {})",
                cfg.groups,
                cfg.kernel_size,
                cfg.stride,
                cfg.dilation
            )
        }
        let weight = vb.get((out_c, in_c / cfg.groups, cfg.kernel_size), "weight")?;
        let bias = if cfg.bias {
            Some(vb.get(out_c, "bias")?)
        } else {
            None
        };
        let conv = Conv1d::new(
            weight,
            bias,
            Conv1dConfig {
                padding: 0,
                stride: cfg.stride,
                dilation: cfg.dilation,
                groups: cfg.groups,
                cudnn_fwd_algo: None,
            },
        );
        Ok(Self {
            conv,
            norm: None,
            kernel_size: cfg.kernel_size,
            stride: cfg.stride,
            dilation: cfg.dilation,
            causal: cfg.causal,
            pad_mode: cfg.pad_mode,
            stream: ConvStream::default(),
        })
    }

    /// The kernel's span in samples, dilation included.
    fn effective_kernel(&self) -> usize {
        (self.kernel_size - 1) * self.dilation + 1
    }
}

/// Extra right padding so that the last window is complete (EnCodec's
/// `get_extra_padding_for_conv1d`).
pub fn extra_padding_for_conv1d(
    len: usize,
    kernel_size: usize,
    stride: usize,
    padding_total: usize,
) -> usize {
    let n_frames = (len + padding_total).saturating_sub(kernel_size) as f64 / stride as f64 + 1.0;
    let ideal = (n_frames.ceil() as usize - 1) * stride + kernel_size - padding_total;
    ideal.saturating_sub(len)
}

impl Module for SConv1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_fused(x, Activation::None, None)
    }
}

impl SConv1d {
    /// `activation(self.forward(x)) + residual`, fused into the convolution's output tiles on
    /// the CPU (the same values as the separate operations); `residual` has the output's shape.
    pub fn forward_fused(
        &self,
        x: &Tensor,
        activation: Activation,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        let len = x.dim(D::Minus1)?;
        let kernel = self.effective_kernel();
        let padding_total = kernel.saturating_sub(self.stride);
        let extra = extra_padding_for_conv1d(len, kernel, self.stride, padding_total);
        let (left, right) = if self.causal {
            (padding_total, extra)
        } else {
            let right = padding_total / 2;
            (padding_total - right, right + extra)
        };
        // The CPU kernel pads as it gathers (reflect only from inputs longer than the pads:
        // shorter ones take pad1d's zero-extended reflection).
        let reflect_short = self.pad_mode == PadMode::Reflect && len <= left.max(right);
        if on_fast_path(x, self.conv.weight()) && !reflect_short && self.norm.is_none() {
            let (batch, in_c, _) = x.dims3()?;
            let shape = Conv1dShape {
                batch,
                in_c,
                out_c: self.conv.weight().dim(0)?,
                in_len: len,
                kernel: self.kernel_size,
                stride: self.stride,
                pad_left: left,
                pad_right: right,
                pad_mode: self.pad_mode,
                dilation: self.dilation,
                groups: self.conv.config().groups,
            };
            return conv1d_padded(
                x,
                self.conv.weight(),
                self.conv.bias(),
                &shape,
                activation,
                residual,
            );
        }
        let y = conv1d_in_chunks(&self.conv, &pad1d(x, left, right, self.pad_mode)?)?;
        let y = match &self.norm {
            Some(norm) => norm.forward(&y)?,
            None => y,
        };
        let y = match activation {
            Activation::None => y,
            Activation::Elu(alpha) => elu(&y, alpha as f64)?,
        };
        match residual {
            Some(r) => r + y,
            None => Ok(y),
        }
    }
}

/// Shape and trimming options of an [`SConvTranspose1d`].
#[derive(Debug, Clone, Copy)]
pub struct SConvTranspose1dConfig {
    /// Kernel size.
    pub kernel_size: usize,
    /// Stride (the upsampling factor).
    pub stride: usize,
    /// Trim the extra samples on the right (causal) or around.
    pub causal: bool,
    /// The normalisation (weight norm folded at load).
    pub norm: ConvNorm,
    /// Causal only: the share of the `kernel_size - stride` extra samples trimmed on the right
    /// (the rest on the left). EnCodec's default is 1.0: everything on the right.
    pub trim_right_ratio: f64,
    /// Channel groups (1: dense; the number of channels: depthwise, Mimi's upsampling).
    pub groups: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl SConvTranspose1dConfig {
    /// Weight norm, trim ratio 1.
    pub fn new(kernel_size: usize, stride: usize, causal: bool) -> Self {
        Self {
            kernel_size,
            stride,
            causal,
            norm: ConvNorm::WeightNorm,
            trim_right_ratio: 1.0,
            groups: 1,
            bias: true,
        }
    }
    /// Set the channel groups.
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
    /// Set whether the layer has a bias.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
    /// Set the normalisation.
    pub fn norm(mut self, norm: ConvNorm) -> Self {
        self.norm = norm;
        self
    }
    /// Of the samples a causal transposed convolution trims, the share taken on the right.
    pub fn trim_right_ratio(mut self, ratio: f64) -> Self {
        self.trim_right_ratio = ratio;
        self
    }
}

/// EnCodec's `SConvTranspose1d`: a transposed convolution that trims the `kernel_size - stride`
/// samples it adds, so that `T` frames in give `T * stride` samples out. Causal: trimmed on the
/// right (per `trim_right_ratio`); otherwise split, the larger half on the left.
///
/// Weights at `convtr.convtr.{weight,bias}` (`[in, out / groups, kernel]`, weight norm already
/// folded); with [`ConvNorm::TimeGroupNorm`] the norm at `convtr.norm.{weight,bias}`, applied
/// before the trim as in the reference.
///
/// Both modes in one layer, like [`SConv1d`]: [`Module::forward`] over a whole sequence, and,
/// causal with everything trimmed on the right,
/// [`StreamingModule::step`](crate::streaming::StreamingModule::step) over a stream, the
/// `kernel - stride` samples that later frames still add to kept as state (moshi's
/// `StreamingConvTranspose1d`).
#[derive(Debug, Clone)]
pub struct SConvTranspose1d {
    /// The convolution (its bias included), on the CPU kernel; unused by a depthwise one.
    conv: ConvTranspose1d,
    /// Depthwise with a kernel of whole strides: computed as scaled strided copies.
    depthwise: bool,
    /// The bias `[1, out, 1]`, for the paths that add it after the products.
    bias: Option<Tensor>,
    norm: Option<GroupNorm>,
    kernel: usize,
    stride: usize,
    left: usize,
    right: usize,
    /// The streaming state (unused by `forward`).
    stream: ConvTrStream,
}

impl SConvTranspose1d {
    /// A transposed convolution `in_c → out_c` with weights at `vb` (`convtr.*`).
    pub fn new(
        in_c: usize,
        out_c: usize,
        cfg: SConvTranspose1dConfig,
        vb: VarBuilder,
    ) -> Result<Self> {
        let vb = vb.pp("convtr");
        let norm = cfg.norm.build(out_c, vb.pp("norm"))?;
        Ok(Self {
            norm,
            ..Self::at(in_c, out_c, cfg, vb.pp("convtr"))?
        })
    }

    /// The same trimming with the weights at `vb.{weight,bias}` and no norm (Qwen's
    /// `CausalTransConvNet.conv`).
    pub fn at(
        in_c: usize,
        out_c: usize,
        cfg: SConvTranspose1dConfig,
        vb: VarBuilder,
    ) -> Result<Self> {
        if cfg.groups == 0
            || !in_c.is_multiple_of(cfg.groups)
            || !out_c.is_multiple_of(cfg.groups)
            || cfg.stride == 0
            || cfg.kernel_size == 0
        {
            candle_core::bail!(
                "transposed conv1d: bad shape (in {in_c}, out {out_c}, groups {}, kernel {}, \
                 stride {})",
                cfg.groups,
                cfg.kernel_size,
                cfg.stride
            )
        }
        let weight = vb.get((in_c, out_c / cfg.groups, cfg.kernel_size), "weight")?;
        let bias = if cfg.bias {
            Some(vb.get(out_c, "bias")?)
        } else {
            None
        };
        let depthwise = cfg.groups > 1
            && cfg.groups == in_c
            && in_c == out_c
            && cfg.kernel_size.is_multiple_of(cfg.stride);
        let conv = ConvTranspose1d::new(
            weight,
            bias.clone(),
            ConvTranspose1dConfig {
                padding: 0,
                output_padding: 0,
                stride: cfg.stride,
                dilation: 1,
                groups: cfg.groups,
            },
        )?;
        let total = cfg.kernel_size.saturating_sub(cfg.stride);
        let right = if cfg.causal {
            (total as f64 * cfg.trim_right_ratio).ceil() as usize
        } else {
            total / 2
        };
        Ok(Self {
            conv,
            depthwise,
            bias: bias.map(|b| b.reshape((1, out_c, 1))).transpose()?,
            norm: None,
            kernel: cfg.kernel_size,
            stride: cfg.stride,
            left: total - right.min(total),
            right: right.min(total),
            stream: ConvTrStream::default(),
        })
    }

    /// The transposed convolution without bias or trim: `[b, in, t]` →
    /// `[b, out, (t - 1) * stride + kernel]`.
    fn unbiased(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        if self.depthwise {
            depthwise_convtr(&x, self.conv.weight(), self.stride)
        } else {
            self.conv.forward_unbiased(&x)
        }
    }
}

impl Module for SConvTranspose1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = if self.depthwise {
            let y = self.unbiased(x)?;
            match &self.bias {
                Some(b) => y.broadcast_add(b)?,
                None => y,
            }
        } else {
            self.conv.forward(x)?
        };
        let y = match &self.norm {
            Some(norm) => norm.forward(&y)?,
            None => y,
        };
        let len = y.dim(D::Minus1)?;
        y.narrow(D::Minus1, self.left, len - self.left - self.right)
    }
}

/// Depthwise transposed convolution (one input and one output channel per group) with a kernel
/// that is a whole number of strides: every tap is a scaled copy of the input on a strided grid.
/// Far faster than candle's grouped transposed convolution, which runs one call per group.
fn depthwise_convtr(x: &Tensor, weight: &Tensor, stride: usize) -> Result<Tensor> {
    let (b, c, t) = x.dims3()?;
    let kernel = weight.dim(2)?;
    let blocks = kernel / stride;
    // out[.., q * stride + r] = Σ_j x[.., q - j] * w[.., j * stride + r], q < t + blocks - 1.
    let mut columns = Vec::with_capacity(stride);
    for r in 0..stride {
        let mut acc: Option<Tensor> = None;
        for j in 0..blocks {
            let tap = weight.narrow(2, j * stride + r, 1)?.reshape((1, c, 1))?;
            let shifted = x
                .broadcast_mul(&tap)?
                .pad_with_zeros(D::Minus1, j, blocks - 1 - j)?;
            acc = Some(match acc {
                None => shifted,
                Some(a) => (a + shifted)?,
            });
        }
        columns.push(acc.expect("kernel >= stride"));
    }
    // [b, c, q, stride] → [b, c, q * stride]
    Tensor::stack(&columns, 3)?.reshape((b, c, (t + blocks - 1) * stride))
}

/// Depthwise convolution (`groups == channels`) with zero "same" padding, computed as a sum
/// of shifted, scaled copies: much faster than a grouped convolution with one channel per group.
#[derive(Debug, Clone)]
pub struct DepthwiseConv1d {
    /// `[kernel][channels, 1]` columns of the weight.
    taps: Vec<Tensor>,
    bias: Option<Tensor>,
    padding: usize,
    dilation: usize,
    /// The weight `[channels, kernel]` and bias as f32 values, for the CPU kernel (when the
    /// weights are f32 on the CPU).
    cpu: Option<std::sync::Arc<DepthwiseCpu>>,
}

/// A depthwise convolution's weight `[channels, kernel]` and bias as f32 values.
type DepthwiseCpu = (Vec<f32>, Option<Vec<f32>>);

impl DepthwiseConv1d {
    /// Weight `[channels, 1, kernel]` at `vb.weight`, bias at `vb.bias`.
    pub fn new(channels: usize, kernel: usize, padding: usize, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get((channels, 1, kernel), "weight")?;
        let bias = vb.get(channels, "bias")?;
        Self::from_weights(&weight, Some(bias), padding)
    }

    /// The same without a bias (`bias=False`): weight `[channels, 1, kernel]` at `vb.weight`.
    pub fn without_bias(
        channels: usize,
        kernel: usize,
        padding: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = vb.get((channels, 1, kernel), "weight")?;
        Self::from_weights(&weight, None, padding)
    }

    fn from_weights(weight: &Tensor, bias: Option<Tensor>, padding: usize) -> Result<Self> {
        let (channels, _, kernel) = weight.dims3()?;
        let taps = (0..kernel)
            .map(|k| weight.narrow(2, k, 1)?.reshape((channels, 1)))
            .collect::<Result<Vec<_>>>()?;
        let cpu = if weight.device().is_cpu() && weight.dtype() == candle_core::DType::F32 {
            let w = weight.flatten_all()?.to_vec1::<f32>()?;
            let b = bias.as_ref().map(|b| b.to_vec1::<f32>()).transpose()?;
            Some(std::sync::Arc::new((w, b)))
        } else {
            None
        };
        Ok(Self {
            taps,
            bias: bias.map(|b| b.reshape((channels, 1))).transpose()?,
            padding,
            dilation: 1,
            cpu,
        })
    }

    /// Space the taps `dilation` samples apart (PyTorch's `dilation`); 1 by default.
    pub fn with_dilation(mut self, dilation: usize) -> Self {
        self.dilation = dilation.max(1);
        self
    }
}

impl Module for DepthwiseConv1d {
    /// `x`: `[batch, channels, time]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let len = x.dim(D::Minus1)?;
        let fast = self.taps.first().is_some_and(|t| on_fast_path(x, t));
        if let Some(cpu) = self.cpu.as_ref().filter(|_| fast) {
            let (batch, channels, _) = x.dims3()?;
            let (taps, bias) = (&cpu.0, cpu.1.as_deref());
            let (out, out_len) = crate::dsp::with_cpu_slice::<f32, _>(x, |xs| {
                depthwise_conv1d_f32(xs, channels, len, taps, bias, self.padding, self.dilation)
            })?;
            return Tensor::from_vec(out, (batch, channels, out_len), x.device());
        }
        let kernel = self.taps.len();
        let padded = x.pad_with_zeros(D::Minus1, self.padding, self.padding)?;
        let span = (kernel - 1) * self.dilation + 1;
        let out_len = len + 2 * self.padding + 1 - span;
        let mut acc = padded
            .narrow(D::Minus1, 0, out_len)?
            .broadcast_mul(&self.taps[0])?;
        for (k, tap) in self.taps.iter().enumerate().skip(1) {
            let shifted = padded.narrow(D::Minus1, k * self.dilation, out_len)?;
            acc = (acc + shifted.broadcast_mul(tap)?)?;
        }
        match &self.bias {
            Some(b) => acc.broadcast_add(b),
            None => Ok(acc),
        }
    }
}

/// A plain `nn.Conv1d` with symmetric zero padding, weights at `vb.{weight,bias}`.
pub fn conv1d(
    in_c: usize,
    out_c: usize,
    kernel: usize,
    padding: usize,
    vb: VarBuilder,
) -> Result<Conv1d> {
    let cfg = Conv1dConfig {
        padding,
        ..Default::default()
    };
    let weight = vb.get((out_c, in_c, kernel), "weight")?;
    let bias = vb.get(out_c, "bias")?;
    Ok(Conv1d::new(weight, Some(bias), cfg))
}

/// Im2col buffers above this many floats are split: a convolution over minutes of audio at the
/// sample rate would otherwise allocate (and page-fault in) hundreds of megabytes at once.
const IM2COL_CHUNK_FLOATS: usize = 1 << 21;

/// `conv.forward(x)` with memory bounded on long inputs.
///
/// On the CPU the tiled kernel already gathers only one tile's inputs at a time. Elsewhere
/// candle's kernel builds an im2col buffer of the whole input, so long inputs go through in
/// chunks of output frames: the same numbers as one call (each output frame sees the same
/// inputs and weights) with bounded peak memory.
pub fn conv1d_in_chunks(conv: &Conv1d, x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() {
        return conv.forward(x);
    }
    let cfg = conv.config();
    let (_, c_in_per_group, kernel) = conv.weight().dims3()?;
    let x = if cfg.padding > 0 {
        x.pad_with_zeros(D::Minus1, cfg.padding, cfg.padding)?
    } else {
        x.clone()
    };
    let len = x.dim(D::Minus1)?;
    let span = (kernel - 1) * cfg.dilation + 1;
    let chunk = (IM2COL_CHUNK_FLOATS / (c_in_per_group * cfg.groups * kernel)).max(1024);
    let n_out = if len >= span {
        (len - span) / cfg.stride + 1
    } else {
        0
    };
    let run = |x: &Tensor| x.conv1d(conv.weight(), 0, cfg.stride, cfg.dilation, cfg.groups);
    let y = if n_out <= chunk {
        run(&x)?
    } else {
        let mut outs = Vec::with_capacity(n_out.div_ceil(chunk));
        let mut start = 0;
        while start < n_out {
            let end = (start + chunk).min(n_out);
            let in_len = (end - 1 - start) * cfg.stride + span;
            outs.push(run(&x.narrow(D::Minus1, start * cfg.stride, in_len)?)?);
            start = end;
        }
        Tensor::cat(&outs, D::Minus1)?
    };
    match conv.bias() {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1))?),
        None => Ok(y),
    }
}

#[cfg(test)]
mod chunk_tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn transposed_convolution_keeps_batch_items_apart() -> Result<()> {
        // candle 0.11's CPU kernel gets items after the first wrong; SConvTranspose1d must not.
        let dev = Device::Cpu;
        let mut w = std::collections::HashMap::new();
        w.insert(
            "convtr.convtr.weight".to_string(),
            Tensor::randn(0f32, 1.0, (8, 4, 6), &dev)?,
        );
        w.insert(
            "convtr.convtr.bias".to_string(),
            Tensor::randn(0f32, 1.0, 4, &dev)?,
        );
        let vb = VarBuilder::from_tensors(w, candle_core::DType::F32, &dev);
        let cfg = SConvTranspose1dConfig::new(6, 3, true).norm(ConvNorm::None);
        let convtr = SConvTranspose1d::new(8, 4, cfg, vb)?;
        let x = Tensor::randn(0f32, 1.0, (3, 8, 5), &dev)?;
        let y = convtr.forward(&x)?;
        for i in 0..3 {
            let yi = convtr.forward(&x.narrow(0, i, 1)?)?;
            let diff = (y.narrow(0, i, 1)? - yi)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()?;
            assert!(diff < 1e-5, "item {i}: {diff}");
        }
        Ok(())
    }

    #[test]
    fn chunked_convolution_equals_one_call() -> Result<()> {
        let dev = Device::Cpu;
        for (stride, dilation, padding) in [(1, 1, 0), (1, 3, 3), (4, 1, 2), (5, 2, 0)] {
            let w = Tensor::randn(0f32, 1.0, (6, 3, 5), &dev)?;
            let b = Tensor::randn(0f32, 1.0, 6, &dev)?;
            let cfg = Conv1dConfig {
                padding,
                stride,
                dilation,
                groups: 1,
                cudnn_fwd_algo: None,
            };
            // candle's kernel in one call against ours on many tiles (and, off the CPU, chunks
            // of 2^21 / 15 frames).
            let want = candle_nn::Conv1d::new(w.clone(), Some(b.clone()), cfg);
            let conv = Conv1d::new(w, Some(b), cfg);
            let x = Tensor::randn(0f32, 1.0, (1, 3, 150_000 * stride + 7), &dev)?;
            let want = want.forward(&x)?;
            let got = conv1d_in_chunks(&conv, &x)?;
            assert_eq!(got.dims(), want.dims());
            let diff = (got - want)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()?;
            assert!(diff < 1e-4, "stride {stride} dilation {dilation}: {diff}");
        }
        Ok(())
    }
}

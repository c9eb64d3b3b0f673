//! Causal convolutions that run on a stream: pieces of any length in, everything the input so
//! far determines out, the rest kept as state (moshi's `StreamingConv1d` /
//! `StreamingConvTranspose1d`).
//!
//! Run on a whole signal from a fresh state (one [`StreamingModule::step`]), they compute the
//! causal convolution of the batch path: left padding of `kernel - stride` samples, no right
//! padding (the input is whole frames).
//!
//! Reflect padding (EnCodec) mirrors the first `kernel - stride` samples *after* the first one
//! into the left context, so the first output needs `kernel - stride + 1` input samples: until
//! they are in, a reflect-padded convolution outputs nothing; from then on it is causal like the
//! others. Its output stream is still exactly the batch convolution's, only the first outputs
//! come later (moshi, which streams only zero- and replicate-padded convolutions, has no such
//! case).

use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

use super::conv::{conv1d_in_chunks, pad1d, PadMode};
use super::conv1d::{Conv1d, Conv1dConfig, ConvTranspose1d, ConvTranspose1dConfig};
use crate::streaming::StreamingModule;

/// Shape options of a [`StreamingConv1d`] / [`StreamingConvTranspose1d`].
#[derive(Debug, Clone, Copy)]
pub struct StreamingConvConfig {
    /// Taps of the kernel.
    pub kernel_size: usize,
    /// Samples between output frames (the transposed convolution: output samples per frame).
    pub stride: usize,
    /// Spacing of the taps (1: none).
    pub dilation: usize,
    /// Channel groups (the number of channels: depthwise).
    pub groups: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
    /// How the left context of the first step is filled: zeros, or the first sample repeated.
    pub pad_mode: PadMode,
}

impl StreamingConvConfig {
    /// Stride 1, no dilation, one group, with a bias, zero padding.
    pub fn new(kernel_size: usize) -> Self {
        Self {
            kernel_size,
            stride: 1,
            dilation: 1,
            groups: 1,
            bias: true,
            pad_mode: PadMode::Zero,
        }
    }
    /// Set [`stride`](Self::stride).
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }
    /// Set [`dilation`](Self::dilation).
    pub fn dilation(mut self, dilation: usize) -> Self {
        self.dilation = dilation;
        self
    }
    /// Set [`groups`](Self::groups).
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
    /// Set [`bias`](Self::bias).
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
    /// Set [`pad_mode`](Self::pad_mode).
    pub fn pad_mode(mut self, pad_mode: PadMode) -> Self {
        self.pad_mode = pad_mode;
        self
    }
}

/// A causal 1-d convolution over a stream (time last): it keeps the last
/// `effective_kernel - stride` input samples (zeros, or the first sample repeated, before the
/// first step) plus whatever did not complete an output frame yet.
///
/// Weights at `conv.conv.{weight,bias}` (moshi's `StreamingConv1d` → `NormConv1d` → `Conv1d`).
#[derive(Debug, Clone)]
pub struct StreamingConv1d {
    conv: Conv1d,
    kernel: usize,
    stride: usize,
    pad_mode: PadMode,
    /// Input not consumed yet, left context included once `started`; `None` before the first
    /// step.
    buffer: Option<Tensor>,
    /// Whether the left padding has been put in front of the buffer (reflect padding waits for
    /// enough input to mirror).
    started: bool,
    /// Batch rows that start a new stream at the next step: their left context becomes the
    /// padding a fresh stream gets, made from that step's input.
    restart_rows: Vec<usize>,
}

impl StreamingConv1d {
    /// Reads `vb.conv.conv.weight` `[out, in / groups, kernel]` and, with `cfg.bias`, `.bias`.
    pub fn new(
        in_c: usize,
        out_c: usize,
        cfg: StreamingConvConfig,
        vb: VarBuilder,
    ) -> Result<Self> {
        let vb = vb.pp("conv").pp("conv");
        if cfg.groups == 0
            || !in_c.is_multiple_of(cfg.groups)
            || cfg.stride == 0
            || cfg.kernel_size == 0
        {
            candle_core::bail!(
                "streaming conv: bad shape (in {in_c}, groups {}, kernel {}, stride {})",
                cfg.groups,
                cfg.kernel_size,
                cfg.stride
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
        let kernel = (cfg.kernel_size - 1) * cfg.dilation + 1;
        if kernel < cfg.stride {
            candle_core::bail!(
                "streaming conv: kernel {kernel} shorter than stride {}",
                cfg.stride
            )
        }
        Ok(Self {
            conv,
            kernel,
            stride: cfg.stride,
            pad_mode: cfg.pad_mode,
            buffer: None,
            started: false,
            restart_rows: Vec::new(),
        })
    }

    /// Samples of left context (`effective_kernel - stride`).
    pub fn context(&self) -> usize {
        self.kernel - self.stride
    }
}

impl StreamingModule for StreamingConv1d {
    fn step(&mut self, xs: Option<&Tensor>) -> crate::Result<Option<Tensor>> {
        let Some(xs) = xs else {
            return Ok(None);
        };
        if xs.dim(D::Minus1)? == 0 {
            return Ok(None);
        }
        let context = self.context();
        if !self.restart_rows.is_empty() {
            if let Some(b) = self.buffer.take() {
                self.buffer = Some(self.fresh_context(b, xs)?);
            }
            self.restart_rows.clear();
        }
        let pending = match self.buffer.take() {
            Some(b) => Tensor::cat(&[&b, xs], D::Minus1)?,
            None => xs.clone(),
        };
        let buffered = if self.started {
            pending
        } else {
            // The first samples: put the causal padding in front, zeros, the first sample
            // repeated, or the next `context` samples mirrored (once they are there).
            if self.pad_mode == PadMode::Reflect && pending.dim(D::Minus1)? <= context {
                self.buffer = Some(pending);
                return Ok(None);
            }
            self.started = true;
            pad1d(&pending.contiguous()?, context, 0, self.pad_mode)?
        };
        let len = buffered.dim(D::Minus1)?;
        if len < self.kernel {
            self.buffer = Some(buffered);
            return Ok(None);
        }
        let frames = (len - self.kernel) / self.stride + 1;
        let used = (frames - 1) * self.stride + self.kernel;
        let y = conv1d_in_chunks(&self.conv, &buffered.narrow(D::Minus1, 0, used)?)?;
        let consumed = frames * self.stride;
        self.buffer = Some(buffered.narrow(D::Minus1, consumed, len - consumed)?);
        Ok(Some(y))
    }

    fn reset_state(&mut self) {
        self.buffer = None;
        self.started = false;
        self.restart_rows.clear();
    }

    /// A convolution that has started holds exactly its left context between frames; a
    /// restarted row gets the left padding of a fresh stream at the next step (zeros, or that
    /// step's first sample repeated). Reflect padding mirrors samples that are not there yet:
    /// refused. (Before the first step there is nothing to reset.)
    fn reset_item(&mut self, index: usize) -> crate::Result<()> {
        let Some(buffer) = &self.buffer else {
            return Ok(());
        };
        if self.pad_mode == PadMode::Reflect {
            return Err(crate::Error::Unsupported(
                "a reflect-padded convolution restarts for the whole batch only".into(),
            ));
        }
        let batch = buffer.dim(0)?;
        if index >= batch {
            return Err(crate::Error::Unsupported(format!(
                "stream row {index} of a batch of {batch}"
            )));
        }
        if !self.started || buffer.dim(D::Minus1)? != self.context() {
            return Err(crate::Error::Unsupported(
                "a convolution holds part of a frame: reset a stream item between frames".into(),
            ));
        }
        if !self.restart_rows.contains(&index) {
            self.restart_rows.push(index);
        }
        Ok(())
    }
}

impl StreamingConv1d {
    /// `buffer` (the left context, `[batch, channels, context]`) with the rows in
    /// `restart_rows` replaced by a fresh stream's padding in front of `xs`.
    fn fresh_context(&self, buffer: Tensor, xs: &Tensor) -> Result<Tensor> {
        let context = buffer.dim(D::Minus1)?;
        let rows = (0..buffer.dim(0)?)
            .map(|r| {
                let row = buffer.narrow(0, r, 1)?;
                if !self.restart_rows.contains(&r) || context == 0 {
                    return Ok(row);
                }
                match self.pad_mode {
                    PadMode::Replicate => xs
                        .narrow(0, r, 1)?
                        .narrow(D::Minus1, 0, 1)?
                        .repeat((1, 1, context)),
                    _ => row.zeros_like(),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&rows, 0)
    }
}

/// A causal transposed 1-d convolution over a stream: `T` frames in give `T * stride` samples
/// out; the `kernel - stride` samples that later frames still add to are kept as state (moshi's
/// `StreamingConvTranspose1d`, whose batch form trims them on the right).
///
/// Weights at `convtr.convtr.{weight,bias}` (`[in, out / groups, kernel]`).
#[derive(Debug, Clone)]
pub struct StreamingConvTranspose1d {
    weight: Tensor,
    /// The same weight without bias on the CPU kernel, for the dense and grouped cases; `None`
    /// for a depthwise one with a kernel of whole strides (scaled strided copies instead).
    conv: Option<ConvTranspose1d>,
    bias: Option<Tensor>,
    kernel: usize,
    stride: usize,
    /// The tail `[batch, out, kernel - stride]` (without bias) still to be added to.
    partial: Option<Tensor>,
}

impl StreamingConvTranspose1d {
    /// Reads `vb.convtr.convtr.weight` `[in, out / groups, kernel]` and, with `cfg.bias`,
    /// `.bias`. `cfg.dilation` must be 1 and `pad_mode` is unused.
    pub fn new(
        in_c: usize,
        out_c: usize,
        cfg: StreamingConvConfig,
        vb: VarBuilder,
    ) -> Result<Self> {
        let vb = vb.pp("convtr").pp("convtr");
        if cfg.groups == 0
            || !out_c.is_multiple_of(cfg.groups)
            || !in_c.is_multiple_of(cfg.groups)
            || cfg.kernel_size < cfg.stride
            || cfg.stride == 0
            || cfg.dilation != 1
        {
            candle_core::bail!(
                "streaming transposed conv: bad shape (in {in_c}, out {out_c}, groups {}, \
                 kernel {}, stride {}, dilation {})",
                cfg.groups,
                cfg.kernel_size,
                cfg.stride,
                cfg.dilation
            )
        }
        let weight = vb.get((in_c, out_c / cfg.groups, cfg.kernel_size), "weight")?;
        let bias = if cfg.bias {
            Some(vb.get(out_c, "bias")?.reshape((1, out_c, 1))?)
        } else {
            None
        };
        let depthwise =
            cfg.groups > 1 && cfg.groups == in_c && cfg.kernel_size.is_multiple_of(cfg.stride);
        let conv = if depthwise {
            None
        } else {
            Some(ConvTranspose1d::new(
                weight.clone(),
                None,
                ConvTranspose1dConfig {
                    padding: 0,
                    output_padding: 0,
                    stride: cfg.stride,
                    dilation: 1,
                    groups: cfg.groups,
                },
            )?)
        };
        Ok(Self {
            weight,
            conv,
            bias,
            kernel: cfg.kernel_size,
            stride: cfg.stride,
            partial: None,
        })
    }

    /// The transposed convolution without bias: `[b, in, t]` → `[b, out, (t - 1) * stride + kernel]`.
    fn convtr(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        match &self.conv {
            Some(conv) => conv.forward(&x),
            None => depthwise_convtr(&x, &self.weight, self.stride),
        }
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

impl StreamingModule for StreamingConvTranspose1d {
    fn step(&mut self, xs: Option<&Tensor>) -> crate::Result<Option<Tensor>> {
        let Some(xs) = xs else {
            return Ok(None);
        };
        let t = xs.dim(D::Minus1)?;
        if t == 0 {
            return Ok(None);
        }
        let mut y = self.convtr(xs)?;
        let tail = self.kernel - self.stride;
        if let Some(partial) = self.partial.take() {
            if tail > 0 {
                let len = y.dim(D::Minus1)?;
                let head = (y.narrow(D::Minus1, 0, tail)? + partial)?;
                y = Tensor::cat(&[&head, &y.narrow(D::Minus1, tail, len - tail)?], D::Minus1)?;
            }
        }
        let out_len = t * self.stride;
        if tail > 0 {
            self.partial = Some(y.narrow(D::Minus1, out_len, tail)?);
        }
        let out = y.narrow(D::Minus1, 0, out_len)?;
        let out = match &self.bias {
            Some(bias) => out.broadcast_add(bias)?,
            None => out,
        };
        Ok(Some(out))
    }

    fn reset_state(&mut self) {
        self.partial = None;
    }

    /// The overlap a fresh row adds to its first output is zero.
    fn reset_item(&mut self, index: usize) -> crate::Result<()> {
        if let Some(partial) = &self.partial {
            self.partial = Some(crate::streaming::zero_batch_row(partial, index)?);
        }
        Ok(())
    }
}

/// Run a stream module on a whole signal from a fresh state: the batch form of the layer.
pub fn run_fresh<M: StreamingModule + Clone>(
    module: &M,
    xs: &Tensor,
) -> crate::Result<Option<Tensor>> {
    let mut m = module.clone();
    m.reset_state();
    m.step(Some(xs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    fn vb_from(tensors: HashMap<String, Tensor>) -> VarBuilder<'static> {
        VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Stream `x` in pieces of the given sizes (cycled) and concatenate the outputs.
    fn stream<M: StreamingModule>(m: &mut M, x: &Tensor, sizes: &[usize]) -> Tensor {
        let len = x.dim(2).unwrap();
        let (mut pos, mut i, mut out) = (0, 0, None);
        while pos < len {
            let n = sizes[i % sizes.len()].min(len - pos);
            let y = m.step(Some(&x.narrow(2, pos, n).unwrap())).unwrap();
            out = crate::streaming::cat_pieces(out, y).unwrap();
            pos += n;
            i += 1;
        }
        out.unwrap()
    }

    #[test]
    fn conv_streams_like_its_batch_form() -> crate::Result<()> {
        let dev = Device::Cpu;
        for (k, s, d, mode) in [
            (7, 1, 1, PadMode::Zero),
            (3, 1, 2, PadMode::Zero),
            (8, 4, 1, PadMode::Zero),
            (4, 2, 1, PadMode::Replicate),
            (7, 1, 1, PadMode::Reflect),
            (16, 8, 1, PadMode::Reflect),
            (3, 1, 2, PadMode::Reflect),
        ] {
            let mut w = HashMap::new();
            w.insert(
                "conv.conv.weight".into(),
                Tensor::randn(0f32, 1.0, (5, 3, k), &dev)?,
            );
            w.insert("conv.conv.bias".into(), Tensor::randn(0f32, 1.0, 5, &dev)?);
            let cfg = StreamingConvConfig::new(k)
                .stride(s)
                .dilation(d)
                .pad_mode(mode);
            let conv = StreamingConv1d::new(3, 5, cfg, vb_from(w))?;
            let x = Tensor::randn(0f32, 1.0, (2, 3, 24 * s), &dev)?;
            let batch = run_fresh(&conv, &x)?.unwrap();
            assert_eq!(batch.dim(2)?, 24);
            // The batch form is the causal convolution with `kernel - stride` samples of padding.
            let eff = (k - 1) * d + 1;
            let padded = super::super::conv::pad1d(&x, eff - s, 0, mode)?;
            let want = padded
                .conv1d(conv.conv.weight(), 0, s, d, 1)?
                .broadcast_add(&conv.conv.bias().unwrap().reshape((1, 5, 1))?)?;
            assert!(max_diff(&batch, &want) < 1e-5);
            let mut m = conv.clone();
            let streamed = stream(&mut m, &x, &[1, 5, 2, 13]);
            assert!(max_diff(&batch, &streamed) < 1e-5, "k {k} s {s}");
        }
        Ok(())
    }

    #[test]
    fn transposed_conv_streams_like_its_batch_form() -> crate::Result<()> {
        let dev = Device::Cpu;
        for (k, s, groups, cin, cout) in [(8, 4, 1, 3, 2), (4, 2, 4, 4, 4), (5, 2, 1, 2, 3)] {
            let mut w = HashMap::new();
            w.insert(
                "convtr.convtr.weight".into(),
                Tensor::randn(0f32, 1.0, (cin, cout / groups, k), &dev)?,
            );
            w.insert(
                "convtr.convtr.bias".into(),
                Tensor::randn(0f32, 1.0, cout, &dev)?,
            );
            let cfg = StreamingConvConfig::new(k).stride(s).groups(groups);
            let convtr = StreamingConvTranspose1d::new(cin, cout, cfg, vb_from(w))?;
            let x = Tensor::randn(0f32, 1.0, (2, cin, 11), &dev)?;
            let batch = run_fresh(&convtr, &x)?.unwrap();
            // Batch form: the full transposed convolution with its last `k - s` samples cut.
            // (candle's kernel, one item at a time: it mixes up batch items.)
            let items = (0..2)
                .map(|i| {
                    x.narrow(0, i, 1)?.contiguous()?.conv_transpose1d(
                        &convtr.weight,
                        0,
                        0,
                        s,
                        1,
                        groups,
                    )
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            let full = Tensor::cat(&items, 0)?.broadcast_add(convtr.bias.as_ref().unwrap())?;
            let want = full.narrow(2, 0, 11 * s)?;
            assert!(
                max_diff(&batch, &want) < 1e-5,
                "k {k} s {s} groups {groups}"
            );
            let mut m = convtr.clone();
            let streamed = stream(&mut m, &x, &[1, 3, 2]);
            assert!(max_diff(&batch, &streamed) < 1e-5);
        }
        Ok(())
    }
}

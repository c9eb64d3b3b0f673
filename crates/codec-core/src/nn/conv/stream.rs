//! [`SConv1d`] and [`SConvTranspose1d`] on a stream: pieces of any length in, everything the
//! input so far determines out, the rest kept as state.
//!
//! Run on a whole signal from a fresh state (one step), a causal [`SConv1d`] computes its
//! `forward` over whole frames: left padding of `kernel - stride` samples, no right padding.
//!
//! Reflect padding (EnCodec) mirrors the first `kernel - stride` samples *after* the first one
//! into the left context, so the first output needs `kernel - stride + 1` input samples: until
//! they are in, a reflect-padded convolution outputs nothing; from then on it is causal like the
//! others. Its output stream is still exactly the batch convolution's, only the first outputs
//! come later (moshi, which streams only zero- and replicate-padded convolutions, has no such
//! case).

use candle_core::{Tensor, D};

use super::{conv1d_in_chunks, pad1d, PadMode, SConv1d, SConvTranspose1d};
use crate::streaming::StreamingModule;
use crate::{Error, Result};

/// A convolution's stream state.
#[derive(Debug, Clone, Default)]
pub(super) struct ConvStream {
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

/// A transposed convolution's stream state: the tail `[batch, out, kernel - stride]` (without
/// bias) that the next frames still add to.
#[derive(Debug, Clone, Default)]
pub(super) struct ConvTrStream {
    partial: Option<Tensor>,
}

impl SConv1d {
    /// Samples of left context a stream keeps (`effective_kernel - stride`).
    pub fn context(&self) -> usize {
        self.effective_kernel().saturating_sub(self.stride)
    }

    /// Whether this convolution can run on a stream: causal, no output norm (it would look at
    /// the whole output), a kernel at least as long as its stride.
    pub fn can_stream(&self) -> bool {
        self.causal && self.norm.is_none() && self.effective_kernel() >= self.stride
    }

    /// `buffer` (the left context, `[batch, channels, context]`) with the rows in
    /// `restart_rows` replaced by a fresh stream's padding in front of `xs`.
    fn fresh_context(&self, buffer: Tensor, xs: &Tensor) -> Result<Tensor> {
        let context = buffer.dim(D::Minus1)?;
        let rows = (0..buffer.dim(0)?)
            .map(|r| {
                let row = buffer.narrow(0, r, 1)?;
                if !self.stream.restart_rows.contains(&r) || context == 0 {
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
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::cat(&rows, 0)?)
    }
}

impl StreamingModule for SConv1d {
    fn step(&mut self, xs: Option<&Tensor>) -> Result<Option<Tensor>> {
        let Some(xs) = xs else {
            return Ok(None);
        };
        if !self.can_stream() {
            return Err(Error::Unsupported(format!(
                "this convolution cannot stream (causal {}, output norm {}, kernel {} for \
                 stride {})",
                self.causal,
                self.norm.is_some(),
                self.effective_kernel(),
                self.stride
            )));
        }
        if xs.dim(D::Minus1)? == 0 {
            return Ok(None);
        }
        let context = self.context();
        if !self.stream.restart_rows.is_empty() {
            if let Some(b) = self.stream.buffer.take() {
                self.stream.buffer = Some(self.fresh_context(b, xs)?);
            }
            self.stream.restart_rows.clear();
        }
        let pending = match self.stream.buffer.take() {
            Some(b) => Tensor::cat(&[&b, xs], D::Minus1)?,
            None => xs.clone(),
        };
        let buffered = if self.stream.started {
            pending
        } else {
            // The first samples: put the causal padding in front, zeros, the first sample
            // repeated, or the next `context` samples mirrored (once they are there).
            if self.pad_mode == PadMode::Reflect && pending.dim(D::Minus1)? <= context {
                self.stream.buffer = Some(pending);
                return Ok(None);
            }
            self.stream.started = true;
            pad1d(&pending.contiguous()?, context, 0, self.pad_mode)?
        };
        let len = buffered.dim(D::Minus1)?;
        let kernel = self.effective_kernel();
        if len < kernel {
            self.stream.buffer = Some(buffered);
            return Ok(None);
        }
        let frames = (len - kernel) / self.stride + 1;
        let used = (frames - 1) * self.stride + kernel;
        let y = conv1d_in_chunks(&self.conv, &buffered.narrow(D::Minus1, 0, used)?)?;
        let consumed = frames * self.stride;
        self.stream.buffer = Some(buffered.narrow(D::Minus1, consumed, len - consumed)?);
        Ok(Some(y))
    }

    fn reset_state(&mut self) {
        self.stream = ConvStream::default();
    }

    /// A convolution that has started holds exactly its left context between frames; a
    /// restarted row gets the left padding of a fresh stream at the next step (zeros, or that
    /// step's first sample repeated). Reflect padding mirrors samples that are not there yet:
    /// refused. (Before the first step there is nothing to reset.)
    fn reset_item(&mut self, index: usize) -> Result<()> {
        let Some(buffer) = &self.stream.buffer else {
            return Ok(());
        };
        if self.pad_mode == PadMode::Reflect {
            return Err(Error::Unsupported(
                "a reflect-padded convolution restarts for the whole batch only".into(),
            ));
        }
        let batch = buffer.dim(0)?;
        if index >= batch {
            return Err(Error::Unsupported(format!(
                "stream row {index} of a batch of {batch}"
            )));
        }
        if !self.stream.started || buffer.dim(D::Minus1)? != self.context() {
            return Err(Error::Unsupported(
                "a convolution holds part of a frame: reset a stream item between frames".into(),
            ));
        }
        if !self.stream.restart_rows.contains(&index) {
            self.stream.restart_rows.push(index);
        }
        Ok(())
    }
}

impl SConvTranspose1d {
    /// Whether this transposed convolution can run on a stream: causal with all of its extra
    /// samples trimmed on the right, no norm, a kernel at least as long as its stride.
    pub fn can_stream(&self) -> bool {
        self.left == 0 && self.norm.is_none() && self.kernel >= self.stride
    }
}

impl StreamingModule for SConvTranspose1d {
    fn step(&mut self, xs: Option<&Tensor>) -> Result<Option<Tensor>> {
        let Some(xs) = xs else {
            return Ok(None);
        };
        if !self.can_stream() {
            return Err(Error::Unsupported(format!(
                "this transposed convolution cannot stream ({} samples trimmed on the left, \
                 norm {}, kernel {} for stride {})",
                self.left,
                self.norm.is_some(),
                self.kernel,
                self.stride
            )));
        }
        let t = xs.dim(D::Minus1)?;
        if t == 0 {
            return Ok(None);
        }
        let mut y = self.unbiased(xs)?;
        let tail = self.kernel - self.stride;
        if let Some(partial) = self.stream.partial.take() {
            if tail > 0 {
                let len = y.dim(D::Minus1)?;
                let head = (y.narrow(D::Minus1, 0, tail)? + partial)?;
                y = Tensor::cat(&[&head, &y.narrow(D::Minus1, tail, len - tail)?], D::Minus1)?;
            }
        }
        let out_len = t * self.stride;
        if tail > 0 {
            self.stream.partial = Some(y.narrow(D::Minus1, out_len, tail)?);
        }
        let out = y.narrow(D::Minus1, 0, out_len)?;
        let out = match &self.bias {
            Some(bias) => out.broadcast_add(bias)?,
            None => out,
        };
        Ok(Some(out))
    }

    fn reset_state(&mut self) {
        self.stream = ConvTrStream::default();
    }

    /// The overlap a fresh row adds to its first output is zero.
    fn reset_item(&mut self, index: usize) -> Result<()> {
        if let Some(partial) = &self.stream.partial {
            self.stream.partial = Some(crate::streaming::zero_batch_row(partial, index)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SConv1dConfig, SConvTranspose1dConfig};
    use super::*;
    use candle_core::{DType, Device, Module};
    use candle_nn::VarBuilder;
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
    fn conv_streams_like_its_batch_form() -> Result<()> {
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
            let cfg = SConv1dConfig::new(k, true, mode).stride(s).dilation(d);
            let conv = SConv1d::new(3, 5, cfg, vb_from(w))?;
            let x = Tensor::randn(0f32, 1.0, (2, 3, 24 * s), &dev)?;
            let batch = conv.forward(&x)?;
            assert_eq!(batch.dim(2)?, 24);
            let mut fresh = conv.clone();
            let one_step = fresh.step(Some(&x))?.unwrap();
            assert!(max_diff(&batch, &one_step) < 1e-5, "k {k} s {s}");
            let mut m = conv.clone();
            let streamed = stream(&mut m, &x, &[1, 5, 2, 13]);
            assert!(max_diff(&batch, &streamed) < 1e-5, "k {k} s {s}");
        }
        Ok(())
    }

    #[test]
    fn transposed_conv_streams_like_its_batch_form() -> Result<()> {
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
            let cfg = SConvTranspose1dConfig::new(k, s, true)
                .groups(groups)
                .norm(super::super::ConvNorm::None);
            let convtr = SConvTranspose1d::new(cin, cout, cfg, vb_from(w))?;
            let x = Tensor::randn(0f32, 1.0, (2, cin, 11), &dev)?;
            let batch = convtr.forward(&x)?;
            assert_eq!(batch.dim(2)?, 11 * s);
            // Batch form: the full transposed convolution with its last `k - s` samples cut.
            // (candle's kernel, one item at a time: it mixes up batch items.)
            let items = (0..2)
                .map(|i| {
                    x.narrow(0, i, 1)?.contiguous()?.conv_transpose1d(
                        convtr.conv.weight(),
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

    /// Layers that look ahead say so instead of streaming something else.
    #[test]
    fn non_causal_layers_refuse_to_stream() -> Result<()> {
        let dev = Device::Cpu;
        let mut w = HashMap::new();
        w.insert(
            "conv.conv.weight".into(),
            Tensor::randn(0f32, 1.0, (2, 2, 3), &dev)?,
        );
        w.insert("conv.conv.bias".into(), Tensor::randn(0f32, 1.0, 2, &dev)?);
        let cfg = SConv1dConfig::new(3, false, PadMode::Zero);
        let mut conv = SConv1d::new(2, 2, cfg, vb_from(w))?;
        let x = Tensor::zeros((1, 2, 8), DType::F32, &dev)?;
        assert!(matches!(conv.step(Some(&x)), Err(Error::Unsupported(_))));
        Ok(())
    }
}

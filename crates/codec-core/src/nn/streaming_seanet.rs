//! The causal SEANet encoder and decoder as stream modules (moshi's `SEANetEncoder` /
//! `SEANetDecoder` in streaming mode), built from the same [`SeanetConfig`] as
//! [`super::seanet`]'s batch networks and reading the same `model.{i}.*` keys.
//!
//! Causal networks with plain convolutions (no normalisation, or weight norm folded at load):
//! Mimi's (zero padding, no LSTM) and EnCodec 24 kHz's (reflect padding, LSTM with skip, whose
//! `(h, c)` is carried between steps). Group-normalised (EnCodec 48 kHz) or non-causal networks
//! look ahead and are refused.

use candle_core::{Result, Tensor, D};
use candle_nn::VarBuilder;

use super::conv::ConvNorm;
use super::kernels::activation::elu;
use super::lstm::{Lstm, StreamingLstm};
use super::seanet::{SeanetConfig, SeanetLayer};
use super::streaming_conv::{StreamingConv1d, StreamingConvConfig, StreamingConvTranspose1d};
use crate::streaming::{cat_pieces, StreamingModule};

fn check(cfg: &SeanetConfig) -> Result<()> {
    if !cfg.causal || cfg.norm == ConvNorm::TimeGroupNorm {
        candle_core::bail!(
            "streaming SEANet: needs a causal network without group norm (causal {}, norm {:?})",
            cfg.causal,
            cfg.norm
        )
    }
    Ok(())
}

/// Whether [`StreamingSeanetEncoder`] / [`StreamingSeanetDecoder`] can run this network.
pub fn can_stream(cfg: &SeanetConfig) -> bool {
    check(cfg).is_ok()
}

fn conv_cfg(cfg: &SeanetConfig, kernel: usize) -> StreamingConvConfig {
    StreamingConvConfig::new(kernel).pad_mode(cfg.pad_mode)
}

/// A residual block: `x + conv2(elu(conv1(elu(x))))` (identity skip: `true_skip`), or a 1x1
/// convolution on the skip path.
#[derive(Debug, Clone)]
struct ResnetBlock {
    conv1: StreamingConv1d,
    conv2: StreamingConv1d,
    shortcut: Option<StreamingConv1d>,
    /// Skip-path samples waiting for the convolutions' output (a reflect-padded convolution
    /// outputs nothing until it can mirror its first samples).
    skip: Option<Tensor>,
}

impl ResnetBlock {
    fn new(dim: usize, dilation: usize, cfg: &SeanetConfig, vb: VarBuilder) -> Result<Self> {
        let hidden = dim / cfg.compress;
        let block = vb.pp("block");
        let c1 = conv_cfg(cfg, cfg.residual_kernel_size).dilation(dilation);
        let conv1 = StreamingConv1d::new(dim, hidden, c1, block.pp(1))?;
        let conv2 = StreamingConv1d::new(hidden, dim, conv_cfg(cfg, 1), block.pp(3))?;
        let shortcut = if cfg.true_skip {
            None
        } else {
            Some(StreamingConv1d::new(
                dim,
                dim,
                conv_cfg(cfg, 1),
                vb.pp("shortcut"),
            )?)
        };
        Ok(Self {
            conv1,
            conv2,
            shortcut,
            skip: None,
        })
    }
}

impl StreamingModule for ResnetBlock {
    fn step(&mut self, xs: Option<&Tensor>) -> crate::Result<Option<Tensor>> {
        let Some(x) = xs else {
            return Ok(None);
        };
        // Stride-1 convolutions: as many samples out as in overall; the skip path waits for
        // them.
        let skip = match &mut self.shortcut {
            Some(s) => s.step(Some(x))?,
            None => Some(x.clone()),
        };
        self.skip = cat_pieces(self.skip.take(), skip)?;
        let y = self.conv1.step(Some(&elu(x, 1.0)?))?;
        let y = match y {
            Some(y) => self.conv2.step(Some(&elu(&y, 1.0)?))?,
            None => None,
        };
        let Some(y) = y else {
            return Ok(None);
        };
        let pending = self
            .skip
            .take()
            .expect("the skip path has what the convolutions had");
        let (n, have) = (y.dim(D::Minus1)?, pending.dim(D::Minus1)?);
        if have > n {
            self.skip = Some(pending.narrow(D::Minus1, n, have - n)?);
        }
        Ok(Some((pending.narrow(D::Minus1, 0, n)? + y)?))
    }

    fn reset_state(&mut self) {
        self.conv1.reset_state();
        self.conv2.reset_state();
        if let Some(s) = &mut self.shortcut {
            s.reset_state();
        }
        self.skip = None;
    }

    fn reset_item(&mut self, index: usize) -> crate::Result<()> {
        if self.skip.is_some() {
            return Err(crate::Error::Unsupported(
                "a residual block holds part of a frame: reset a stream item between frames".into(),
            ));
        }
        self.conv1.reset_item(index)?;
        self.conv2.reset_item(index)?;
        if let Some(s) = &mut self.shortcut {
            s.reset_item(index)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum Layer {
    Conv(StreamingConv1d),
    /// ELU then convolution.
    EluConv(StreamingConv1d),
    /// ELU then transposed convolution.
    EluConvTr(StreamingConvTranspose1d),
    Resnet(Box<ResnetBlock>),
    /// LSTM over time plus its input (EnCodec's `SLSTM`).
    Lstm(StreamingLstm),
}

impl StreamingModule for Layer {
    fn step(&mut self, xs: Option<&Tensor>) -> crate::Result<Option<Tensor>> {
        let Some(x) = xs else {
            return Ok(None);
        };
        match self {
            Layer::Conv(c) => c.step(Some(x)),
            Layer::EluConv(c) => c.step(Some(&elu(x, 1.0)?)),
            Layer::EluConvTr(c) => c.step(Some(&elu(x, 1.0)?)),
            Layer::Resnet(r) => r.step(Some(x)),
            Layer::Lstm(l) => Ok(l.step(Some(x))?.map(|y| y + x).transpose()?),
        }
    }

    fn reset_state(&mut self) {
        match self {
            Layer::Conv(c) | Layer::EluConv(c) => c.reset_state(),
            Layer::EluConvTr(c) => c.reset_state(),
            Layer::Resnet(r) => r.reset_state(),
            Layer::Lstm(l) => l.reset_state(),
        }
    }

    fn reset_item(&mut self, index: usize) -> crate::Result<()> {
        match self {
            Layer::Conv(c) | Layer::EluConv(c) => c.reset_item(index),
            Layer::EluConvTr(c) => c.reset_item(index),
            Layer::Resnet(r) => r.reset_item(index),
            Layer::Lstm(l) => l.reset_item(index),
        }
    }
}

fn step_layers(layers: &mut [Layer], xs: Option<&Tensor>) -> crate::Result<Option<Tensor>> {
    let mut x = match xs {
        Some(x) => x.clone(),
        None => return Ok(None),
    };
    for layer in layers {
        match layer.step(Some(&x))? {
            Some(y) => x = y,
            None => return Ok(None),
        }
    }
    Ok(Some(x))
}

/// Streaming SEANet encoder: audio `[batch, channels, samples]` in any pieces → latent
/// `[batch, dimension, frames]`, one frame per `hop_length` samples once they are complete.
///
/// Weights at `model.{i}.*`, the indices of the reference's `nn.Sequential`.
#[derive(Debug, Clone)]
pub struct StreamingSeanetEncoder {
    layers: Vec<Layer>,
}

impl StreamingSeanetEncoder {
    /// Build from the same config as the batch encoder; `vb` holds `model.{i}.*`.
    pub fn new(cfg: &SeanetConfig, vb: VarBuilder) -> Result<Self> {
        check(cfg)?;
        let vb = vb.pp("model");
        let layers = cfg
            .encoder_layers()
            .into_iter()
            .map(|(i, layer)| build_layer(cfg, layer, vb.pp(i)))
            .collect::<Result<_>>()?;
        Ok(Self { layers })
    }
}

/// The streaming form of one [`SeanetLayer`].
fn build_layer(cfg: &SeanetConfig, layer: SeanetLayer, vb: VarBuilder) -> Result<Layer> {
    Ok(match layer {
        SeanetLayer::Conv {
            elu,
            in_c,
            out_c,
            kernel,
            stride,
        } => {
            let conv = StreamingConv1d::new(in_c, out_c, conv_cfg(cfg, kernel).stride(stride), vb)?;
            if elu {
                Layer::EluConv(conv)
            } else {
                Layer::Conv(conv)
            }
        }
        SeanetLayer::ConvTr {
            in_c,
            out_c,
            stride,
        } => {
            let up = conv_cfg(cfg, stride * 2).stride(stride);
            Layer::EluConvTr(StreamingConvTranspose1d::new(in_c, out_c, up, vb)?)
        }
        SeanetLayer::Resnet { dim, dilation } => {
            Layer::Resnet(Box::new(ResnetBlock::new(dim, dilation, cfg, vb)?))
        }
        SeanetLayer::Lstm {
            bidirectional: true,
            ..
        } => {
            candle_core::bail!(
                "a bidirectional LSTM needs the whole sequence: this SEANet cannot stream"
            )
        }
        SeanetLayer::Lstm { dim, .. } => {
            let lstm = Lstm::new(dim, dim, cfg.lstm, vb.pp("lstm"))?;
            Layer::Lstm(StreamingLstm::new(lstm))
        }
    })
}

impl StreamingModule for StreamingSeanetEncoder {
    fn step(&mut self, xs: Option<&Tensor>) -> crate::Result<Option<Tensor>> {
        step_layers(&mut self.layers, xs)
    }

    fn reset_state(&mut self) {
        self.layers.iter_mut().for_each(Layer::reset_state);
    }

    fn reset_item(&mut self, index: usize) -> crate::Result<()> {
        self.layers.iter_mut().try_for_each(|l| l.reset_item(index))
    }
}

/// Streaming SEANet decoder: latent frames `[batch, dimension, frames]` → audio
/// `[batch, channels, frames * hop_length]` (no final activation), the overlap of each
/// transposed convolution carried to the next step.
#[derive(Debug, Clone)]
pub struct StreamingSeanetDecoder {
    layers: Vec<Layer>,
}

impl StreamingSeanetDecoder {
    /// Build from the same config as the batch decoder; `vb` holds `model.{i}.*`.
    pub fn new(cfg: &SeanetConfig, vb: VarBuilder) -> Result<Self> {
        check(cfg)?;
        let vb = vb.pp("model");
        let layers = cfg
            .decoder_layers()
            .into_iter()
            .map(|(i, layer)| build_layer(cfg, layer, vb.pp(i)))
            .collect::<Result<_>>()?;
        Ok(Self { layers })
    }
}

impl StreamingModule for StreamingSeanetDecoder {
    fn step(&mut self, xs: Option<&Tensor>) -> crate::Result<Option<Tensor>> {
        step_layers(&mut self.layers, xs)
    }

    fn reset_state(&mut self) {
        self.layers.iter_mut().for_each(Layer::reset_state);
    }

    fn reset_item(&mut self, index: usize) -> crate::Result<()> {
        self.layers.iter_mut().try_for_each(|l| l.reset_item(index))
    }
}

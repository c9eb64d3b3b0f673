//! The SEANet networks on a stream (moshi's `SEANetEncoder` / `SEANetDecoder` in streaming
//! mode): the same layers as the batch [`SeanetEncoder`] / [`SeanetDecoder`], stepped.
//!
//! Causal networks with plain convolutions (no normalisation, or weight norm folded at load):
//! Mimi's (zero padding, no LSTM) and EnCodec 24 kHz's (reflect padding, LSTM with skip, whose
//! `(h, c)` is carried between steps). Group-normalised (EnCodec 48 kHz) or non-causal networks
//! look ahead, and a bidirectional LSTM needs the whole sequence: their `step` is an error.

use candle_core::{Tensor, D};

use super::super::conv::ConvNorm;
use super::super::kernels::activation::elu;
use super::{Layer, ResnetBlock, SeanetConfig, SeanetDecoder, SeanetEncoder};
use crate::streaming::{cat_pieces, StreamingModule};
use crate::{Error, Result};

/// Whether this network can run on a stream: causal, without group norm or a bidirectional
/// LSTM.
pub fn can_stream(cfg: &SeanetConfig) -> bool {
    cfg.causal && cfg.norm != ConvNorm::TimeGroupNorm && !cfg.bidirectional_lstm
}

fn refuse() -> Error {
    Error::Unsupported(
        "this SEANet network cannot stream: it needs a causal network without group norm or a \
         bidirectional LSTM"
            .into(),
    )
}

impl StreamingModule for ResnetBlock {
    fn step(&mut self, xs: Option<&Tensor>) -> Result<Option<Tensor>> {
        let Some(x) = xs else {
            return Ok(None);
        };
        // Stride-1 convolutions: as many samples out as in overall; the skip path waits for
        // them.
        let skip = match &mut self.shortcut {
            Some(s) => s.step(Some(x))?,
            None => Some(x.clone()),
        };
        self.pending_skip = cat_pieces(self.pending_skip.take(), skip)?;
        let y = self.conv1.step(Some(&elu(x, 1.0)?))?;
        let y = match y {
            Some(y) => self.conv2.step(Some(&elu(&y, 1.0)?))?,
            None => None,
        };
        let Some(y) = y else {
            return Ok(None);
        };
        let pending = self
            .pending_skip
            .take()
            .expect("the skip path has what the convolutions had");
        let (n, have) = (y.dim(D::Minus1)?, pending.dim(D::Minus1)?);
        if have > n {
            self.pending_skip = Some(pending.narrow(D::Minus1, n, have - n)?);
        }
        Ok(Some((pending.narrow(D::Minus1, 0, n)? + y)?))
    }

    fn reset_state(&mut self) {
        self.conv1.reset_state();
        self.conv2.reset_state();
        if let Some(s) = &mut self.shortcut {
            s.reset_state();
        }
        self.pending_skip = None;
    }

    fn reset_item(&mut self, index: usize) -> Result<()> {
        if self.pending_skip.is_some() {
            return Err(Error::Unsupported(
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

impl StreamingModule for Layer {
    fn step(&mut self, xs: Option<&Tensor>) -> Result<Option<Tensor>> {
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

    fn reset_item(&mut self, index: usize) -> Result<()> {
        match self {
            Layer::Conv(c) | Layer::EluConv(c) => c.reset_item(index),
            Layer::EluConvTr(c) => c.reset_item(index),
            Layer::Resnet(r) => r.reset_item(index),
            Layer::Lstm(l) => l.reset_item(index),
        }
    }
}

fn step_layers(layers: &mut [Layer], xs: Option<&Tensor>) -> Result<Option<Tensor>> {
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

/// Both networks step their layers in order, once their config can stream.
macro_rules! stream_layers {
    ($($network:ty),*) => {$(
        impl StreamingModule for $network {
            fn step(&mut self, xs: Option<&Tensor>) -> Result<Option<Tensor>> {
                if !self.streamable {
                    return Err(refuse());
                }
                step_layers(&mut self.layers, xs)
            }

            fn reset_state(&mut self) {
                self.layers.iter_mut().for_each(Layer::reset_state);
            }

            fn reset_item(&mut self, index: usize) -> Result<()> {
                self.layers.iter_mut().try_for_each(|l| l.reset_item(index))
            }
        }
    )*};
}

stream_layers!(SeanetEncoder, SeanetDecoder);

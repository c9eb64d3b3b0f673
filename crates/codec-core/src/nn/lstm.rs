//! A multi-layer unidirectional LSTM with PyTorch's weight layout (`weight_ih_l{k}`, ...), run
//! on a whole sequence ([`Lstm::forward`]) or on a stream with `(h, c)` carried between pieces
//! ([`StreamingLstm`]).

use candle_core::{Result, Tensor, D};
use candle_nn::VarBuilder;

use crate::streaming::StreamingModule;

#[derive(Debug, Clone)]
struct Layer {
    /// `[input, 4*hidden]`, transposed once at load.
    w_ih_t: Tensor,
    /// `[hidden, 4*hidden]`.
    w_hh_t: Tensor,
    /// `b_ih + b_hh`, `[4*hidden]`.
    bias: Tensor,
}

/// Stacked LSTM; gates in PyTorch order (input, forget, cell, output).
#[derive(Debug, Clone)]
pub struct Lstm {
    layers: Vec<Layer>,
    hidden: usize,
}

/// The recurrent state after a sequence: `(h, c)` of every layer, each `[batch, hidden]`.
#[derive(Debug, Clone)]
pub struct LstmState {
    h: Vec<Tensor>,
    c: Vec<Tensor>,
}

impl Lstm {
    /// `num_layers` stacked LSTMs, `input` features to `hidden`.
    pub fn new(input: usize, hidden: usize, num_layers: usize, vb: VarBuilder) -> Result<Self> {
        let layers = (0..num_layers)
            .map(|l| {
                let in_size = if l == 0 { input } else { hidden };
                let w_ih = vb.get((4 * hidden, in_size), &format!("weight_ih_l{l}"))?;
                let w_hh = vb.get((4 * hidden, hidden), &format!("weight_hh_l{l}"))?;
                let b_ih = vb.get(4 * hidden, &format!("bias_ih_l{l}"))?;
                let b_hh = vb.get(4 * hidden, &format!("bias_hh_l{l}"))?;
                Ok(Layer {
                    w_ih_t: w_ih.t()?.contiguous()?,
                    w_hh_t: w_hh.t()?.contiguous()?,
                    bias: (b_ih + b_hh)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers, hidden })
    }

    /// `x`: `[batch, time, input]` → `[batch, time, hidden]`, from a zero state.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_with_state(x, None)?.0)
    }

    /// `x`: `[batch, time, input]` (time > 0) → `[batch, time, hidden]` and the state after the
    /// last step, starting from `state` (zeros when `None`). Running a sequence in pieces, each
    /// from the previous piece's state, gives the output of one run over the whole sequence.
    pub fn forward_with_state(
        &self,
        x: &Tensor,
        state: Option<&LstmState>,
    ) -> Result<(Tensor, LstmState)> {
        let mut xs = x.clone();
        let mut next = LstmState {
            h: Vec::with_capacity(self.layers.len()),
            c: Vec::with_capacity(self.layers.len()),
        };
        for (l, layer) in self.layers.iter().enumerate() {
            let init = state.map(|s| (&s.h[l], &s.c[l]));
            let (ys, h, c) = self.run_layer(layer, &xs, init)?;
            xs = ys;
            next.h.push(h);
            next.c.push(c);
        }
        Ok((xs, next))
    }

    fn run_layer(
        &self,
        layer: &Layer,
        xs: &Tensor,
        init: Option<(&Tensor, &Tensor)>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (batch, time, _) = xs.dims3()?;
        // The input projection of every step at once: one large matmul instead of `time` small ones.
        let gates_x = xs
            .broadcast_matmul(&layer.w_ih_t)?
            .broadcast_add(&layer.bias)?;
        let (mut h, mut c) = match init {
            Some((h, c)) => (h.clone(), c.clone()),
            None => {
                let zeros = Tensor::zeros((batch, self.hidden), xs.dtype(), xs.device())?;
                (zeros.clone(), zeros)
            }
        };
        let mut outputs = Vec::with_capacity(time);
        for t in 0..time {
            let gates = (gates_x.narrow(1, t, 1)?.squeeze(1)? + h.matmul(&layer.w_hh_t)?)?;
            let chunks = gates.chunk(4, D::Minus1)?;
            let i = candle_nn::ops::sigmoid(&chunks[0])?;
            let f = candle_nn::ops::sigmoid(&chunks[1])?;
            let g = chunks[2].tanh()?;
            let o = candle_nn::ops::sigmoid(&chunks[3])?;
            c = ((f * c)? + (i * g)?)?;
            h = (o * c.tanh()?)?;
            outputs.push(h.clone());
        }
        Ok((Tensor::stack(&outputs, 1)?, h, c))
    }
}

/// An [`Lstm`] over a stream in the convolutions' layout: `[batch, channels, time]` pieces in,
/// `[batch, hidden, time]` out, one output step per input step, `(h, c)` carried between
/// pieces.
#[derive(Debug, Clone)]
pub struct StreamingLstm {
    lstm: Lstm,
    state: Option<LstmState>,
}

impl StreamingLstm {
    /// Wrap an LSTM that carries its state from step to step.
    pub fn new(lstm: Lstm) -> Self {
        Self { lstm, state: None }
    }
}

impl StreamingModule for StreamingLstm {
    fn step(&mut self, xs: Option<&Tensor>) -> crate::Result<Option<Tensor>> {
        let Some(x) = xs else {
            return Ok(None);
        };
        if x.dim(D::Minus1)? == 0 {
            return Ok(None);
        }
        let seq = x.transpose(1, 2)?.contiguous()?;
        let (y, state) = self.lstm.forward_with_state(&seq, self.state.as_ref())?;
        self.state = Some(state);
        Ok(Some(y.transpose(1, 2)?.contiguous()?))
    }

    fn reset_state(&mut self) {
        self.state = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    #[test]
    fn streamed_lstm_equals_one_run() -> crate::Result<()> {
        let dev = Device::Cpu;
        let (input, hidden) = (3, 5);
        let mut w = HashMap::new();
        for l in 0..2 {
            let in_size = if l == 0 { input } else { hidden };
            w.insert(
                format!("weight_ih_l{l}"),
                Tensor::randn(0f32, 0.5, (4 * hidden, in_size), &dev)?,
            );
            w.insert(
                format!("weight_hh_l{l}"),
                Tensor::randn(0f32, 0.5, (4 * hidden, hidden), &dev)?,
            );
            for b in ["bias_ih", "bias_hh"] {
                w.insert(
                    format!("{b}_l{l}"),
                    Tensor::randn(0f32, 0.5, 4 * hidden, &dev)?,
                );
            }
        }
        let vb = VarBuilder::from_tensors(w, DType::F32, &dev);
        let lstm = Lstm::new(input, hidden, 2, vb)?;
        let x = Tensor::randn(0f32, 1.0, (2, input, 17), &dev)?;
        let whole = lstm
            .forward(&x.transpose(1, 2)?.contiguous()?)?
            .transpose(1, 2)?;
        let mut s = StreamingLstm::new(lstm);
        let mut out = None;
        for (start, len) in [(0, 1), (1, 6), (7, 10)] {
            let y = s.step(Some(&x.narrow(2, start, len)?))?;
            out = crate::streaming::cat_pieces(out, y)?;
        }
        let diff = (out.unwrap() - whole)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-5, "{diff}");
        Ok(())
    }
}

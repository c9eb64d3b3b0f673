//! A multi-layer unidirectional LSTM with PyTorch's weight layout (`weight_ih_l{k}`, ...).

use candle_core::{Result, Tensor, D};
use candle_nn::VarBuilder;

struct Layer {
    /// `[input, 4*hidden]`, transposed once at load.
    w_ih_t: Tensor,
    /// `[hidden, 4*hidden]`.
    w_hh_t: Tensor,
    /// `b_ih + b_hh`, `[4*hidden]`.
    bias: Tensor,
}

/// Stacked LSTM; gates in PyTorch order (input, forget, cell, output).
pub struct Lstm {
    layers: Vec<Layer>,
    hidden: usize,
}

impl Lstm {
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
        let mut xs = x.clone();
        for layer in &self.layers {
            xs = self.run_layer(layer, &xs)?;
        }
        Ok(xs)
    }

    fn run_layer(&self, layer: &Layer, xs: &Tensor) -> Result<Tensor> {
        let (batch, time, _) = xs.dims3()?;
        let h_size = self.hidden;
        // The input projection of every step at once: one large matmul instead of `time` small ones.
        let gates_x = xs
            .broadcast_matmul(&layer.w_ih_t)?
            .broadcast_add(&layer.bias)?;
        let mut h = Tensor::zeros((batch, h_size), xs.dtype(), xs.device())?;
        let mut c = h.clone();
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
        Tensor::stack(&outputs, 1)
    }
}

//! A multi-layer LSTM with PyTorch's weight layout (`weight_ih_l{k}`, ...), run on a whole
//! sequence ([`Lstm::forward`]) or, unidirectional, on a stream with `(h, c)` carried between
//! pieces ([`StreamingLstm`]). A bidirectional one ([`Lstm::bidirectional`], PyTorch's
//! `bidirectional=True`: `*_reverse` weights) needs the whole sequence.

use std::sync::Arc;

use candle_core::{DType, Result, Tensor, D};
use candle_nn::VarBuilder;

use crate::streaming::StreamingModule;

mod recurrence;

use recurrence::RecurrentWeights;

#[derive(Debug, Clone)]
struct Layer {
    /// `[input, 4*hidden]`, transposed once at load.
    w_ih_t: Tensor,
    /// `[hidden, 4*hidden]`, for devices other than the CPU.
    w_hh_t: Tensor,
    /// `w_hh` regrouped for the CPU's fused recurrence (f32 weights on the CPU only).
    recurrent_cpu: Option<Arc<RecurrentWeights>>,
    /// `b_ih + b_hh`, `[4*hidden]`.
    bias: Tensor,
}

impl Layer {
    /// The weights of layer `l` (`suffix` `""` forward, `"_reverse"` backward) at `vb`.
    fn new(vb: &VarBuilder, l: usize, suffix: &str, in_size: usize, hidden: usize) -> Result<Self> {
        let w_ih = vb.get((4 * hidden, in_size), &format!("weight_ih_l{l}{suffix}"))?;
        let w_hh = vb.get((4 * hidden, hidden), &format!("weight_hh_l{l}{suffix}"))?;
        let b_ih = vb.get(4 * hidden, &format!("bias_ih_l{l}{suffix}"))?;
        let b_hh = vb.get(4 * hidden, &format!("bias_hh_l{l}{suffix}"))?;
        let recurrent_cpu = if w_hh.device().is_cpu() && w_hh.dtype() == DType::F32 {
            let threads = rayon::current_num_threads();
            Some(Arc::new(crate::dsp::with_cpu_slice::<f32, _>(
                &w_hh,
                |w| Ok(RecurrentWeights::new(w, hidden, threads)),
            )?))
        } else {
            None
        };
        Ok(Layer {
            w_ih_t: w_ih.t()?.contiguous()?,
            w_hh_t: w_hh.t()?.contiguous()?,
            recurrent_cpu,
            bias: (b_ih + b_hh)?,
        })
    }
}

/// Stacked LSTM; gates in PyTorch order (input, forget, cell, output).
#[derive(Debug, Clone)]
pub struct Lstm {
    layers: Vec<Layer>,
    /// The backward direction of each layer, for a bidirectional LSTM.
    reverse: Option<Vec<Layer>>,
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
                Layer::new(&vb, l, "", in_size, hidden)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            reverse: None,
            hidden,
        })
    }

    /// `num_layers` stacked bidirectional LSTMs, `input` features to `hidden` per direction:
    /// each layer after the first reads both directions' outputs (`2 * hidden` features).
    pub fn bidirectional(
        input: usize,
        hidden: usize,
        num_layers: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let in_size = |l: usize| if l == 0 { input } else { 2 * hidden };
        let direction = |suffix: &str| {
            (0..num_layers)
                .map(|l| Layer::new(&vb, l, suffix, in_size(l), hidden))
                .collect::<Result<Vec<_>>>()
        };
        Ok(Self {
            layers: direction("")?,
            reverse: Some(direction("_reverse")?),
            hidden,
        })
    }

    /// Whether this LSTM runs in both directions (its output has `2 * hidden` features).
    pub fn is_bidirectional(&self) -> bool {
        self.reverse.is_some()
    }

    /// `x`: `[batch, time, input]` → `[batch, time, hidden]` (`2 * hidden` for a bidirectional
    /// LSTM: the forward direction's features, then the backward's), from a zero state.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let Some(reverse) = &self.reverse else {
            return Ok(self.forward_with_state(x, None)?.0);
        };
        let mut xs = x.clone();
        for (fwd, bwd) in self.layers.iter().zip(reverse) {
            // The two directions are independent: side by side.
            let (ys_fwd, ys_bwd) = rayon::join(
                || self.run_layer(fwd, &xs, None, false),
                || self.run_layer(bwd, &xs, None, true),
            );
            xs = Tensor::cat(&[ys_fwd?.0, ys_bwd?.0], D::Minus1)?;
        }
        Ok(xs)
    }

    /// `x`: `[batch, time, input]` (time > 0) → `[batch, time, hidden]` and the state after the
    /// last step, starting from `state` (zeros when `None`). Running a sequence in pieces, each
    /// from the previous piece's state, gives the output of one run over the whole sequence.
    /// A bidirectional LSTM has no such state: an error.
    pub fn forward_with_state(
        &self,
        x: &Tensor,
        state: Option<&LstmState>,
    ) -> Result<(Tensor, LstmState)> {
        if self.is_bidirectional() {
            candle_core::bail!("a bidirectional LSTM runs on whole sequences, not on a stream");
        }
        let mut xs = x.clone();
        let mut next = LstmState {
            h: Vec::with_capacity(self.layers.len()),
            c: Vec::with_capacity(self.layers.len()),
        };
        for (l, layer) in self.layers.iter().enumerate() {
            let init = state.map(|s| (&s.h[l], &s.c[l]));
            let (ys, h, c) = self.run_layer(layer, &xs, init, false)?;
            xs = ys;
            next.h.push(h);
            next.c.push(c);
        }
        Ok((xs, next))
    }

    /// One layer over `xs` `[batch, time, input]`, from the last step to the first when
    /// `backward` (outputs still in time order); returns the outputs and the final `(h, c)`.
    fn run_layer(
        &self,
        layer: &Layer,
        xs: &Tensor,
        init: Option<(&Tensor, &Tensor)>,
        backward: bool,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (batch, time, _) = xs.dims3()?;
        // The input projection of every step at once: one large matmul instead of `time` small ones.
        let gates_x = xs
            .broadcast_matmul(&layer.w_ih_t)?
            .broadcast_add(&layer.bias)?;
        if let (Some(recurrent), true) = (&layer.recurrent_cpu, gates_x.device().is_cpu()) {
            if gates_x.dtype() == DType::F32 {
                return self.run_layer_cpu(recurrent, &gates_x, init, backward);
            }
        }
        let (mut h, mut c) = match init {
            Some((h, c)) => (h.clone(), c.clone()),
            None => {
                let zeros = Tensor::zeros((batch, self.hidden), xs.dtype(), xs.device())?;
                (zeros.clone(), zeros)
            }
        };
        let mut outputs = Vec::with_capacity(time);
        let steps: Box<dyn Iterator<Item = usize>> = if backward {
            Box::new((0..time).rev())
        } else {
            Box::new(0..time)
        };
        for t in steps {
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
        if backward {
            outputs.reverse();
        }
        Ok((Tensor::stack(&outputs, 1)?, h, c))
    }

    /// [`Self::run_layer`]'s recurrence on the CPU, item by item through the fused steps of
    /// [`RecurrentWeights`].
    fn run_layer_cpu(
        &self,
        recurrent: &RecurrentWeights,
        gates_x: &Tensor,
        init: Option<(&Tensor, &Tensor)>,
        backward: bool,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (batch, time, _) = gates_x.dims3()?;
        let hidden = self.hidden;
        let state = |t: Option<&Tensor>| -> Result<Vec<f32>> {
            match t {
                Some(t) => t.flatten_all()?.to_vec1::<f32>(),
                None => Ok(vec![0f32; batch * hidden]),
            }
        };
        let mut h = state(init.map(|(h, _)| h))?;
        let mut c = state(init.map(|(_, c)| c))?;
        let mut out = vec![0f32; batch * time * hidden];
        crate::dsp::with_cpu_slice::<f32, _>(gates_x, |gx| {
            for (b, out) in out.chunks_exact_mut(time * hidden).enumerate() {
                recurrent.run(
                    &gx[b * time * 4 * hidden..][..time * 4 * hidden],
                    &mut h[b * hidden..][..hidden],
                    &mut c[b * hidden..][..hidden],
                    out,
                    backward,
                );
            }
            Ok(())
        })?;
        let dev = gates_x.device();
        Ok((
            Tensor::from_vec(out, (batch, time, hidden), dev)?,
            Tensor::from_vec(h, (batch, hidden), dev)?,
            Tensor::from_vec(c, (batch, hidden), dev)?,
        ))
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

    /// The LSTM, for whole sequences.
    pub fn lstm(&self) -> &Lstm {
        &self.lstm
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

    /// A fresh row starts from `h = c = 0`.
    fn reset_item(&mut self, index: usize) -> crate::Result<()> {
        if let Some(state) = &mut self.state {
            for t in state.h.iter_mut().chain(state.c.iter_mut()) {
                *t = crate::streaming::zero_batch_row(t, index)?;
            }
        }
        Ok(())
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

    fn random_weights(
        w: &mut HashMap<String, Tensor>,
        suffix: &str,
        input: usize,
        hidden: usize,
        dev: &Device,
    ) -> Result<()> {
        w.insert(
            format!("weight_ih_l0{suffix}"),
            Tensor::randn(0f32, 0.5, (4 * hidden, input), dev)?,
        );
        w.insert(
            format!("weight_hh_l0{suffix}"),
            Tensor::randn(0f32, 0.5, (4 * hidden, hidden), dev)?,
        );
        for b in ["bias_ih", "bias_hh"] {
            w.insert(
                format!("{b}_l0{suffix}"),
                Tensor::randn(0f32, 0.5, 4 * hidden, dev)?,
            );
        }
        Ok(())
    }

    /// A bidirectional layer is the forward LSTM beside the forward LSTM (with the `_reverse`
    /// weights) run over the time-reversed input and reversed back.
    #[test]
    fn bidirectional_layer_is_forward_beside_reversed() -> crate::Result<()> {
        let dev = Device::Cpu;
        let (input, hidden, time) = (3, 4, 9);
        let mut w = HashMap::new();
        random_weights(&mut w, "", input, hidden, &dev)?;
        random_weights(&mut w, "_reverse", input, hidden, &dev)?;
        let reverse_as_forward: HashMap<String, Tensor> = w
            .iter()
            .filter_map(|(k, v)| Some((k.strip_suffix("_reverse")?.to_string(), v.clone())))
            .collect();
        let bi = Lstm::bidirectional(
            input,
            hidden,
            1,
            VarBuilder::from_tensors(w.clone(), DType::F32, &dev),
        )?;
        assert!(bi.is_bidirectional());
        let fwd = Lstm::new(
            input,
            hidden,
            1,
            VarBuilder::from_tensors(w, DType::F32, &dev),
        )?;
        let bwd = Lstm::new(
            input,
            hidden,
            1,
            VarBuilder::from_tensors(reverse_as_forward, DType::F32, &dev),
        )?;
        let x = Tensor::randn(0f32, 1.0, (2, time, input), &dev)?;
        let flip = |t: &Tensor| -> Result<Tensor> {
            let idx: Vec<u32> = (0..time as u32).rev().collect();
            t.index_select(&Tensor::new(idx, &dev)?, 1)
        };
        let want = Tensor::cat(&[fwd.forward(&x)?, flip(&bwd.forward(&flip(&x)?)?)?], 2)?;
        let got = bi.forward(&x)?;
        assert_eq!(got.dims(), &[2, time, 2 * hidden]);
        let diff = (got - want)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-6, "{diff}");
        assert!(bi.forward_with_state(&x, None).is_err());
        Ok(())
    }
}

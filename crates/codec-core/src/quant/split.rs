//! Residual VQs with input and output projections, and the split quantizer of Mimi (and of
//! Mimi-based tokenizers): a semantic RVQ and an acoustic RVQ over the same latent.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use crate::nn::conv1d::{Conv1d, Conv1dConfig};

use super::ResidualVq;

/// A residual VQ with 1x1 projections in and out (moshi's
/// `ResidualVectorQuantizer` with `force_projection`).
#[derive(Debug, Clone)]
pub struct ProjectedRvq {
    input_proj: Conv1d,
    output_proj: Conv1d,
    vq: ResidualVq,
}

impl ProjectedRvq {
    /// `n_q` stages of `bins` entries in `dim` dimensions, between 1x1 projections from
    /// `input_dim` and to `output_dim` (no bias); codebooks stored as EMA buffers whose usage
    /// is floored at `epsilon`.
    pub fn new(
        n_q: usize,
        bins: usize,
        [input_dim, dim, output_dim]: [usize; 3],
        epsilon: f64,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let conv = |i: usize, o: usize, vb: VarBuilder| -> candle_core::Result<Conv1d> {
            Ok(Conv1d::new(
                vb.get((o, i, 1), "weight")?,
                None,
                Conv1dConfig::default(),
            ))
        };
        Ok(Self {
            input_proj: conv(input_dim, dim, vb.pp("input_proj"))?,
            output_proj: conv(dim, output_dim, vb.pp("output_proj"))?,
            vq: ResidualVq::from_ema(n_q, bins, dim, epsilon, vb.pp("vq"))?,
        })
    }

    /// Latent `[batch, input_dim, frames]` → codes `[batch, n_q, frames]` (u32).
    pub fn encode(&self, x: &Tensor, n_q: usize) -> candle_core::Result<Tensor> {
        self.vq.encode(&self.input_proj.forward(x)?, n_q)
    }

    /// Codes `[batch, k, frames]` → `[batch, output_dim, frames]`.
    pub fn decode(&self, codes: &Tensor) -> candle_core::Result<Tensor> {
        self.output_proj.forward(&self.vq.decode(codes)?)
    }
}

/// The split residual quantizer: `rvq_first` (semantic) and `rvq_rest` (acoustic) quantize the
/// same latent; decoding sums their outputs.
#[derive(Debug, Clone)]
pub struct SplitRvq {
    first: ProjectedRvq,
    rest: ProjectedRvq,
    n_first: usize,
}

impl SplitRvq {
    /// `first` takes the first `n_first` codebooks, `rest` the others.
    pub fn new(first: ProjectedRvq, rest: ProjectedRvq, n_first: usize) -> Self {
        Self {
            first,
            rest,
            n_first,
        }
    }

    /// Latent `[batch, dim, frames]` → codes `[batch, n_q, frames]` (u32).
    pub fn encode(&self, x: &Tensor, n_q: usize) -> candle_core::Result<Tensor> {
        let first = self.first.encode(x, self.n_first.min(n_q))?;
        if n_q <= self.n_first {
            return Ok(first);
        }
        let rest = self.rest.encode(x, n_q - self.n_first)?;
        Tensor::cat(&[&first, &rest], 1)
    }

    /// Codes `[batch, k, frames]` (any `k >= 1`) → latent `[batch, dim, frames]`.
    pub fn decode(&self, codes: &Tensor) -> candle_core::Result<Tensor> {
        let k = codes.dim(1)?;
        let n = self.n_first.min(k);
        let mut q = self.first.decode(&codes.narrow(1, 0, n)?)?;
        if k > self.n_first {
            q = (q + self.rest.decode(&codes.narrow(1, n, k - n)?)?)?;
        }
        Ok(q)
    }
}

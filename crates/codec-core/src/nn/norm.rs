//! Normalisation layers not in candle-nn.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// Vocos' AdaLayerNorm: LayerNorm without affine parameters, then a scale and shift looked up
/// from embeddings by a conditioning id (WavTokenizer's bandwidth id).
///
/// Weights: `scale.weight` and `shift.weight`, both `[num_embeddings, dim]`.
#[derive(Debug, Clone)]
pub struct AdaLayerNorm {
    scale: Tensor,
    shift: Tensor,
    eps: f64,
}

impl AdaLayerNorm {
    /// `num_embeddings` conditioning embeddings of `dim` scales and shifts.
    pub fn new(num_embeddings: usize, dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let scale = vb.pp("scale").get((num_embeddings, dim), "weight")?;
        let shift = vb.pp("shift").get((num_embeddings, dim), "weight")?;
        Ok(Self { scale, shift, eps })
    }

    /// The scale and shift rows for `cond_id`, and eps (for fused CPU passes).
    pub(crate) fn parts(&self, cond_id: usize) -> Result<(Tensor, Tensor, f64)> {
        Ok((self.scale.get(cond_id)?, self.shift.get(cond_id)?, self.eps))
    }

    /// `x`: `[batch, time, dim]`; `cond_id` selects the embedding row.
    pub fn forward(&self, x: &Tensor, cond_id: usize) -> Result<Tensor> {
        let scale = self.scale.get(cond_id)?;
        let shift = self.shift.get(cond_id)?;
        normalize(x, self.eps)?
            .broadcast_mul(&scale)?
            .broadcast_add(&shift)
    }
}

/// `(x - mean) / sqrt(var + eps)` over the last dimension, in two passes.
///
/// candle's fused layer norm takes the variance as `E[x²] - mean²` in float32, which loses
/// digits when the mean is large next to the spread (e.g. log-magnitude features); reference
/// implementations (PyTorch) subtract the mean first, and parity needs the same.
fn normalize(x: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = match dtype {
        DType::F16 | DType::BF16 => x.to_dtype(DType::F32)?,
        _ => x.clone(),
    };
    let mean = x.mean_keepdim(D::Minus1)?;
    let centered = x.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    centered
        .broadcast_div(&(var + eps)?.sqrt()?)?
        .to_dtype(dtype)
}

/// LayerNorm over the last dimension with a two-pass variance (see `normalize`).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// From its parameters.
    pub fn new(weight: Tensor, bias: Tensor, eps: f64) -> Self {
        Self { weight, bias, eps }
    }

    /// Weight, bias and eps (for fused CPU passes).
    pub(crate) fn parts(&self) -> (&Tensor, &Tensor, f64) {
        (&self.weight, &self.bias, self.eps)
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        normalize(x, self.eps)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

/// A LayerNorm over the last dimension, weights at `vb.{weight,bias}`.
pub fn layer_norm(dim: usize, eps: f64, vb: VarBuilder) -> Result<LayerNorm> {
    let weight = vb.get(dim, "weight")?;
    let bias = vb.get(dim, "bias")?;
    Ok(LayerNorm::new(weight, bias, eps))
}

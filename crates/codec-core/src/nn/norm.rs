//! Normalisation layers not in candle-nn.

use candle_core::{Result, Tensor};
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
    pub fn new(num_embeddings: usize, dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let scale = vb.pp("scale").get((num_embeddings, dim), "weight")?;
        let shift = vb.pp("shift").get((num_embeddings, dim), "weight")?;
        Ok(Self { scale, shift, eps })
    }

    /// `x`: `[batch, time, dim]`; `cond_id` selects the embedding row.
    pub fn forward(&self, x: &Tensor, cond_id: usize) -> Result<Tensor> {
        let scale = self.scale.get(cond_id)?;
        let shift = self.shift.get(cond_id)?;
        candle_nn::ops::layer_norm(&x.contiguous()?, &scale, &shift, self.eps as f32)
    }
}

/// A LayerNorm over the last dimension, weights at `vb.{weight,bias}`.
pub fn layer_norm(dim: usize, eps: f64, vb: VarBuilder) -> Result<candle_nn::LayerNorm> {
    let weight = vb.get(dim, "weight")?;
    let bias = vb.get(dim, "bias")?;
    Ok(candle_nn::LayerNorm::new(weight, bias, eps))
}

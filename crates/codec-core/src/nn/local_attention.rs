//! SNAC's `LocalMHA`: pre-norm multi-head self-attention within non-overlapping windows of the
//! time axis, with rotary position embeddings restarting at 0 in every window, and a residual.
//!
//! Weights: `norm.{weight,bias}` (LayerNorm, eps 1e-5), `to_qkv.weight` `[3 * dim, dim]` and
//! `to_out.weight` `[dim, dim]` (no biases), `rel_pos.inv_freq` `[dim_head / 2]` (a buffer the
//! reference saves with the weights). Heads of 64 channels; the rotary embedding is
//! `SinusoidalEmbeddings(64)` without xpos scaling, so queries and keys are rotated by the
//! position within their window (`freqs = [t * inv_freq, t * inv_freq]`, `rotate_half` on the
//! two halves of each head).

use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

use crate::nn::linear::Linear;

use crate::nn::norm::LayerNorm;

/// Channels per head in the reference (`dim_head=64`).
pub const DIM_HEAD: usize = 64;

/// Multi-head attention within windows of `window` steps (SNAC's `LocalMHA`).
#[derive(Debug, Clone)]
pub struct LocalMha {
    norm: LayerNorm,
    to_qkv: Linear,
    to_out: Linear,
    /// `cos(freqs)` and `sin(freqs)`, `[window, dim_head]`.
    cos: Tensor,
    sin: Tensor,
    heads: usize,
    window: usize,
}

impl LocalMha {
    /// Attention over `dim` channels in windows of `window` steps.
    pub fn new(dim: usize, window: usize, vb: VarBuilder) -> Result<Self> {
        if !dim.is_multiple_of(DIM_HEAD) || window == 0 {
            candle_core::bail!(
                "local attention over {dim} channels needs a multiple of {DIM_HEAD} and a window"
            )
        }
        let norm = crate::nn::norm::layer_norm(dim, 1e-5, vb.pp("norm"))?;
        let to_qkv = crate::nn::linear::linear_no_bias(dim, 3 * dim, vb.pp("to_qkv"))?;
        let to_out = crate::nn::linear::linear_no_bias(dim, dim, vb.pp("to_out"))?;
        let inv_freq = vb
            .pp("rel_pos")
            .get(DIM_HEAD / 2, "inv_freq")?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?;
        // freqs[t] = cat(t * inv_freq, t * inv_freq), in f32 as the reference computes it.
        let mut cos = Vec::with_capacity(window * DIM_HEAD);
        let mut sin = Vec::with_capacity(window * DIM_HEAD);
        for t in 0..window {
            for _ in 0..2 {
                for &f in &inv_freq {
                    let a = t as f32 * f;
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
        }
        let dev = vb.device();
        let dtype = vb.dtype();
        let cos = Tensor::from_vec(cos, (window, DIM_HEAD), dev)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (window, DIM_HEAD), dev)?.to_dtype(dtype)?;
        Ok(Self {
            norm,
            to_qkv,
            to_out,
            cos,
            sin,
            heads: dim / DIM_HEAD,
            window,
        })
    }

    /// Steps per attention window.
    pub fn window(&self) -> usize {
        self.window
    }

    /// `cat(-x2, x1)` of the two halves of the last axis.
    fn rotate_half(x: &Tensor) -> Result<Tensor> {
        let half = x.dim(D::Minus1)? / 2;
        let x1 = x.narrow(D::Minus1, 0, half)?;
        let x2 = x.narrow(D::Minus1, half, half)?;
        Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)
    }

    fn rotary(&self, x: &Tensor) -> Result<Tensor> {
        x.broadcast_mul(&self.cos)? + Self::rotate_half(x)?.broadcast_mul(&self.sin)?
    }
}

impl Module for LocalMha {
    /// `x`: `[batch, dim, time]`, `time` a multiple of the window.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, t) = x.dims3()?;
        if !t.is_multiple_of(self.window) {
            candle_core::bail!(
                "local attention: {t} frames is not a multiple of the window {}",
                self.window
            )
        }
        let (h, d, w, n) = (self.heads, DIM_HEAD, t / self.window, self.window);
        let y = self.norm.forward(&x.transpose(1, 2)?.contiguous()?)?;
        let qkv = self.to_qkv.forward(&y)?; // [b, t, 3c]
                                            // "b (w n) (h d) -> b h w n d", then batch over (b, h, w).
        let split = |i: usize| -> Result<Tensor> {
            qkv.narrow(2, i * c, c)?
                .reshape((b, w, n, h, d))?
                .permute((0, 3, 1, 2, 4))?
                .reshape((b * h * w, n, d))
        };
        let q = self.rotary(&split(0)?)?;
        let k = self.rotary(&split(1)?)?;
        let v = split(2)?.contiguous()?;
        let scale = 1.0 / (d as f64).sqrt();
        let att = (q.contiguous()?.matmul(&k.t()?.contiguous()?)? * scale)?;
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        let out = att.matmul(&v)?; // [b h w, n, d]
        let out = out
            .reshape((b, h, w, n, d))?
            .permute((0, 2, 3, 1, 4))?
            .reshape((b, t, c))?;
        let out = self.to_out.forward(&out)?;
        out.transpose(1, 2)? + x
    }
}

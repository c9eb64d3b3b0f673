//! Pre-norm transformer blocks: RMSNorm, attention with a fused bias-free qkv projection and
//! rotary position embeddings, and a SiLU MLP.
//!
//! The blocks follow `bs_roformer5.TransformerBlock` as X-Codec2 and NeuCodec use it in their
//! Vocos decoder (`att_norm`, `att.c_attn`, `att.c_proj`, `ffn_norm`, `mlp.fc1`, `mlp.fc2`), with
//! the rotary embedding of torchtune (`RotaryPositionalEmbeddings`, interleaved pairs). Where the
//! rotation's positions come from is a parameter ([`RopePositions`]): the X-Codec2 reference hands
//! torchtune tensors shaped `(batch, heads, time, head_dim)` where torchtune expects
//! `(batch, time, heads, head_dim)`, so there the "position" is the head index.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::dsp::with_cpu_slice;
use crate::nn::kernels::{attention_f32, AttentionShape};
use crate::nn::linear::Linear;

/// Root-mean-square norm over the last dimension: `x / sqrt(mean(x²) + eps) * weight`.
///
/// Weights: `weight` (`[dim]`).
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// RMSNorm over `dim` channels.
    pub fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            eps,
        })
    }

    /// Normalise over the last dimension.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::rms_norm(&x.contiguous()?, &self.weight, self.eps as f32)
    }
}

/// torchtune's `RotaryPositionalEmbeddings`: pairs `(x[2i], x[2i + 1])` of the last dimension
/// rotated by `p * θ_i`, `θ_i = base^(-2i / dim)`, where `p` is the index along dimension 1.
/// With [`rotate_half`](Self::rotate_half) the pairs are `(x[i], x[i + dim / 2])` instead, as
/// transformers' `rotate_half` forms them (Llama-style models, transformers' Mimi, Qwen).
#[derive(Debug, Clone, PartialEq)]
pub struct RotaryEmbedding {
    dim: usize,
    /// `θ_i`, computed in `f32` as torchtune does.
    theta: Vec<f32>,
    /// Pairs are the two halves of the last dimension rather than neighbours.
    halves: bool,
}

impl RotaryEmbedding {
    /// `dim` is the rotated size (the head dimension), even; torchtune's default base is 10 000.
    pub fn new(dim: usize, base: f64) -> Result<Self> {
        if dim == 0 || !dim.is_multiple_of(2) {
            candle_core::bail!("rotary embedding: dim {dim} must be even and positive")
        }
        let theta = (0..dim / 2)
            .map(|i| 1.0f32 / (base as f32).powf((2 * i) as f32 / dim as f32))
            .collect();
        Ok(Self {
            dim,
            theta,
            halves: false,
        })
    }

    /// Rotate `(x[i], x[i + dim / 2])` pairs (transformers' `rotate_half` convention): the same
    /// frequencies, the query and key rows in the order those checkpoints store them.
    pub fn rotate_half(mut self) -> Self {
        self.halves = true;
        self
    }

    /// The frequencies as moshi computes them: `θ_i = exp(-i * 2 ln(max_period) / dim)` in
    /// `f32` (the same values as [`new`](Self::new) up to rounding).
    pub fn with_exp_frequencies(dim: usize, max_period: f64) -> Result<Self> {
        let mut rope = Self::new(dim, max_period)?;
        let step = -(max_period.ln() as f32) * 2.0 / dim as f32;
        rope.theta = (0..dim / 2).map(|i| (i as f32 * step).exp()).collect();
        Ok(rope)
    }

    /// Dimensions rotated (per head).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// `cos` and `sin` of `p * θ_i` for `start <= p < start + positions`, each
    /// `[positions, dim / 2]` (`f32`).
    fn tables(
        &self,
        start: usize,
        positions: usize,
        device: &candle_core::Device,
    ) -> Result<(Tensor, Tensor)> {
        let half = self.dim / 2;
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        for p in start..start + positions {
            for &t in &self.theta {
                let angle = p as f32 * t;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Ok((
            Tensor::from_vec(cos, (positions, half), device)?,
            Tensor::from_vec(sin, (positions, half), device)?,
        ))
    }

    /// torchtune's `forward`: `x` is `[batch, positions, n, dim]`; dimension 1 gives the
    /// position. Computed in `f32`, returned in `x`'s dtype.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_from(x, 0)
    }

    /// [`forward`](Self::forward) with positions counted from `start` (a stream's offset).
    pub fn forward_from(&self, x: &Tensor, start: usize) -> Result<Tensor> {
        let (b, s, n, d) = x.dims4()?;
        if d != self.dim {
            candle_core::bail!(
                "rotary embedding of dim {} applied to a last dimension of {d}",
                self.dim
            )
        }
        let half = d / 2;
        let (cos, sin) = self.tables(start, s, x.device())?;
        let cos = cos.reshape((1, s, 1, half))?;
        let sin = sin.reshape((1, s, 1, half))?;
        let xs = x.to_dtype(DType::F32)?;
        if self.halves {
            let x0 = xs.narrow(3, 0, half)?;
            let x1 = xs.narrow(3, half, half)?;
            let out0 = (x0.broadcast_mul(&cos)? - x1.broadcast_mul(&sin)?)?;
            let out1 = (x1.broadcast_mul(&cos)? + x0.broadcast_mul(&sin)?)?;
            return Tensor::cat(&[out0, out1], 3)?.to_dtype(x.dtype());
        }
        let xs = xs.reshape((b, s, n, half, 2))?;
        let x0 = xs.narrow(4, 0, 1)?.squeeze(4)?;
        let x1 = xs.narrow(4, 1, 1)?.squeeze(4)?;
        let out0 = (x0.broadcast_mul(&cos)? - x1.broadcast_mul(&sin)?)?;
        let out1 = (x1.broadcast_mul(&cos)? + x0.broadcast_mul(&sin)?)?;
        Tensor::stack(&[out0, out1], 4)?
            .reshape((b, s, n, d))?
            .to_dtype(x.dtype())
    }
}

/// Which index the rotary embedding treats as the position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopePositions {
    /// The time step: torchtune applied to `(batch, time, heads, head_dim)`, as intended.
    Time,
    /// The head index: torchtune applied to `(batch, heads, time, head_dim)`, as
    /// `bs_roformer5.Attention` (X-Codec2, NeuCodec) does; every time step gets the same rotation.
    Heads,
}

/// Queries above this many are processed in chunks (the scores of a chunk are
/// `batch × heads × chunk × time` floats).
const QUERY_CHUNK: usize = 1024;

/// Multi-head self-attention over the whole sequence (no mask) with a fused bias-free qkv
/// projection: `c_attn` (`[3 * dim, dim]`, output split as `(qkv, head, head_dim)`) and `c_proj`
/// (`[dim, dim]`).
#[derive(Debug, Clone)]
pub struct FusedQkvAttention {
    c_attn: Linear,
    c_proj: Linear,
    n_heads: usize,
    head_dim: usize,
    rope: Option<(RotaryEmbedding, RopePositions)>,
}

impl FusedQkvAttention {
    /// Attention over `dim` channels with `heads` heads and the rotary embedding `rope`.
    pub fn new(
        dim: usize,
        n_heads: usize,
        rope: Option<(RotaryEmbedding, RopePositions)>,
        vb: VarBuilder,
    ) -> Result<Self> {
        if n_heads == 0 || !dim.is_multiple_of(n_heads) {
            candle_core::bail!("attention: dim {dim} is not a multiple of {n_heads} heads")
        }
        Ok(Self {
            c_attn: crate::nn::linear::linear_no_bias(dim, 3 * dim, vb.pp("c_attn"))?,
            c_proj: crate::nn::linear::linear_no_bias(dim, dim, vb.pp("c_proj"))?,
            n_heads,
            head_dim: dim / n_heads,
            rope,
        })
    }

    /// `x`: `[batch, time, dim]` → `[batch, time, dim]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        let (h, d) = (self.n_heads, self.head_dim);
        let qkv = self.c_attn.forward(x)?.reshape((b, t, 3, h, d))?;
        // Each of q, k, v as [b, t, h, d].
        let part = |i: usize| qkv.narrow(2, i, 1)?.squeeze(2);
        let (mut q, mut k, v) = (part(0)?, part(1)?, part(2)?);
        let to_bhtd = |x: Tensor| x.transpose(1, 2)?.contiguous();
        match &self.rope {
            Some((rope, RopePositions::Time)) => {
                q = to_bhtd(rope.forward(&q.contiguous()?)?)?;
                k = to_bhtd(rope.forward(&k.contiguous()?)?)?;
            }
            Some((rope, RopePositions::Heads)) => {
                q = rope.forward(&to_bhtd(q)?)?;
                k = rope.forward(&to_bhtd(k)?)?;
            }
            None => {
                q = to_bhtd(q)?;
                k = to_bhtd(k)?;
            }
        }
        let v = to_bhtd(v)?;
        let scale = 1.0 / (d as f64).sqrt();
        if q.device().is_cpu() && q.dtype() == DType::F32 {
            // Blocked over the queries, the scores of one block at a time (the same numbers).
            let shape = AttentionShape {
                items: b * h,
                queries: t,
                keys: t,
                head_dim: d,
            };
            let y = with_cpu_slice::<f32, _>(&q, |q| {
                with_cpu_slice::<f32, _>(&k, |k| {
                    with_cpu_slice::<f32, _>(&v, |v| {
                        Ok(attention_f32(q, k, v, shape, scale as f32))
                    })
                })
            })?;
            let y = Tensor::from_vec(y, (b, h, t, d), q.device())?;
            let y = y.transpose(1, 2)?.reshape((b, t, c))?;
            return self.c_proj.forward(&y);
        }
        let kt = k.transpose(2, 3)?.contiguous()?; // [b, h, d, t]
        let attend = |q: &Tensor| -> Result<Tensor> {
            let w = (q.contiguous()?.matmul(&kt)? * scale)?;
            candle_nn::ops::softmax_last_dim(&w)?.matmul(&v)
        };
        let y = if t <= QUERY_CHUNK {
            attend(&q)?
        } else {
            let chunks = (0..t)
                .step_by(QUERY_CHUNK)
                .map(|s| attend(&q.narrow(2, s, QUERY_CHUNK.min(t - s))?))
                .collect::<Result<Vec<_>>>()?;
            Tensor::cat(&chunks, 2)?
        };
        let y = y.transpose(1, 2)?.reshape((b, t, c))?;
        self.c_proj.forward(&y)
    }
}

/// `fc2(silu(fc1(x)))`, both bias-free, hidden size `4 * dim`.
#[derive(Debug, Clone)]
pub struct SiluMlp {
    fc1: Linear,
    fc2: Linear,
}

impl SiluMlp {
    /// An MLP `dim → hidden → dim`.
    pub fn new(dim: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: crate::nn::linear::linear_no_bias(dim, hidden, vb.pp("fc1"))?,
            fc2: crate::nn::linear::linear_no_bias(hidden, dim, vb.pp("fc2"))?,
        })
    }

    /// Apply it.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&crate::nn::kernels::activation::silu(
            &self.fc1.forward(x)?,
        )?)
    }
}

/// `x + att(att_norm(x))`, then `x + mlp(ffn_norm(x))`; RMSNorm eps 1e-6.
#[derive(Debug, Clone)]
pub struct TransformerBlock {
    att_norm: RmsNorm,
    att: FusedQkvAttention,
    ffn_norm: RmsNorm,
    mlp: SiluMlp,
}

impl TransformerBlock {
    /// A block of `dim` channels.
    pub fn new(
        dim: usize,
        n_heads: usize,
        rope: Option<(RotaryEmbedding, RopePositions)>,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            att_norm: RmsNorm::new(dim, 1e-6, vb.pp("att_norm"))?,
            att: FusedQkvAttention::new(dim, n_heads, rope, vb.pp("att"))?,
            ffn_norm: RmsNorm::new(dim, 1e-6, vb.pp("ffn_norm"))?,
            mlp: SiluMlp::new(dim, 4 * dim, vb.pp("mlp"))?,
        })
    }

    /// `x`: `[batch, time, dim]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = (x + self.att.forward(&self.att_norm.forward(x)?)?)?;
        &x + self.mlp.forward(&self.ffn_norm.forward(&x)?)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Rotating halves is rotating neighbours with each head's rows reordered (evens, then
    /// odds): the relation between transformers' and moshi's query/key layouts.
    #[test]
    fn rotate_half_is_interleaved_on_reordered_rows() -> Result<()> {
        let dev = Device::Cpu;
        let (d, t) = (8usize, 5usize);
        let x = Tensor::randn(0f32, 1.0, (1, t, 2, d), &dev)?;
        let interleaved = RotaryEmbedding::new(d, 10000.0)?;
        let halves = interleaved.clone().rotate_half();
        // Neighbour layout → halves layout: [x0, x2, x4, x6, x1, x3, x5, x7].
        let order: Vec<u32> = (0..d as u32)
            .step_by(2)
            .chain((1..d as u32).step_by(2))
            .collect();
        let order = Tensor::new(order.as_slice(), &dev)?;
        let a = interleaved.forward_from(&x, 3)?.index_select(&order, 3)?;
        let b = halves.forward_from(&x.index_select(&order, 3)?, 3)?;
        let diff = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        assert!(diff < 1e-6, "{diff}");
        Ok(())
    }

    #[test]
    fn rotary_rotates_pairs_by_position_times_theta() -> Result<()> {
        let rope = RotaryEmbedding::new(4, 10000.0)?;
        // [1, 3 positions, 1, 4]: the pair (1, 0) at position p turns by p * θ_i.
        let x = Tensor::new(&[1f32, 0.0, 1.0, 0.0], &Device::Cpu)?
            .reshape((1, 1, 1, 4))?
            .repeat((1, 3, 1, 1))?;
        let y = rope.forward(&x)?.reshape((3, 4))?.to_vec2::<f32>()?;
        let theta = [1.0f32, 0.01];
        for (p, row) in y.iter().enumerate() {
            for (i, t) in theta.iter().enumerate() {
                let a = p as f32 * t;
                assert!((row[2 * i] - a.cos()).abs() < 1e-6, "{p} {i}");
                assert!((row[2 * i + 1] - a.sin()).abs() < 1e-6, "{p} {i}");
            }
        }
        assert!(RotaryEmbedding::new(3, 10000.0).is_err());
        Ok(())
    }
}

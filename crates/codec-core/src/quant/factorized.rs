//! Factorised, L2-normalised residual vector quantization (DAC's `ResidualVectorQuantize`,
//! after ViT-VQGAN), with SNAC's temporal strides.
//!
//! Each stage projects the residual to a few dimensions (`in_proj`, a 1x1 conv), picks the
//! codebook entry of highest cosine similarity (both sides L2-normalised), projects the
//! entry back (`out_proj`) and subtracts it from the residual. In SNAC a stage with stride `s`
//! first averages the residual over windows of `s` frames and repeats its output `s` times,
//! so its codes run at `1/s` the frame rate. Weights: `quantizers.{i}.{in_proj,out_proj}.
//! {weight,bias}` (weight norm folded) and `quantizers.{i}.codebook.weight` `[size, dim]`.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

use crate::nn::torch_conv::{Conv, ConvSpec};

/// One factorised codebook.
#[derive(Debug, Clone)]
pub struct FactorizedVq {
    in_proj: Conv,
    out_proj: Conv,
    /// `[size, dim]`, as stored: decoded codes are its rows.
    codebook: Tensor,
    /// The rows L2-normalised and transposed, `[dim, size]`.
    codebook_norm_t: Tensor,
    /// Squared norms of the normalised rows, `[1, size]`.
    codebook_norm_sq: Tensor,
    stride: usize,
}

/// `F.normalize(x, dim=1)`: rows divided by `max(||row||, 1e-12)`.
fn l2_normalize_rows(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
    x.broadcast_div(&norm)
}

impl FactorizedVq {
    /// `input_dim` channels in and out, `size` entries of `dim` values, codes at `1/stride`
    /// of the input's frame rate.
    pub fn new(
        input_dim: usize,
        size: usize,
        dim: usize,
        stride: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let in_proj = Conv::new(ConvSpec::new(input_dim, dim, 1), vb.pp("in_proj"))?;
        let out_proj = Conv::new(ConvSpec::new(dim, input_dim, 1), vb.pp("out_proj"))?;
        let codebook = vb.pp("codebook").get((size, dim), "weight")?;
        let normed = l2_normalize_rows(&codebook)?;
        let codebook_norm_sq = normed.sqr()?.sum_keepdim(1)?.t()?.contiguous()?;
        let codebook_norm_t = normed.t()?.contiguous()?;
        Ok(Self {
            in_proj,
            out_proj,
            codebook,
            codebook_norm_t,
            codebook_norm_sq,
            stride: stride.max(1),
        })
    }

    /// Entries of the codebook.
    pub fn size(&self) -> usize {
        self.codebook.dim(0).unwrap_or(0)
    }

    /// Frames of the latent per code (SNAC's multi-scale strides; 1 in DAC).
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// `avg_pool1d(x, stride, stride)` over `[batch, channels, time]`; `time` must be a multiple.
    fn pool(&self, x: &Tensor) -> Result<Tensor> {
        if self.stride == 1 {
            return Ok(x.clone());
        }
        let (b, c, t) = x.dims3()?;
        if !t.is_multiple_of(self.stride) {
            candle_core::bail!(
                "{t} frames cannot be pooled by a quantizer stride of {}",
                self.stride
            )
        }
        x.reshape((b, c, t / self.stride, self.stride))?
            .mean(D::Minus1)
    }

    /// `repeat_interleave(stride, dim=-1)`.
    fn repeat(&self, x: &Tensor) -> Result<Tensor> {
        if self.stride == 1 {
            return Ok(x.clone());
        }
        let (b, c, t) = x.dims3()?;
        x.unsqueeze(3)?
            .broadcast_as((b, c, t, self.stride))?
            .reshape((b, c, t * self.stride))
    }

    /// Codebook rows for codes `[batch, frames]`, as `[batch, dim, frames]`.
    fn lookup(&self, codes: &Tensor) -> Result<Tensor> {
        let (b, t) = codes.dims2()?;
        let rows = self
            .codebook
            .index_select(&codes.flatten_all()?.to_dtype(DType::U32)?, 0)?;
        rows.reshape((b, t, ()))?.transpose(1, 2)?.contiguous()
    }

    /// Quantize `residual` `[batch, input_dim, time]`: codes `[batch, time / stride]` (u32) and
    /// the quantized value `[batch, input_dim, time]` to subtract from the residual.
    pub fn encode(&self, residual: &Tensor) -> Result<(Tensor, Tensor)> {
        let z = self.pool(residual)?;
        let z_e = self.in_proj.forward(&z)?; // [b, dim, t]
        let (b, dim, t) = z_e.dims3()?;
        let enc = z_e.transpose(1, 2)?.reshape((b * t, dim))?;
        let enc = l2_normalize_rows(&enc)?;
        // The reference's distance on normalised vectors, term by term:
        // |e|^2 - 2 e.c + |c|^2, and the code of the smallest.
        let dist = enc
            .sqr()?
            .sum_keepdim(1)?
            .broadcast_sub(&(enc.matmul(&self.codebook_norm_t)? * 2.0)?)?
            .broadcast_add(&self.codebook_norm_sq)?;
        let codes = dist
            .argmin(D::Minus1)?
            .to_dtype(DType::U32)?
            .reshape((b, t))?;
        let z_q = self.lookup(&codes)?;
        // `z_e + (z_q - z_e).detach()`, kept literally: it is not exactly z_q in floating point.
        let z_q = (&z_e + (z_q - &z_e)?)?;
        let out = self.repeat(&self.out_proj.forward(&z_q)?)?;
        Ok((codes, out))
    }

    /// Codes `[batch, frames]` to their contribution `[batch, input_dim, frames * stride]`.
    pub fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        self.repeat(&self.out_proj.forward(&self.lookup(codes)?)?)
    }
}

/// A stack of [`FactorizedVq`], each quantizing what the previous left.
#[derive(Debug, Clone)]
pub struct FactorizedRvq {
    quantizers: Vec<FactorizedVq>,
}

impl FactorizedRvq {
    /// One quantizer per entry of `strides` (all 1 for DAC), at `vb.quantizers.{i}`.
    pub fn new(
        input_dim: usize,
        size: usize,
        dim: usize,
        strides: &[usize],
        vb: VarBuilder,
    ) -> Result<Self> {
        let quantizers = strides
            .iter()
            .enumerate()
            .map(|(i, &s)| FactorizedVq::new(input_dim, size, dim, s, vb.pp("quantizers").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { quantizers })
    }

    /// Codebooks.
    pub fn num_codebooks(&self) -> usize {
        self.quantizers.len()
    }

    /// The stages.
    pub fn quantizers(&self) -> &[FactorizedVq] {
        &self.quantizers
    }

    /// Latent `[batch, input_dim, time]` to the codes of the first `n` quantizers, each
    /// `[batch, time / stride_i]` (u32). Later stages are not computed.
    pub fn encode(&self, z: &Tensor, n: usize) -> Result<Vec<Tensor>> {
        if n == 0 || n > self.quantizers.len() {
            candle_core::bail!(
                "{n} codebooks requested, the quantizer has {}",
                self.quantizers.len()
            )
        }
        let mut residual = z.clone();
        let mut codes = Vec::with_capacity(n);
        for (i, q) in self.quantizers.iter().take(n).enumerate() {
            let (c, z_q) = q.encode(&residual)?;
            if i + 1 < n {
                residual = (residual - z_q)?;
            }
            codes.push(c);
        }
        Ok(codes)
    }

    /// [`encode`](Self::encode) with frames left out: `mask` `[batch, 1, time]` is 1 on the
    /// frames that count and 0 on padding. Each stage quantizes the residual times the mask
    /// and subtracts only on the masked-in frames, so a padded frame's residual stays zero and
    /// it gets, in every stage, the code nearest the stage's `in_proj` bias
    /// (MOSS-Audio-Tokenizer's `ResidualLFQ`).
    pub fn encode_masked(&self, z: &Tensor, n: usize, mask: &Tensor) -> Result<Vec<Tensor>> {
        if n == 0 || n > self.quantizers.len() {
            candle_core::bail!(
                "{n} codebooks requested, the quantizer has {}",
                self.quantizers.len()
            )
        }
        let mut residual = z.clone();
        let mut codes = Vec::with_capacity(n);
        for (i, q) in self.quantizers.iter().take(n).enumerate() {
            let (c, z_q) = q.encode(&residual.broadcast_mul(mask)?)?;
            if i + 1 < n {
                residual = (residual - z_q.broadcast_mul(mask)?)?;
            }
            codes.push(c);
        }
        Ok(codes)
    }

    /// Codes of the first `codes.len()` quantizers to the latent they stand for (the sum of
    /// their contributions), `[batch, input_dim, time]`.
    pub fn decode(&self, codes: &[Tensor]) -> Result<Tensor> {
        if codes.is_empty() || codes.len() > self.quantizers.len() {
            candle_core::bail!(
                "{} codebooks given, the quantizer has 1 to {}",
                codes.len(),
                self.quantizers.len()
            )
        }
        let mut acc: Option<Tensor> = None;
        for (q, c) in self.quantizers.iter().zip(codes) {
            let v = q.decode(c)?;
            acc = Some(match acc {
                None => v,
                Some(a) => {
                    if a.dims() != v.dims() {
                        candle_core::bail!(
                            "codebook streams disagree on the frame count: {:?} vs {:?}",
                            a.dims(),
                            v.dims()
                        )
                    }
                    (a + v)?
                }
            });
        }
        Ok(acc.expect("at least one codebook"))
    }
}

//! Vector quantization with Euclidean codebooks (EnCodec / WavTokenizer `EuclideanCodebook`).

use candle_core::{DType, Result, Tensor, D};
use candle_nn::VarBuilder;

/// One codebook: `embed` `[bins, dim]`; a vector's code is its nearest entry.
#[derive(Debug, Clone)]
pub struct EuclideanCodebook {
    embed: Tensor,
    /// `embed` transposed, `[dim, bins]`, for the distance matmul.
    embed_t: Tensor,
    /// `||e||²` per entry, `[1, bins]`.
    embed_sq: Tensor,
}

impl EuclideanCodebook {
    /// Reads `vb.embed` `[bins, dim]` (the reference's `_codebook.embed`).
    pub fn new(bins: usize, dim: usize, vb: VarBuilder) -> Result<Self> {
        Self::from_embed(vb.get((bins, dim), "embed")?)
    }

    /// Reads moshi's EMA buffers `vb.embedding_sum` `[bins, dim]` and `vb.cluster_usage`
    /// `[bins]`: the entries are `embedding_sum / max(cluster_usage, epsilon)`.
    pub fn from_ema(bins: usize, dim: usize, epsilon: f64, vb: VarBuilder) -> Result<Self> {
        let sum = vb.get((bins, dim), "embedding_sum")?;
        let usage = vb.get(bins, "cluster_usage")?;
        let usage = usage.maximum(epsilon)?.reshape((bins, 1))?;
        Self::from_embed(sum.broadcast_div(&usage)?)
    }

    /// A codebook from its entries `[bins, dim]`.
    pub fn from_embed(embed: Tensor) -> Result<Self> {
        let embed_t = embed.t()?.contiguous()?;
        let embed_sq = embed.sqr()?.sum_keepdim(1)?.t()?.contiguous()?;
        Ok(Self {
            embed,
            embed_t,
            embed_sq,
        })
    }

    /// Entries.
    pub fn bins(&self) -> usize {
        self.embed.dim(0).unwrap_or(0)
    }

    /// Vectors `[n, dim]` → codes `[n]` (u32): argmin of `||e||² - 2 x·e` (`||x||²` is constant per row).
    pub fn encode_flat(&self, x: &Tensor) -> Result<Tensor> {
        let dist = self
            .embed_sq
            .broadcast_sub(&(x.matmul(&self.embed_t)? * 2.0)?)?;
        dist.argmin(D::Minus1)?.to_dtype(DType::U32)
    }

    /// Codes of any shape → vectors with a trailing `dim` axis.
    pub fn decode_flat(&self, codes: &Tensor) -> Result<Tensor> {
        let shape = codes.dims().to_vec();
        let flat = codes.flatten_all()?;
        let v = self.embed.index_select(&flat, 0)?;
        let mut out_shape = shape;
        out_shape.push(self.embed.dim(1)?);
        v.reshape(out_shape)
    }
}

/// Residual VQ: each codebook quantizes what the previous ones left over.
#[derive(Debug, Clone)]
pub struct ResidualVq {
    codebooks: Vec<EuclideanCodebook>,
}

impl ResidualVq {
    /// Reads `vb.layers.{i}._codebook.embed`, the reference's layout.
    pub fn new(n_q: usize, bins: usize, dim: usize, vb: VarBuilder) -> Result<Self> {
        let codebooks = (0..n_q)
            .map(|i| EuclideanCodebook::new(bins, dim, vb.pp("layers").pp(i).pp("_codebook")))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { codebooks })
    }

    /// Reads moshi's layout, `vb.layers.{i}._codebook.{embedding_sum,cluster_usage}` (see
    /// [`EuclideanCodebook::from_ema`]).
    pub fn from_ema(
        n_q: usize,
        bins: usize,
        dim: usize,
        epsilon: f64,
        vb: VarBuilder,
    ) -> Result<Self> {
        let codebooks = (0..n_q)
            .map(|i| {
                EuclideanCodebook::from_ema(
                    bins,
                    dim,
                    epsilon,
                    vb.pp("layers").pp(i).pp("_codebook"),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { codebooks })
    }

    /// Codebooks.
    pub fn num_codebooks(&self) -> usize {
        self.codebooks.len()
    }

    /// Each codebook's entries, in order.
    pub fn codebook_sizes(&self) -> Vec<u32> {
        self.codebooks.iter().map(|c| c.bins() as u32).collect()
    }

    /// Latent `[batch, dim, frames]` → codes `[batch, n_q, frames]` using the first `n_q` codebooks.
    pub fn encode(&self, x: &Tensor, n_q: usize) -> Result<Tensor> {
        let (batch, dim, frames) = x.dims3()?;
        let mut residual = x.transpose(1, 2)?.reshape((batch * frames, dim))?;
        let mut codes = Vec::with_capacity(n_q);
        for (i, cb) in self.codebooks.iter().take(n_q).enumerate() {
            let c = cb.encode_flat(&residual)?;
            if i + 1 < n_q {
                residual = (residual - cb.decode_flat(&c)?)?;
            }
            codes.push(c.reshape((batch, frames))?);
        }
        Tensor::stack(&codes, 1)
    }

    /// Codes `[batch, n_q, frames]` → latent `[batch, dim, frames]` (sum of the entries).
    pub fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        let (_, n_q, _) = codes.dims3()?;
        if n_q > self.codebooks.len() {
            candle_core::bail!(
                "{n_q} codebooks given, the quantizer has {}",
                self.codebooks.len()
            )
        }
        let mut acc: Option<Tensor> = None;
        for (i, cb) in self.codebooks.iter().take(n_q).enumerate() {
            let v = cb.decode_flat(&codes.narrow(1, i, 1)?.squeeze(1)?)?; // [b, t, dim]
            acc = Some(match acc {
                None => v,
                Some(a) => (a + v)?,
            });
        }
        let acc = acc.ok_or_else(|| candle_core::Error::Msg("no codebooks given".into()))?;
        acc.transpose(1, 2)?.contiguous()
    }
}

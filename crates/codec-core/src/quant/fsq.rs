//! Finite scalar quantization (Mentzer et al. 2023) and its residual stacks.
//!
//! Each dimension is rounded to one of its `levels` values; a code is the mixed-radix number of
//! the per-dimension level indices ("digits"), the first dimension least significant.
//!
//! - [`Fsq`]: the digit/index/code mappings for arbitrary levels, and the quantizer exactly as
//!   `vector_quantize_pytorch.FSQ` (1.17) computes it (bound with `tanh` and an offset for even
//!   levels, round half to even). X-Codec2 and NeuCodec use it.
//! - [`ResidualFsq`]: the project's own residual stack (tinycodec): odd levels, one `tanh`, each
//!   stage scaled up by `stage_scale`, so a prefix of the stages decodes at a lower bitrate. It
//!   shares [`Fsq`]'s index mapping.

use candle_core::{DType, Result, Tensor, D};

/// Plain FSQ with arbitrary levels per dimension, without projections.
///
/// With `w = levels / 2` (integer division) per dimension, `basis = cumprod([1] + levels[..-1])`:
///
/// ```text
/// digit = round_half_even(bound(z)) + w            (0..levels)
/// index = Σ_d digit[d] * basis[d]
/// code  = (digit - w) / w                          (in [-1, 1])
/// bound(z) = tanh(z + atanh(offset / h)) * h - offset,  h = (levels - 1) * (1 + 1e-3) / 2,
///            offset = 0.5 for even levels, 0 for odd
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Fsq {
    levels: Vec<usize>,
    basis: Vec<usize>,
}

impl Fsq {
    /// Every level must be at least 2 and the codebook must stay below 2^24 entries (indices are
    /// handled as exact `f32` integers on the device).
    pub fn new(levels: &[usize]) -> Result<Self> {
        if levels.is_empty() || levels.iter().any(|&l| l < 2) {
            candle_core::bail!("fsq: levels {levels:?} must be non-empty and each at least 2")
        }
        let mut basis = Vec::with_capacity(levels.len());
        let mut acc = 1usize;
        for &l in levels {
            basis.push(acc);
            acc = acc.saturating_mul(l);
        }
        if acc > 1 << 24 {
            candle_core::bail!("fsq: levels {levels:?} give {acc} codes, more than 2^24")
        }
        Ok(Self {
            levels: levels.to_vec(),
            basis,
        })
    }

    /// Levels per dimension.
    pub fn levels(&self) -> &[usize] {
        &self.levels
    }

    /// Number of dimensions (digits per code).
    pub fn dims(&self) -> usize {
        self.levels.len()
    }

    /// Entries of the implicit codebook: the product of the levels.
    pub fn codebook_size(&self) -> usize {
        self.levels.iter().product()
    }

    fn per_dim(&self, z: &Tensor, f: impl Fn(usize) -> f64) -> Result<Tensor> {
        let v: Vec<f32> = self.levels.iter().map(|&l| f(l) as f32).collect();
        Tensor::new(v, z.device())
    }

    /// Digits `[..., dims]` (exact integers, any float dtype) → indices `[...]` (`u32`).
    pub fn digits_to_indices(&self, digits: &Tensor) -> Result<Tensor> {
        let basis: Vec<f32> = self.basis.iter().map(|&b| b as f32).collect();
        let basis = Tensor::new(basis, digits.device())?;
        digits
            .to_dtype(DType::F32)?
            .broadcast_mul(&basis)?
            .sum(D::Minus1)?
            .round()?
            .to_dtype(DType::U32)
    }

    /// Indices `[...]` (any integer or float dtype) → digits `[..., dims]` (`f32`).
    pub fn indices_to_digits(&self, indices: &Tensor) -> Result<Tensor> {
        // (c / basis) mod levels in floats: exact for codes below 2^24.
        let c = indices.to_dtype(DType::F32)?;
        let digits = self
            .levels
            .iter()
            .zip(&self.basis)
            .map(|(&l, &p)| {
                let q = (&c / p as f64)?.floor()?;
                let next = (&c / (p * l) as f64)?.floor()?;
                q - (next * l as f64)?
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::stack(&digits, D::Minus1)
    }

    /// Digits `[..., dims]` → codes in `[-1, 1]`: `(digit - w) / w`.
    pub fn digits_to_codes(&self, digits: &Tensor) -> Result<Tensor> {
        let digits = digits.to_dtype(DType::F32)?;
        let w = self.per_dim(&digits, |l| (l / 2) as f64)?;
        digits.broadcast_sub(&w)?.broadcast_div(&w)
    }

    /// Indices `[...]` → codes `[..., dims]` in `[-1, 1]` (`indices_to_codes` without projection).
    pub fn indices_to_codes(&self, indices: &Tensor) -> Result<Tensor> {
        self.digits_to_codes(&self.indices_to_digits(indices)?)
    }

    /// `FSQ.bound` on the host, in `f32` as PyTorch computes it: latent `[..., dims]` → values
    /// in `(-w - 1e-3, levels - 1 - w + 1e-3)` per dimension.
    pub fn bound(&self, z: &Tensor) -> Result<Tensor> {
        self.map_host(z, |v, half_l, offset, shift, _| {
            (v + shift).tanh() * half_l - offset
        })
    }

    /// Latent `[..., dims]` → digits `[..., dims]` (`f32`), as `FSQ.quantize` rounds them:
    /// `round(bound(z)) + w`, computed on the host in `f32` with round half to even
    /// (`torch.round`).
    pub fn quantize_digits(&self, z: &Tensor) -> Result<Tensor> {
        self.map_host(z, |v, half_l, offset, shift, w| {
            ((v + shift).tanh() * half_l - offset).round_ties_even() + w
        })
    }

    /// Apply `f(value, half_l, offset, shift, w)` per element, with the constants of its
    /// dimension, on the host.
    fn map_host(&self, z: &Tensor, f: impl Fn(f32, f32, f32, f32, f32) -> f32) -> Result<Tensor> {
        let dims = self.dims();
        if z.dim(D::Minus1)? != dims {
            candle_core::bail!(
                "fsq: latent {:?} does not end in {dims} dimensions",
                z.dims()
            )
        }
        let consts: Vec<(f32, f32, f32, f32)> = self
            .levels
            .iter()
            .map(|&l| {
                let half_l = (l - 1) as f32 * (1.0 + 1e-3) / 2.0;
                let offset = if l % 2 == 0 { 0.5f32 } else { 0.0 };
                let shift = (offset / half_l).atanh();
                (half_l, offset, shift, (l / 2) as f32)
            })
            .collect();
        let values = z.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let out: Vec<f32> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let (half_l, offset, shift, w) = consts[i % dims];
                f(v, half_l, offset, shift, w)
            })
            .collect();
        Tensor::from_vec(out, z.shape(), z.device())
    }

    /// Latent `[..., dims]` → indices `[...]` (`u32`).
    pub fn encode(&self, z: &Tensor) -> Result<Tensor> {
        self.digits_to_indices(&self.quantize_digits(z)?)
    }
}

/// Residual FSQ with the same odd number of levels in every dimension and stage.
///
/// ```text
/// zb = tanh(z)
/// x_k = (zb - Σ_{j<k} q_j) * scale^k,  i_k = clamp(round(half * x_k), -half, half),
/// q_k = i_k / half / scale^k,          code_k = Σ_d (i_k[d] + half) * levels^d
/// ```
/// with `half = (levels - 1) / 2`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResidualFsq {
    /// Levels per dimension.
    pub levels: usize,
    /// Dimensions.
    pub dims: usize,
    /// Stages.
    pub stages: usize,
    /// Scale of each stage relative to the one before.
    pub stage_scale: f64,
}

impl ResidualFsq {
    /// `stages` FSQs of `dims` dimensions at `levels` levels, each `stage_scale` times the one before.
    pub fn new(levels: usize, dims: usize, stages: usize, stage_scale: f64) -> Self {
        Self {
            levels,
            dims,
            stages,
            stage_scale,
        }
    }

    /// Entries of one stage's codebook: `levels^dims`.
    pub fn codebook_size(&self) -> usize {
        self.levels.pow(self.dims as u32)
    }

    fn half(&self) -> f64 {
        ((self.levels - 1) / 2) as f64
    }

    /// One stage's index mapping: [`Fsq`] with `levels` in each of the `dims` dimensions.
    fn stage_fsq(&self) -> Result<Fsq> {
        Fsq::new(&vec![self.levels; self.dims])
    }

    /// Latent `[batch, frames, dims]` → codes `[batch, stages, frames]` (u32), first `stages` stages.
    pub fn encode(&self, z: &Tensor, stages: usize) -> Result<Tensor> {
        if stages == 0 || stages > self.stages {
            candle_core::bail!(
                "{stages} stages requested, the quantizer has 1 to {}",
                self.stages
            )
        }
        let half = self.half();
        let zb = z.to_dtype(DType::F32)?.tanh()?;
        let fsq = self.stage_fsq()?;
        let mut residual = zb;
        let mut codes = Vec::with_capacity(stages);
        for k in 0..stages {
            let scale = self.stage_scale.powi(k as i32);
            let idx = ((&residual * (scale * half))?.round()?.clamp(-half, half))?;
            let q = (&idx * (1.0 / (half * scale)))?;
            residual = (residual - q)?;
            codes.push(fsq.digits_to_indices(&(idx + half)?)?);
        }
        Tensor::stack(&codes, 1)
    }

    /// Codes `[batch, stages', frames]` (any prefix of the stages) → latent `[batch, frames, dims]`.
    pub fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        let (_, stages, _) = codes.dims3()?;
        if stages == 0 || stages > self.stages {
            candle_core::bail!(
                "{stages} stages given, the quantizer has 1 to {}",
                self.stages
            )
        }
        let half = self.half();
        let codes = codes.to_dtype(DType::U32)?;
        let fsq = self.stage_fsq()?;
        let mut acc: Option<Tensor> = None;
        for k in 0..stages {
            let c = codes.narrow(1, k, 1)?.squeeze(1)?; // [b, f]
            let idx = (fsq.indices_to_digits(&c)? - half)?; // [b, f, dims]
            let q = (idx * (1.0 / (half * self.stage_scale.powi(k as i32))))?;
            acc = Some(match acc {
                None => q,
                Some(a) => (a + q)?,
            });
        }
        Ok(acc.expect("at least one stage"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn fsq_index_mapping_is_mixed_radix_first_digit_least_significant() -> Result<()> {
        let fsq = Fsq::new(&[4, 3, 5])?;
        assert_eq!(fsq.codebook_size(), 60);
        let all = Tensor::arange(0u32, 60, &Device::Cpu)?;
        let digits = fsq.indices_to_digits(&all)?;
        assert_eq!(digits.dims(), &[60, 3]);
        let d = digits.to_vec2::<f32>()?;
        assert_eq!(d[1], vec![1.0, 0.0, 0.0]);
        assert_eq!(d[4], vec![0.0, 1.0, 0.0]);
        assert_eq!(d[59], vec![3.0, 2.0, 4.0]);
        assert_eq!(
            fsq.digits_to_indices(&digits)?.to_vec1::<u32>()?,
            all.to_vec1::<u32>()?
        );
        // Codes are (digit - levels/2) / (levels/2): even levels are asymmetric.
        let codes = fsq.indices_to_codes(&Tensor::new(&[0u32, 59], &Device::Cpu)?)?;
        assert_eq!(
            codes.to_vec2::<f32>()?,
            vec![vec![-1.0, -1.0, -1.0], vec![0.5, 1.0, 1.0]]
        );
        assert!(Fsq::new(&[1, 4]).is_err());
        assert!(Fsq::new(&[4096, 4096, 2]).is_err());
        Ok(())
    }

    #[test]
    fn fsq_quantizer_bounds_like_vector_quantize_pytorch() -> Result<()> {
        // Levels 4: bound(z) = tanh(z + atanh(0.5 / 1.5015)) * 1.5015 - 0.5 lies in
        // (-2.0015, 1.0015), so digits 0..=3; z = 0 gives bound 0, digit 2.
        let fsq = Fsq::new(&[4, 4])?;
        let z = Tensor::new(&[[0.0f32, -10.0], [10.0, 0.2]], &Device::Cpu)?;
        let digits = fsq.quantize_digits(&z)?.to_vec2::<f32>()?;
        assert_eq!(digits, vec![vec![2.0, 0.0], vec![3.0, 2.0]]);
        let idx = fsq.encode(&z)?.to_vec1::<u32>()?;
        assert_eq!(idx, vec![2, 3 + 2 * 4]);
        Ok(())
    }

    #[test]
    fn codes_round_trip_and_refine() -> Result<()> {
        let fsq = ResidualFsq::new(5, 5, 4, 4.0);
        assert_eq!(fsq.codebook_size(), 3125);
        let z: Vec<f32> = (0..2 * 7 * 5)
            .map(|i| ((i as f32) * 0.37).sin() * 1.7)
            .collect();
        let z = Tensor::from_vec(z, (2, 7, 5), &Device::Cpu)?;
        let target = z.tanh()?;
        let mut last_err = f32::INFINITY;
        for s in 1..=4 {
            let codes = fsq.encode(&z, s)?;
            assert_eq!(codes.dims(), &[2, s, 7]);
            let max = codes.flatten_all()?.max(0)?.to_scalar::<u32>()?;
            assert!(max < 3125);
            let err = (fsq.decode(&codes)? - &target)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()?;
            // Each stage shrinks the worst-case error by the stage scale.
            let bound = 0.25 / 4f32.powi(s as i32 - 1) + 1e-6;
            assert!(err <= bound, "stage {s}: error {err} > {bound}");
            assert!(err < last_err);
            last_err = err;
            // A prefix of the codes decodes like encoding with fewer stages.
            let four = fsq.encode(&z, 4)?;
            assert_eq!(
                four.narrow(1, 0, s)?.to_vec3::<u32>()?,
                codes.to_vec3::<u32>()?
            );
        }
        Ok(())
    }
}

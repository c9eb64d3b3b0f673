//! Finite scalar quantization (Mentzer et al. 2023) and its residual stack.
//!
//! Each dimension is rounded to one of `levels` values; a code is the mixed-radix number of the
//! per-dimension indices. Residual FSQ quantizes what earlier stages left, scaled up by
//! `stage_scale` per stage, so a prefix of the stages decodes at a lower bitrate.

use candle_core::{DType, Result, Tensor, D};

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
    pub levels: usize,
    pub dims: usize,
    pub stages: usize,
    pub stage_scale: f64,
}

impl ResidualFsq {
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

    /// Mixed-radix weights `levels^d`, `[dims]`.
    fn radix(&self, z: &Tensor) -> Result<Tensor> {
        let w: Vec<f32> = (0..self.dims)
            .map(|d| self.levels.pow(d as u32) as f32)
            .collect();
        Tensor::new(w, z.device())
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
        let radix = self.radix(z)?;
        let mut residual = zb;
        let mut codes = Vec::with_capacity(stages);
        for k in 0..stages {
            let scale = self.stage_scale.powi(k as i32);
            let idx = ((&residual * (scale * half))?.round()?.clamp(-half, half))?;
            let q = (&idx * (1.0 / (half * scale)))?;
            residual = (residual - q)?;
            let code = (idx + half)?.broadcast_mul(&radix)?.sum(D::Minus1)?;
            codes.push(code.round()?.to_dtype(DType::U32)?);
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
        let mut acc: Option<Tensor> = None;
        for k in 0..stages {
            let c = codes.narrow(1, k, 1)?.squeeze(1)?; // [b, f]
            let digits = (0..self.dims)
                .map(|d| {
                    let p = self.levels.pow(d as u32) as f64;
                    // (c / p) mod levels, in floats: exact for codes below 2^24.
                    let c = c.to_dtype(DType::F32)?;
                    let q = (&c / p)?.floor()?;
                    let next = (&c / (p * self.levels as f64))?.floor()?;
                    q - (next * self.levels as f64)?
                })
                .collect::<Result<Vec<_>>>()?;
            let idx = (Tensor::stack(&digits, D::Minus1)? - half)?; // [b, f, dims]
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

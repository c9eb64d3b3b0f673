//! Element-wise activations on the threads (candle's CPU unary ops run on one).

use candle_core::{DType, Result, Tensor};
use rayon::prelude::*;

/// Values handed to a thread at a time.
const CHUNK: usize = 1 << 15;

/// An element-wise function fused into a kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum Activation {
    /// The identity.
    #[default]
    None,
    /// ELU with this `alpha` (candle's formula: `x` when the sign bit is clear, else
    /// `alpha · (eˣ − 1)`).
    Elu(f32),
}

impl Activation {
    /// Applies the function to `row` in place.
    pub fn apply(self, row: &mut [f32]) {
        match self {
            Activation::None => {}
            Activation::Elu(alpha) => elu_in_place(row, alpha),
        }
    }
}

/// ELU: `x` where `x ≥ 0` (sign bit clear), else `alpha · (eˣ − 1)`: candle's formula, with
/// a vectorised `eˣ` ([`exp_approx`], within 2 ulp of the correctly rounded value), on the CPU
/// threads for f32 tensors; candle's op on other devices and dtypes.
///
/// Every CPU path (this, the convolutions' fused epilogue, streaming steps of any size) uses
/// the same function, so batch, streaming and fused results agree bit for bit.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[-1.0f32, 0.0, 2.0], &Device::Cpu)?;
/// let y = codec_core::nn::kernels::activation::elu(&x, 1.0)?.to_vec1::<f32>()?;
/// assert_eq!(y[1..], [0.0, 2.0]);
/// assert!((y[0] - (-1f32).exp_m1()).abs() < 1e-7);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn elu(x: &Tensor, alpha: f64) -> Result<Tensor> {
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        return x.elu(alpha);
    }
    let alpha = alpha as f32;
    let out = crate::dsp::with_cpu_slice::<f32, _>(x, |src| {
        super::allocator::keep_large_buffers();
        let mut out = src.to_vec();
        if out.len() < CHUNK {
            elu_in_place(&mut out, alpha);
        } else {
            out.par_chunks_mut(CHUNK)
                .for_each(|chunk| elu_in_place(chunk, alpha));
        }
        Ok(out)
    })?;
    Tensor::from_vec(out, x.shape(), x.device())
}

/// SiLU, `x / (1 + e⁻ˣ)`: candle's formula and exponential (the same bits as `Tensor::silu`),
/// on the CPU threads for f32 tensors (candle's unary ops run on one); candle's op elsewhere.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[-1.0f32, 0.0, 2.0], &Device::Cpu)?;
/// let y = codec_core::nn::kernels::activation::silu(&x)?;
/// assert_eq!(y.to_vec1::<f32>()?, x.silu()?.to_vec1::<f32>()?);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn silu(x: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        return x.silu();
    }
    let out = crate::dsp::with_cpu_slice::<f32, _>(x, |src| {
        super::allocator::keep_large_buffers();
        let mut out = src.to_vec();
        let apply = |chunk: &mut [f32]| {
            for v in chunk {
                *v = *v / (1.0 + (-*v).exp());
            }
        };
        if out.len() < CHUNK {
            apply(&mut out);
        } else {
            out.par_chunks_mut(CHUNK).for_each(apply);
        }
        Ok(out)
    })?;
    Tensor::from_vec(out, x.shape(), x.device())
}

/// ELU over `v` in place, with the AVX-512 units when the CPU has them.
pub fn elu_in_place(v: &mut [f32], alpha: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { elu_in_place_avx512(v, alpha) };
        }
    }
    elu_lanes(v, alpha)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn elu_in_place_avx512(v: &mut [f32], alpha: f32) {
    elu_lanes(v, alpha)
}

/// Branch-free, so that the compiler vectorises it.
#[inline(always)]
fn elu_lanes(v: &mut [f32], alpha: f32) {
    for x in v {
        let e = exp_approx(*x);
        *x = if x.is_sign_positive() {
            *x
        } else {
            (e - 1.0) * alpha
        };
    }
}

/// `eˣ` for f32 by Cephes' method (`x = n·ln 2 + r`, a degree-6 polynomial in `r`, then
/// `2ⁿ` from the exponent bits), branch-free so that it vectorises: within 2 ulp of the
/// correctly rounded value over the whole range (inputs are clamped to `[-87.3, 88.3]`, where
/// the result is a normal float).
#[inline(always)]
pub fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 in two parts, the first exact in a few bits, so that n·ln 2 loses nothing.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2²³: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = if x < -87.3 { -87.3 } else { x };
    let x = if x > 88.3 { 88.3 } else { x };
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * (r * r) + r + 1.0;
    // `n` as an integer is in `shifted`'s low mantissa bits (it lies in [2²³, 2²⁴)): read it
    // from there. `n as i32` means the same but is a saturating cast, which the compiler runs
    // one lane at a time (a third of ELU's time went there).
    // (Wrapping: a NaN input gives a NaN result through `y`, whatever these bits are.)
    let n_int = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    y * f32::from_bits((n_int.wrapping_add(127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp() {
        let mut worst = 0f64;
        let mut x = -87.3f32;
        while x < 88.3 {
            let want = (x as f64).exp();
            let got = exp_approx(x) as f64;
            // One ulp of the correctly rounded f32 result.
            let ulp = (want as f32).abs() as f64 * f32::EPSILON as f64;
            worst = worst.max((got - want).abs() / ulp);
            x += 0.000_37;
        }
        assert!(worst <= 2.0, "{worst} ulp");
        assert_eq!(exp_approx(0.0), 1.0);
        assert!(exp_approx(-200.0) < 1e-37 && exp_approx(-200.0) >= 0.0);
    }

    #[test]
    fn elu_follows_candles_formula() -> Result<()> {
        let x = Tensor::randn(0f32, 2.0, (3, 5, 40_000), &candle_core::Device::Cpu)?;
        let want = x.elu(1.0)?.flatten_all()?.to_vec1::<f32>()?;
        let got = elu(&x, 1.0)?.flatten_all()?.to_vec1::<f32>()?;
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() <= 2.5e-7, "{a} vs {b}");
        }
        // Strided and small inputs: the same function, the same values.
        let xt = x.transpose(1, 2)?;
        let strided = elu(&xt, 0.5)?.flatten_all()?.to_vec1::<f32>()?;
        let mut direct = xt.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        elu_in_place(&mut direct, 0.5);
        assert_eq!(strided, direct);
        let small = x.narrow(2, 0, 3)?;
        let mut direct = small.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        elu_in_place(&mut direct, 1.0);
        assert_eq!(elu(&small, 1.0)?.flatten_all()?.to_vec1::<f32>()?, direct);
        Ok(())
    }
}

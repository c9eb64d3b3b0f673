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
            Activation::Elu(alpha) => {
                for v in row {
                    *v = elu_value(*v, alpha);
                }
            }
        }
    }
}

/// candle's ELU of one value.
#[inline]
fn elu_value(v: f32, alpha: f32) -> f32 {
    if v.is_sign_positive() {
        v
    } else {
        (v.exp() - 1.0) * alpha
    }
}

/// ELU: `x` where `x ≥ 0` (sign bit clear), else `alpha · (eˣ − 1)` — candle's formula, so the
/// same values — on the CPU threads for contiguous f32 tensors, candle's op otherwise.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[-1.0f32, 0.0, 2.0], &Device::Cpu)?;
/// let y = codec_core::nn::kernels::activation::elu(&x, 1.0)?;
/// assert_eq!(y.to_vec1::<f32>()?, x.elu(1.0)?.to_vec1::<f32>()?);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn elu(x: &Tensor, alpha: f64) -> Result<Tensor> {
    if !x.device().is_cpu() || x.dtype() != DType::F32 || x.elem_count() < CHUNK {
        return x.elu(alpha);
    }
    let alpha = alpha as f32;
    let out = crate::dsp::with_cpu_slice::<f32, _>(x, |src| {
        super::allocator::keep_large_buffers();
        let mut out = vec![0f32; src.len()];
        out.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(d, s)| {
                for (o, &v) in d.iter_mut().zip(s) {
                    *o = elu_value(v, alpha);
                }
            });
        Ok(out)
    })?;
    Tensor::from_vec(out, x.shape(), x.device())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elu_equals_candles() -> Result<()> {
        let x = Tensor::randn(0f32, 2.0, (3, 5, 40_000), &candle_core::Device::Cpu)?;
        let want = x.elu(1.0)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(elu(&x, 1.0)?.flatten_all()?.to_vec1::<f32>()?, want);
        // Strided input: the same values.
        let xt = x.transpose(1, 2)?;
        let want = xt.elu(0.5)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(elu(&xt, 0.5)?.flatten_all()?.to_vec1::<f32>()?, want);
        Ok(())
    }
}

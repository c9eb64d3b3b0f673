//! The Snake activation of DAC and SNAC (Ziyin et al. 2020):
//! `x + 1 / (alpha + 1e-9) * sin(alpha * x)^2`, with one learned `alpha` per channel; and
//! BigVGAN's SnakeBeta (Qwen3-TTS-Tokenizer's decoder), the same function with the frequency
//! and the magnitude learned separately in log scale: `x + 1 / (e^beta + 1e-9) * sin(e^alpha x)^2`.

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};
use candle_nn::VarBuilder;

/// Snake over `[batch, channels, time]`, weights at `vb.alpha` shaped `[1, channels, 1]`.
///
/// The reference (`dac.nn.layers.snake`, copied by SNAC) reshapes its input to
/// `[batch, channels, -1]`, a no-op for the 3-d activations of these models, and computes
/// `x + (alpha + 1e-9).reciprocal() * sin(alpha * x).pow(2)` in the input's precision; this
/// does the same operations in the same order, with the reciprocal taken once at load.
///
/// On the CPU with f32 activations the five operations run fused in one pass over the data
/// (same operations, same order, so the same values); elsewhere as tensor operations.
#[derive(Debug, Clone)]
pub struct Snake1d {
    alpha: Tensor,
    /// `1 / (alpha + 1e-9)`, `[1, channels, 1]`.
    inv_alpha: Tensor,
    /// The same two as f32 values, for the fused CPU kernel.
    fused: SnakeCpu,
}

impl Snake1d {
    /// Snake over `channels` channels, `alpha` at `vb`.
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        let alpha = vb.get((1, channels, 1), "alpha")?;
        Self::from_alpha(alpha)
    }

    /// SnakeBeta over `channels` channels: log-scale `alpha` and `beta` (`[channels]` each)
    /// at `vb`, exponentiated once at load.
    pub fn beta(channels: usize, vb: VarBuilder) -> Result<Self> {
        let alpha = vb
            .get(channels, "alpha")?
            .exp()?
            .reshape((1, channels, 1))?;
        let magnitude = vb.get(channels, "beta")?.exp()?.reshape((1, channels, 1))?;
        Self::with_magnitude(alpha, &magnitude)
    }

    /// From `alpha` shaped `[1, channels, 1]`.
    pub fn from_alpha(alpha: Tensor) -> Result<Self> {
        let magnitude = alpha.clone();
        Self::with_magnitude(alpha, &magnitude)
    }

    /// `x + 1 / (magnitude + 1e-9) * sin(alpha * x)^2`, both `[1, channels, 1]`.
    fn with_magnitude(alpha: Tensor, magnitude: &Tensor) -> Result<Self> {
        let inv_alpha = (magnitude + 1e-9)?.recip()?;
        let values = |t: &Tensor| t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>();
        let fused = SnakeCpu {
            alpha: values(&alpha)?,
            inv_alpha: values(&inv_alpha)?,
        };
        Ok(Self {
            alpha,
            inv_alpha,
            fused,
        })
    }

    /// The per-channel frequency and `1 / (magnitude + 1e-9)`, as f32 (for fused kernels that
    /// apply the activation inside a larger loop).
    pub(crate) fn parameters(&self) -> Result<(Vec<f32>, Vec<f32>)> {
        Ok((self.fused.alpha.clone(), self.fused.inv_alpha.clone()))
    }

    /// `x`: `[batch, channels, time]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 && x.rank() == 3 {
            return x.apply_op1_no_bwd(&self.fused);
        }
        self.forward_ops(x)
    }

    /// The same as tensor operations (any device and dtype).
    pub fn forward_ops(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.broadcast_mul(&self.alpha)?.sin()?.sqr()?;
        x + s.broadcast_mul(&self.inv_alpha)?
    }
}

/// The fused CPU kernel of [`Snake1d`] for f32 `[batch, channels, time]`.
#[derive(Debug, Clone)]
struct SnakeCpu {
    alpha: Vec<f32>,
    inv_alpha: Vec<f32>,
}

impl SnakeCpu {
    fn row(&self, c: usize, src: &[f32], dst: &mut [f32]) {
        let (a, inv) = (self.alpha[c], self.inv_alpha[c]);
        for (d, &x) in dst.iter_mut().zip(src) {
            let s = (a * x).sin();
            *d = x + inv * (s * s);
        }
    }
}

impl CustomOp1 for SnakeCpu {
    fn name(&self) -> &'static str {
        "snake"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, t) = layout.shape().dims3()?;
        if c != self.alpha.len() {
            candle_core::bail!("snake over {} channels got {c}", self.alpha.len())
        }
        let data = storage.as_slice::<f32>()?;
        let src: std::borrow::Cow<[f32]> = match layout.contiguous_offsets() {
            Some((start, end)) => std::borrow::Cow::Borrowed(&data[start..end]),
            None => {
                // Strided input: gather it in (batch, channel, time) order first.
                let mut v = Vec::with_capacity(b * c * t);
                let strides = layout.stride();
                let off = layout.start_offset();
                for bi in 0..b {
                    for ci in 0..c {
                        for ti in 0..t {
                            v.push(data[off + bi * strides[0] + ci * strides[1] + ti * strides[2]]);
                        }
                    }
                }
                std::borrow::Cow::Owned(v)
            }
        };
        let mut out = vec![0f32; b * c * t];
        if t > 0 {
            let rows = b * c;
            let threads = candle_core::utils::get_num_threads().clamp(1, rows.max(1));
            let per = rows.div_ceil(threads);
            if threads == 1 || b * c * t < (1 << 16) {
                for (r, (d, s)) in out.chunks_mut(t).zip(src.chunks(t)).enumerate() {
                    self.row(r % c, s, d);
                }
            } else {
                std::thread::scope(|scope| {
                    for (chunk, (dst, srcs)) in
                        out.chunks_mut(per * t).zip(src.chunks(per * t)).enumerate()
                    {
                        scope.spawn(move || {
                            for (i, (d, s)) in dst.chunks_mut(t).zip(srcs.chunks(t)).enumerate() {
                                self.row((chunk * per + i) % c, s, d);
                            }
                        });
                    }
                });
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((b, c, t))))
    }
}

impl candle_core::Module for Snake1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Snake1d::forward(self, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_the_formula() -> Result<()> {
        let dev = Device::Cpu;
        let alpha = Tensor::new(&[[[0.5f32], [2.0]]], &dev)?; // [1, 2, 1]
        let snake = Snake1d::from_alpha(alpha)?;
        let x = Tensor::new(&[[[-1.0f32, 0.0, 0.3], [1.5, -2.0, 0.7]]], &dev)?;
        let y = snake.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
        // The fused kernel and the tensor operations agree exactly, strided input included.
        assert_eq!(y, snake.forward_ops(&x)?.flatten_all()?.to_vec1::<f32>()?);
        let xt = x.transpose(1, 2)?.contiguous()?.transpose(1, 2)?;
        assert_eq!(y, snake.forward(&xt)?.flatten_all()?.to_vec1::<f32>()?);
        let big = Tensor::randn(0f32, 1f32, (2, 2, 40000), &dev)?;
        let a = snake.forward(&big)?.flatten_all()?.to_vec1::<f32>()?;
        let b = snake.forward_ops(&big)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(a, b);
        let xs = [-1.0f32, 0.0, 0.3, 1.5, -2.0, 0.7];
        for (i, (&x, &y)) in xs.iter().zip(&y).enumerate() {
            let a = if i < 3 { 0.5f32 } else { 2.0 };
            let want = x + (1.0 / (a + 1e-9)) * (a * x).sin().powi(2);
            assert!((want - y).abs() < 1e-6, "{i}: {want} vs {y}");
        }
        Ok(())
    }
}

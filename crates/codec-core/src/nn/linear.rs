//! `Linear`: candle-nn's layer with the same constructors, whose products with a few rows (a
//! streaming step's one or two frames) run as dot products on the CPU threads.
//!
//! candle multiplies through `gemm`, which packs the whole weight on every call: with one
//! input row that packing, not the multiply-adds, was most of a streaming step (Mimi's
//! transformer). Here each weight row is read once, straight from the weight. More rows, other
//! devices and other dtypes take candle's path.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::kernels::dot;

/// Inputs with fewer rows than this take the dot-product path.
const FEW_ROWS: usize = 8;

/// Output features handed to a thread at a time.
const FEATURES_PER_TASK: usize = 64;

/// A linear layer `x · wᵀ + b`: weight `[out, in]`, optional bias `[out]`.
///
/// ```
/// use candle_core::{Device, Module, Tensor};
/// use codec_core::nn::linear::Linear;
///
/// let w = Tensor::new(&[[1f32, 2.0], [0.0, -1.0], [3.0, 0.5]], &Device::Cpu)?; // [out 3, in 2]
/// let layer = Linear::new(w, Some(Tensor::new(&[0f32, 1.0, 0.0], &Device::Cpu)?));
/// let y = layer.forward(&Tensor::new(&[[2f32, 1.0]], &Device::Cpu)?)?;
/// assert_eq!(y.to_vec2::<f32>()?, [[4.0, 0.0, 6.5]]);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Linear {
    inner: candle_nn::Linear,
}

impl Linear {
    /// A layer with these weights.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            inner: candle_nn::Linear::new(weight, bias),
        }
    }

    /// The weight `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        self.inner.weight()
    }

    /// The bias `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.inner.bias()
    }
}

/// Whether `x` (`[..., in]`) times `w`ᵀ (`w` `[out, in]`) takes the dot-product path: few
/// rows per batch item (the dimensions between the first and the last; a 2-d `x` is one item),
/// so that a batch takes the path each of its items takes alone.
fn few_rows(x: &Tensor, w: &Tensor) -> Result<bool> {
    let (_, in_f) = w.dims2()?;
    let dims = x.dims();
    let per_item = match dims.len() {
        0 => return Ok(false),
        1 => 1,
        2 => dims[0],
        n => dims[1..n - 1].iter().product(),
    };
    Ok(dims[dims.len() - 1] == in_f
        && per_item < FEW_ROWS
        && x.device().is_cpu()
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32)
}

/// `x · wᵀ` for `x` `[batch, rows, in]` and `w` `[out, in]`, as a 2-d `[batch · rows, out]`:
/// what [`Linear::forward`] computes for `x` before its bias, by the same path (dot products
/// for a few rows per item on the CPU, else candle's matmul), for fused passes that add the
/// bias themselves.
pub fn matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (batch, rows, in_f) = x.dims3()?;
    let few = few_rows(x, w)?;
    let x = x.reshape((batch * rows, in_f))?;
    if few {
        return few_rows_product(&x, w, None);
    }
    x.matmul(&w.t()?)
}

/// `x · wᵀ (+ bias)` for `x` `[..., in]` f32 on the CPU, one dot product per output value.
fn few_rows_product(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (out_f, in_f) = w.dims2()?;
    let rows = x.elem_count() / in_f.max(1);
    let bias = match bias {
        Some(b) => Some(b.to_vec1::<f32>()?),
        None => None,
    };
    let y = crate::dsp::with_cpu_slice::<f32, _>(x, |xs| {
        crate::dsp::with_cpu_slice::<f32, _>(w, |ws| {
            // [out, rows] first, so that threads own whole weight rows.
            let mut yt = vec![0f32; out_f * rows];
            let body = |o0: usize, block: &mut [f32]| {
                for (i, dst) in block.chunks_mut(rows).enumerate() {
                    let o = o0 + i;
                    let wr = &ws[o * in_f..(o + 1) * in_f];
                    for (r, d) in dst.iter_mut().enumerate() {
                        let v = dot(wr, &xs[r * in_f..(r + 1) * in_f]);
                        // The bias after the product, as candle adds it after the matmul.
                        *d = match &bias {
                            Some(b) => v + b[o],
                            None => v,
                        };
                    }
                }
            };
            if out_f * in_f < (1 << 16) {
                body(0, &mut yt);
            } else {
                yt.par_chunks_mut(FEATURES_PER_TASK * rows)
                    .enumerate()
                    .for_each(|(t, block)| body(t * FEATURES_PER_TASK, block));
            }
            let mut y = vec![0f32; rows * out_f];
            for o in 0..out_f {
                for r in 0..rows {
                    y[r * out_f + o] = yt[o * rows + r];
                }
            }
            Ok(y)
        })
    })?;
    let mut dims = x.dims().to_vec();
    *dims.last_mut().expect("rank >= 1") = out_f;
    Tensor::from_vec(y, dims, x.device())
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if few_rows(x, self.weight())? {
            return few_rows_product(x, self.weight(), self.bias());
        }
        self.inner.forward(x)
    }
}

/// Reads `vb.weight` `[out, in]` and `vb.bias` `[out]` (as `candle_nn::linear`).
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let weight = vb.get((out_dim, in_dim), "weight")?;
    let bias = vb.get(out_dim, "bias")?;
    Ok(Linear::new(weight, Some(bias)))
}

/// Reads `vb.weight` `[out, in]`, no bias (as `candle_nn::linear_no_bias`).
pub fn linear_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let weight = vb.get((out_dim, in_dim), "weight")?;
    Ok(Linear::new(weight, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn few_rows_agree_with_candle() -> Result<()> {
        let dev = Device::Cpu;
        for (rows, in_f, out_f) in [(1, 512, 1536), (3, 70, 5), (1, 1, 1), (7, 256, 512)] {
            let w = Tensor::randn(0f32, 1.0, (out_f, in_f), &dev)?;
            let b = Tensor::randn(0f32, 1.0, out_f, &dev)?;
            let x = Tensor::randn(0f32, 1.0, (1, rows, in_f), &dev)?;
            for bias in [None, Some(b.clone())] {
                let ours = Linear::new(w.clone(), bias.clone()).forward(&x)?;
                let want = candle_nn::Linear::new(w.clone(), bias).forward(&x)?;
                assert_eq!(ours.dims(), want.dims());
                let diff = (ours - want)?
                    .abs()?
                    .flatten_all()?
                    .max(0)?
                    .to_scalar::<f32>()?;
                assert!(diff < 1e-3, "{rows}x{in_f}->{out_f}: {diff}");
            }
        }
        Ok(())
    }

    /// A batch of items with few rows each takes the path each item takes alone: bit for bit
    /// the same values.
    #[test]
    fn batches_give_each_item_its_own_values() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (300, 200), &dev)?;
        let layer = Linear::new(w, None);
        for rows in [1, 7, 8, 30] {
            let x = Tensor::randn(0f32, 1.0, (5, rows, 200), &dev)?;
            let batch = layer.forward(&x)?;
            for i in 0..5 {
                let alone = layer
                    .forward(&x.narrow(0, i, 1)?)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                let b = batch.narrow(0, i, 1)?.flatten_all()?.to_vec1::<f32>()?;
                assert!(
                    alone
                        .iter()
                        .zip(&b)
                        .all(|(p, q)| p.to_bits() == q.to_bits()),
                    "{rows}"
                );
            }
        }
        Ok(())
    }
}

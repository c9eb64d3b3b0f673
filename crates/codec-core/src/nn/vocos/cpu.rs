//! CPU passes for the ConvNeXt blocks of [`super::VocosBackbone`] and the iSTFT head.
//!
//! Each pass fuses a run of candle element-wise ops into one pass over `[frames, channels]`
//! rows, doing the same float32 operations in the same order as those ops (including how
//! candle sums a LayerNorm's mean), so the numbers are bit-identical to the candle path; what
//! goes away is the memory traffic of a tensor per op and the per-op thread synchronisation.

use candle_core::cpu::kernels::VecOps;
use candle_core::{CpuStorage, InplaceOp1, Layout, Result};
use rayon::prelude::*;

/// Rows (frames) per parallel task.
const ROWS_PER_TASK: usize = 32;

/// How the candle op being replaced sums a LayerNorm's mean over a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RowSum {
    /// A contiguous row: candle's `vec_reduce_sum` (vectorised).
    Contiguous,
    /// A row of a strided view (a transposed tensor): left to right.
    Strided,
}

impl RowSum {
    /// The order candle sums rows of `[batch, channels, frames]` viewed transposed: a view is
    /// contiguous when it has a single frame (or channel).
    pub(super) fn of_transposed(frames: usize, channels: usize) -> Self {
        if frames <= 1 || channels <= 1 {
            RowSum::Contiguous
        } else {
            RowSum::Strided
        }
    }

    fn sum(self, row: &[f32]) -> f32 {
        match self {
            RowSum::Contiguous => {
                let mut s = 0f32;
                // SAFETY: `row` holds `row.len()` values and `s` is a valid f32.
                unsafe { f32::vec_reduce_sum(row.as_ptr(), &mut s, row.len()) };
                s
            }
            RowSum::Strided => row.iter().fold(0f32, |s, &v| s + v),
        }
    }
}

/// LayerNorm (or AdaLayerNorm) parameters: `normalize(x) * weight + bias`.
pub(super) struct NormParams {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub eps: f64,
}

/// `crate::nn::norm::normalize(row) * weight + bias` in place, as candle computes it:
/// mean = sum * (1/n) + 0 (`mean_keepdim` is a sum then an affine), centred values, variance
/// the mean of their squares (a contiguous tensor), `(var + eps).sqrt()`, a division.
fn layer_norm_row(row: &mut [f32], p: &NormParams, mean_sum: RowSum, squares: &mut [f32]) {
    let inv_n = (1.0 / row.len() as f64) as f32;
    let mean = mean_sum.sum(row) * inv_n + 0.0;
    for (v, sq) in row.iter_mut().zip(squares.iter_mut()) {
        *v -= mean;
        *sq = *v * *v;
    }
    let var = RowSum::Contiguous.sum(squares) * inv_n + 0.0;
    let denom = (var * 1.0 + p.eps as f32).sqrt();
    for ((v, &w), &b) in row.iter_mut().zip(&p.weight).zip(&p.bias) {
        *v /= denom;
        *v *= w;
        *v += b;
    }
}

/// LayerNorm over the rows of `x` (`[rows, channels]`), into a new buffer.
pub(super) fn layer_norm(x: &[f32], channels: usize, p: &NormParams, mean_sum: RowSum) -> Vec<f32> {
    let mut out = x.to_vec();
    out.par_chunks_mut(ROWS_PER_TASK * channels)
        .for_each(|chunk| {
            let mut squares = vec![0f32; channels];
            for row in chunk.chunks_exact_mut(channels) {
                layer_norm_row(row, p, mean_sum, &mut squares);
            }
        });
    out
}

/// Depthwise convolution with zero "same" padding (`DepthwiseConv1d`: taps summed in order,
/// then the bias) followed by a LayerNorm, on `x` `[batch, frames, channels]`.
///
/// `taps` is `[kernel][channels]`.
#[allow(clippy::too_many_arguments)]
pub(super) fn dwconv_layer_norm(
    x: &[f32],
    frames: usize,
    channels: usize,
    taps: &[f32],
    conv_bias: &[f32],
    padding: usize,
    norm: &NormParams,
    mean_sum: RowSum,
) -> Vec<f32> {
    let kernel = taps.len() / channels;
    debug_assert_eq!(kernel, 2 * padding + 1);
    let zeros = vec![0f32; channels];
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(ROWS_PER_TASK * channels)
        .enumerate()
        .for_each(|(task, chunk)| {
            let mut squares = vec![0f32; channels];
            for (r, row) in chunk.chunks_exact_mut(channels).enumerate() {
                let index = task * ROWS_PER_TASK + r;
                let (b, t) = (index / frames, index % frames);
                let signal = &x[b * frames * channels..(b + 1) * frames * channels];
                for (k, w) in taps.chunks_exact(channels).enumerate() {
                    // Output t, tap k reads padded[t + k] = signal[t + k - padding] (or zero).
                    let at = (t + k).wrapping_sub(padding);
                    let src = if at < frames {
                        &signal[at * channels..(at + 1) * channels]
                    } else {
                        &zeros[..]
                    };
                    if k == 0 {
                        for ((o, &s), &w) in row.iter_mut().zip(src).zip(w) {
                            *o = s * w;
                        }
                    } else {
                        for ((o, &s), &w) in row.iter_mut().zip(src).zip(w) {
                            *o += s * w;
                        }
                    }
                }
                for (o, &b) in row.iter_mut().zip(conv_bias) {
                    *o += b;
                }
                layer_norm_row(row, norm, mean_sum, &mut squares);
            }
        });
    out
}

/// Runs `f(first_row, rows)` over the float32 storage of a contiguous `[rows, width]` tensor,
/// in parallel over row blocks.
fn rows_in_place(
    storage: &mut CpuStorage,
    layout: &Layout,
    width: usize,
    name: &str,
    f: impl Fn(usize, &mut [f32]) + Sync,
) -> Result<()> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{name}: float32 only")
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{name}: contiguous tensors only")
    };
    data[start..end]
        .par_chunks_mut(ROWS_PER_TASK * width)
        .enumerate()
        .for_each(|(task, chunk)| f(task * ROWS_PER_TASK, chunk));
    Ok(())
}

/// `gelu_erf(u + bias)` in place on a `[rows, width]` matmul output (candle's `Linear` bias
/// add, then its `GeluErf` op).
pub(super) struct BiasGelu<'a> {
    pub bias: &'a [f32],
}

impl InplaceOp1 for BiasGelu<'_> {
    fn name(&self) -> &'static str {
        "bias-gelu"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let width = self.bias.len();
        rows_in_place(storage, layout, width, self.name(), |_, rows| {
            for row in rows.chunks_exact_mut(width) {
                for (v, &b) in row.iter_mut().zip(self.bias) {
                    let u = *v + b;
                    *v = (candle_core::cpu::erf::erf_f32(u * std::f32::consts::FRAC_1_SQRT_2) + 1.)
                        * 0.5
                        * u;
                }
            }
        })
    }
}

/// `residual + (v + bias) * gamma` in place on a `[rows, width]` matmul output `v` (the
/// `Linear` bias add, the layer scale, the residual connection of a ConvNeXt block).
pub(super) struct BiasScaleResidual<'a> {
    pub bias: &'a [f32],
    pub gamma: Option<&'a [f32]>,
    pub residual: &'a [f32],
}

impl InplaceOp1 for BiasScaleResidual<'_> {
    fn name(&self) -> &'static str {
        "bias-scale-residual"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let width = self.bias.len();
        if layout.shape().elem_count() != self.residual.len() {
            candle_core::bail!("bias-scale-residual: residual of another size")
        }
        rows_in_place(storage, layout, width, self.name(), |first, rows| {
            let residual = &self.residual[first * width..first * width + rows.len()];
            for (row, res) in rows
                .chunks_exact_mut(width)
                .zip(residual.chunks_exact(width))
            {
                match self.gamma {
                    Some(gamma) => {
                        for (((v, &b), &g), &x) in row.iter_mut().zip(self.bias).zip(gamma).zip(res)
                        {
                            *v = x + (*v + b) * g;
                        }
                    }
                    None => {
                        for ((v, &b), &x) in row.iter_mut().zip(self.bias).zip(res) {
                            *v = x + (*v + b);
                        }
                    }
                }
            }
        })
    }
}

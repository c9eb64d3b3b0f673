//! CPU fast paths for the layers the codecs spend their time in, on plain `f32` slices.
//!
//! candle's CPU convolutions materialise a whole-clip im2col buffer, multiply it on threads
//! split inside one GEMM and then transpose the result: three passes over memory the size of
//! the clip, and barriers that leave cores idle when channel counts are small. These kernels
//! instead cut the output into tiles (output frames × output channels), gather each tile's
//! inputs into a small per-thread buffer and multiply it straight into its place in the output
//! with the `gemm` crate (the one candle itself uses, with its AVX-512 kernels), one tile per
//! thread at a time. Summation order within each output value is candle's (input channel
//! major, tap minor), so results agree to float32 rounding.
//!
//! The layer types ([`super::Conv1d`], [`super::ConvTranspose1d`], [`super::linear::Linear`],
//! [`super::DepthwiseConv1d`], SEANet's blocks) call these on CPU `f32` tensors and candle's
//! kernels everywhere else.

pub mod activation;
pub mod allocator;
pub mod attention;
pub mod conv1d;
pub mod conv_transpose1d;
pub mod depthwise;
mod tiles;

pub use activation::Activation;
pub use attention::{attention_f32, AttentionShape};
pub use conv1d::{conv1d_f32, conv1d_f32_fused, Conv1dShape, Epilogue};
pub use conv_transpose1d::{ConvTranspose1dShape, TransposedWeights};
pub use depthwise::depthwise_conv1d_f32;
pub(crate) use tiles::dot;

/// A cheap deterministic spread of `n` values in [-1, 1) for the kernels' tests.
#[cfg(test)]
fn test_values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = (i as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(seed.wrapping_mul(97));
            (h >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

/// The largest `|a[i] - b[i]|`, for the kernels' tests.
#[cfg(test)]
fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

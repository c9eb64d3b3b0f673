//! Depthwise 1-d convolution (one input and one output channel per group), zero-padded,
//! row by row on the threads.
//!
//! Each output row is `w[0]·x[t − p] + w[1]·x[t − p + d] + …` then `+ bias`, summed in that
//! order with separate roundings: the same values as the tensor form it replaces (a product
//! per tap, added one after another), without a temporary per tap.

use candle_core::{bail, Result};
use rayon::prelude::*;

/// Rows handed to a thread at a time.
const ROWS_PER_TASK: usize = 8;

/// `x` `[rows, len]` (rows = batch × channels) convolved per row with `taps[c]` (`[channels,
/// kernel]`) and `bias[c]`, `padding` zeros each side, taps `dilation` apart: `[rows, out_len]`.
///
/// # Errors
/// When the lengths do not match.
pub fn depthwise_conv1d_f32(
    x: &[f32],
    channels: usize,
    len: usize,
    taps: &[f32],
    bias: Option<&[f32]>,
    padding: usize,
    dilation: usize,
) -> Result<(Vec<f32>, usize)> {
    if channels == 0 || taps.is_empty() || !taps.len().is_multiple_of(channels) {
        bail!(
            "depthwise conv: {} taps for {channels} channels",
            taps.len()
        )
    }
    if !x.len().is_multiple_of(channels * len.max(1)) || bias.is_some_and(|b| b.len() != channels) {
        bail!("depthwise conv: input or bias does not match {channels} channels of {len}")
    }
    let kernel = taps.len() / channels;
    let span = (kernel - 1) * dilation.max(1) + 1;
    let out_len = (len + 2 * padding + 1).saturating_sub(span);
    let rows = x.len().checked_div(len).unwrap_or(0);
    let mut out = vec![0f32; rows * out_len];
    if out_len == 0 {
        return Ok((out, 0));
    }
    super::allocator::keep_large_buffers();
    let row = |r: usize, dst: &mut [f32]| {
        let c = r % channels;
        let src = &x[r * len..][..len];
        let w = &taps[c * kernel..][..kernel];
        for (k, &wk) in w.iter().enumerate() {
            // dst[t] (+)= wk · x[t + k·d − p] where that index is inside the input.
            let shift = (k * dilation) as isize - padding as isize;
            let t_lo = (-shift).clamp(0, out_len as isize) as usize;
            let t_hi = (len as isize - shift).clamp(t_lo as isize, out_len as isize) as usize;
            // (Empty when the tap reads only padding: then no source index is formed.)
            let s = if t_hi > t_lo {
                let s0 = (t_lo as isize + shift) as usize;
                &src[s0..s0 + (t_hi - t_lo)]
            } else {
                &src[..0]
            };
            if k == 0 {
                // The first tap sets the row (zero where it reads padding).
                dst[..t_lo].fill(0.0);
                dst[t_hi..].fill(0.0);
                for (o, &v) in dst[t_lo..t_hi].iter_mut().zip(s) {
                    *o = v * wk;
                }
            } else {
                for (o, &v) in dst[t_lo..t_hi].iter_mut().zip(s) {
                    *o += v * wk;
                }
            }
        }
        if let Some(b) = bias {
            dst.iter_mut().for_each(|o| *o += b[c]);
        }
    };
    let work = rows * out_len * kernel;
    if work < (1 << 18) || rayon::current_num_threads() == 1 {
        out.chunks_mut(out_len)
            .enumerate()
            .for_each(|(r, d)| row(r, d));
    } else {
        out.par_chunks_mut(out_len * ROWS_PER_TASK)
            .enumerate()
            .for_each(|(i, block)| {
                for (j, d) in block.chunks_mut(out_len).enumerate() {
                    row(i * ROWS_PER_TASK + j, d);
                }
            });
    }
    Ok((out, out_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_definition() {
        for (len, kernel, padding, dilation) in [
            (40, 7, 3, 1),
            (40, 3, 3, 3),
            (40, 5, 0, 2),
            (40, 7, 30, 1),
            (1, 7, 3, 1),
            (2, 7, 3, 1),
        ] {
            let channels = 3;
            let x: Vec<f32> = (0..2 * channels * len)
                .map(|i| ((i * 7 % 19) as f32) - 9.0)
                .collect();
            let taps: Vec<f32> = (0..channels * kernel)
                .map(|i| (i % 5) as f32 * 0.25 - 0.5)
                .collect();
            let bias = [0.5f32, -1.0, 2.0];
            let (got, out_len) =
                depthwise_conv1d_f32(&x, channels, len, &taps, Some(&bias), padding, dilation)
                    .unwrap();
            assert_eq!(out_len, len + 2 * padding - (kernel - 1) * dilation);
            for r in 0..2 * channels {
                let c = r % channels;
                for t in 0..out_len {
                    let mut want = 0f32;
                    for k in 0..kernel {
                        let i = (t + k * dilation) as isize - padding as isize;
                        let v = if (0..len as isize).contains(&i) {
                            x[r * len + i as usize]
                        } else {
                            0.0
                        };
                        want = if k == 0 {
                            v * taps[c * kernel]
                        } else {
                            want + v * taps[c * kernel + k]
                        };
                    }
                    want += bias[c];
                    assert_eq!(got[r * out_len + t], want, "row {r} frame {t}");
                }
            }
        }
    }

    #[test]
    fn rejects_mismatched_sizes() {
        assert!(depthwise_conv1d_f32(&[0.0; 10], 2, 5, &[0.0; 5], None, 0, 1).is_err());
        assert!(depthwise_conv1d_f32(&[0.0; 9], 2, 5, &[0.0; 6], None, 0, 1).is_err());
        assert!(depthwise_conv1d_f32(&[0.0; 10], 2, 5, &[0.0; 6], Some(&[0.0]), 0, 1).is_err());
    }
}

//! Transposed 1-d convolution (strided, zero-padded, grouped; dilation 1) as `stride`
//! interleaved convolutions.
//!
//! Output frame `t` with `t + padding = u·stride + ρ` receives input frames `u − j` through
//! taps `ρ + j·stride`, so each phase `ρ` is an ordinary convolution over the input with the
//! taps `W[.., ., ρ + j·stride]`, written to every `stride`-th output frame. The weights are
//! rearranged once per phase ([`TransposedWeights`]); no zero-stuffed input or col2im buffer of
//! the clip is built.

use candle_core::{bail, Result};

use super::tiles::{gemm_into, with_gather_buffer, MatRef, SharedOut, TilePlan};

/// The arguments of a transposed convolution over `[batch, in_c, in_len]` (PyTorch's names;
/// dilation 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvTranspose1dShape {
    /// Batch items.
    pub batch: usize,
    /// Input channels.
    pub in_c: usize,
    /// Output channels.
    pub out_c: usize,
    /// Input frames.
    pub in_len: usize,
    /// Taps.
    pub kernel: usize,
    /// Stride (the upsampling factor).
    pub stride: usize,
    /// Frames cut from each side of the full output.
    pub padding: usize,
    /// Frames added on the right.
    pub output_padding: usize,
    /// Groups.
    pub groups: usize,
}

impl ConvTranspose1dShape {
    /// Output frames: `(in_len − 1)·stride − 2·padding + kernel + output_padding`, or 0.
    pub fn out_len(&self) -> usize {
        if self.in_len == 0 {
            return 0;
        }
        ((self.in_len - 1) * self.stride + self.kernel + self.output_padding)
            .saturating_sub(2 * self.padding)
    }
}

/// A transposed convolution's weight `[in_c, out_c / groups, kernel]`, rearranged per group
/// and phase into the `[out_c / groups, (in_c / groups) · taps]` matrices the kernel multiplies.
#[derive(Debug, Clone)]
pub struct TransposedWeights {
    in_c: usize,
    out_c: usize,
    kernel: usize,
    stride: usize,
    groups: usize,
    /// `phases[g * stride + ρ]`: `[co, ci · taps(ρ) + j] = W[g·cig + ci, co, ρ + j·stride]`.
    phases: Vec<Vec<f32>>,
}

impl TransposedWeights {
    /// Rearranges `w` (`[in_c, out_c / groups, kernel]`, row-major) for `stride`.
    ///
    /// # Errors
    /// When `w` does not have `in_c · out_c / groups · kernel` values or the sizes are zero
    /// or not divisible by `groups`.
    pub fn new(
        w: &[f32],
        in_c: usize,
        out_c: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
    ) -> Result<Self> {
        if groups == 0 || stride == 0 || kernel == 0 {
            bail!("conv_transpose1d: zero groups, stride or kernel")
        }
        if !in_c.is_multiple_of(groups) || !out_c.is_multiple_of(groups) {
            bail!("conv_transpose1d: {in_c} -> {out_c} channels not divisible by {groups} groups")
        }
        let (cig, cog) = (in_c / groups, out_c / groups);
        if w.len() != in_c * cog * kernel {
            bail!(
                "conv_transpose1d: weight of {} values, want [{in_c}, {cog}, {kernel}]",
                w.len()
            )
        }
        let mut phases = Vec::with_capacity(groups * stride);
        for g in 0..groups {
            for rho in 0..stride {
                let taps = taps(kernel, stride, rho);
                let mut m = vec![0f32; cog * cig * taps];
                for co in 0..cog {
                    for ci in 0..cig {
                        for j in 0..taps {
                            m[(co * cig + ci) * taps + j] =
                                w[((g * cig + ci) * cog + co) * kernel + rho + j * stride];
                        }
                    }
                }
                phases.push(m);
            }
        }
        Ok(Self {
            in_c,
            out_c,
            kernel,
            stride,
            groups,
            phases,
        })
    }

    /// `conv_transpose1d(x, w) + bias` for `x` `[batch, in_c, in_len]`, the result
    /// `[batch, out_c, out_len]`, row-major.
    ///
    /// # Errors
    /// When `shape` or the slice lengths do not match these weights.
    pub fn apply(
        &self,
        x: &[f32],
        bias: Option<&[f32]>,
        shape: &ConvTranspose1dShape,
    ) -> Result<Vec<f32>> {
        let same = shape.in_c == self.in_c
            && shape.out_c == self.out_c
            && shape.kernel == self.kernel
            && shape.stride == self.stride
            && shape.groups == self.groups;
        if !same {
            bail!("conv_transpose1d: {shape:?} does not match the weights ({self:?})")
        }
        if x.len() != shape.batch * shape.in_c * shape.in_len {
            bail!(
                "conv_transpose1d: input of {} values for {shape:?}",
                x.len()
            )
        }
        if bias.is_some_and(|b| b.len() != shape.out_c) {
            bail!("conv_transpose1d: bias of the wrong length for {shape:?}")
        }
        let out_len = shape.out_len();
        let mut out = vec![0f32; shape.batch * shape.out_c * out_len];
        if out.is_empty() {
            return Ok(out);
        }
        let (s, p) = (shape.stride, shape.padding);
        let (cig, cog) = (shape.in_c / shape.groups, shape.out_c / shape.groups);
        let max_taps = taps(shape.kernel, s, 0);
        // Phase frames u cover output frames u·s − p .. u·s − p + s.
        let frames = (out_len + p).div_ceil(s);
        let plan = TilePlan::new(shape.batch * shape.groups, cog, frames, cig * max_taps);
        let dst = SharedOut(out.as_mut_ptr());
        plan.run(|tile| {
            let (b, g) = (tile.unit / shape.groups, tile.unit % shape.groups);
            let x_unit = &x[(b * shape.in_c + g * cig) * shape.in_len..][..cig * shape.in_len];
            let co0 = g * cog + tile.row0;
            // SAFETY: the output rows of this tile's channels.
            let rows_ptr = unsafe { dst.at((b * shape.out_c + co0) * out_len) };
            // The output frames this tile's phase frames cover, filled with the bias first.
            let t_lo = (tile.col0 * s).saturating_sub(p);
            let t_hi = ((tile.col0 + tile.cols) * s).saturating_sub(p).min(out_len);
            for r in 0..tile.rows {
                let v = bias.map_or(0.0, |b| b[co0 + r]);
                // SAFETY: row r, frames t_lo..t_hi: inside the output, this tile's only.
                unsafe {
                    std::slice::from_raw_parts_mut(rows_ptr.add(r * out_len + t_lo), t_hi - t_lo)
                }
                .fill(v);
            }
            for rho in 0..s {
                let taps = taps(shape.kernel, s, rho);
                if taps == 0 {
                    continue;
                }
                // Phase frames of this tile whose output frame u·s + ρ − p is in range.
                let u_lo = tile.col0.max((p.saturating_sub(rho)).div_ceil(s));
                let u_hi =
                    (tile.col0 + tile.cols).min((out_len + p).saturating_sub(rho).div_ceil(s));
                if u_hi <= u_lo {
                    continue;
                }
                let n = u_hi - u_lo;
                let depth = cig * taps;
                let weights = &self.phases[g * s + rho][tile.row0 * depth..];
                with_gather_buffer(depth * n + tile.rows * n, |buf| {
                    let (cols, phase_out) = buf.split_at_mut(depth * n);
                    gather_reversed(x_unit, cig, shape.in_len, taps, u_lo, n, cols);
                    // The phase's frames are every s-th output frame: multiplied into a
                    // contiguous block (the GEMM's vector stores need unit stride), then added.
                    // SAFETY: lhs `rows × depth` inside the phase matrix, rhs `depth × n` and
                    // dst `rows × n` inside this thread's buffer.
                    unsafe {
                        gemm_into(
                            tile.rows,
                            n,
                            depth,
                            phase_out.as_mut_ptr(),
                            n as isize,
                            1,
                            false,
                            MatRef {
                                ptr: weights.as_ptr(),
                                row_stride: depth as isize,
                                col_stride: 1,
                            },
                            MatRef {
                                ptr: cols.as_ptr(),
                                row_stride: n as isize,
                                col_stride: 1,
                            },
                        )
                    }
                    let first = u_lo * s + rho - p;
                    for (r, src) in phase_out.chunks_exact(n).enumerate() {
                        // SAFETY: row r's frames first, first + s, … < t_hi: this tile's.
                        let row = unsafe {
                            std::slice::from_raw_parts_mut(
                                rows_ptr.add(r * out_len + first),
                                (n - 1) * s + 1,
                            )
                        };
                        for (d, v) in row.iter_mut().step_by(s).zip(src) {
                            *d += v;
                        }
                    }
                });
            }
        });
        Ok(out)
    }
}

/// Taps of phase `rho`: `ρ, ρ + stride, … < kernel`.
fn taps(kernel: usize, stride: usize, rho: usize) -> usize {
    if rho < kernel {
        (kernel - rho).div_ceil(stride)
    } else {
        0
    }
}

/// Fills `cols[(ci, j), n] = x[ci, u0 + n − j]` (zero outside the input).
fn gather_reversed(
    x: &[f32],
    channels: usize,
    len: usize,
    taps: usize,
    u0: usize,
    n: usize,
    cols: &mut [f32],
) {
    for ci in 0..channels {
        let src = &x[ci * len..][..len];
        for j in 0..taps {
            let row = &mut cols[(ci * taps + j) * n..][..n];
            let first = u0 as isize - j as isize;
            let n_lo = (-first).clamp(0, n as isize) as usize;
            let n_hi = (len as isize - first).clamp(0, n as isize) as usize;
            if n_hi <= n_lo {
                row.fill(0.0);
                continue;
            }
            row[..n_lo].fill(0.0);
            row[n_hi..].fill(0.0);
            let start = (first + n_lo as isize) as usize;
            row[n_lo..n_hi].copy_from_slice(&src[start..start + (n_hi - n_lo)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{max_abs_diff, test_values as values};
    use super::*;

    fn naive(x: &[f32], w: &[f32], bias: Option<&[f32]>, s: &ConvTranspose1dShape) -> Vec<f32> {
        let (cig, cog, out_len) = (s.in_c / s.groups, s.out_c / s.groups, s.out_len());
        let mut out = vec![0f64; s.batch * s.out_c * out_len];
        for b in 0..s.batch {
            for co in 0..s.out_c {
                let row = &mut out[(b * s.out_c + co) * out_len..][..out_len];
                row.fill(bias.map_or(0.0, |b| b[co]) as f64);
                let (g, col) = (co / cog, co % cog);
                for ci in 0..cig {
                    for i in 0..s.in_len {
                        let xv = x[(b * s.in_c + g * cig + ci) * s.in_len + i] as f64;
                        for k in 0..s.kernel {
                            let t = (i * s.stride + k) as isize - s.padding as isize;
                            if t >= 0 && (t as usize) < out_len {
                                let wv = w[((g * cig + ci) * cog + col) * s.kernel + k] as f64;
                                row[t as usize] += wv * xv;
                            }
                        }
                    }
                }
            }
        }
        out.into_iter().map(|v| v as f32).collect()
    }

    #[test]
    fn matches_the_definition_on_every_argument() {
        let cases = [
            // batch, in_c, out_c, in_len, kernel, stride, padding, output_padding, groups
            (1, 4, 3, 10, 4, 2, 0, 0, 1),
            (2, 6, 4, 9, 16, 8, 4, 0, 1),
            (1, 3, 5, 7, 3, 5, 0, 0, 1),
            (1, 8, 8, 12, 10, 5, 3, 1, 2),
            (3, 5, 2, 1, 6, 3, 0, 0, 1),
            (1, 2, 2, 4, 2, 1, 0, 0, 1),
            (1, 64, 32, 400, 8, 4, 2, 0, 1),
            (1, 16, 16, 3, 20, 10, 5, 0, 1),
        ];
        for (i, &(batch, in_c, out_c, in_len, kernel, stride, padding, output_padding, groups)) in
            cases.iter().enumerate()
        {
            let s = ConvTranspose1dShape {
                batch,
                in_c,
                out_c,
                in_len,
                kernel,
                stride,
                padding,
                output_padding,
                groups,
            };
            let x = values(batch * in_c * in_len, 1 + i as u32);
            let w = values(in_c * out_c / groups * kernel, 50 + i as u32);
            let bias = values(out_c, 90 + i as u32);
            let tw = TransposedWeights::new(&w, in_c, out_c, kernel, stride, groups).unwrap();
            for bias in [None, Some(&bias[..])] {
                let got = tw.apply(&x, bias, &s).unwrap();
                let want = naive(&x, &w, bias, &s);
                assert_eq!(got.len(), want.len(), "{s:?}");
                let err = max_abs_diff(&got, &want);
                assert!(err < 1e-4, "{s:?}: {err}");
            }
        }
    }

    #[test]
    fn rejects_a_shape_the_weights_do_not_have() {
        let tw = TransposedWeights::new(&[0.0; 24], 4, 3, 2, 2, 1).unwrap();
        let s = ConvTranspose1dShape {
            batch: 1,
            in_c: 4,
            out_c: 3,
            in_len: 5,
            kernel: 2,
            stride: 2,
            padding: 0,
            output_padding: 0,
            groups: 1,
        };
        assert_eq!(tw.apply(&[0.0; 20], None, &s).unwrap().len(), 30);
        assert!(tw.apply(&[0.0; 19], None, &s).is_err());
        assert!(tw
            .apply(&[0.0; 20], None, &ConvTranspose1dShape { stride: 3, ..s })
            .is_err());
        assert!(TransposedWeights::new(&[0.0; 23], 4, 3, 2, 2, 1).is_err());
    }
}

//! 1-d convolution (strided, dilated, grouped, zero-padded) as tiled GEMMs.
//!
//! Output tile `[channels c0.., frames t0..]` of group `g` is
//! `W_g[c0.., (ci, k)] · X[(ci, k), t0..]`, where `X[(ci, k), t] = x[ci, t·stride + k·dilation
//! − pad_left]` (outside the input: the padding mode's value) is gathered for the tile's frames
//! only, so padding never copies the input. Pointwise convolutions (kernel 1, stride 1, no
//! padding) read the input in place.

use candle_core::{bail, Result};

use super::activation::Activation;
use crate::nn::conv::PadMode;

use super::tiles::{gemm_into, with_gather_buffer, MatRef, SharedOut, TilePlan};

/// The arguments of a 1-d convolution over `[batch, in_c, in_len]` (PyTorch's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv1dShape {
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
    /// Stride.
    pub stride: usize,
    /// Padding frames before the input.
    pub pad_left: usize,
    /// Padding frames after the input.
    pub pad_right: usize,
    /// What the padding frames hold (reflect needs pads shorter than the input).
    pub pad_mode: PadMode,
    /// Dilation.
    pub dilation: usize,
    /// Groups.
    pub groups: usize,
}

impl Conv1dShape {
    /// The arguments of PyTorch's `Conv1d` (`padding` zeros on each side).
    #[allow(clippy::too_many_arguments)]
    pub fn torch(
        batch: usize,
        in_c: usize,
        out_c: usize,
        in_len: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        dilation: usize,
        groups: usize,
    ) -> Self {
        Self {
            batch,
            in_c,
            out_c,
            in_len,
            kernel,
            stride,
            pad_left: padding,
            pad_right: padding,
            pad_mode: PadMode::Zero,
            dilation,
            groups,
        }
    }

    /// Output frames: `(in_len + pads − dilation·(kernel − 1) − 1) / stride + 1`, or 0.
    pub fn out_len(&self) -> usize {
        let span = self.dilation * (self.kernel.max(1) - 1) + 1;
        let padded = self.in_len + self.pad_left + self.pad_right;
        if padded < span {
            0
        } else {
            (padded - span) / self.stride.max(1) + 1
        }
    }

    /// Checks the arguments are consistent with inputs of `x_len` and weights of `w_len`
    /// floats, so that the kernel's reads stay in bounds.
    fn check(&self, x_len: usize, w_len: usize, bias_len: Option<usize>) -> Result<()> {
        let g = self.groups;
        if g == 0 || self.stride == 0 || self.dilation == 0 || self.kernel == 0 {
            bail!("conv1d: zero groups, stride, dilation or kernel in {self:?}")
        }
        if !self.in_c.is_multiple_of(g) || !self.out_c.is_multiple_of(g) {
            bail!("conv1d: channels not divisible by groups in {self:?}")
        }
        if x_len != self.batch * self.in_c * self.in_len {
            bail!("conv1d: input of {x_len} values for {self:?}")
        }
        if w_len != self.out_c * (self.in_c / g) * self.kernel {
            bail!("conv1d: weight of {w_len} values for {self:?}")
        }
        if bias_len.is_some_and(|n| n != self.out_c) {
            bail!("conv1d: bias of {bias_len:?} values for {self:?}")
        }
        let pads = self.pad_left.max(self.pad_right);
        if self.pad_mode == PadMode::Reflect && pads > 0 && pads >= self.in_len {
            bail!("conv1d: reflect padding of {pads} frames needs a longer input in {self:?}")
        }
        if self.pad_mode == PadMode::Replicate && pads > 0 && self.in_len == 0 {
            bail!("conv1d: replicate padding of an empty input in {self:?}")
        }
        Ok(())
    }
}

/// What a convolution applies to each output tile while it is still in cache:
/// `activation(conv + bias) + residual`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// Applied to every output value.
    pub activation: Activation,
    /// Added after the activation: a tensor of the output's shape, row-major.
    pub residual: Option<&'a [f32]>,
}

/// `conv1d(x, w) + bias` with `x` `[batch, in_c, in_len]`, `w` `[out_c, in_c / groups,
/// kernel]` and the result `[batch, out_c, out_len]`, all row-major.
///
/// # Errors
/// When the slice lengths do not match `shape`.
pub fn conv1d_f32(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    shape: &Conv1dShape,
) -> Result<Vec<f32>> {
    conv1d_f32_fused(x, w, bias, shape, Epilogue::default())
}

/// [`conv1d_f32`] followed by `epilogue`, applied tile by tile.
///
/// # Errors
/// When the slice lengths do not match `shape` (the residual: the output's).
pub fn conv1d_f32_fused(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    shape: &Conv1dShape,
    epilogue: Epilogue,
) -> Result<Vec<f32>> {
    shape.check(x.len(), w.len(), bias.map(<[f32]>::len))?;
    let out_len = shape.out_len();
    if let Some(r) = epilogue.residual {
        if r.len() != shape.batch * shape.out_c * out_len {
            bail!("conv1d: residual of {} values for {shape:?}", r.len())
        }
    }
    let mut out = vec![0f32; shape.batch * shape.out_c * out_len];
    if out.is_empty() {
        return Ok(out);
    }
    let cig = shape.in_c / shape.groups;
    let cog = shape.out_c / shape.groups;
    let depth = cig * shape.kernel;
    let in_place =
        shape.kernel == 1 && shape.stride == 1 && shape.pad_left == 0 && shape.pad_right == 0;
    let plan = TilePlan::new(
        shape.batch * shape.groups,
        cog,
        out_len,
        if in_place { 1 } else { depth },
    );
    let dst = SharedOut(out.as_mut_ptr());
    plan.run(|tile| {
        let (b, g) = (tile.unit / shape.groups, tile.unit % shape.groups);
        let x_unit = &x[(b * shape.in_c + g * cig) * shape.in_len..][..cig * shape.in_len];
        let co0 = g * cog + tile.row0;
        let out_off = (b * shape.out_c + co0) * out_len + tile.col0;
        // SAFETY: tile rows/cols lie inside the output; the tiles are disjoint.
        let dst_ptr = unsafe { dst.at(out_off) };
        if let Some(bias) = bias {
            for r in 0..tile.rows {
                // SAFETY: row r of the tile: `tile.cols` values inside the output.
                let row =
                    unsafe { std::slice::from_raw_parts_mut(dst_ptr.add(r * out_len), tile.cols) };
                row.fill(bias[co0 + r]);
            }
        }
        let lhs = MatRef {
            ptr: w[co0 * depth..].as_ptr(),
            row_stride: depth as isize,
            col_stride: 1,
        };
        let run = |rhs: MatRef| {
            // SAFETY: lhs is `rows × depth` inside `w`, rhs `depth × cols` inside its
            // buffer, dst the tile; nothing else writes the tile.
            unsafe {
                gemm_into(
                    tile.rows,
                    tile.cols,
                    depth,
                    dst_ptr,
                    out_len as isize,
                    1,
                    bias.is_some(),
                    lhs,
                    rhs,
                )
            }
        };
        if in_place {
            run(MatRef {
                ptr: x_unit[tile.col0..].as_ptr(),
                row_stride: shape.in_len as isize,
                col_stride: 1,
            });
        } else {
            with_gather_buffer(depth * tile.cols, |cols| {
                gather(x_unit, shape, tile.col0, tile.cols, cols);
                run(MatRef {
                    ptr: cols.as_ptr(),
                    row_stride: tile.cols as isize,
                    col_stride: 1,
                });
            });
        }
        if epilogue.activation != Activation::None || epilogue.residual.is_some() {
            for r in 0..tile.rows {
                // SAFETY: row r of the tile, as above.
                let row =
                    unsafe { std::slice::from_raw_parts_mut(dst_ptr.add(r * out_len), tile.cols) };
                epilogue.activation.apply(row);
                if let Some(res) = epilogue.residual {
                    let res = &res[out_off + r * out_len..][..tile.cols];
                    // `y + residual`: bit for bit the unfused `skip + y` (addition commutes).
                    row.iter_mut().zip(res).for_each(|(y, &s)| *y += s);
                }
            }
        }
    });
    Ok(out)
}

/// Fills `cols[(ci, k), n] = x[ci, (t0 + n)·stride + k·dilation − pad_left]` (outside the
/// input: zero, the edge sample, or the mirror image, per the padding mode).
fn gather(x: &[f32], shape: &Conv1dShape, t0: usize, n: usize, cols: &mut [f32]) {
    let cig = shape.in_c / shape.groups;
    let len = shape.in_len as isize;
    let s = shape.stride as isize;
    for ci in 0..cig {
        let src = &x[ci * shape.in_len..][..shape.in_len];
        let outside = |i: isize| match shape.pad_mode {
            PadMode::Zero => 0.0,
            PadMode::Replicate => src[i.clamp(0, len - 1) as usize],
            // `check` keeps the pads shorter than the input: one reflection suffices.
            PadMode::Reflect => src[if i < 0 { -i } else { 2 * (len - 1) - i } as usize],
        };
        for k in 0..shape.kernel {
            let row = &mut cols[(ci * shape.kernel + k) * n..][..n];
            let first = (t0 * shape.stride + k * shape.dilation) as isize - shape.pad_left as isize;
            // Frames whose input index lies in [0, len): n_lo..n_hi.
            let n_lo = if first >= 0 {
                0
            } else {
                ((-first) + s - 1) / s
            };
            let n_hi = if first >= len {
                0
            } else {
                (len - first + s - 1) / s
            };
            let n_lo = (n_lo.min(n as isize)) as usize;
            let n_hi = (n_hi.clamp(n_lo as isize, n as isize)) as usize;
            for (j, v) in row[..n_lo].iter_mut().enumerate() {
                *v = outside(first + j as isize * s);
            }
            for (j, v) in row[n_hi..].iter_mut().enumerate() {
                *v = outside(first + (n_hi + j) as isize * s);
            }
            if n_hi > n_lo {
                let start = (first + n_lo as isize * s) as usize;
                if shape.stride == 1 {
                    row[n_lo..n_hi].copy_from_slice(&src[start..start + (n_hi - n_lo)]);
                } else {
                    for (j, v) in row[n_lo..n_hi].iter_mut().enumerate() {
                        *v = src[start + j * shape.stride];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{max_abs_diff, test_values as values};
    use super::*;

    /// The definition, one output value at a time.
    fn naive(x: &[f32], w: &[f32], bias: Option<&[f32]>, s: &Conv1dShape) -> Vec<f32> {
        let (cig, cog, out_len) = (s.in_c / s.groups, s.out_c / s.groups, s.out_len());
        let mut out = vec![0f32; s.batch * s.out_c * out_len];
        for b in 0..s.batch {
            for co in 0..s.out_c {
                let g = co / cog;
                for t in 0..out_len {
                    let mut acc = bias.map_or(0.0, |b| b[co]) as f64;
                    for ci in 0..cig {
                        for k in 0..s.kernel {
                            let i = (t * s.stride + k * s.dilation) as isize - s.pad_left as isize;
                            let len = s.in_len as isize;
                            let i = match s.pad_mode {
                                _ if (0..len).contains(&i) => i,
                                PadMode::Zero => continue,
                                PadMode::Replicate => i.clamp(0, len - 1),
                                PadMode::Reflect if i < 0 => -i,
                                PadMode::Reflect => 2 * (len - 1) - i,
                            };
                            let xv = x[(b * s.in_c + g * cig + ci) * s.in_len + i as usize];
                            acc += (w[(co * cig + ci) * s.kernel + k] * xv) as f64;
                        }
                    }
                    out[(b * s.out_c + co) * out_len + t] = acc as f32;
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition_on_every_argument() {
        let cases = [
            // batch, in_c, out_c, in_len, kernel, stride, padding, dilation, groups
            (1, 1, 4, 50, 7, 1, 3, 1, 1),
            (2, 6, 8, 33, 3, 1, 0, 1, 1),
            (1, 5, 3, 40, 1, 1, 0, 1, 1),
            (3, 4, 6, 41, 4, 2, 1, 1, 2),
            (1, 8, 8, 64, 3, 1, 9, 9, 1),
            (2, 7, 5, 20, 5, 3, 2, 2, 1),
            (1, 3, 3, 6, 7, 1, 0, 1, 1),
            (1, 16, 64, 3000, 7, 1, 3, 1, 1),
            (1, 64, 128, 2, 3, 1, 1, 1, 1),
            (1, 12, 12, 30, 3, 1, 1, 1, 12),
        ];
        let modes = [PadMode::Zero, PadMode::Reflect, PadMode::Replicate];
        for (i, &(batch, in_c, out_c, in_len, kernel, stride, padding, dilation, groups)) in
            cases.iter().enumerate()
        {
            // Asymmetric pads in every mode too (reflect needs pads shorter than the input).
            let reflectable = padding + 1 < in_len;
            let shapes = modes
                .iter()
                .filter(|&&m| m != PadMode::Reflect || reflectable)
                .map(|&pad_mode| Conv1dShape {
                    pad_left: padding,
                    pad_right: padding / 2,
                    pad_mode,
                    ..Conv1dShape::torch(
                        batch, in_c, out_c, in_len, kernel, stride, padding, dilation, groups,
                    )
                });
            for s in std::iter::once(Conv1dShape::torch(
                batch, in_c, out_c, in_len, kernel, stride, padding, dilation, groups,
            ))
            .chain(shapes)
            {
                let x = values(batch * in_c * in_len, 1 + i as u32);
                let w = values(out_c * in_c / groups * kernel, 100 + i as u32);
                let bias = values(out_c, 200 + i as u32);
                for bias in [None, Some(&bias[..])] {
                    let got = conv1d_f32(&x, &w, bias, &s).unwrap();
                    let want = naive(&x, &w, bias, &s);
                    assert_eq!(got.len(), want.len(), "{s:?}");
                    let err = max_abs_diff(&got, &want);
                    assert!(err < 1e-4, "{s:?}: {err}");
                }
            }
        }
    }

    #[test]
    fn the_epilogue_equals_the_separate_operations() {
        let s = Conv1dShape::torch(2, 6, 5, 300, 3, 1, 1, 1, 1);
        let x = values(2 * 6 * 300, 7);
        let w = values(5 * 6 * 3, 8);
        let bias = values(5, 9);
        let residual = values(2 * 5 * 300, 10);
        let plain = conv1d_f32(&x, &w, Some(&bias), &s).unwrap();
        let fused = conv1d_f32_fused(
            &x,
            &w,
            Some(&bias),
            &s,
            Epilogue {
                activation: Activation::Elu(1.0),
                residual: Some(&residual),
            },
        )
        .unwrap();
        let mut activated = plain.clone();
        crate::nn::kernels::activation::elu_in_place(&mut activated, 1.0);
        for ((&a, &f), &r) in activated.iter().zip(&fused).zip(&residual) {
            assert_eq!(f, a + r);
        }
        let short = Epilogue {
            activation: Activation::None,
            residual: Some(&residual[1..]),
        };
        assert!(conv1d_f32_fused(&x, &w, Some(&bias), &s, short).is_err());
    }

    #[test]
    fn rejects_inconsistent_arguments() {
        let s = Conv1dShape::torch(1, 4, 4, 10, 3, 1, 0, 1, 3);
        assert!(conv1d_f32(&[0.0; 40], &[0.0; 48], None, &s).is_err());
        let s = Conv1dShape { groups: 1, ..s };
        assert!(conv1d_f32(&[0.0; 39], &[0.0; 48], None, &s).is_err());
        assert!(conv1d_f32(&[0.0; 40], &[0.0; 47], None, &s).is_err());
        assert!(conv1d_f32(&[0.0; 40], &[0.0; 48], Some(&[0.0; 3]), &s).is_err());
        assert_eq!(
            conv1d_f32(&[0.0; 40], &[0.0; 48], None, &s).unwrap().len(),
            32
        );
        let reflect = Conv1dShape {
            pad_left: 10,
            pad_mode: PadMode::Reflect,
            ..s
        };
        assert!(conv1d_f32(&[0.0; 40], &[0.0; 48], None, &reflect).is_err());
    }
}

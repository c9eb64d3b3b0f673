//! The convolution kernels of the Lyra graphs on time-major rows (`[rows, channels]`, f32).
//!
//! Every output element is summed in TFLite's reference order (start at 0, then filter tap by
//! filter tap and input channel by input channel, multiply then add with no FMA; the bias is
//! added by the caller), so the result does not depend on how many rows are computed at once
//! (one 20 ms frame when streaming, hundreds in a batch), nor on the SIMD width. The int8
//! convolutions run through the same kernels on `q − zero_point` values: their products and
//! partial sums are integers below 2^24 (checked when the model loads), so float32 holds them
//! exactly and the int32 accumulator comes out exact.

use rayon::prelude::*;

/// Activations: `rows × cols`, row-major (one row per time step).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rows {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Rows {
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Self {
        debug_assert_eq!(data.len(), rows * cols);
        Rows { rows, cols, data }
    }

    pub fn filled(rows: usize, cols: usize, value: f32) -> Self {
        Rows::new(rows, cols, vec![value; rows * cols])
    }

    /// Apply `f` to every element.
    pub fn map(mut self, f: impl Fn(f32) -> f32 + Sync) -> Self {
        self.data.iter_mut().for_each(|v| *v = f(*v));
        self
    }

    /// Columns `[start, start + n)` of every row.
    pub fn columns(&self, start: usize, n: usize) -> Rows {
        let mut data = Vec::with_capacity(self.rows * n);
        for r in 0..self.rows {
            data.extend_from_slice(&self.data[r * self.cols + start..][..n]);
        }
        Rows::new(self.rows, n, data)
    }

    /// Side by side: the columns of each part, in order (`CONCATENATION` on the channel axis).
    pub fn concat_columns(parts: &[Rows]) -> Rows {
        let rows = parts[0].rows;
        let cols: usize = parts.iter().map(|p| p.cols).sum();
        let mut data = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            for p in parts {
                data.extend_from_slice(&p.data[r * p.cols..][..p.cols]);
            }
        }
        Rows::new(rows, cols, data)
    }
}

/// Multiply-accumulate count above which a convolution splits its rows over threads.
const PARALLEL_MACS: usize = 1 << 18;

/// Geometry of a (grouped) convolution over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub groups: usize,
}

impl ConvGeometry {
    pub fn out_rows(&self, in_rows: usize) -> usize {
        let span = self.dilation * (self.kernel - 1) + 1;
        if in_rows < span {
            0
        } else {
            (in_rows - span) / self.stride + 1
        }
    }

    /// Past rows a causal streaming version keeps so that `stride · T` new rows give `T` outputs.
    pub fn context(&self) -> usize {
        self.dilation * (self.kernel - 1) + 1 - self.stride
    }

    fn in_per_group(&self) -> usize {
        self.in_channels / self.groups
    }

    fn out_per_group(&self) -> usize {
        self.out_channels / self.groups
    }
}

/// TFLite `CONV_2D` filter `[out, kernel, 1, in/groups]` laid out `[group][tap][in][out]`, so
/// that the innermost loop runs over contiguous output channels.
pub(crate) fn pack_conv_filter(filter: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (cg, og) = (g.in_per_group(), g.out_per_group());
    let mut packed = vec![0f32; filter.len()];
    for o in 0..g.out_channels {
        let (group, ol) = (o / og, o % og);
        for k in 0..g.kernel {
            for c in 0..cg {
                packed[((group * g.kernel + k) * cg + c) * og + ol] =
                    filter[(o * g.kernel + k) * cg + c];
            }
        }
    }
    packed
}

/// `out = conv(x)` without bias: `[out_rows(x.rows), out_channels]`.
pub(crate) fn conv(x: &Rows, g: &ConvGeometry, packed: &[f32]) -> Rows {
    debug_assert_eq!(x.cols, g.in_channels);
    let rows = g.out_rows(x.rows);
    let mut out = vec![0f32; rows * g.out_channels];
    let macs = rows * g.out_channels * g.kernel * g.in_per_group();
    let task_rows = if macs >= PARALLEL_MACS {
        rows.div_ceil(rayon::current_num_threads() * 4).max(4)
    } else {
        rows.max(1)
    };
    let work = |(t, chunk): (usize, &mut [f32])| {
        let row0 = t * task_rows;
        let n = chunk.len() / g.out_channels;
        conv_rows_dispatch(x, g, packed, row0, n, chunk);
    };
    if macs >= PARALLEL_MACS && rows > task_rows {
        out.par_chunks_mut(task_rows * g.out_channels)
            .enumerate()
            .for_each(work);
    } else if rows > 0 {
        work((0, &mut out[..]));
    }
    Rows::new(rows, g.out_channels, out)
}

fn conv_rows_dispatch(
    x: &Rows,
    g: &ConvGeometry,
    packed: &[f32],
    row0: usize,
    n: usize,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { conv_rows_avx512(x, g, packed, row0, n, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { conv_rows_avx2(x, g, packed, row0, n, out) };
        }
    }
    conv_rows(x, g, packed, row0, n, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn conv_rows_avx512(
    x: &Rows,
    g: &ConvGeometry,
    packed: &[f32],
    row0: usize,
    n: usize,
    out: &mut [f32],
) {
    conv_rows(x, g, packed, row0, n, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn conv_rows_avx2(
    x: &Rows,
    g: &ConvGeometry,
    packed: &[f32],
    row0: usize,
    n: usize,
    out: &mut [f32],
) {
    conv_rows(x, g, packed, row0, n, out)
}

/// Output rows `[row0, row0 + n)` into `out` (`n × out_channels`).
#[inline(always)]
fn conv_rows(x: &Rows, g: &ConvGeometry, packed: &[f32], row0: usize, n: usize, out: &mut [f32]) {
    let (cg, og) = (g.in_per_group(), g.out_per_group());
    let group_len = g.kernel * cg * og;
    for group in 0..g.groups {
        let w = &packed[group * group_len..][..group_len];
        let mut o0 = 0;
        while o0 < og {
            let width = og - o0;
            let mut r = 0;
            if width >= 64 {
                while r + 4 <= n {
                    block::<4, 64>(x, g, w, group, row0 + r, o0, &mut out[r * g.out_channels..]);
                    r += 4;
                }
                while r < n {
                    block::<1, 64>(x, g, w, group, row0 + r, o0, &mut out[r * g.out_channels..]);
                    r += 1;
                }
                o0 += 64;
            } else if width >= 16 {
                while r + 4 <= n {
                    block::<4, 16>(x, g, w, group, row0 + r, o0, &mut out[r * g.out_channels..]);
                    r += 4;
                }
                while r < n {
                    block::<1, 16>(x, g, w, group, row0 + r, o0, &mut out[r * g.out_channels..]);
                    r += 1;
                }
                o0 += 16;
            } else {
                while r < n {
                    block::<1, 1>(x, g, w, group, row0 + r, o0, &mut out[r * g.out_channels..]);
                    r += 1;
                }
                o0 += 1;
            }
        }
    }
}

/// `R` output rows × `W` output channels of one group, accumulated in registers.
#[inline(always)]
fn block<const R: usize, const W: usize>(
    x: &Rows,
    g: &ConvGeometry,
    w: &[f32],
    group: usize,
    row: usize,
    o0: usize,
    out: &mut [f32],
) {
    let (cg, og) = (g.in_per_group(), g.out_per_group());
    let in_off = group * cg;
    let mut acc = [[0f32; W]; R];
    for k in 0..g.kernel {
        let mut bases = [0usize; R];
        for (r, b) in bases.iter_mut().enumerate() {
            *b = ((row + r) * g.stride + k * g.dilation) * x.cols + in_off;
        }
        for c in 0..cg {
            let wrow: &[f32; W] = w[(k * cg + c) * og + o0..][..W]
                .try_into()
                .expect("W weights");
            for r in 0..R {
                let xv = x.data[bases[r] + c];
                for j in 0..W {
                    acc[r][j] += xv * wrow[j];
                }
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        let dst = &mut out[r * g.out_channels + group * og + o0..][..W];
        dst.copy_from_slice(a);
    }
}

/// `DEPTHWISE_CONV_2D` (multiplier 1, stride 1) without bias; `filter` is `[kernel, channels]`.
pub(crate) fn depthwise(x: &Rows, kernel: usize, dilation: usize, filter: &[f32]) -> Rows {
    let c = x.cols;
    let span = dilation * (kernel - 1) + 1;
    let rows = (x.rows + 1).saturating_sub(span);
    let mut out = vec![0f32; rows * c];
    for (r, dst) in out.chunks_exact_mut(c).enumerate() {
        for k in 0..kernel {
            let src = &x.data[(r + k * dilation) * c..][..c];
            let w = &filter[k * c..][..c];
            for i in 0..c {
                dst[i] += src[i] * w[i];
            }
        }
    }
    Rows::new(rows, c, out)
}

/// TFLite `TRANSPOSE_CONV` filter `[out, kernel, 1, in]` laid out `[in][kernel][out]`.
pub(crate) fn pack_transpose_filter(
    filter: &[f32],
    kernel: usize,
    cin: usize,
    cout: usize,
) -> Vec<f32> {
    let mut packed = vec![0f32; filter.len()];
    for o in 0..cout {
        for k in 0..kernel {
            for c in 0..cin {
                packed[(c * kernel + k) * cout + o] = filter[(o * kernel + k) * cin + c];
            }
        }
    }
    packed
}

/// `TRANSPOSE_CONV` (VALID, no bias) applied to each frame's `x.rows / frames` rows on their
/// own, as the streaming graph runs it: `frames` blocks of `(h − 1)·stride + kernel` rows.
/// Scatter order is the reference's (input row, input channel), so sums are exact to it.
pub(crate) fn transpose_blocks(
    x: &Rows,
    frames: usize,
    kernel: usize,
    stride: usize,
    cout: usize,
    packed: &[f32],
) -> Rows {
    let h = x.rows / frames.max(1);
    let block_rows = (h.max(1) - 1) * stride + kernel;
    let mut out = vec![0f32; frames * block_rows * cout];
    let cin = x.cols;
    let one = |(f, dst): (usize, &mut [f32])| {
        for i in 0..h {
            let src = &x.data[(f * h + i) * cin..][..cin];
            let span = &mut dst[i * stride * cout..][..kernel * cout];
            for (c, &xv) in src.iter().enumerate() {
                axpy(span, xv, &packed[c * kernel * cout..][..kernel * cout]);
            }
        }
    };
    let macs = frames * h * cin * kernel * cout;
    if macs >= PARALLEL_MACS && frames > 1 {
        out.par_chunks_mut(block_rows * cout)
            .enumerate()
            .for_each(one);
    } else {
        out.chunks_mut(block_rows * cout).enumerate().for_each(one);
    }
    Rows::new(frames * block_rows, cout, out)
}

fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { axpy_avx512(y, a, x) };
        }
    }
    axpy_plain(y, a, x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn axpy_avx512(y: &mut [f32], a: f32, x: &[f32]) {
    axpy_plain(y, a, x)
}

#[inline(always)]
fn axpy_plain(y: &mut [f32], a: f32, x: &[f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straight reference loops (TFLite reference order).
    fn conv_reference(x: &Rows, g: &ConvGeometry, filter: &[f32]) -> Rows {
        let rows = g.out_rows(x.rows);
        let (cg, og) = (g.in_channels / g.groups, g.out_channels / g.groups);
        let mut out = vec![0f32; rows * g.out_channels];
        for r in 0..rows {
            for o in 0..g.out_channels {
                let group = o / og;
                let mut total = 0f32;
                for k in 0..g.kernel {
                    for c in 0..cg {
                        let xv = x.data[(r * g.stride + k * g.dilation) * x.cols + group * cg + c];
                        total += xv * filter[(o * g.kernel + k) * cg + c];
                    }
                }
                out[r * g.out_channels + o] = total;
            }
        }
        Rows::new(rows, g.out_channels, out)
    }

    fn noise(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn conv_is_bit_exact_with_the_reference_loops_for_any_row_count() {
        for g in [
            ConvGeometry {
                kernel: 1,
                stride: 1,
                dilation: 1,
                in_channels: 128,
                out_channels: 128,
                groups: 2,
            },
            ConvGeometry {
                kernel: 3,
                stride: 1,
                dilation: 1,
                in_channels: 64,
                out_channels: 512,
                groups: 4,
            },
            ConvGeometry {
                kernel: 4,
                stride: 2,
                dilation: 1,
                in_channels: 256,
                out_channels: 512,
                groups: 4,
            },
            ConvGeometry {
                kernel: 64,
                stride: 16,
                dilation: 1,
                in_channels: 1,
                out_channels: 64,
                groups: 1,
            },
            ConvGeometry {
                kernel: 3,
                stride: 1,
                dilation: 9,
                in_channels: 8,
                out_channels: 5,
                groups: 1,
            },
        ] {
            let filter = noise(g.out_channels * g.kernel * g.in_channels / g.groups, 3);
            let packed = pack_conv_filter(&filter, &g);
            for frames in [1usize, 3, 9] {
                let in_rows = g.context() + frames * g.stride * 4;
                let x = Rows::new(
                    in_rows,
                    g.in_channels,
                    noise(in_rows * g.in_channels, frames as u32),
                );
                assert_eq!(
                    conv(&x, &g, &packed),
                    conv_reference(&x, &g, &filter),
                    "{g:?}"
                );
            }
        }
    }

    #[test]
    fn transpose_blocks_scatter_each_frame_on_its_own() {
        let (kernel, stride, cin, cout) = (4, 2, 3, 2);
        let filter = noise(cout * kernel * cin, 9);
        let packed = pack_transpose_filter(&filter, kernel, cin, cout);
        let x = Rows::new(4, cin, noise(4 * cin, 1)); // 2 frames of 2 rows
        let out = transpose_blocks(&x, 2, kernel, stride, cout, &packed);
        assert_eq!(out.rows, 2 * ((2 - 1) * stride + kernel));
        let block_rows = 6;
        for f in 0..2 {
            for y in 0..block_rows {
                for o in 0..cout {
                    let mut total = 0f32;
                    for i in 0..2 {
                        for c in 0..cin {
                            let k = y as isize - (i * stride) as isize;
                            if (0..kernel as isize).contains(&k) {
                                total += x.data[(f * 2 + i) * cin + c]
                                    * filter[(o * kernel + k as usize) * cin + c];
                            }
                        }
                    }
                    assert_eq!(out.data[(f * block_rows + y) * cout + o], total);
                }
            }
        }
    }
}

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

/// Which input row an output row starts at: plain (`row · stride`), or in independent blocks
/// of `in_block` input rows that give `out_block` output rows each (frames of a transposed
/// convolution, each zero-padded on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowMap {
    in_block: usize,
    out_block: usize,
}

impl RowMap {
    pub const PLAIN: RowMap = RowMap {
        in_block: 0,
        out_block: usize::MAX,
    };

    pub fn blocks(in_block: usize, out_block: usize) -> Self {
        RowMap {
            in_block,
            out_block,
        }
    }

    #[inline(always)]
    fn start(&self, row: usize, stride: usize) -> usize {
        (row / self.out_block) * self.in_block + (row % self.out_block) * stride
    }
}

/// How a convolution accumulates its products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sum {
    /// Multiply, round, add, round: TFLite's reference float kernels (no FMA).
    Reference,
    /// Fused multiply-add: for int8 values, whose products and sums are exact integers in
    /// float32, so any rounding mode gives the same (exact) result, and FMA does it in half
    /// the instructions.
    ExactIntegers,
}

/// `out = conv(x)` without bias: `[out_rows(x.rows), out_channels]`.
pub(crate) fn conv(x: &Rows, g: &ConvGeometry, packed: &[f32], sum: Sum) -> Rows {
    let rows = g.out_rows(x.rows);
    conv_mapped(x, g, packed, RowMap::PLAIN, rows, sum)
}

/// [`conv`] of `rows` output rows placed by `map`.
pub(crate) fn conv_mapped(
    x: &Rows,
    g: &ConvGeometry,
    packed: &[f32],
    map: RowMap,
    rows: usize,
    sum: Sum,
) -> Rows {
    debug_assert_eq!(x.cols, g.in_channels);
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
        let job = Job {
            x,
            g,
            packed,
            map,
            row0,
            n,
        };
        match sum {
            Sum::Reference => conv_rows_dispatch::<false>(&job, chunk),
            Sum::ExactIntegers => conv_rows_dispatch::<true>(&job, chunk),
        }
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

/// Output rows `[row0, row0 + n)` of a convolution.
struct Job<'a> {
    x: &'a Rows,
    g: &'a ConvGeometry,
    packed: &'a [f32],
    map: RowMap,
    row0: usize,
    n: usize,
}

fn conv_rows_dispatch<const FUSED: bool>(job: &Job<'_>, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { conv_rows_avx512::<FUSED>(job, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { conv_rows_avx2::<FUSED>(job, out) };
        }
    }
    conv_rows::<FUSED>(job, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn conv_rows_avx512<const FUSED: bool>(job: &Job<'_>, out: &mut [f32]) {
    conv_rows::<FUSED>(job, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn conv_rows_avx2<const FUSED: bool>(job: &Job<'_>, out: &mut [f32]) {
    conv_rows::<FUSED>(job, out)
}

/// Output rows `[row0, row0 + n)` into `out` (`n × out_channels`).
#[inline(always)]
fn conv_rows<const FUSED: bool>(job: &Job<'_>, out: &mut [f32]) {
    let Job {
        x,
        g,
        packed,
        map,
        row0,
        n,
    } = *job;
    let (cg, og) = (g.in_per_group(), g.out_per_group());
    let group_len = g.kernel * cg * og;
    for group in 0..g.groups {
        let w = &packed[group * group_len..][..group_len];
        let mut o0 = 0;
        while o0 < og {
            let width = og - o0;
            if width >= 64 {
                rows_of::<64, FUSED>(x, g, w, map, group, row0, n, o0, out);
                o0 += 64;
            } else if width >= 16 {
                rows_of::<16, FUSED>(x, g, w, map, group, row0, n, o0, out);
                o0 += 16;
            } else {
                rows_of::<1, FUSED>(x, g, w, map, group, row0, n, o0, out);
                o0 += 1;
            }
        }
    }
}

/// `n` output rows of `W` channels from `o0`: four rows at a time, then two, then one.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn rows_of<const W: usize, const FUSED: bool>(
    x: &Rows,
    g: &ConvGeometry,
    w: &[f32],
    map: RowMap,
    group: usize,
    row0: usize,
    n: usize,
    o0: usize,
    out: &mut [f32],
) {
    let mut r = 0;
    while r + 4 <= n {
        block::<4, W, FUSED>(
            x,
            g,
            w,
            map,
            group,
            row0 + r,
            o0,
            &mut out[r * g.out_channels..],
        );
        r += 4;
    }
    if r + 2 <= n {
        block::<2, W, FUSED>(
            x,
            g,
            w,
            map,
            group,
            row0 + r,
            o0,
            &mut out[r * g.out_channels..],
        );
        r += 2;
    }
    if r < n {
        block::<1, W, FUSED>(
            x,
            g,
            w,
            map,
            group,
            row0 + r,
            o0,
            &mut out[r * g.out_channels..],
        );
    }
}

/// `R` output rows × `W` output channels of one group, accumulated in registers.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn block<const R: usize, const W: usize, const FUSED: bool>(
    x: &Rows,
    g: &ConvGeometry,
    w: &[f32],
    map: RowMap,
    group: usize,
    row: usize,
    o0: usize,
    out: &mut [f32],
) {
    let (cg, og) = (g.in_per_group(), g.out_per_group());
    let in_off = group * cg;
    let mut starts = [0usize; R];
    for (r, b) in starts.iter_mut().enumerate() {
        *b = map.start(row + r, g.stride) * x.cols + in_off;
    }
    // Every index below stays under these bounds (checked once, not per product).
    let last_x = starts[R - 1] + (g.kernel - 1) * g.dilation * x.cols + cg;
    let last_w = ((g.kernel - 1) * cg + cg - 1) * og + o0 + W;
    assert!(
        last_x <= x.data.len() && last_w <= w.len(),
        "convolution indices out of range"
    );
    let (xp, wp) = (x.data.as_ptr(), w.as_ptr());
    let mut acc = [[0f32; W]; R];
    for k in 0..g.kernel {
        let tap = k * g.dilation * x.cols;
        for c in 0..cg {
            // SAFETY: (k * cg + c) * og + o0 + W <= last_w <= w.len() (asserted above).
            let wrow: &[f32; W] = unsafe { &*(wp.add((k * cg + c) * og + o0) as *const [f32; W]) };
            for r in 0..R {
                // SAFETY: starts[r] + tap + c < last_x <= x.data.len() (asserted above).
                let xv = unsafe { *xp.add(starts[r] + tap + c) };
                for j in 0..W {
                    acc[r][j] = if FUSED {
                        xv.mul_add(wrow[j], acc[r][j])
                    } else {
                        acc[r][j] + xv * wrow[j]
                    };
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

/// A transposed convolution whose kernel is a multiple of its stride (`K = M · s`), as a
/// plain convolution: output row `y = q·s + p` of a frame's block sums input rows
/// `i = q − M + 1 .. q` with taps `k = p + (q − i)·s`, so with each frame's rows zero-padded by
/// `M − 1` on both sides it is a `M`-tap convolution with `s · out` channels (phase-major),
/// whose output rows *are* the block's rows in memory. Input rows ascend along the taps, so each
/// output sums in the reference scatter order (input row, then input channel); the padding
/// adds exact zeros.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PolyphaseTranspose {
    taps: usize,
    stride: usize,
    geometry: ConvGeometry,
    packed: Vec<f32>,
}

impl PolyphaseTranspose {
    /// From a TFLite filter `[out, kernel, 1, in]`; `None` unless `kernel % stride == 0`.
    pub fn new(
        filter: &[f32],
        kernel: usize,
        stride: usize,
        cin: usize,
        cout: usize,
    ) -> Option<Self> {
        if stride == 0 || !kernel.is_multiple_of(stride) {
            return None;
        }
        let taps = kernel / stride;
        let geometry = ConvGeometry {
            kernel: taps,
            stride: 1,
            dilation: 1,
            in_channels: cin,
            out_channels: stride * cout,
            groups: 1,
        };
        let width = stride * cout;
        let mut packed = vec![0f32; taps * cin * width];
        for j in 0..taps {
            for p in 0..stride {
                let k = p + (taps - 1 - j) * stride;
                for c in 0..cin {
                    for o in 0..cout {
                        packed[(j * cin + c) * width + p * cout + o] =
                            filter[(o * kernel + k) * cin + c];
                    }
                }
            }
        }
        Some(PolyphaseTranspose {
            taps,
            stride,
            geometry,
            packed,
        })
    }

    /// Same result as [`transpose_blocks`].
    pub fn blocks(&self, x: &Rows, frames: usize, sum: Sum) -> Rows {
        let h = x.rows / frames.max(1);
        let pad = self.taps - 1;
        let in_block = h + 2 * pad;
        let cin = x.cols;
        let mut padded = vec![0f32; frames * in_block * cin];
        for f in 0..frames {
            padded[(f * in_block + pad) * cin..][..h * cin]
                .copy_from_slice(&x.data[f * h * cin..][..h * cin]);
        }
        let padded = Rows::new(frames * in_block, cin, padded);
        let out_block = h + pad;
        let y = conv_mapped(
            &padded,
            &self.geometry,
            &self.packed,
            RowMap::blocks(in_block, out_block),
            frames * out_block,
            sum,
        );
        let cout = self.geometry.out_channels / self.stride;
        Rows::new(y.rows * self.stride, cout, y.data)
    }
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
                    conv(&x, &g, &packed, Sum::Reference),
                    conv_reference(&x, &g, &filter),
                    "{g:?}"
                );
            }
        }
    }

    #[test]
    fn fused_sums_of_int8_values_are_exact() {
        let g = ConvGeometry {
            kernel: 3,
            stride: 1,
            dilation: 1,
            in_channels: 512,
            out_channels: 64,
            groups: 4,
        };
        let int = |n: usize, seed: u32, m: f32| {
            noise(n, seed)
                .into_iter()
                .map(|v| (v * m).round())
                .collect::<Vec<f32>>()
        };
        let filter = int(g.out_channels * g.kernel * 128, 4, 127.0);
        let x = Rows::new(40, 512, int(40 * 512, 8, 255.0));
        let got = conv(&x, &g, &pack_conv_filter(&filter, &g), Sum::ExactIntegers);
        assert_eq!(got, conv_reference(&x, &g, &filter));
    }

    #[test]
    fn polyphase_transpose_is_bit_exact_with_the_scatter() {
        for (kernel, stride, cin, cout, h) in [
            (4, 2, 128, 64, 1),
            (4, 2, 128, 64, 2),
            (10, 5, 128, 64, 4),
            (64, 16, 64, 1, 20),
        ] {
            let filter = noise(cout * kernel * cin, 5);
            let scatter = pack_transpose_filter(&filter, kernel, cin, cout);
            let poly = PolyphaseTranspose::new(&filter, kernel, stride, cin, cout).unwrap();
            for frames in [1usize, 3, 7] {
                let x = Rows::new(frames * h, cin, noise(frames * h * cin, frames as u32 + 11));
                let want = transpose_blocks(&x, frames, kernel, stride, cout, &scatter);
                assert_eq!(
                    poly.blocks(&x, frames, Sum::Reference),
                    want,
                    "K{kernel} s{stride} h{h} x{frames}"
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
        let h = 2; // input rows per frame
        assert_eq!(out.rows, 2 * ((h - 1) * stride + kernel));
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

//! One type per kind of TFLite op the Lyra graphs compute with, float32 or int8 as the graph
//! says, each built from its op by [`super::graph`] and applied to whole runs of rows.
//!
//! int8 tensors are held as float32 rows of their integer values `q` (exact), so the int8 and
//! float layers share the kernels and the plumbing.

use super::fixed_point::{dequantize, quantize, ChannelRequant, Multiplier};
use super::kernels::{self, ConvGeometry, Rows, Sum};

/// int8 parameters of an op's input and output and its per-channel requantisation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Requant {
    pub zero_in: i32,
    /// Per output channel: multiplier `s_in · s_w[c] / s_out`, int32 bias, output zero point.
    pub channels: ChannelRequant,
}

impl Requant {
    pub fn new(zero_in: i32, zero_out: i32, multipliers: &[Multiplier], bias: &[i32]) -> Self {
        Requant {
            zero_in,
            channels: ChannelRequant::new(multipliers, bias, zero_out),
        }
    }

    /// Subtract the input zero point (exact in float32 for int8 values).
    fn center(&self, x: &Rows) -> Rows {
        let zp = self.zero_in as f32;
        x.clone().map(|q| q - zp)
    }

    /// int32 accumulators (exact integers held in f32) → int8 output values.
    fn finish(&self, mut acc: Rows) -> Rows {
        self.channels.apply(&mut acc.data);
        acc
    }
}

/// `CONV_2D` over time (VALID, `[out, kernel, 1, in/groups]` filter), float or int8.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Conv {
    pub geometry: ConvGeometry,
    pub packed: Vec<f32>,
    pub bias: Vec<f32>,
    pub int8: Option<Requant>,
}

impl Conv {
    pub fn forward(&self, x: &Rows) -> Rows {
        match &self.int8 {
            None => {
                let mut y = kernels::conv(x, &self.geometry, &self.packed, Sum::Reference);
                add_bias(&mut y, &self.bias);
                y
            }
            Some(rq) => rq.finish(kernels::conv(
                &rq.center(x),
                &self.geometry,
                &self.packed,
                Sum::ExactIntegers,
            )),
        }
    }
}

/// `DEPTHWISE_CONV_2D` (multiplier 1, stride 1, VALID), float or int8.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Depthwise {
    pub kernel: usize,
    pub dilation: usize,
    /// `[kernel, channels]`.
    pub filter: Vec<f32>,
    pub bias: Vec<f32>,
    pub int8: Option<Requant>,
}

impl Depthwise {
    /// Past rows a causal stream keeps.
    pub fn context(&self) -> usize {
        self.dilation * (self.kernel - 1)
    }

    pub fn forward(&self, x: &Rows) -> Rows {
        match &self.int8 {
            None => {
                let mut y = kernels::depthwise(x, self.kernel, self.dilation, &self.filter);
                add_bias(&mut y, &self.bias);
                y
            }
            Some(rq) => rq.finish(kernels::depthwise(
                &rq.center(x),
                self.kernel,
                self.dilation,
                &self.filter,
            )),
        }
    }
}

/// `TRANSPOSE_CONV` (VALID) computed frame by frame, as the streaming graph runs it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TransposeConv {
    pub kernel: usize,
    pub stride: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    /// `[in][kernel][out]`.
    pub packed: Vec<f32>,
    /// The same as a convolution over phases, when the kernel is a multiple of the stride.
    pub polyphase: Option<kernels::PolyphaseTranspose>,
    /// Float bias (float ops only; int8 ops carry theirs in `int8`).
    pub bias: Vec<f32>,
    pub int8: Option<Requant>,
}

impl TransposeConv {
    /// Rows each frame's block has for `h` input rows.
    pub fn block_rows(&self, h: usize) -> usize {
        (h - 1) * self.stride + self.kernel
    }

    /// `frames` independent blocks, `[frames · block_rows, out]` (int8 values for int8 ops).
    pub fn forward_blocks(&self, x: &Rows, frames: usize) -> Rows {
        if let Some(poly) = &self.polyphase {
            return match &self.int8 {
                None => {
                    let mut y = poly.blocks(x, frames, Sum::Reference);
                    add_bias(&mut y, &self.bias);
                    y
                }
                Some(rq) => rq.finish(poly.blocks(&rq.center(x), frames, Sum::ExactIntegers)),
            };
        }
        match &self.int8 {
            None => {
                let mut y = kernels::transpose_blocks(
                    x,
                    frames,
                    self.kernel,
                    self.stride,
                    self.out_channels,
                    &self.packed,
                );
                add_bias(&mut y, &self.bias);
                y
            }
            Some(rq) => rq.finish(kernels::transpose_blocks(
                &rq.center(x),
                frames,
                self.kernel,
                self.stride,
                self.out_channels,
                &self.packed,
            )),
        }
    }
}

fn add_bias(y: &mut Rows, bias: &[f32]) {
    for row in y.data.chunks_exact_mut(y.cols) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += *b;
        }
    }
}

/// `LEAKY_RELU`, float or int8.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LeakyRelu {
    pub alpha: f32,
    pub int8: Option<LeakyReluInt8>,
}

/// int8 `LEAKY_RELU`: an int8 input has 256 values, so the op is a table of its outputs,
/// filled once with TFLite's fixed-point arithmetic.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LeakyReluInt8 {
    table: Vec<f32>,
}

impl LeakyReluInt8 {
    pub fn new(zero_in: i32, zero_out: i32, positive: Multiplier, negative: Multiplier) -> Self {
        let table = (-128..=127)
            .map(|q: i32| {
                let v = q - zero_in;
                let m = if v >= 0 { positive } else { negative };
                (m.apply(v) + zero_out).clamp(-128, 127) as f32
            })
            .collect();
        LeakyReluInt8 { table }
    }
}

/// The int8 value a float holds (its integer value, in [-128, 127]) as a table index.
#[inline(always)]
fn int8_index(q: f32) -> usize {
    (q as i32 + 128).clamp(0, 255) as usize
}

impl LeakyRelu {
    pub fn forward(&self, x: Rows) -> Rows {
        match &self.int8 {
            None => {
                let alpha = self.alpha;
                x.map(|v| if v > 0.0 { v } else { v * alpha })
            }
            Some(p) => x.map(|q| p.table[int8_index(q)]),
        }
    }
}

/// `ADD` of two tensors of the same shape, float or int8.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Add {
    pub int8: Option<AddInt8>,
}

/// int8 `ADD`: two int8 inputs have 65536 value pairs, so the op is a table of its outputs
/// (64 KiB), filled once with TFLite's fixed-point arithmetic.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AddInt8 {
    table: Vec<i8>,
}

/// The parameters of an int8 `ADD` (TFLite's `left_shift` of 20 and three multipliers).
pub(crate) struct AddInt8Params {
    pub zero_a: i32,
    pub zero_b: i32,
    pub zero_out: i32,
    pub left_shift: u32,
    pub a: Multiplier,
    pub b: Multiplier,
    pub out: Multiplier,
}

impl AddInt8 {
    pub fn new(p: &AddInt8Params) -> Self {
        let mut table = Vec::with_capacity(256 * 256);
        for qa in -128..=127i32 {
            for qb in -128..=127i32 {
                let va = (qa - p.zero_a) << p.left_shift;
                let vb = (qb - p.zero_b) << p.left_shift;
                let sum = p.a.apply(va) + p.b.apply(vb);
                table.push((p.out.apply(sum) + p.zero_out).clamp(-128, 127) as i8);
            }
        }
        AddInt8 { table }
    }
}

impl Add {
    pub fn forward(&self, mut a: Rows, b: &Rows) -> Rows {
        debug_assert_eq!((a.rows, a.cols), (b.rows, b.cols));
        match &self.int8 {
            None => a.data.iter_mut().zip(&b.data).for_each(|(x, y)| *x += *y),
            Some(p) => a.data.iter_mut().zip(&b.data).for_each(|(x, y)| {
                *x = f32::from(p.table[int8_index(*x) * 256 + int8_index(*y)]);
            }),
        }
        a
    }
}

/// `QUANTIZE` float32 → int8.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Quantize {
    pub scale: f32,
    pub zero_point: i32,
}

impl Quantize {
    pub fn forward(&self, x: Rows) -> Rows {
        let (s, z) = (self.scale, self.zero_point);
        x.map(|v| quantize(v, s, z))
    }
}

/// `DEQUANTIZE` int8 → float32, as a table of the 256 values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dequantize {
    table: Vec<f32>,
}

impl Dequantize {
    pub fn new(scale: f32, zero_point: i32) -> Self {
        Dequantize {
            table: (-128..=127)
                .map(|q| dequantize(q as f32, scale, zero_point))
                .collect(),
        }
    }

    pub fn forward(&self, x: Rows) -> Rows {
        x.map(|q| self.table[int8_index(q)])
    }
}

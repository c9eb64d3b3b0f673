//! The LyraGAN generator (`lyragan.tflite`): one 64-d feature vector → 320 samples per frame.
//! Op numbers are the graph's; `tools/lyra-study/SPEC.md` section 5 has the layer table.

use super::encoder::{FloatUnit, Int8Unit};
use super::graph::Graph;
use super::kernels::Rows;
use super::layers::{Add, Conv, Depthwise, Dequantize, LeakyRelu, Quantize, TransposeConv};
use super::state::Walk;
use super::{FEATURES, FRAME};
use crate::Result;

pub(crate) const KNOWN_OPS: &[&str] = &[
    "CALL_ONCE",
    "VAR_HANDLE",
    "READ_VARIABLE",
    "ASSIGN_VARIABLE",
    "CONCATENATION",
    "STRIDED_SLICE",
    "RESHAPE",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "TRANSPOSE_CONV",
    "SPLIT",
    "SUB",
    "LEAKY_RELU",
    "ADD",
    "QUANTIZE",
    "DEQUANTIZE",
];

/// A transposed conv run per frame, dequantised if int8, overlap-added into the stream.
struct Upsample {
    tconv: TransposeConv,
    /// Input rows per frame.
    rows_in: usize,
    to_float: Option<Dequantize>,
    /// The float bias the graph subtracts from the tail it carries.
    tail_bias: Vec<f32>,
}

impl Upsample {
    fn build(g: &Graph, tconv: usize, dequantize: Option<usize>, sub: usize) -> Result<Self> {
        let (tconv, rows_in) = g.transpose_conv(tconv)?;
        let emit = rows_in * tconv.stride;
        if tconv.block_rows(rows_in) - emit > emit {
            return Err(g.error("a transposed convolution's tail is longer than a frame"));
        }
        Ok(Upsample {
            tail_bias: g.sub_constant(sub, tconv.out_channels)?,
            to_float: dequantize.map(|i| g.dequantize(i)).transpose()?,
            tconv,
            rows_in,
        })
    }

    fn forward(&self, x: &Rows, frames: usize, w: &mut Walk<'_>) -> Rows {
        let mut blocks = self.tconv.forward_blocks(x, frames);
        if let Some(dq) = &self.to_float {
            blocks = dq.forward(blocks);
        }
        w.overlap_add(
            blocks,
            frames,
            self.rows_in * self.tconv.stride,
            &self.tail_bias,
        )
    }
}

/// Unit 0 of the first decoder block: float activation, int8 convolutions, float residual add.
struct MixedUnit {
    act: LeakyRelu,
    quantize: Quantize,
    to_float: Dequantize,
    requantize: Quantize,
    dw: Depthwise,
    pw: Conv,
    act2: LeakyRelu,
    conv_b: Conv,
    out_float: Dequantize,
    add: Add,
    quantize_sum: Quantize,
}

pub(crate) struct Generator {
    bottleneck: Conv,
    bottleneck_act: LeakyRelu,
    quantize: Quantize,
    up0: Vec<Upsample>,
    mixed: MixedUnit,
    block0: [Int8Unit; 2],
    act1: LeakyRelu,
    up1: Vec<Upsample>,
    block1: [FloatUnit; 3],
    act2: LeakyRelu,
    up2: Upsample,
    block2: [FloatUnit; 3],
    act3: LeakyRelu,
    last: Upsample,
}

impl Generator {
    pub fn build(g: &Graph) -> Result<Self> {
        g.check_io(&[1, 1, FEATURES as i32], &[1, FRAME as i32])?;
        g.check_known_ops(KNOWN_OPS)?;
        g.check_split(37, 4)?;
        g.check_split(118, 2)?;
        let unit = |ops| FloatUnit::build(g, ops);
        let gen = Generator {
            bottleneck: g.conv(24)?,
            bottleneck_act: g.leaky_relu(25)?,
            quantize: g.quantize(36)?,
            up0: vec![
                Upsample::build(g, 43, Some(44), 47)?,
                Upsample::build(g, 52, Some(53), 56)?,
                Upsample::build(g, 61, Some(62), 65)?,
                Upsample::build(g, 70, Some(71), 74)?,
            ],
            mixed: MixedUnit {
                act: g.leaky_relu(78)?,
                quantize: g.quantize(79)?,
                to_float: g.dequantize(80)?,
                requantize: g.quantize(82)?,
                dw: g.depthwise(86)?,
                pw: g.conv(87)?,
                act2: g.leaky_relu(88)?,
                conv_b: g.conv(89)?,
                out_float: g.dequantize(90)?,
                add: g.add(91)?,
                quantize_sum: g.quantize(92)?,
            },
            block0: [
                Int8Unit::build(g, [93, 94, 96, 100, 101, 102, 103, 104])?,
                Int8Unit::build(g, [105, 106, 108, 112, 113, 114, 115, 116])?,
            ],
            act1: g.leaky_relu(117)?,
            up1: vec![
                Upsample::build(g, 121, Some(122), 125)?,
                Upsample::build(g, 130, Some(131), 134)?,
            ],
            block1: [
                unit([138, 142, 143, 144, 145, 146])?,
                unit([147, 151, 152, 153, 154, 155])?,
                unit([156, 160, 161, 162, 163, 164])?,
            ],
            act2: g.leaky_relu(165)?,
            up2: Upsample::build(g, 166, None, 169)?,
            block2: [
                unit([172, 176, 177, 178, 179, 180])?,
                unit([181, 185, 186, 187, 188, 189])?,
                unit([190, 194, 195, 196, 197, 198])?,
            ],
            act3: g.leaky_relu(199)?,
            last: Upsample::build(g, 200, None, 203)?,
        };
        let hop: usize = [&gen.up0[0], &gen.up1[0], &gen.up2, &gen.last]
            .iter()
            .map(|u| u.tconv.stride)
            .product();
        if hop != FRAME || gen.last.tconv.out_channels != 1 {
            return Err(g.error(format!("the generator upsamples by {hop}, not {FRAME}")));
        }
        Ok(gen)
    }

    /// `frames · 320` samples from features `[frames, 64]`, continuing the stream in `w`.
    pub fn forward(&self, features: Rows, w: &mut Walk<'_>) -> Vec<f32> {
        let frames = features.rows;
        let x = self
            .bottleneck
            .forward(&w.causal(features, self.bottleneck.geometry.context()));
        let hi = self.quantize.forward(self.bottleneck_act.forward(x));
        let y = split_upsample(&self.up0, &hi, frames, w);
        let m = &self.mixed;
        let x = m
            .to_float
            .forward(m.quantize.forward(m.act.forward(y.clone())));
        let x = m.requantize.forward(w.causal(x, m.dw.context()));
        let x = m
            .conv_b
            .forward(&m.act2.forward(m.pw.forward(&m.dw.forward(&x))));
        let mut hi = m
            .quantize_sum
            .forward(m.add.forward(m.out_float.forward(x), &y));
        for u in &self.block0 {
            hi = u.forward(hi, w);
        }
        let hi = self.act1.forward(hi);
        let mut h = split_upsample(&self.up1, &hi, frames, w);
        for u in &self.block1 {
            h = u.forward(h, w);
        }
        let mut h = self.up2.forward(&self.act2.forward(h), frames, w);
        for u in &self.block2 {
            h = u.forward(h, w);
        }
        self.last.forward(&self.act3.forward(h), frames, w).data
    }
}

/// `SPLIT` along channels into one part per upsampler, each upsampled, then concatenated.
fn split_upsample(ups: &[Upsample], x: &Rows, frames: usize, w: &mut Walk<'_>) -> Rows {
    let part = x.cols / ups.len();
    let outs: Vec<Rows> = ups
        .iter()
        .enumerate()
        .map(|(i, u)| u.forward(&x.columns(i * part, part), frames, w))
        .collect();
    Rows::concat_columns(&outs)
}

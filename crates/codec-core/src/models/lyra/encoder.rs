//! The SoundStream encoder (`soundstream_encoder.tflite`): 320 samples → one 64-d feature
//! vector per 20 ms frame. Op numbers are the graph's; `tools/lyra-study/SPEC.md` section 3
//! has the layer table.

use super::graph::Graph;
use super::kernels::Rows;
use super::layers::{Add, Conv, Depthwise, Dequantize, LeakyRelu, Quantize};
use super::state::Walk;
use super::{FEATURES, FRAME};
use crate::Result;

/// Ops of the encoder graph that are neither computed here nor state plumbing it replaces.
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
    "LEAKY_RELU",
    "ADD",
    "QUANTIZE",
    "DEQUANTIZE",
];

/// Float residual unit: `h + conv_b(lrelu(pw(dw(lrelu(h)))))` (the generator's too, where the
/// first activation is the previous stage's).
pub(crate) struct FloatUnit {
    act: LeakyRelu,
    dw: Depthwise,
    pw: Conv,
    act2: LeakyRelu,
    conv_b: Conv,
    add: Add,
}

impl FloatUnit {
    /// Ops: activation, depthwise, pointwise, activation, second conv, residual add.
    pub fn build(g: &Graph, [a, dw, pw, a2, cb, add]: [usize; 6]) -> Result<Self> {
        Ok(FloatUnit {
            act: g.leaky_relu(a)?,
            dw: g.depthwise(dw)?,
            pw: g.conv(pw)?,
            act2: g.leaky_relu(a2)?,
            conv_b: g.conv(cb)?,
            add: g.add(add)?,
        })
    }

    pub fn forward(&self, h: Rows, w: &mut Walk<'_>) -> Rows {
        let x = self.act.forward(h.clone());
        let x = self.dw.forward(&w.causal(x, self.dw.context()));
        let x = self.act2.forward(self.pw.forward(&x));
        self.add.forward(self.conv_b.forward(&x), &h)
    }
}

/// An int8 activation whose output feeds a causal int8 layer: the state holds the activation's
/// dequantised values, which are quantised again with the same parameters (SPEC.md pattern A').
struct Int8Causal {
    act: LeakyRelu,
    to_float: Dequantize,
    requantize: Quantize,
}

impl Int8Causal {
    /// Ops: activation, dequantize, quantize.
    fn build(g: &Graph, [a, dq, q]: [usize; 3]) -> Result<Self> {
        Ok(Int8Causal {
            act: g.leaky_relu(a)?,
            to_float: g.dequantize(dq)?,
            requantize: g.quantize(q)?,
        })
    }

    /// The activation of `h`, after the past `context` rows of it.
    fn forward(&self, h: Rows, context: usize, w: &mut Walk<'_>) -> Rows {
        let x = self.to_float.forward(self.act.forward(h));
        self.requantize.forward(w.causal(x, context))
    }
}

/// int8 residual unit; the residual add is int8.
pub(crate) struct Int8Unit {
    input: Int8Causal,
    dw: Depthwise,
    pw: Conv,
    act2: LeakyRelu,
    conv_b: Conv,
    add: Add,
}

impl Int8Unit {
    /// Ops: activation, dequantize, quantize, depthwise, pointwise, activation, conv, add.
    pub fn build(g: &Graph, [a, dq, q, dw, pw, a2, cb, add]: [usize; 8]) -> Result<Self> {
        Ok(Int8Unit {
            input: Int8Causal::build(g, [a, dq, q])?,
            dw: g.depthwise(dw)?,
            pw: g.conv(pw)?,
            act2: g.leaky_relu(a2)?,
            conv_b: g.conv(cb)?,
            add: g.add(add)?,
        })
    }

    pub fn forward(&self, h: Rows, w: &mut Walk<'_>) -> Rows {
        let x = self.input.forward(h.clone(), self.dw.context(), w);
        let x = self
            .conv_b
            .forward(&self.act2.forward(self.pw.forward(&self.dw.forward(&x))));
        self.add.forward(x, &h)
    }
}

/// An int8 strided (or plain) conv after an int8 activation.
pub(crate) struct Int8Down {
    input: Int8Causal,
    conv: Conv,
}

impl Int8Down {
    /// Ops: activation, dequantize, quantize, conv.
    pub fn build(g: &Graph, [a, dq, q, c]: [usize; 4]) -> Result<Self> {
        Ok(Int8Down {
            input: Int8Causal::build(g, [a, dq, q])?,
            conv: g.conv(c)?,
        })
    }

    pub fn forward(&self, h: Rows, w: &mut Walk<'_>) -> Rows {
        let x = self.input.forward(h, self.conv.geometry.context(), w);
        self.conv.forward(&x)
    }
}

/// Unit 0 of the third block: float depthwise and pointwise, then int8 activation and conv,
/// then a float residual add quantised to int8.
struct MixedUnit {
    act: LeakyRelu,
    dw: Depthwise,
    pw: Conv,
    quantize: Quantize,
    act2: LeakyRelu,
    conv_b: Conv,
    to_float: Dequantize,
    add: Add,
    quantize_sum: Quantize,
}

pub(crate) struct Encoder {
    first: Conv,
    block0: [FloatUnit; 3],
    act0: LeakyRelu,
    down0: Conv,
    block1: [FloatUnit; 3],
    act1: LeakyRelu,
    down1: Conv,
    mixed: MixedUnit,
    block2: [Int8Unit; 2],
    down2: Int8Down,
    bottleneck: Int8Down,
    output: Dequantize,
}

impl Encoder {
    pub fn build(g: &Graph) -> Result<Self> {
        g.check_io(&[1, FRAME as i32], &[1, 1, FEATURES as i32])?;
        g.check_known_ops(KNOWN_OPS)?;
        let first = g.conv(29)?;
        let unit = |ops| FloatUnit::build(g, ops);
        let enc = Encoder {
            block0: [
                unit([30, 34, 35, 36, 37, 38])?,
                unit([39, 43, 44, 45, 46, 47])?,
                unit([48, 52, 53, 54, 55, 56])?,
            ],
            act0: g.leaky_relu(57)?,
            down0: g.conv(61)?,
            block1: [
                unit([62, 66, 67, 68, 69, 70])?,
                unit([71, 75, 76, 77, 78, 79])?,
                unit([80, 84, 85, 86, 87, 88])?,
            ],
            act1: g.leaky_relu(89)?,
            down1: g.conv(93)?,
            mixed: MixedUnit {
                act: g.leaky_relu(94)?,
                dw: g.depthwise(98)?,
                pw: g.conv(100)?,
                quantize: g.quantize(101)?,
                act2: g.leaky_relu(102)?,
                conv_b: g.conv(103)?,
                to_float: g.dequantize(104)?,
                add: g.add(105)?,
                quantize_sum: g.quantize(106)?,
            },
            block2: [
                Int8Unit::build(g, [107, 108, 111, 115, 116, 117, 118, 119])?,
                Int8Unit::build(g, [120, 121, 124, 128, 129, 130, 131, 132])?,
            ],
            down2: Int8Down::build(g, [133, 134, 137, 141])?,
            bottleneck: Int8Down::build(g, [142, 143, 145, 149])?,
            output: g.dequantize(151)?,
            first,
        };
        // Whole frames in must give whole frames out at every stage.
        let hop: usize = [
            &enc.first,
            &enc.down0,
            &enc.down1,
            &enc.down2.conv,
            &enc.bottleneck.conv,
        ]
        .iter()
        .map(|c| c.geometry.stride)
        .product();
        if hop != FRAME || enc.bottleneck.conv.geometry.out_channels != FEATURES {
            return Err(g.error(format!("the convolutions hop {hop} samples, not {FRAME}")));
        }
        Ok(enc)
    }

    /// Features `[frames, 64]` of `frames · 320` samples, continuing the stream in `w`.
    pub fn forward(&self, audio: &[f32], w: &mut Walk<'_>) -> Rows {
        let x = Rows::new(audio.len(), 1, audio.to_vec());
        let e = self
            .first
            .forward(&w.causal(x, self.first.geometry.context()));
        let mut h = e;
        for u in &self.block0 {
            h = u.forward(h, w);
        }
        let x = self.act0.forward(h);
        let mut h = self
            .down0
            .forward(&w.causal(x, self.down0.geometry.context()));
        for u in &self.block1 {
            h = u.forward(h, w);
        }
        let x = self.act1.forward(h);
        let h = self
            .down1
            .forward(&w.causal(x, self.down1.geometry.context()));
        let m = &self.mixed;
        let x = m.act.forward(h.clone());
        let x = m.pw.forward(&m.dw.forward(&w.causal(x, m.dw.context())));
        let x = m.conv_b.forward(&m.act2.forward(m.quantize.forward(x)));
        let mut hi = m
            .quantize_sum
            .forward(m.add.forward(m.to_float.forward(x), &h));
        for u in &self.block2 {
            hi = u.forward(hi, w);
        }
        let h = self.down2.forward(hi, w);
        let o = self.bottleneck.forward(h, w);
        self.output.forward(o)
    }
}

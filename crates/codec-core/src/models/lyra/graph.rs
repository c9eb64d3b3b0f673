//! Builds the layers of a Lyra TFLite graph from its ops: each builder checks that the op is
//! what the architecture expects (op kind, padding, strides, activation, shapes, int8 or float,
//! quantisation) and reads its constants. Anything else is an [`Error::Graph`] naming the file,
//! the op and what did not match.

use codec_tflite::{DType, Model, Op, Options, Subgraph, Tensor};

use super::fixed_point::Multiplier;
use super::kernels::{pack_conv_filter, pack_transpose_filter, ConvGeometry, PolyphaseTranspose};
use super::layers::{
    Add, AddInt8, AddInt8Params, Conv, Depthwise, Dequantize, LeakyRelu, LeakyReluInt8, Quantize,
    Requant, TransposeConv,
};
use crate::{Error, Result};

/// The largest |int32 accumulator| float32 holds exactly (2^24).
const EXACT_F32: i64 = 1 << 24;

/// The main subgraph of one `.tflite` file, with the file's role for error messages.
pub(crate) struct Graph {
    pub file: String,
    pub model: Model,
}

impl Graph {
    /// Parse `bytes` (the file named `file`).
    pub fn parse(bytes: &[u8], file: &str) -> Result<Self> {
        let model = Model::parse(bytes).map_err(|e| Error::Graph {
            file: file.to_string(),
            problem: e.to_string(),
        })?;
        if model.subgraphs.is_empty() {
            return Err(Error::Graph {
                file: file.to_string(),
                problem: "the model has no subgraph".into(),
            });
        }
        Ok(Graph {
            file: file.to_string(),
            model,
        })
    }

    pub fn error(&self, problem: impl Into<String>) -> Error {
        Error::Graph {
            file: self.file.clone(),
            problem: problem.into(),
        }
    }

    pub fn main(&self) -> &Subgraph {
        &self.model.subgraphs[0]
    }

    /// Every op of the main subgraph must be one this port knows.
    pub fn check_known_ops(&self, known: &[&str]) -> Result<()> {
        for (i, op) in self.main().ops.iter().enumerate() {
            if !known.contains(&op.code.as_str()) {
                return Err(self.error(format!(
                    "op {i} is {}, an op the Lyra port does not know",
                    op.code
                )));
            }
        }
        Ok(())
    }

    /// Op `i`, which must be a `code`.
    pub fn op(&self, i: usize, code: &str) -> Result<&Op> {
        let sg = self.main();
        let op = sg.ops.get(i).ok_or_else(|| {
            self.error(format!(
                "has {} ops, expected op {i} ({code}): is this the right file?",
                sg.ops.len()
            ))
        })?;
        if op.code != code {
            return Err(self.error(format!(
                "op {i} is {}, expected {code}: is this the right file?",
                op.code
            )));
        }
        Ok(op)
    }

    fn tensor(&self, op: &Op, i: usize, what: &str, index: i32) -> Result<&Tensor> {
        self.main()
            .tensor(index)
            .ok_or_else(|| self.error(format!("op {i} ({}) has no {what}", op.code)))
    }

    fn input(&self, op: &Op, i: usize, k: usize) -> Result<&Tensor> {
        let index = op.inputs.get(k).copied().unwrap_or(-1);
        self.tensor(op, i, &format!("input {k}"), index)
    }

    /// Input `k` if the op has it (TFLite marks an absent optional input, e.g. a bias, -1).
    fn optional_input(&self, op: &Op, i: usize, k: usize) -> Result<Option<&Tensor>> {
        match op.inputs.get(k) {
            Some(&t) if t >= 0 => self.input(op, i, k).map(Some),
            _ => Ok(None),
        }
    }

    fn output(&self, op: &Op, i: usize) -> Result<&Tensor> {
        let index = op.outputs.first().copied().unwrap_or(-1);
        self.tensor(op, i, "output", index)
    }

    fn mismatch(&self, op: &Op, i: usize, what: impl std::fmt::Display) -> Error {
        self.error(format!("op {i} ({}): {what}", op.code))
    }

    /// Per-tensor int8 scale and zero point of `t`.
    fn int8(&self, op: &Op, i: usize, t: &Tensor) -> Result<(f32, i32)> {
        match (&t.quantization, t.dtype) {
            (Some(q), DType::I8) if q.scale.len() == 1 && q.zero_point.len() == 1 => {
                let zp = q.zero_point[0];
                if !(-128..=127).contains(&zp) || q.scale[0].is_nan() || q.scale[0] <= 0.0 {
                    return Err(self.mismatch(
                        op,
                        i,
                        format!("tensor {} has scale {} zero point {zp}", t.name, q.scale[0]),
                    ));
                }
                Ok((q.scale[0], zp as i32))
            }
            _ => Err(self.mismatch(op, i, format!("tensor {} is not per-tensor int8", t.name))),
        }
    }

    fn f32_const(&self, op: &Op, i: usize, t: &Tensor) -> Result<Vec<f32>> {
        t.f32_data().ok_or_else(|| {
            self.mismatch(
                op,
                i,
                format!("tensor {} is not a float32 constant", t.name),
            )
        })
    }

    /// Time rows and channels of an activation `[1, rows, 1, channels]`.
    fn rows_channels(&self, op: &Op, i: usize, t: &Tensor) -> Result<(usize, usize)> {
        match t.shape.as_slice() {
            [1, rows, 1, c] if *rows > 0 && *c > 0 => Ok((*rows as usize, *c as usize)),
            other => Err(self.mismatch(
                op,
                i,
                format!(
                    "tensor {} has shape {other:?}, expected [1, time, 1, channels]",
                    t.name
                ),
            )),
        }
    }

    fn no_activation(&self, op: &Op, i: usize, act: &str) -> Result<()> {
        if act != "NONE" {
            return Err(self.mismatch(
                op,
                i,
                format!("fused activation {act} (the port expects NONE)"),
            ));
        }
        Ok(())
    }

    /// int8 weights, their per-channel (or per-tensor) scales, and the requantisation.
    #[allow(clippy::too_many_arguments)]
    fn requant(
        &self,
        op: &Op,
        i: usize,
        input: &Tensor,
        filter: &Tensor,
        bias: Option<&Tensor>,
        output: &Tensor,
        channels: usize,
    ) -> Result<(Vec<f32>, Requant)> {
        let (s_in, zero_in) = self.int8(op, i, input)?;
        let (s_out, zero_out) = self.int8(op, i, output)?;
        let w = filter.i8_data().ok_or_else(|| {
            self.mismatch(
                op,
                i,
                format!("filter {} is not an int8 constant", filter.name),
            )
        })?;
        let q = filter
            .quantization
            .as_ref()
            .ok_or_else(|| self.mismatch(op, i, "int8 filter without quantisation"))?;
        if q.zero_point.iter().any(|&z| z != 0) {
            return Err(self.mismatch(op, i, "int8 filter with a nonzero zero point"));
        }
        let scales: Vec<f32> = match q.scale.len() {
            1 => vec![q.scale[0]; channels],
            n if n == channels => q.scale.clone(),
            n => {
                return Err(self.mismatch(
                    op,
                    i,
                    format!("{n} filter scales for {channels} channels"),
                ))
            }
        };
        let bias = match bias {
            Some(b) => b
                .i32_data()
                .filter(|v| v.len() == channels)
                .ok_or_else(|| {
                    self.mismatch(
                        op,
                        i,
                        format!("bias {} is not {channels} int32 values", b.name),
                    )
                })?,
            None => vec![0; channels],
        };
        let multipliers: Vec<Multiplier> = scales
            .iter()
            .map(|&s_w| Multiplier::new(s_in as f64 * s_w as f64 / s_out as f64))
            .collect();
        Ok((
            w.into_iter().map(f32::from).collect(),
            Requant::new(zero_in, zero_out, &multipliers, &bias),
        ))
    }

    /// The accumulators of an int8 op with `terms` products per output must stay exact in f32.
    fn check_exact(&self, op: &Op, i: usize, terms: usize) -> Result<()> {
        if terms as i64 * 255 * 127 >= EXACT_F32 {
            return Err(self.mismatch(
                op,
                i,
                format!("{terms} int8 products per output could exceed float32's exact integers"),
            ));
        }
        Ok(())
    }

    /// A convolution's weights: int8 ones (as f32 integers) with their requantisation, or
    /// float ones with their bias (zeros when absent); `terms` products per output.
    #[allow(clippy::type_complexity)]
    fn weights(
        &self,
        op: &Op,
        i: usize,
        [input, filter, output]: [&Tensor; 3],
        bias: Option<&Tensor>,
        channels: usize,
        terms: usize,
    ) -> Result<(Vec<f32>, Vec<f32>, Option<Requant>)> {
        if input.dtype == DType::I8 {
            self.check_exact(op, i, terms)?;
            let (w, rq) = self.requant(op, i, input, filter, bias, output, channels)?;
            return Ok((w, Vec::new(), Some(rq)));
        }
        let w = self.f32_const(op, i, filter)?;
        let b = match bias {
            Some(b) => self.f32_const(op, i, b)?,
            None => vec![0.0; channels],
        };
        if b.len() != channels || input.dtype != DType::F32 || output.dtype != DType::F32 {
            return Err(self.mismatch(
                op,
                i,
                "float op with a misshaped bias or non-float tensors",
            ));
        }
        Ok((w, b, None))
    }

    /// `CONV_2D` at op `i`.
    pub fn conv(&self, i: usize) -> Result<Conv> {
        let op = self.op(i, "CONV_2D")?;
        let Options::Conv2D {
            padding_valid,
            stride_h,
            stride_w,
            dilation_h,
            dilation_w,
            fused_activation,
        } = op.options.clone()
        else {
            return Err(self.mismatch(op, i, "no convolution options"));
        };
        self.no_activation(op, i, fused_activation)?;
        if !padding_valid || stride_w != 1 || dilation_w != 1 || stride_h < 1 || dilation_h < 1 {
            return Err(self.mismatch(op, i, "expected VALID padding along time only"));
        }
        let (input, filter, output) = (
            self.input(op, i, 0)?,
            self.input(op, i, 1)?,
            self.output(op, i)?,
        );
        let bias = self.optional_input(op, i, 2)?;
        let (in_rows, cin) = self.rows_channels(op, i, input)?;
        let (out_rows, cout) = self.rows_channels(op, i, output)?;
        let (kernel, cg) = match filter.shape.as_slice() {
            [o, k, 1, c] if *o as usize == cout && *k > 0 && *c > 0 => (*k as usize, *c as usize),
            other => {
                return Err(self.mismatch(
                    op,
                    i,
                    format!("filter shape {other:?} for {cout} outputs"),
                ))
            }
        };
        if cin % cg != 0 || cout % (cin / cg) != 0 {
            return Err(self.mismatch(
                op,
                i,
                format!(
                    "{cin} inputs, {cout} outputs and {cg} inputs per group do not make groups"
                ),
            ));
        }
        let geometry = ConvGeometry {
            kernel,
            stride: stride_h as usize,
            dilation: dilation_h as usize,
            in_channels: cin,
            out_channels: cout,
            groups: cin / cg,
        };
        if geometry.out_rows(in_rows) != out_rows {
            return Err(self.mismatch(
                op,
                i,
                format!(
                    "{in_rows} rows in give {out_rows} out, not {}",
                    geometry.out_rows(in_rows)
                ),
            ));
        }
        let (filter_values, bias, int8) =
            self.weights(op, i, [input, filter, output], bias, cout, kernel * cg)?;
        Ok(Conv {
            packed: pack_conv_filter(&filter_values, &geometry),
            geometry,
            bias,
            int8,
        })
    }

    /// `DEPTHWISE_CONV_2D` at op `i`.
    pub fn depthwise(&self, i: usize) -> Result<Depthwise> {
        let op = self.op(i, "DEPTHWISE_CONV_2D")?;
        let Options::DepthwiseConv2D {
            padding_valid,
            stride_h,
            stride_w,
            dilation_h,
            dilation_w,
            depth_multiplier,
            fused_activation,
        } = op.options.clone()
        else {
            return Err(self.mismatch(op, i, "no depthwise options"));
        };
        self.no_activation(op, i, fused_activation)?;
        if !padding_valid
            || stride_h != 1
            || stride_w != 1
            || dilation_w != 1
            || depth_multiplier != 1
            || dilation_h < 1
        {
            return Err(self.mismatch(op, i, "expected VALID, stride 1, multiplier 1 along time"));
        }
        let (input, filter, output) = (
            self.input(op, i, 0)?,
            self.input(op, i, 1)?,
            self.output(op, i)?,
        );
        let bias = self.optional_input(op, i, 2)?;
        let (in_rows, c) = self.rows_channels(op, i, input)?;
        let (out_rows, c_out) = self.rows_channels(op, i, output)?;
        let kernel = match filter.shape.as_slice() {
            [1, k, 1, ch] if *ch as usize == c && c_out == c && *k > 0 => *k as usize,
            other => {
                return Err(self.mismatch(
                    op,
                    i,
                    format!("filter shape {other:?} for {c} channels"),
                ))
            }
        };
        let dilation = dilation_h as usize;
        if in_rows < dilation * (kernel - 1) + out_rows
            || in_rows - dilation * (kernel - 1) != out_rows
        {
            return Err(self.mismatch(op, i, format!("{in_rows} rows in, {out_rows} out")));
        }
        let (filter, bias, int8) = self.weights(op, i, [input, filter, output], bias, c, kernel)?;
        Ok(Depthwise {
            kernel,
            dilation,
            filter,
            bias,
            int8,
        })
    }

    /// `TRANSPOSE_CONV` at op `i`, with `h` input rows per frame.
    pub fn transpose_conv(&self, i: usize) -> Result<(TransposeConv, usize)> {
        let op = self.op(i, "TRANSPOSE_CONV")?;
        let Options::TransposeConv {
            padding_valid,
            stride_h,
            stride_w,
            fused_activation,
        } = op.options.clone()
        else {
            return Err(self.mismatch(op, i, "no transposed-convolution options"));
        };
        self.no_activation(op, i, fused_activation)?;
        if !padding_valid || stride_w != 1 || stride_h < 1 {
            return Err(self.mismatch(op, i, "expected VALID padding along time only"));
        }
        let (filter, input, output) = (
            self.input(op, i, 1)?,
            self.input(op, i, 2)?,
            self.output(op, i)?,
        );
        let bias = self.optional_input(op, i, 3)?;
        let (h, cin) = self.rows_channels(op, i, input)?;
        let (ho, cout) = self.rows_channels(op, i, output)?;
        let kernel = match filter.shape.as_slice() {
            [o, k, 1, c] if *o as usize == cout && *c as usize == cin && *k > 0 => *k as usize,
            other => {
                return Err(self.mismatch(
                    op,
                    i,
                    format!("filter shape {other:?} for {cin} -> {cout}"),
                ))
            }
        };
        let stride = stride_h as usize;
        if (h - 1) * stride + kernel != ho {
            return Err(self.mismatch(op, i, format!("{h} rows in give {ho} out")));
        }
        let (filter_values, bias, int8) = self.weights(
            op,
            i,
            [input, filter, output],
            bias,
            cout,
            kernel.div_ceil(stride) * cin,
        )?;
        Ok((
            TransposeConv {
                kernel,
                stride,
                in_channels: cin,
                out_channels: cout,
                packed: pack_transpose_filter(&filter_values, kernel, cin, cout),
                polyphase: PolyphaseTranspose::new(&filter_values, kernel, stride, cin, cout),
                bias,
                int8,
            },
            h,
        ))
    }

    /// `LEAKY_RELU` at op `i`.
    pub fn leaky_relu(&self, i: usize) -> Result<LeakyRelu> {
        let op = self.op(i, "LEAKY_RELU")?;
        let Options::LeakyRelu { alpha } = op.options else {
            return Err(self.mismatch(op, i, "no alpha"));
        };
        let (input, output) = (self.input(op, i, 0)?, self.output(op, i)?);
        let int8 = match input.dtype {
            DType::F32 => None,
            DType::I8 => {
                let (s_in, zero_in) = self.int8(op, i, input)?;
                let (s_out, zero_out) = self.int8(op, i, output)?;
                // TFLite's LeakyReluPrepare computes both ratios in float32, then widens.
                Some(LeakyReluInt8::new(
                    zero_in,
                    zero_out,
                    Multiplier::new((s_in / s_out) as f64),
                    Multiplier::new((s_in * alpha / s_out) as f64),
                ))
            }
            other => return Err(self.mismatch(op, i, format!("{other} input"))),
        };
        Ok(LeakyRelu { alpha, int8 })
    }

    /// `ADD` at op `i` (two dynamic inputs of one shape).
    pub fn add(&self, i: usize) -> Result<Add> {
        let op = self.op(i, "ADD")?;
        if let Options::Arithmetic { fused_activation } = op.options {
            self.no_activation(op, i, fused_activation)?;
        }
        let (a, b, output) = (
            self.input(op, i, 0)?,
            self.input(op, i, 1)?,
            self.output(op, i)?,
        );
        if a.shape != b.shape || a.data.is_some() || b.data.is_some() {
            return Err(self.mismatch(op, i, "expected two computed inputs of one shape"));
        }
        let int8 = match (a.dtype, b.dtype) {
            (DType::F32, DType::F32) => None,
            (DType::I8, DType::I8) => {
                let (s1, zero_a) = self.int8(op, i, a)?;
                let (s2, zero_b) = self.int8(op, i, b)?;
                let (so, zero_out) = self.int8(op, i, output)?;
                let left_shift = 20;
                let twice_max = 2.0 * s1.max(s2) as f64;
                Some(AddInt8::new(&AddInt8Params {
                    zero_a,
                    zero_b,
                    zero_out,
                    left_shift,
                    a: Multiplier::new(s1 as f64 / twice_max),
                    b: Multiplier::new(s2 as f64 / twice_max),
                    out: Multiplier::new(twice_max / ((1u32 << left_shift) as f32 * so) as f64),
                }))
            }
            (x, y) => return Err(self.mismatch(op, i, format!("{x} + {y}"))),
        };
        Ok(Add { int8 })
    }

    /// `QUANTIZE` float32 → int8 at op `i`.
    pub fn quantize(&self, i: usize) -> Result<Quantize> {
        let op = self.op(i, "QUANTIZE")?;
        let (input, output) = (self.input(op, i, 0)?, self.output(op, i)?);
        if input.dtype != DType::F32 {
            return Err(self.mismatch(op, i, format!("{} input (expected float32)", input.dtype)));
        }
        let (scale, zero_point) = self.int8(op, i, output)?;
        Ok(Quantize { scale, zero_point })
    }

    /// `DEQUANTIZE` int8 → float32 at op `i`.
    pub fn dequantize(&self, i: usize) -> Result<Dequantize> {
        let op = self.op(i, "DEQUANTIZE")?;
        let input = self.input(op, i, 0)?;
        let (scale, zero_point) = self.int8(op, i, input)?;
        Ok(Dequantize::new(scale, zero_point))
    }

    /// The float constant a `SUB` op at `i` subtracts (the transposed convolutions' bias, taken
    /// off the tail they carry into the next frame).
    pub fn sub_constant(&self, i: usize, channels: usize) -> Result<Vec<f32>> {
        let op = self.op(i, "SUB")?;
        let c = self.input(op, i, 1)?;
        let v = self.f32_const(op, i, c)?;
        if v.len() != channels {
            return Err(self.mismatch(
                op,
                i,
                format!("{} values for {channels} channels", v.len()),
            ));
        }
        Ok(v)
    }

    /// `SPLIT` at op `i` into `n` parts along channels.
    pub fn check_split(&self, i: usize, n: usize) -> Result<()> {
        let op = self.op(i, "SPLIT")?;
        match op.options {
            Options::Split { num_splits } if num_splits as usize == n => Ok(()),
            _ => Err(self.mismatch(op, i, format!("expected a split into {n}"))),
        }
    }

    /// The per-frame input and output sizes of the `serving_default` signature.
    pub fn check_io(&self, input: &[i32], output: &[i32]) -> Result<()> {
        let sg = self.main();
        let shape = |idx: Option<&i32>| idx.and_then(|&t| sg.tensor(t)).map(|t| t.shape.clone());
        let (i, o) = (shape(sg.inputs.first()), shape(sg.outputs.first()));
        if sg.inputs.len() != 1
            || sg.outputs.len() != 1
            || i.as_deref() != Some(input)
            || o.as_deref() != Some(output)
        {
            return Err(self.error(format!(
                "takes {i:?} and gives {o:?}, expected {input:?} -> {output:?}: is this the right file?"
            )));
        }
        Ok(())
    }
}

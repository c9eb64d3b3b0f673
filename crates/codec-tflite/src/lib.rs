//! # codec-tflite
//!
//! Reads a TensorFlow Lite model (a `.tflite` flatbuffer) into plain Rust structures: the
//! subgraphs with their operators (builtin code, inputs, outputs and the options a model port
//! needs), every tensor (shape, type, name, quantisation) and the constant data. Parsing goes
//! through the published TFLite schema (`schema/schema.fbs`) compiled by `flatc` for the
//! [`flatbuffers`] crate, whose verifier checks every offset before anything is read, so a
//! truncated or corrupted file is an error, never a panic or an out-of-bounds read.
//!
//! ```no_run
//! let bytes = std::fs::read("lyragan.tflite").unwrap();
//! let model = codec_tflite::Model::parse(&bytes).unwrap();
//! for (i, op) in model.subgraphs[0].ops.iter().enumerate() {
//!     println!("op {i}: {}", op.code);
//! }
//! ```

#[allow(
    unused_imports,
    dead_code,
    deprecated,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    clippy::all,
    clippy::pedantic,
    missing_docs
)]
mod schema_generated;

use schema_generated::tflite as fb;

/// The largest model file this reader accepts (far above any audio codec's few megabytes), so a
/// stray multi-gigabyte file is refused before the verifier walks it.
pub const MAX_MODEL_BYTES: usize = 512 << 20;

/// Why a TFLite file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a TFLite flatbuffer (wrong identifier, or the verifier rejected them).
    #[error("not a valid TFLite model: {0}")]
    Invalid(String),
    /// The file is larger than [`MAX_MODEL_BYTES`].
    #[error("the model is {0} bytes, more than the {MAX_MODEL_BYTES} this reader accepts")]
    TooLarge(usize),
    /// A reference inside the file points outside it (a tensor's buffer, an operator's code).
    #[error("corrupt TFLite model: {0}")]
    Corrupt(String),
}

/// Element type of a tensor (the schema's `TensorType`, by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DType {
    F32,
    I32,
    I8,
    U8,
    I64,
    Bool,
    Resource,
    /// Any other type, by its schema name.
    Other(&'static str),
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DType::F32 => write!(f, "float32"),
            DType::I32 => write!(f, "int32"),
            DType::I8 => write!(f, "int8"),
            DType::U8 => write!(f, "uint8"),
            DType::I64 => write!(f, "int64"),
            DType::Bool => write!(f, "bool"),
            DType::Resource => write!(f, "resource"),
            DType::Other(name) => write!(f, "{name}"),
        }
    }
}

/// Affine quantisation of a tensor: `real = scale * (q - zero_point)`, per tensor (one entry)
/// or per channel along `dimension`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantization {
    pub scale: Vec<f32>,
    pub zero_point: Vec<i64>,
    pub dimension: usize,
}

/// One tensor of a subgraph.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<i32>,
    pub dtype: DType,
    pub quantization: Option<Quantization>,
    /// Constant data (little-endian bytes), for weights and other constants.
    pub data: Option<Vec<u8>>,
    pub is_variable: bool,
}

impl Tensor {
    /// Number of elements (0 when a dimension is negative, i.e. unknown).
    pub fn num_elements(&self) -> usize {
        self.shape
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(0))
            .product()
    }

    /// The constant data as `f32`, if the tensor is a float32 constant of its shape's size.
    pub fn f32_data(&self) -> Option<Vec<f32>> {
        self.typed_data::<4>(DType::F32)
            .map(|c| c.map(f32::from_le_bytes).collect())
    }

    /// The constant data as `i32`, if the tensor is an int32 constant of its shape's size.
    pub fn i32_data(&self) -> Option<Vec<i32>> {
        self.typed_data::<4>(DType::I32)
            .map(|c| c.map(i32::from_le_bytes).collect())
    }

    /// The constant data as `i8`, if the tensor is an int8 constant of its shape's size.
    pub fn i8_data(&self) -> Option<Vec<i8>> {
        self.typed_data::<1>(DType::I8)
            .map(|c| c.map(i8::from_le_bytes).collect())
    }

    fn typed_data<const N: usize>(
        &self,
        dtype: DType,
    ) -> Option<impl Iterator<Item = [u8; N]> + '_> {
        let data = self.data.as_ref()?;
        if self.dtype != dtype || data.len() != self.num_elements() * N {
            return None;
        }
        Some(
            data.chunks_exact(N)
                .map(|c| <[u8; N]>::try_from(c).expect("chunks of N")),
        )
    }
}

/// Options of the operators a port reads; anything else is [`Options::Other`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Options {
    None,
    Conv2D {
        padding_valid: bool,
        stride_h: i32,
        stride_w: i32,
        dilation_h: i32,
        dilation_w: i32,
        fused_activation: &'static str,
    },
    DepthwiseConv2D {
        padding_valid: bool,
        stride_h: i32,
        stride_w: i32,
        dilation_h: i32,
        dilation_w: i32,
        depth_multiplier: i32,
        fused_activation: &'static str,
    },
    TransposeConv {
        padding_valid: bool,
        stride_h: i32,
        stride_w: i32,
        fused_activation: &'static str,
    },
    LeakyRelu {
        alpha: f32,
    },
    /// ADD / SUB / MUL: only the fused activation matters here.
    Arithmetic {
        fused_activation: &'static str,
    },
    Concatenation {
        axis: i32,
        fused_activation: &'static str,
    },
    Split {
        num_splits: i32,
    },
    VarHandle {
        shared_name: String,
    },
    CallOnce {
        init_subgraph: i32,
    },
    /// Options of another kind, by its schema name.
    Other(&'static str),
}

/// One operator of a subgraph.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    /// Builtin operator name, e.g. `CONV_2D` (custom operators: `CUSTOM:<name>`).
    pub code: String,
    /// Version of the operator code.
    pub version: i32,
    /// Tensor indices; -1 marks an absent optional input.
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub options: Options,
}

/// A subgraph: its tensors and operators in execution order.
#[derive(Debug, Clone, PartialEq)]
pub struct Subgraph {
    pub name: String,
    pub tensors: Vec<Tensor>,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub ops: Vec<Op>,
}

impl Subgraph {
    /// The tensor at `index`, if there is one (operators use -1 for absent inputs).
    pub fn tensor(&self, index: i32) -> Option<&Tensor> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.tensors.get(i))
    }
}

/// A named entry point (`serving_default`, `encode`, ...): tensor names to indices.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    pub key: String,
    pub subgraph: usize,
    pub inputs: Vec<(String, i32)>,
    pub outputs: Vec<(String, i32)>,
}

/// A whole TFLite model.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub version: u32,
    pub description: String,
    pub subgraphs: Vec<Subgraph>,
    pub signatures: Vec<Signature>,
}

impl Model {
    /// Parse and verify a `.tflite` file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_MODEL_BYTES {
            return Err(Error::TooLarge(bytes.len()));
        }
        if bytes.len() < 8 || !fb::model_buffer_has_identifier(bytes) {
            return Err(Error::Invalid(
                "the file does not carry the TFLite identifier \"TFL3\"".into(),
            ));
        }
        let model = fb::root_as_model(bytes).map_err(|e| Error::Invalid(e.to_string()))?;
        let buffers: Vec<Option<Vec<u8>>> = match model.buffers() {
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, b)| buffer_bytes(bytes, i, &b))
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let codes: Vec<(String, i32)> = match model.operator_codes() {
            Some(list) => list.iter().map(|c| (op_name(&c), c.version())).collect(),
            None => Vec::new(),
        };
        let mut subgraphs = Vec::new();
        for (si, sg) in model.subgraphs().into_iter().flatten().enumerate() {
            subgraphs.push(read_subgraph(si, &sg, &buffers, &codes)?);
        }
        let mut signatures = Vec::new();
        for s in model.signature_defs().into_iter().flatten() {
            let map = |v: Option<
                flatbuffers::Vector<'_, flatbuffers::ForwardsUOffset<fb::TensorMap<'_>>>,
            >| {
                v.into_iter()
                    .flatten()
                    .map(|t| {
                        (
                            t.name().unwrap_or_default().to_string(),
                            t.tensor_index() as i32,
                        )
                    })
                    .collect::<Vec<_>>()
            };
            signatures.push(Signature {
                key: s.signature_key().unwrap_or_default().to_string(),
                subgraph: s.subgraph_index() as usize,
                inputs: map(s.inputs()),
                outputs: map(s.outputs()),
            });
        }
        Ok(Model {
            version: model.version(),
            description: model.description().unwrap_or_default().to_string(),
            subgraphs,
            signatures,
        })
    }

    /// The signature with this key.
    pub fn signature(&self, key: &str) -> Option<&Signature> {
        self.signatures.iter().find(|s| s.key == key)
    }
}

/// A buffer's bytes: inline data, or (large-model mode) an offset and size into the file.
fn buffer_bytes(file: &[u8], index: usize, b: &fb::Buffer<'_>) -> Result<Option<Vec<u8>>, Error> {
    if b.offset() > 1 {
        let start = usize::try_from(b.offset()).ok();
        let end = start
            .zip(usize::try_from(b.size()).ok())
            .and_then(|(s, n)| s.checked_add(n));
        return match (start, end) {
            (Some(s), Some(e)) if e <= file.len() => Ok(Some(file[s..e].to_vec())),
            _ => Err(Error::Corrupt(format!(
                "buffer {index} points at bytes {}..+{} of a {}-byte file",
                b.offset(),
                b.size(),
                file.len()
            ))),
        };
    }
    Ok(b.data()
        .filter(|d| !d.is_empty())
        .map(|d| d.bytes().to_vec()))
}

fn op_name(c: &fb::OperatorCode<'_>) -> String {
    // Codes below 127 live in the deprecated int8 field of older files.
    let code = fb::BuiltinOperator(
        c.builtin_code()
            .0
            .max(i32::from(c.deprecated_builtin_code())),
    );
    if code == fb::BuiltinOperator::CUSTOM {
        return format!("CUSTOM:{}", c.custom_code().unwrap_or_default());
    }
    match code.variant_name() {
        Some(name) => name.to_string(),
        None => format!("BUILTIN_{}", code.0),
    }
}

fn dtype(t: fb::TensorType) -> DType {
    match t {
        fb::TensorType::FLOAT32 => DType::F32,
        fb::TensorType::INT32 => DType::I32,
        fb::TensorType::INT8 => DType::I8,
        fb::TensorType::UINT8 => DType::U8,
        fb::TensorType::INT64 => DType::I64,
        fb::TensorType::BOOL => DType::Bool,
        fb::TensorType::RESOURCE => DType::Resource,
        other => DType::Other(other.variant_name().unwrap_or("unknown")),
    }
}

fn activation(a: fb::ActivationFunctionType) -> &'static str {
    a.variant_name().unwrap_or("unknown")
}

fn read_subgraph(
    si: usize,
    sg: &fb::SubGraph<'_>,
    buffers: &[Option<Vec<u8>>],
    codes: &[(String, i32)],
) -> Result<Subgraph, Error> {
    let mut tensors = Vec::new();
    for (ti, t) in sg.tensors().into_iter().flatten().enumerate() {
        let data = match t.buffer() as usize {
            0 => None,
            b => buffers
                .get(b)
                .ok_or_else(|| {
                    Error::Corrupt(format!(
                        "subgraph {si} tensor {ti} uses buffer {b} of {}",
                        buffers.len()
                    ))
                })?
                .clone(),
        };
        let quantization = t.quantization().and_then(|q| {
            let scale: Vec<f32> = q.scale().map(|v| v.iter().collect()).unwrap_or_default();
            if scale.is_empty() {
                return None;
            }
            Some(Quantization {
                scale,
                zero_point: q
                    .zero_point()
                    .map(|v| v.iter().collect())
                    .unwrap_or_default(),
                dimension: usize::try_from(q.quantized_dimension()).unwrap_or(0),
            })
        });
        tensors.push(Tensor {
            name: t.name().unwrap_or_default().to_string(),
            shape: t.shape().map(|v| v.iter().collect()).unwrap_or_default(),
            dtype: dtype(t.type_()),
            quantization,
            data,
            is_variable: t.is_variable(),
        });
    }
    let mut ops = Vec::new();
    for (oi, op) in sg.operators().into_iter().flatten().enumerate() {
        let (code, version) = codes
            .get(op.opcode_index() as usize)
            .cloned()
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "subgraph {si} op {oi} uses operator code {} of {}",
                    op.opcode_index(),
                    codes.len()
                ))
            })?;
        let indices = |v: Option<flatbuffers::Vector<'_, i32>>| -> Result<Vec<i32>, Error> {
            let v: Vec<i32> = v.map(|v| v.iter().collect()).unwrap_or_default();
            if let Some(bad) = v
                .iter()
                .find(|&&i| i < -1 || i as i64 >= tensors.len() as i64)
            {
                return Err(Error::Corrupt(format!(
                    "subgraph {si} op {oi} ({code}) names tensor {bad} of {}",
                    tensors.len()
                )));
            }
            Ok(v)
        };
        ops.push(Op {
            inputs: indices(op.inputs())?,
            outputs: indices(op.outputs())?,
            options: options(&op),
            code,
            version,
        });
    }
    let io =
        |v: Option<flatbuffers::Vector<'_, i32>>| v.map(|v| v.iter().collect()).unwrap_or_default();
    Ok(Subgraph {
        name: sg.name().unwrap_or_default().to_string(),
        inputs: io(sg.inputs()),
        outputs: io(sg.outputs()),
        tensors,
        ops,
    })
}

fn options(op: &fb::Operator<'_>) -> Options {
    if let Some(o) = op.builtin_options_as_conv_2_doptions() {
        return Options::Conv2D {
            padding_valid: o.padding() == fb::Padding::VALID,
            stride_h: o.stride_h(),
            stride_w: o.stride_w(),
            dilation_h: o.dilation_h_factor(),
            dilation_w: o.dilation_w_factor(),
            fused_activation: activation(o.fused_activation_function()),
        };
    }
    if let Some(o) = op.builtin_options_as_depthwise_conv_2_doptions() {
        return Options::DepthwiseConv2D {
            padding_valid: o.padding() == fb::Padding::VALID,
            stride_h: o.stride_h(),
            stride_w: o.stride_w(),
            dilation_h: o.dilation_h_factor(),
            dilation_w: o.dilation_w_factor(),
            depth_multiplier: o.depth_multiplier(),
            fused_activation: activation(o.fused_activation_function()),
        };
    }
    if let Some(o) = op.builtin_options_as_transpose_conv_options() {
        return Options::TransposeConv {
            padding_valid: o.padding() == fb::Padding::VALID,
            stride_h: o.stride_h(),
            stride_w: o.stride_w(),
            fused_activation: activation(o.fused_activation_function()),
        };
    }
    if let Some(o) = op.builtin_options_as_leaky_relu_options() {
        return Options::LeakyRelu { alpha: o.alpha() };
    }
    if let Some(o) = op.builtin_options_as_add_options() {
        return Options::Arithmetic {
            fused_activation: activation(o.fused_activation_function()),
        };
    }
    if let Some(o) = op.builtin_options_as_sub_options() {
        return Options::Arithmetic {
            fused_activation: activation(o.fused_activation_function()),
        };
    }
    if let Some(o) = op.builtin_options_as_mul_options() {
        return Options::Arithmetic {
            fused_activation: activation(o.fused_activation_function()),
        };
    }
    if let Some(o) = op.builtin_options_as_concatenation_options() {
        return Options::Concatenation {
            axis: o.axis(),
            fused_activation: activation(o.fused_activation_function()),
        };
    }
    if let Some(o) = op.builtin_options_as_split_options() {
        return Options::Split {
            num_splits: o.num_splits(),
        };
    }
    if let Some(o) = op.builtin_options_as_var_handle_options() {
        return Options::VarHandle {
            shared_name: o.shared_name().unwrap_or_default().to_string(),
        };
    }
    if let Some(o) = op.builtin_options_as_call_once_options() {
        return Options::CallOnce {
            init_subgraph: o.init_subgraph_index(),
        };
    }
    match op.builtin_options_type() {
        fb::BuiltinOptions::NONE => Options::None,
        other => Options::Other(other.variant_name().unwrap_or("unknown")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bytes_without_the_identifier() {
        let err = Model::parse(b"not a model at all").unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
    }

    #[test]
    fn refuses_a_truncated_header() {
        let mut bytes = vec![0u8; 16];
        bytes[4..8].copy_from_slice(b"TFL3");
        bytes[0] = 200; // root offset beyond the end
        let err = Model::parse(&bytes).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
    }
}

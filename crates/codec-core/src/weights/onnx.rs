//! Reading the weights of an ONNX graph: its initializers, the tensors of its `Constant` nodes,
//! and the nodes (name, operator, inputs, integer attributes) that a family needs to key them.
//!
//! Some models publish their weights only as ONNX graphs (S3Tokenizer's
//! `speech_tokenizer_v*.onnx`), and their reference code derives a state dict from the names of
//! the nodes that consume each initializer. This module reads exactly what that needs and no
//! more: the graph is never executed. The messages are the subset of the published schema
//! (`onnx/onnx.proto`, field numbers as there) that carries weights, decoded with `prost`;
//! every other field is skipped by the decoder. Hand-written `prost` structs rather than
//! generated ones because code generation needs `protoc` at build time.
//!
//! ```no_run
//! use codec_core::weights::OnnxGraph;
//! let graph = OnnxGraph::load("speech_tokenizer_v2.onnx".as_ref())?;
//! for node in graph.nodes.iter().filter(|n| n.op_type == "MatMul") {
//!     if let Some(weight) = node.inputs.get(1).and_then(|i| graph.initializer(i)) {
//!         println!("{}: {:?}", node.name, weight.dims());
//!     }
//! }
//! # Ok::<(), codec_core::Error>(())
//! ```

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

use candle_core::{DType, Device, Tensor};
use prost::Message;

use crate::{Error, Result};

/// The largest ONNX file read: protobuf's own limit (bigger models keep their tensors in
/// external files, which are read tensor by tensor).
const MAX_ONNX_BYTES: u64 = 2 << 30;
/// The most dimensions a tensor may have.
const MAX_RANK: usize = 16;

/// The protobuf messages, as numbered in `onnx.proto`.
mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeProto>,
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeProto {
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        #[prost(string, tag = "3")]
        pub name: String,
        #[prost(string, tag = "4")]
        pub op_type: String,
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(int64, tag = "3")]
        pub i: i64,
        #[prost(message, optional, tag = "5")]
        pub t: Option<TensorProto>,
        #[prost(int64, repeated, tag = "8")]
        pub ints: Vec<i64>,
        #[prost(int32, tag = "20")]
        pub r#type: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        #[prost(int64, repeated, tag = "1")]
        pub dims: Vec<i64>,
        #[prost(int32, tag = "2")]
        pub data_type: i32,
        #[prost(float, repeated, tag = "4")]
        pub float_data: Vec<f32>,
        #[prost(int32, repeated, tag = "5")]
        pub int32_data: Vec<i32>,
        #[prost(int64, repeated, tag = "7")]
        pub int64_data: Vec<i64>,
        #[prost(string, tag = "8")]
        pub name: String,
        #[prost(bytes = "bytes", tag = "9")]
        pub raw_data: bytes::Bytes,
        #[prost(double, repeated, tag = "10")]
        pub double_data: Vec<f64>,
        #[prost(message, repeated, tag = "13")]
        pub external_data: Vec<StringStringEntryProto>,
        #[prost(int32, tag = "14")]
        pub data_location: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StringStringEntryProto {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `AttributeProto.AttributeType`: the kinds read here.
    pub const ATTRIBUTE_INT: i32 = 2;
    pub const ATTRIBUTE_TENSOR: i32 = 4;
    pub const ATTRIBUTE_INTS: i32 = 7;
    /// `TensorProto.DataLocation.EXTERNAL`.
    pub const EXTERNAL: i32 = 1;
}

/// `TensorProto.DataType` values read as tensors; others (strings, booleans, 8/16-bit
/// integers, complex) are skipped, being no model's weights here.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ElementType {
    F32,
    F64,
    F16,
    BF16,
    I32,
    I64,
}

impl ElementType {
    fn from_onnx(code: i32) -> Option<Self> {
        Some(match code {
            1 => Self::F32,
            6 => Self::I32,
            7 => Self::I64,
            10 => Self::F16,
            11 => Self::F64,
            16 => Self::BF16,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Self::F16 | Self::BF16 => 2,
            Self::F32 | Self::I32 => 4,
            Self::F64 | Self::I64 => 8,
        }
    }
}

/// One node of the graph, as far as weight naming needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxNode {
    /// The node's name (`/blocks.0/attn/query/MatMul` in a graph exported from PyTorch).
    pub name: String,
    /// The operator (`MatMul`, `Conv`, `LayerNormalization`, ...).
    pub op_type: String,
    /// Names of the values it reads, in order.
    pub inputs: Vec<String>,
    /// Names of the values it writes.
    pub outputs: Vec<String>,
    /// Its integer and integer-list attributes (`strides`, `group`, `axis`, ...).
    pub int_attributes: HashMap<String, Vec<i64>>,
}

/// The weights of an ONNX graph and the nodes that read them.
#[derive(Debug, Clone)]
pub struct OnnxGraph {
    /// Where the graph came from, for errors.
    pub source: String,
    /// The nodes, in the graph's order.
    pub nodes: Vec<OnnxNode>,
    initializers: HashMap<String, Tensor>,
    constants: HashMap<String, Tensor>,
}

impl OnnxGraph {
    /// Read an `.onnx` file (tensors in external files beside it are read too). Errors name
    /// the file and, for a damaged tensor, the tensor.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = crate::audio::read_bounded(path, MAX_ONNX_BYTES)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::decode(bytes, &path.display().to_string(), Some(dir))
    }

    /// Read a graph from memory; one whose tensors live in external files is refused.
    pub fn from_bytes(bytes: Vec<u8>, source: &str) -> Result<Self> {
        Self::decode(bytes, source, None)
    }

    fn decode(bytes: Vec<u8>, source: &str, dir: Option<&Path>) -> Result<Self> {
        let model = proto::ModelProto::decode(bytes::Bytes::from(bytes))
            .map_err(|e| Error::weights(source, format!("not an ONNX model ({e})")))?;
        let graph = model
            .graph
            .ok_or_else(|| Error::weights(source, "the ONNX model has no graph"))?;
        let mut initializers = HashMap::new();
        for t in &graph.initializer {
            if let Some(tensor) = to_tensor(t, source, dir)? {
                initializers.insert(t.name.clone(), tensor);
            }
        }
        let mut constants = HashMap::new();
        let mut nodes = Vec::with_capacity(graph.node.len());
        for n in graph.node {
            let mut int_attributes = HashMap::new();
            for a in &n.attribute {
                match a.r#type {
                    proto::ATTRIBUTE_INT => {
                        int_attributes.insert(a.name.clone(), vec![a.i]);
                    }
                    proto::ATTRIBUTE_INTS => {
                        int_attributes.insert(a.name.clone(), a.ints.clone());
                    }
                    proto::ATTRIBUTE_TENSOR if n.op_type == "Constant" && a.name == "value" => {
                        let (Some(t), Some(out)) = (&a.t, n.output.first()) else {
                            continue;
                        };
                        if let Some(tensor) = to_tensor(t, source, dir)? {
                            constants.insert(out.clone(), tensor);
                        }
                    }
                    _ => {}
                }
            }
            nodes.push(OnnxNode {
                name: n.name,
                op_type: n.op_type,
                inputs: n.input,
                outputs: n.output,
                int_attributes,
            });
        }
        if initializers.is_empty() && constants.is_empty() {
            return Err(Error::weights(source, "the ONNX graph holds no tensors"));
        }
        Ok(Self {
            source: source.to_string(),
            nodes,
            initializers,
            constants,
        })
    }

    /// The initializer of that name (a graph weight), on the CPU in its stored dtype.
    pub fn initializer(&self, name: &str) -> Option<&Tensor> {
        self.initializers.get(name)
    }

    /// Names of every initializer, sorted.
    pub fn initializer_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.initializers.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The tensor of a `Constant` node's output of that name.
    pub fn constant(&self, output: &str) -> Option<&Tensor> {
        self.constants.get(output)
    }

    /// The first node of that name.
    pub fn node(&self, name: &str) -> Option<&OnnxNode> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// A `TensorProto` as a candle tensor, `None` for an element type that is no weight.
fn to_tensor(t: &proto::TensorProto, source: &str, dir: Option<&Path>) -> Result<Option<Tensor>> {
    let Some(kind) = ElementType::from_onnx(t.data_type) else {
        return Ok(None);
    };
    let bad = |why: String| Error::weights(source, format!("tensor `{}`: {why}", t.name));
    if t.dims.len() > MAX_RANK || t.dims.iter().any(|&d| d < 0) {
        return Err(bad(format!("dimensions {:?}", t.dims)));
    }
    let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let elements = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| bad(format!("dimensions {:?} overflow", t.dims)))?;
    let want_bytes = elements
        .checked_mul(kind.size())
        .ok_or_else(|| bad("too large".into()))?;
    let external;
    let raw: &[u8] = if t.data_location == proto::EXTERNAL {
        let dir = dir.ok_or_else(|| bad("its data is in an external file".into()))?;
        external = read_external(t, dir, want_bytes).map_err(bad)?;
        &external
    } else {
        &t.raw_data
    };
    let shape = dims.as_slice();
    let cpu = &Device::Cpu;
    let tensor = if !raw.is_empty() {
        if raw.len() != want_bytes {
            return Err(bad(format!(
                "{} bytes of data for dimensions {:?} ({want_bytes} expected)",
                raw.len(),
                t.dims
            )));
        }
        let dtype = match kind {
            ElementType::F32 => DType::F32,
            ElementType::F64 => DType::F64,
            ElementType::F16 => DType::F16,
            ElementType::BF16 => DType::BF16,
            ElementType::I64 => DType::I64,
            ElementType::I32 => {
                let v: Vec<i64> = raw
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                    .collect();
                return Ok(Some(Tensor::from_vec(v, shape, cpu)?));
            }
        };
        Tensor::from_raw_buffer(raw, dtype, shape, cpu)?
    } else {
        // Typed fields: float/int32/int64/double_data (16-bit floats sit in int32_data).
        let count = |n: usize| {
            if n == elements {
                Ok(())
            } else {
                Err(bad(format!(
                    "{n} values for dimensions {:?} ({elements} expected)",
                    t.dims
                )))
            }
        };
        match kind {
            ElementType::F32 => {
                count(t.float_data.len())?;
                Tensor::from_vec(t.float_data.clone(), shape, cpu)?
            }
            ElementType::F64 => {
                count(t.double_data.len())?;
                Tensor::from_vec(t.double_data.clone(), shape, cpu)?
            }
            ElementType::I64 => {
                count(t.int64_data.len())?;
                Tensor::from_vec(t.int64_data.clone(), shape, cpu)?
            }
            ElementType::I32 => {
                count(t.int32_data.len())?;
                let v: Vec<i64> = t.int32_data.iter().map(|&x| x as i64).collect();
                Tensor::from_vec(v, shape, cpu)?
            }
            ElementType::F16 | ElementType::BF16 => {
                count(t.int32_data.len())?;
                let bytes: Vec<u8> = t
                    .int32_data
                    .iter()
                    .flat_map(|&x| (x as u16).to_le_bytes())
                    .collect();
                let dtype = if kind == ElementType::F16 {
                    DType::F16
                } else {
                    DType::BF16
                };
                Tensor::from_raw_buffer(&bytes, dtype, shape, cpu)?
            }
        }
    };
    Ok(Some(tensor))
}

/// The bytes of a tensor kept in a file beside the graph (`location`, `offset`, `length`); the
/// location must stay inside the graph's folder.
fn read_external(
    t: &proto::TensorProto,
    dir: &Path,
    want_bytes: usize,
) -> std::result::Result<Vec<u8>, String> {
    let entry = |key: &str| {
        t.external_data
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    };
    let location = entry("location").ok_or("external data without a location")?;
    let rel = Path::new(location);
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "external file `{location}` is outside the graph's folder"
        ));
    }
    let number = |key: &str| -> std::result::Result<u64, String> {
        entry(key).map_or(Ok(0), |v| {
            v.parse::<u64>()
                .map_err(|_| format!("external data {key} `{v}` is not a number"))
        })
    };
    let offset = number("offset")?;
    let length = match entry("length") {
        Some(_) => number("length")?,
        None => want_bytes as u64,
    };
    if length != want_bytes as u64 {
        return Err(format!(
            "external data of {length} bytes for a tensor of {want_bytes}"
        ));
    }
    let path = dir.join(rel);
    let mut file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let size = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(format!(
            "bytes {offset}..{} of {} are past its end ({size} bytes)",
            offset.saturating_add(length),
            path.display()
        ));
    }
    let mut bytes = vec![0u8; want_bytes];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut bytes))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, dims: &[i64], values: &[f32]) -> proto::TensorProto {
        proto::TensorProto {
            dims: dims.to_vec(),
            data_type: 1,
            name: name.into(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        }
    }

    fn model(initializer: Vec<proto::TensorProto>, node: Vec<proto::NodeProto>) -> Vec<u8> {
        proto::ModelProto {
            graph: Some(proto::GraphProto { node, initializer }),
        }
        .encode_to_vec()
    }

    #[test]
    fn reads_initializers_constants_and_attributes() {
        let mut typed = tensor("typed", &[3], &[]);
        typed.raw_data = Default::default();
        typed.float_data = vec![1.0, 2.0, 3.0];
        let node = proto::NodeProto {
            input: vec!["x".into(), "w".into()],
            output: vec!["y".into()],
            name: "/conv/Conv".into(),
            op_type: "Conv".into(),
            attribute: vec![proto::AttributeProto {
                name: "strides".into(),
                ints: vec![2],
                r#type: proto::ATTRIBUTE_INTS,
                ..Default::default()
            }],
        };
        let constant = proto::NodeProto {
            output: vec!["c".into()],
            name: "/Constant".into(),
            op_type: "Constant".into(),
            attribute: vec![proto::AttributeProto {
                name: "value".into(),
                t: Some(tensor("", &[2], &[5.0, 6.0])),
                r#type: proto::ATTRIBUTE_TENSOR,
                ..Default::default()
            }],
            ..Default::default()
        };
        let bytes = model(
            vec![tensor("w", &[2, 2], &[1.0, 2.0, 3.0, 4.0]), typed],
            vec![node, constant],
        );
        let g = OnnxGraph::from_bytes(bytes, "test").unwrap();
        let w = g.initializer("w").unwrap();
        assert_eq!(w.dims(), &[2, 2]);
        assert_eq!(
            w.to_vec2::<f32>().unwrap(),
            vec![vec![1.0, 2.0], vec![3.0, 4.0]]
        );
        assert_eq!(
            g.initializer("typed").unwrap().to_vec1::<f32>().unwrap(),
            vec![1.0, 2.0, 3.0]
        );
        assert_eq!(
            g.constant("c").unwrap().to_vec1::<f32>().unwrap(),
            vec![5.0, 6.0]
        );
        let conv = g.node("/conv/Conv").unwrap();
        assert_eq!(conv.int_attributes["strides"], vec![2]);
        assert_eq!(g.initializer_names(), vec!["typed", "w"]);
    }

    #[test]
    fn damaged_graphs_are_errors() {
        // Not protobuf at all.
        assert!(OnnxGraph::from_bytes(vec![0xff; 16], "junk").is_err());
        // Data that does not fill the dimensions, and dimensions that overflow.
        let short = model(vec![tensor("w", &[4, 4], &[1.0])], vec![]);
        let err = OnnxGraph::from_bytes(short, "short")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`w`") && err.contains("64 expected"), "{err}");
        let huge = model(vec![tensor("w", &[1 << 40, 1 << 40], &[1.0])], vec![]);
        assert!(OnnxGraph::from_bytes(huge, "huge").is_err());
        let negative = model(vec![tensor("w", &[-1], &[1.0])], vec![]);
        assert!(OnnxGraph::from_bytes(negative, "negative").is_err());
        // External data from memory, and paths that leave the folder.
        let mut ext = tensor("w", &[1], &[]);
        ext.raw_data = Default::default();
        ext.data_location = proto::EXTERNAL;
        ext.external_data = vec![proto::StringStringEntryProto {
            key: "location".into(),
            value: "../secret.bin".into(),
        }];
        let bytes = model(vec![ext], vec![]);
        assert!(OnnxGraph::from_bytes(bytes.clone(), "mem").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        std::fs::write(&path, bytes).unwrap();
        let err = OnnxGraph::load(&path).unwrap_err().to_string();
        assert!(err.contains("outside the graph's folder"), "{err}");
        // An empty graph.
        assert!(OnnxGraph::from_bytes(model(vec![], vec![]), "empty").is_err());
    }

    #[test]
    fn external_data_is_read_in_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let values: Vec<u8> = [7.0f32, 8.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(dir.path().join("w.bin"), [&[0u8; 4][..], &values].concat()).unwrap();
        let external = |offset: &str| {
            let mut t = tensor("w", &[2], &[]);
            t.raw_data = Default::default();
            t.data_location = proto::EXTERNAL;
            t.external_data = [("location", "w.bin"), ("offset", offset), ("length", "8")]
                .iter()
                .map(|(k, v)| proto::StringStringEntryProto {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect();
            t
        };
        let path = dir.path().join("m.onnx");
        std::fs::write(&path, model(vec![external("4")], vec![])).unwrap();
        let g = OnnxGraph::load(&path).unwrap();
        assert_eq!(
            g.initializer("w").unwrap().to_vec1::<f32>().unwrap(),
            vec![7.0, 8.0]
        );
        std::fs::write(&path, model(vec![external("8")], vec![])).unwrap();
        let err = OnnxGraph::load(&path).unwrap_err().to_string();
        assert!(err.contains("past its end"), "{err}");
    }
}

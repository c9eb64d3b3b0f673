//! S3Tokenizer's published ONNX graphs as its state dict: the keys the reference package's
//! converters derive from the graph (`onnx2torch` for v1 / v2, `onnx2torch_v3` for v3, in
//! `s3tokenizer` 0.3.0), and the architecture the graph implies.
//!
//! Both converters key a weight by what reads it, not by its own name (the exporter named most
//! initializers `onnx::MatMul_2220` and the like):
//!
//! - v1 / v2: the convolutions and a few tensors by fixed initializer names; a
//!   `LayerNormalization` node's scale and bias by the node's name; every other initializer by
//!   the name of each node reading it (`/blocks.0/attn/query/MatMul` -> `encoder.blocks.0.attn.
//!   query.weight`, `.../Add` -> `.bias`, `Mul` / `Add_1` -> a decomposed norm's weight / bias,
//!   `fsmn_block/Conv` -> `fsmn_block.weight`), 2-D ones transposed (ONNX's MatMul stores
//!   `[in, out]`), except the position table; v1's codebook is the input of
//!   `/quantizer/rq/model/layers.0/_codebook/Pow_1`.
//! - v3: by node-name patterns (`/conv1/Conv`, `attn/query/MatMul`, `attn_ln/Mul`, ...), biases
//!   from initializers or `Constant` nodes, the FSMN weights and the projection's bias by their
//!   initializer names, the projection by the `MatMul` of a node named `quantizer`.
//!
//! Which converter applies is told by the graph: v1 / v2's fixed convolution names, else v3's
//! `/conv1/Conv` node. The first convolution's stride is read from its node (v1 comes at 50 Hz
//! with stride 1 and at 25 Hz with stride 2).

use std::collections::HashMap;

use candle_core::Tensor;

use super::config::{S3TokenizerConfig, S3Variant};
use super::weights::{infer_with_stride, variant_of};
use crate::weights::{OnnxGraph, OnnxNode, StateDict};
use crate::{Error, Result};

/// conv1 / conv2 weight and bias initializers of the published v1 (50 Hz), v1 (25 Hz) and v2
/// graphs, as `onnx2torch` lists them.
const FIXED_CONV_NAMES: [(&str, [&str; 3]); 4] = [
    (
        "encoder.conv1.weight",
        [
            "onnx::Conv_1519",
            "encoders.conv1.weight",
            "onnx::Conv_2216",
        ],
    ),
    (
        "encoder.conv1.bias",
        ["onnx::Conv_1520", "encoders.conv1.bias", "onnx::Conv_2217"],
    ),
    (
        "encoder.conv2.weight",
        [
            "onnx::Conv_1521",
            "encoders.conv2.weight",
            "onnx::Conv_2218",
        ],
    ),
    (
        "encoder.conv2.bias",
        ["onnx::Conv_1522", "encoders.conv2.bias", "onnx::Conv_2219"],
    ),
];

/// The node whose input is v1's codebook.
const V1_CODEBOOK_NODE: &str = "/quantizer/rq/model/layers.0/_codebook/Pow_1";

/// The state dict and the architecture of an S3Tokenizer ONNX graph; `None` when the graph is
/// not S3Tokenizer's (neither converter's markers are in it).
pub fn from_onnx(graph: &OnnxGraph) -> Option<Result<(StateDict, S3TokenizerConfig)>> {
    let v12 = FIXED_CONV_NAMES[0]
        .1
        .iter()
        .any(|n| graph.initializer(n).is_some());
    let v3 = graph.node("/conv1/Conv").is_some();
    if !v12 && !v3 {
        return None;
    }
    Some(read_graph(graph, v12))
}

fn read_graph(graph: &OnnxGraph, v12: bool) -> Result<(StateDict, S3TokenizerConfig)> {
    let tensors = if v12 {
        convert_v1_v2(graph)?
    } else {
        convert_v3(graph)?
    };
    let state = StateDict {
        source: graph.source.clone(),
        tensors,
    };
    if variant_of(&state).is_none() {
        return Err(Error::weights(
            &graph.source,
            "the ONNX graph looks like S3Tokenizer's but lacks its quantizer (neither v2's \
             project_down nor v1's codebook was found)",
        ));
    }
    let stride = conv1_stride(graph)?;
    let config = infer_with_stride(&state, Some(stride))?;
    if config.variant == S3Variant::V2 && stride != 2 {
        return Err(Error::config(
            &graph.source,
            format!("a v2 graph whose first convolution has stride {stride} (2 expected)"),
        ));
    }
    Ok((state, config))
}

/// The `strides` of the convolution reading conv1's weight (1 when the node omits it, as ONNX
/// defines).
fn conv1_stride(graph: &OnnxGraph) -> Result<usize> {
    let reads_conv1 = |n: &&OnnxNode| {
        n.op_type == "Conv"
            && (n.name == "/conv1/Conv"
                || n.inputs
                    .get(1)
                    .is_some_and(|i| FIXED_CONV_NAMES[0].1.contains(&i.as_str())))
    };
    let node = graph.nodes.iter().find(reads_conv1).ok_or_else(|| {
        Error::weights(
            &graph.source,
            "no Conv node reads the first convolution's weight",
        )
    })?;
    match node.int_attributes.get("strides").map(Vec::as_slice) {
        None => Ok(1),
        Some(&[s]) if (1..=2).contains(&s) => Ok(s as usize),
        Some(other) => Err(Error::weights(
            &graph.source,
            format!("the first convolution's strides {other:?} (1 or 2 expected)"),
        )),
    }
}

fn transposed_if_2d(t: &Tensor) -> Result<Tensor> {
    Ok(if t.rank() == 2 {
        t.t()?.contiguous()?
    } else {
        t.clone()
    })
}

/// `onnx2torch`: every initializer keyed by what reads it, then `_rename_weights`.
fn convert_v1_v2(graph: &OnnxGraph) -> Result<HashMap<String, Tensor>> {
    let src = graph.source.as_str();
    // Raw names in the order the reference inserts them (a later write replaces the value).
    let mut raw: Vec<(String, Tensor)> = Vec::new();
    let mut put = |key: String, value: Tensor| match raw.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => raw.push((key, value)),
    };
    for node in &graph.nodes {
        for input in &node.inputs {
            let Some(init) = graph.initializer(input) else {
                continue;
            };
            let fixed = FIXED_CONV_NAMES
                .iter()
                .find(|(_, names)| names.contains(&input.as_str()))
                .map(|(key, _)| key.to_string());
            let name = match (fixed, input.as_str()) {
                (Some(key), _) => key,
                (None, "encoders.positional_embedding") => "encoder.positional_embedding".into(),
                (None, "quantizer.project_in.bias") => {
                    "quantizer._codebook.project_down.bias".into()
                }
                (None, "onnx::MatMul_2536") => "quantizer._codebook.project_down.weight".into(),
                _ if node.op_type == "LayerNormalization" => {
                    let norm = node.name.replace("/LayerNormalization", "");
                    let part = |i: usize, what: &str| {
                        node.inputs
                            .get(i)
                            .and_then(|n| graph.initializer(n))
                            .cloned()
                            .ok_or_else(|| {
                                Error::weights(
                                    src,
                                    format!("LayerNormalization `{}` has no {what}", node.name),
                                )
                            })
                    };
                    put(format!("{norm}.bias"), part(2, "bias")?);
                    put(format!("{norm}.weight"), part(1, "scale")?);
                    continue;
                }
                _ => node.name.clone(),
            };
            let value = if init.rank() > 2 || name == "encoder.positional_embedding" {
                init.clone()
            } else {
                transposed_if_2d(init)?
            };
            put(name, value);
        }
    }
    let mut out = HashMap::new();
    for (k, v) in raw {
        if k.contains("quantizer") {
            if k == V1_CODEBOOK_NODE {
                out.insert("quantizer._codebook.embed".to_string(), v);
            } else if k.contains("project_down") {
                out.insert(k, v);
            }
        } else if k.contains("positional_embedding") || k.contains("conv") {
            out.insert(k, v);
        } else if k.contains("blocks") {
            let renamed = k
                .get(1..)
                .unwrap_or_default()
                .replace('/', ".")
                .replace("MatMul", "weight")
                .replace("Add_1", "bias")
                .replace("Mul", "weight")
                .replace("Add", "bias")
                .replace("mlp.mlp", "mlp")
                .replace("fsmn_block.Conv", "fsmn_block.weight");
            out.insert(format!("encoder.{renamed}"), v);
        } else {
            // The reference asserts here: a weight outside the blocks it knows.
            return Err(Error::weights(
                src,
                format!("an initializer read by `{k}`, which no S3Tokenizer weight is"),
            ));
        }
    }
    Ok(out)
}

/// `onnx2torch_v3`: node-name patterns.
fn convert_v3(graph: &OnnxGraph) -> Result<HashMap<String, Tensor>> {
    let tensor = |name: &str, transpose: bool| -> Result<Option<Tensor>> {
        let t = graph.initializer(name).or_else(|| graph.constant(name));
        match t {
            Some(t) if transpose => Ok(Some(transposed_if_2d(t)?)),
            Some(t) => Ok(Some(t.clone())),
            None => Ok(None),
        }
    };
    let input = |node: &OnnxNode, i: usize, transpose: bool| -> Result<Option<Tensor>> {
        match node.inputs.get(i) {
            Some(name) => tensor(name, transpose),
            None => Ok(None),
        }
    };
    // An Add's parameter: the first input that is an initializer or a constant.
    let bias = |node: &OnnxNode| -> Result<Option<Tensor>> {
        for name in &node.inputs {
            if let Some(t) = tensor(name, false)? {
                return Ok(Some(t));
            }
        }
        Ok(None)
    };
    // As the reference: a later write replaces an earlier one, even with "nothing".
    let mut out: HashMap<String, Option<Tensor>> = HashMap::new();
    for node in &graph.nodes {
        let (name, op) = (node.name.as_str(), node.op_type.as_str());
        match name {
            "/conv1/Conv" | "/conv2/Conv" => {
                let conv = &name[1..6];
                out.insert(format!("encoder.{conv}.weight"), input(node, 1, false)?);
                if node.inputs.len() > 2 {
                    out.insert(format!("encoder.{conv}.bias"), input(node, 2, false)?);
                }
                continue;
            }
            _ => {}
        }
        let Some(rest) = name.strip_prefix("/blocks.") else {
            continue;
        };
        let index = rest.split(['.', '/']).next().unwrap_or_default();
        let prefix = format!("encoder.blocks.{index}");
        let norm_bias = |node: &OnnxNode| -> Result<Option<Tensor>> {
            Ok(bias(node)?.filter(|t| t.elem_count() > 1))
        };
        let mut set = |key: &str, value: Option<Tensor>| {
            out.insert(format!("{prefix}.{key}"), value);
        };
        if name.contains("attn_ln/Mul") && op == "Mul" {
            set("attn_ln.weight", input(node, 1, false)?);
        } else if name.contains("attn_ln/Add") && op == "Add" {
            if let Some(t) = norm_bias(node)? {
                set("attn_ln.bias", Some(t));
            }
        } else if name.contains("mlp_ln/Mul") && op == "Mul" {
            set("mlp_ln.weight", input(node, 1, false)?);
        } else if name.contains("mlp_ln/Add") && op == "Add" {
            if let Some(t) = norm_bias(node)? {
                set("mlp_ln.bias", Some(t));
            }
        } else {
            const LINEARS: [(&str, &str); 6] = [
                ("attn/query/", "attn.query"),
                ("attn/key/", "attn.key"),
                ("attn/value/", "attn.value"),
                ("attn/out/", "attn.out"),
                ("mlp/mlp.0/", "mlp.0"),
                ("mlp/mlp.2/", "mlp.2"),
            ];
            for (pattern, key) in LINEARS {
                if name.contains(&format!("{pattern}MatMul")) {
                    set(&format!("{key}.weight"), input(node, 1, true)?);
                    break;
                }
                if name.contains(&format!("{pattern}Add")) {
                    set(&format!("{key}.bias"), bias(node)?);
                    break;
                }
            }
        }
    }
    for name in graph.initializer_names() {
        if name.contains("fsmn_block.weight") {
            out.insert(format!("encoder.{name}"), tensor(name, false)?);
        }
        if name.contains("quantizer.project_in.bias") {
            out.insert(
                "quantizer._codebook.project_down.bias".into(),
                tensor(name, false)?,
            );
        }
    }
    for node in &graph.nodes {
        if node.name.contains("quantizer") && node.op_type.contains("MatMul") {
            out.insert(
                "quantizer._codebook.project_down.weight".into(),
                input(node, 1, true)?,
            );
        }
    }
    Ok(out.into_iter().filter_map(|(k, v)| Some((k, v?))).collect())
}

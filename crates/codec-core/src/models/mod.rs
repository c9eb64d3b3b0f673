//! Model families. Each family is one module (a folder for the large ones) with a serde
//! `Config` (named constructors for the published variants), a model implementing
//! [`crate::Codec`], and one value implementing [`Family`]: how to recognise its checkpoints
//! and configs, read its config, map its published key layouts, build it and check its cards.
//!
//! To add a family: write its module, add its line to [`FAMILIES`], and add model cards for it
//! in `models/` at the repo root. Nothing else names a family: the card loader, `--model`
//! resolution, `codec convert`, the CLI and the card tests all go through [`Family`].

pub mod dac;
pub mod encodec;
mod family;
pub mod lyra;
pub mod mimi;
pub mod moss_audio_tokenizer;
pub mod qwen3_tts;
pub mod s3tokenizer;
pub mod snac;
pub mod speechtokenizer;
pub mod tinycodec;
pub mod wavtokenizer;
pub mod xcodec2;
pub mod xy_tokenizer;

pub use family::{
    architecture, no_config_file, ArchSource, CardFacts, CheckpointFamily, Family, Loaded, OnnxFn,
    Score,
};

use crate::weights::{OnnxGraph, StateDict};
use crate::{Error, Result};

/// Every family this build can load: one line per family.
pub static FAMILIES: &[&dyn Family] = &[
    &tinycodec::FAMILY,
    &wavtokenizer::FAMILY,
    &dac::FAMILY,
    &snac::FAMILY,
    &encodec::FAMILY,
    &speechtokenizer::FAMILY,
    &s3tokenizer::FAMILY,
    &xcodec2::FAMILY,
    &mimi::FAMILY,
    &qwen3_tts::FAMILY,
    &xy_tokenizer::FAMILY,
    &lyra::FAMILY,
    &moss_audio_tokenizer::FAMILY,
];

/// The names of [`FAMILIES`], for messages.
pub fn family_names() -> Vec<&'static str> {
    FAMILIES.iter().map(|f| f.name()).collect()
}

/// The family called `name`; the error lists the supported ones.
pub fn family(name: &str) -> Result<&'static dyn Family> {
    FAMILIES
        .iter()
        .copied()
        .find(|f| f.name() == name)
        .ok_or_else(|| Error::UnknownModel {
            name: name.to_string(),
            hint: format!(
                "family '{name}' is not supported by this build (supported: {})",
                family_names().join(", ")
            ),
        })
}

/// The family whose score is highest (above none); the first listed wins a tie.
fn best(score: impl Fn(&dyn Family) -> Score) -> Option<&'static dyn Family> {
    let mut best: Option<(&'static dyn Family, Score)> = None;
    for &f in FAMILIES {
        let s = score(f);
        if s > Score::NONE && best.is_none_or(|(_, b)| s > b) {
            best = Some((f, s));
        }
    }
    best.map(|(f, _)| f)
}

/// The family a checkpoint's keys match best.
pub fn detect_from_weights(weights: &StateDict) -> Option<&'static dyn Family> {
    best(|f| f.weights_score(weights))
}

/// The family a reference config file's text matches best.
pub fn detect_from_config(text: &str) -> Option<&'static dyn Family> {
    best(|f| f.config_score(text))
}

/// The name of the family a checkpoint's keys match best.
pub fn detect_family_from_weights(weights: &StateDict) -> Option<&'static str> {
    detect_from_weights(weights).map(|f| f.name())
}

/// The graph family whose files are all in `dir`, if any.
pub fn detect_graph_family(dir: &std::path::Path) -> Option<&'static dyn Family> {
    FAMILIES.iter().copied().find(|f| {
        f.graph_files()
            .is_some_and(|files| files.iter().all(|n| dir.join(n).is_file()))
    })
}

/// The inference weights of a checkpoint (training-only entries dropped, weight norm folded),
/// as `codec convert` writes them, with the family they are for. The result loads through the
/// same path as the checkpoint.
pub fn inference_weights(state: StateDict) -> Result<(&'static str, StateDict)> {
    let family = detect_from_weights(&state).ok_or_else(|| Error::UnknownModel {
        name: state.source.clone(),
        hint: format!(
            "the key names match no supported family ({})",
            family_names().join(", ")
        ),
    })?;
    Ok((family.name(), family.inference_weights(state)?))
}

/// Whether a weight file is an ONNX graph (by its extension: ONNX has no magic number).
pub fn is_onnx_file(path: &std::path::Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

fn no_onnx_family(graph: &OnnxGraph) -> Error {
    Error::UnknownModel {
        name: graph.source.clone(),
        hint: "no supported family reads this ONNX graph (S3Tokenizer's published \
               speech_tokenizer_v*.onnx are the graphs read)"
            .into(),
    }
}

/// The inference weights of an ONNX graph, in the layout of the family that reads it (as
/// `codec convert` writes them), with that family's name.
pub fn onnx_inference_weights(graph: &OnnxGraph) -> Result<(&'static str, StateDict)> {
    for family in FAMILIES {
        if let Some(state) = family.onnx_weights(graph) {
            return Ok((family.name(), family.inference_weights(state?)?));
        }
    }
    Err(no_onnx_family(graph))
}

/// Build a model from an ONNX graph: by `family` when known (a card names it), else by the
/// first family that reads the graph.
pub fn load_onnx(
    family: Option<&'static dyn Family>,
    arch: ArchSource<'_>,
    graph: &OnnxGraph,
    name: &str,
    device: &candle_core::Device,
) -> Result<Loaded> {
    let candidates: Vec<&'static dyn Family> = match family {
        Some(f) => vec![f],
        None => FAMILIES.to_vec(),
    };
    for f in candidates {
        if let Some(loaded) = f.load_onnx(arch.clone(), graph, name, device) {
            return loaded;
        }
    }
    match family {
        Some(f) => Err(Error::UnknownModel {
            name: name.to_string(),
            hint: format!("family '{}' does not read this ONNX graph", f.name()),
        }),
        None => Err(no_onnx_family(graph)),
    }
}

//! Model families. Each family is one module with a serde `Config` (named constructors for the
//! published variants) and a type implementing [`crate::Codec`].
//!
//! To add a family: write its module (a `Config` implementing [`FamilyConfig`] and a model
//! implementing [`Codec`]), give it a line in [`load_family`] and [`detect_family_from_weights`],
//! and add model cards for it in `models/` at the repo root. The CLI does not change.
//!
//! A family whose published weights are its own graph files rather than a tensor checkpoint
//! (Lyra's three TFLite files) gives a line in [`graph_files`] and [`load_graph_family`]
//! instead.

pub mod dac;
pub mod encodec;
pub mod lyra;
pub mod mimi;
pub mod snac;
pub mod tinycodec;
pub mod wavtokenizer;
pub mod xcodec2;

use candle_core::Device;

use crate::codec::Codec;
use crate::weights::StateDict;
use crate::{Error, Result};

/// Families this build can load.
pub const FAMILIES: &[&str] = &[
    "tinycodec",
    "wavtokenizer",
    "dac",
    "snac",
    "encodec",
    "xcodec2",
    "mimi",
    "lyra",
];

/// Where a model's architecture comes from.
#[derive(Debug, Clone)]
pub enum ArchSource<'a> {
    /// The `[architecture]` table of a model card.
    Card(&'a toml::Table),
    /// The reference implementation's own config file (e.g. WavTokenizer's training yaml).
    ReferenceConfig { text: &'a str, source: &'a str },
    /// Nothing given: infer from the weights' shapes.
    Infer,
}

/// What the registry needs from a family's `Config`: how to read it from each source, and how
/// to build the model from it. Each family module implements it for its config type.
pub trait FamilyConfig: serde::de::DeserializeOwned {
    /// Read the reference implementation's own config file (YAML or JSON).
    fn from_reference(text: &str, source: &str) -> Result<Self>;
    /// Read the architecture off the shapes of a checkpoint given without a config.
    fn infer(weights: &StateDict) -> Result<Self>;
    /// Build the model.
    fn build(&self, weights: StateDict, name: &str, device: &Device) -> Result<Box<dyn Codec>>;
}

fn load_as<C: FamilyConfig>(
    arch: ArchSource<'_>,
    weights: StateDict,
    name: &str,
    device: &Device,
) -> Result<Box<dyn Codec>> {
    let config = match arch {
        ArchSource::Card(table) => table
            .clone()
            .try_into::<C>()
            .map_err(|e| Error::config(name, format!("architecture: {e}")))?,
        ArchSource::ReferenceConfig { text, source } => C::from_reference(text, source)?,
        ArchSource::Infer => C::infer(&weights)?,
    };
    config.build(weights, name, device)
}

/// Build a model of `family` from its architecture description and weights.
pub fn load_family(
    family: &str,
    arch: ArchSource<'_>,
    weights: StateDict,
    name: &str,
    device: &Device,
) -> Result<Box<dyn Codec>> {
    match family {
        "tinycodec" => load_as::<tinycodec::TinyCodecConfig>(arch, weights, name, device),
        "wavtokenizer" => load_as::<wavtokenizer::WavTokenizerConfig>(arch, weights, name, device),
        "encodec" => load_as::<encodec::EncodecConfig>(arch, weights, name, device),
        "dac" => load_as::<dac::DacConfig>(arch, weights, name, device),
        "snac" => load_as::<snac::SnacConfig>(arch, weights, name, device),
        "xcodec2" => load_as::<xcodec2::XCodec2Config>(arch, weights, name, device),
        "mimi" => load_as::<mimi::MimiConfig>(arch, weights, name, device),
        other => Err(Error::UnknownModel {
            name: name.to_string(),
            hint: format!(
                "family '{other}' is not supported by this build (supported: {})",
                FAMILIES.join(", ")
            ),
        }),
    }
}

/// The files a graph family's model consists of (`None`: the family loads a tensor checkpoint).
pub fn graph_files(family: &str) -> Option<&'static [&'static str]> {
    match family {
        "lyra" => Some(&lyra::FILES),
        _ => None,
    }
}

/// The graph family whose files are all in `dir`, if any.
pub fn detect_graph_family(dir: &std::path::Path) -> Option<&'static str> {
    FAMILIES
        .iter()
        .copied()
        .find(|f| graph_files(f).is_some_and(|files| files.iter().all(|n| dir.join(n).is_file())))
}

/// Build a model of a graph family from its files' bytes (in [`graph_files`] order); the
/// architecture comes from a card, or is the published model's when `arch` is `None`.
pub fn load_graph_family(
    family: &str,
    arch: Option<&toml::Table>,
    files: &[Vec<u8>],
    name: &str,
    device: &Device,
) -> Result<Box<dyn Codec>> {
    match (family, files) {
        ("lyra", [encoder, quantizer, generator]) => {
            let config = match arch {
                Some(table) => table
                    .clone()
                    .try_into::<lyra::LyraConfig>()
                    .map_err(|e| Error::config(name, format!("architecture: {e}")))?,
                None => lyra::LyraConfig::lyra_v2(),
            };
            let model =
                lyra::Lyra::from_bytes(&config, [encoder, quantizer, generator], name, device)?;
            Ok(Box::new(model))
        }
        _ => Err(Error::UnknownModel {
            name: name.to_string(),
            hint: format!(
                "family '{family}' does not load from {} graph files",
                files.len()
            ),
        }),
    }
}

/// Guess the family from a checkpoint's key names.
pub fn detect_family_from_weights(weights: &StateDict) -> Option<&'static str> {
    let has = |p: &str| weights.tensors.keys().any(|k| k.starts_with(p));
    if has("encoder_proj.") && has("decoder.convnext.") {
        return Some("tinycodec");
    }
    if xcodec2::looks_like_xcodec2(weights) {
        return Some("xcodec2");
    }
    if mimi::looks_like_mimi(weights) {
        return Some("mimi");
    }
    if snac::looks_like_snac(weights) {
        return Some("snac");
    }
    if dac::looks_like_dac(weights) {
        return Some("dac");
    }
    if has("feature_extractor.encodec.") && has("backbone.") && has("head.") {
        Some("wavtokenizer")
    } else if encodec::looks_like_encodec(weights) {
        Some("encodec")
    } else {
        None
    }
}

/// Guess the family from a reference config file's text.
pub fn detect_family_from_config(text: &str) -> Option<&'static str> {
    if xcodec2::is_reference_config(text) {
        return Some("xcodec2");
    }
    if mimi::is_reference_config(text) {
        return Some("mimi");
    }
    if snac::is_reference_config(text) {
        return Some("snac");
    }
    if dac::is_reference_config(text) {
        return Some("dac");
    }
    if text.contains("decoder.experiment.WavTokenizer") || text.contains("EncodecFeatures") {
        Some("wavtokenizer")
    } else if encodec::is_reference_config(text) {
        Some("encodec")
    } else {
        None
    }
}

/// The inference weights of a checkpoint (training-only entries dropped, weight norm folded),
/// as `codec convert` writes them. The result loads through the same path as the checkpoint.
pub fn inference_weights(state: StateDict) -> Result<(&'static str, StateDict)> {
    match detect_family_from_weights(&state) {
        Some("wavtokenizer") => Ok(("wavtokenizer", wavtokenizer::inference_weights(state)?)),
        Some("dac") => Ok(("dac", dac::inference_weights(state)?)),
        Some("snac") => Ok(("snac", snac::inference_weights(state)?)),
        Some("encodec") => Ok(("encodec", encodec::inference_weights(state)?)),
        Some("xcodec2") => Ok(("xcodec2", xcodec2::inference_weights(state)?)),
        Some("mimi") => Ok(("mimi", mimi::inference_weights(state)?)),
        _ => Err(Error::UnknownModel {
            name: state.source.clone(),
            hint: "the key names match no supported family".into(),
        }),
    }
}

//! Model families. Each family is one module with a serde `Config` (named constructors for the
//! published variants) and a type implementing [`crate::Codec`].
//!
//! To add a family: write its module, give it an arm in [`load_family`] and
//! [`detect_family_from_weights`], and add model cards for it in `models/` at the repo root.

pub mod dac;
pub mod encodec;
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

/// Build a model of `family` from its architecture description and weights.
pub fn load_family(
    family: &str,
    arch: ArchSource<'_>,
    weights: StateDict,
    name: &str,
    device: &Device,
) -> Result<Box<dyn Codec>> {
    match family {
        "wavtokenizer" => {
            use wavtokenizer::{WavTokenizer, WavTokenizerConfig};
            let config = match arch {
                ArchSource::Card(table) => table
                    .clone()
                    .try_into::<WavTokenizerConfig>()
                    .map_err(|e| Error::config(name, format!("architecture: {e}")))?,
                ArchSource::ReferenceConfig { text, source } => {
                    WavTokenizerConfig::from_reference_yaml(text, source)?
                }
                ArchSource::Infer => wavtokenizer::infer_config(&weights)?,
            };
            let (model, _unused) = WavTokenizer::load(&config, weights, name, device)?;
            Ok(Box::new(model))
        }
        "tinycodec" => {
            use tinycodec::{TinyCodec, TinyCodecConfig};
            let config = match arch {
                ArchSource::Card(table) => table
                    .clone()
                    .try_into::<TinyCodecConfig>()
                    .map_err(|e| Error::config(name, format!("architecture: {e}")))?,
                // The project's model has no other config format; its card is the config.
                ArchSource::ReferenceConfig { .. } | ArchSource::Infer => {
                    TinyCodecConfig::tinycodec_24khz()
                }
            };
            Ok(Box::new(TinyCodec::load(&config, weights, name, device)?))
        }
        "encodec" => {
            use encodec::{Encodec, EncodecConfig};
            let config = match arch {
                ArchSource::Card(table) => table
                    .clone()
                    .try_into::<EncodecConfig>()
                    .map_err(|e| Error::config(name, format!("architecture: {e}")))?,
                ArchSource::ReferenceConfig { text, source } => {
                    EncodecConfig::from_reference_json(text, source)?
                }
                ArchSource::Infer => encodec::infer_config(&weights)?,
            };
            let (model, _unused) = Encodec::load(&config, weights, name, device)?;
            Ok(Box::new(model))
        }
        "snac" => {
            use snac::{Snac, SnacConfig};
            let config = match arch {
                ArchSource::Card(table) => table
                    .clone()
                    .try_into::<SnacConfig>()
                    .map_err(|e| Error::config(name, format!("architecture: {e}")))?,
                ArchSource::ReferenceConfig { text, source } => {
                    SnacConfig::from_reference_json(text, source)?
                }
                ArchSource::Infer => snac::infer_config(&weights)?,
            };
            let (model, _unused) = Snac::load(&config, weights, name, device)?;
            Ok(Box::new(model))
        }
        "dac" => {
            use dac::{Dac, DacConfig};
            let config = match arch {
                ArchSource::Card(table) => table
                    .clone()
                    .try_into::<DacConfig>()
                    .map_err(|e| Error::config(name, format!("architecture: {e}")))?,
                ArchSource::ReferenceConfig { text, source } => {
                    DacConfig::from_reference_json(text, source)?
                }
                ArchSource::Infer => dac::infer_config(&weights)?,
            };
            let (model, _unused) = Dac::load(&config, weights, name, device)?;
            Ok(Box::new(model))
        }
        "xcodec2" => {
            use xcodec2::{XCodec2, XCodec2Config};
            let config = match arch {
                ArchSource::Card(table) => table
                    .clone()
                    .try_into::<XCodec2Config>()
                    .map_err(|e| Error::config(name, format!("architecture: {e}")))?,
                ArchSource::ReferenceConfig { text, source } => {
                    XCodec2Config::from_reference_json(text, source)?
                }
                ArchSource::Infer => xcodec2::infer_config(&weights)?,
            };
            let (model, _unused) = XCodec2::load(&config, weights, name, device)?;
            Ok(Box::new(model))
        }
        other => Err(Error::UnknownModel {
            name: name.to_string(),
            hint: format!(
                "family '{other}' is not supported by this build (supported: {})",
                FAMILIES.join(", ")
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
        _ => Err(Error::UnknownModel {
            name: state.source.clone(),
            hint: "the key names match no supported family".into(),
        }),
    }
}

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
pub mod qwen3_tts;
pub mod s3tokenizer;
pub mod snac;
pub mod speechtokenizer;
pub mod tinycodec;
pub mod wavtokenizer;
pub mod xcodec2;

pub use family::{
    architecture, no_config_file, ArchSource, CardFacts, CheckpointFamily, Family, Loaded, Score,
};

use crate::weights::StateDict;
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
    &lyra::FAMILY,
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

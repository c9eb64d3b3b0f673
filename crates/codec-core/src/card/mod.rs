//! Model cards and model resolution: what `--model` means.
//!
//! A model card (a small TOML file in the repo's `models/` folder, compiled in) names a published
//! model: its family, rates, licence, hub repo and files, and its architecture. `--model` takes
//! a card name, a hub repo id, a local folder (config + checkpoint) or a local weight file
//! ([`ModelSpec`]); [`load_model`] loads what it names.
//!
//! - this module: the card itself and the cards compiled in;
//! - `spec`: what a `--model` argument names, and loading a card (embedded, cached or from the hub);
//! - `local`: loading a local folder or file, finding its config;
//! - `hub`: the Hugging Face cache and downloads.

mod hub;
mod local;
mod spec;

pub use hub::{cached_file, fetch_file};
pub use spec::{load_model, load_model_with_report, ModelSpec};

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::models;
use crate::{Error, Result};

include!(concat!(env!("OUT_DIR"), "/builtin_cards.rs"));

/// Where a card's weights are published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubFiles {
    /// Hugging Face repo id, e.g. `novateur/WavTokenizer`.
    pub repo: String,
    /// Git revision; `main` when absent.
    #[serde(default)]
    pub revision: Option<String>,
    /// The weight file in the repo.
    pub weights: String,
    /// Weight files of other repos that the model reads beside it, merged into its state dict
    /// (NeuCodec loads facebook/w2v-bert-2.0 as its `semantic_model`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merge: Vec<MergedWeights>,
}

/// A second weight file a card's model reads, from its own repo: its tensors join the main
/// file's under a key prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergedWeights {
    /// Hugging Face repo id, e.g. `facebook/w2v-bert-2.0`.
    pub repo: String,
    /// Git revision; `main` when absent.
    #[serde(default)]
    pub revision: Option<String>,
    /// The weight file in the repo.
    pub weights: String,
    /// Put before each of its keys (e.g. `semantic_model.`).
    pub prefix: String,
}

/// A model card: one published (or project) model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    /// The card's name, as `--model` takes it and token files record it.
    pub name: String,
    /// The family that builds it (see [`crate::models::FAMILIES`]).
    pub family: String,
    /// One or two sentences for `codec models`.
    pub description: String,
    /// The weights' licence (SPDX where there is one).
    pub license: String,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Code frames per second (of the finest stream for multi-scale models).
    pub frame_rate: f64,
    /// Codebook sizes, in stream order.
    pub codebooks: Vec<u32>,
    /// Frames per second of each codebook, for multi-scale models (SNAC) whose codebooks run
    /// at different rates; every codebook runs at `frame_rate` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codebook_frame_rates: Option<Vec<f64>>,
    /// What the published model was trained on.
    #[serde(default)]
    pub training_data: Option<String>,
    /// The model's home page or paper.
    #[serde(default)]
    pub homepage: Option<String>,
    /// Where its weights are published.
    #[serde(default)]
    pub hub: Option<HubFiles>,
    /// A weight file compiled into the library (from the repo's `models/` folder).
    #[serde(default)]
    pub embedded: Option<String>,
    /// How to obtain weights this library can load, for a model published in a form it does
    /// not read (S3Tokenizer's ONNX graphs): what the error says when the card has neither
    /// `hub` nor `embedded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_note: Option<String>,
    /// Family-specific hyperparameters, read by the family's `Config`.
    pub architecture: toml::Table,
}

impl ModelCard {
    /// Parse a card from TOML text; `source` names it in errors.
    pub fn from_toml(text: &str, source: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::config(source, e.to_string()))
    }

    /// Every card compiled into this build, sorted by name.
    pub fn builtin() -> Vec<ModelCard> {
        let mut cards: Vec<ModelCard> = BUILTIN_CARDS
            .iter()
            // Cards are checked by a unit test; a broken one is left out rather than panicking.
            .filter_map(|(file, text)| Self::from_toml(text, file).ok())
            .collect();
        cards.sort_by(|a, b| a.name.cmp(&b.name));
        cards
    }

    /// The compiled-in card with this name.
    pub fn find(name: &str) -> Option<ModelCard> {
        Self::builtin().into_iter().find(|c| c.name == name)
    }

    /// The compiled-in weights of this card, if it has any in this build.
    pub fn embedded_weights(&self) -> Option<&'static [u8]> {
        let file = self.embedded.as_deref()?;
        EMBEDDED_WEIGHTS
            .iter()
            .find(|(name, _)| *name == file)
            .map(|(_, bytes)| *bytes)
    }

    /// Whether every weight file of this card is compiled into this build (its one embedded
    /// file, or each file of a graph family's embedded folder).
    pub fn is_built_in(&self) -> bool {
        let graph_files = models::family(&self.family)
            .ok()
            .and_then(|f| f.graph_files());
        match (graph_files, self.embedded.as_deref()) {
            (Some(names), Some(folder)) => names.iter().all(|n| embedded_file(folder, n).is_some()),
            (None, Some(_)) => self.embedded_weights().is_some(),
            (_, None) => false,
        }
    }

    /// The weight file in the local hub cache, if it (and every file merged into it) was
    /// downloaded before.
    pub fn cached_weights(&self) -> Option<PathBuf> {
        let hub = self.hub.as_ref()?;
        for m in &hub.merge {
            cached_file(&m.repo, m.revision.as_deref(), &m.weights)?;
        }
        cached_file(&hub.repo, hub.revision.as_deref(), &hub.weights)
    }

    /// Bits per second at full codebook use.
    pub fn bitrate(&self) -> f64 {
        match &self.codebook_frame_rates {
            Some(rates) => self
                .codebooks
                .iter()
                .zip(rates)
                .map(|(&n, &rate)| rate * (n as f64).log2())
                .sum(),
            None => {
                self.frame_rate
                    * self
                        .codebooks
                        .iter()
                        .map(|&n| (n as f64).log2())
                        .sum::<f64>()
            }
        }
    }
}

/// The compiled-in file `folder/name` (graph families keep their files in a folder).
pub(crate) fn embedded_file(folder: &str, name: &str) -> Option<&'static [u8]> {
    let key = format!("{folder}/{name}");
    EMBEDDED_WEIGHTS
        .iter()
        .find(|(file, _)| *file == key)
        .map(|(_, bytes)| *bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_card_parses_and_is_consistent() {
        assert!(!BUILTIN_CARDS.is_empty());
        for (file, text) in BUILTIN_CARDS {
            let card = ModelCard::from_toml(text, file).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(
                format!("{}.toml", card.name),
                *file,
                "card name matches its file name"
            );
            let family = models::family(&card.family).unwrap_or_else(|e| panic!("{file}: {e}"));
            family
                .check_card(&card)
                .unwrap_or_else(|e| panic!("{file}: {e}"));
        }
        assert_eq!(ModelCard::builtin().len(), BUILTIN_CARDS.len());
    }

    #[test]
    fn model_spec_parsing() {
        assert!(matches!(
            ModelSpec::parse("wavtokenizer-small-speech-75").unwrap(),
            ModelSpec::Card(_)
        ));
        assert_eq!(
            ModelSpec::parse("someone/some-codec@v2").unwrap(),
            ModelSpec::Hub {
                repo: "someone/some-codec".into(),
                revision: Some("v2".into())
            }
        );
        let err = ModelSpec::parse("no-such-model").unwrap_err().to_string();
        assert!(
            err.contains("no-such-model") && err.contains("wavtokenizer-small-speech-75"),
            "{err}"
        );
        assert!(matches!(
            ModelSpec::parse(".").unwrap(),
            ModelSpec::LocalDir(_)
        ));
    }
}

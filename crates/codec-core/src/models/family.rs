//! What a model family tells the library about itself: the one trait each family module
//! implements, so that nothing outside the module needs to know the family exists.

use candle_core::Device;
use serde::de::DeserializeOwned;

use crate::card::ModelCard;
use crate::codec::Codec;
use crate::weights::{OnnxGraph, StateDict};
use crate::{Error, Result};

/// How well a checkpoint or a config file matches a family, as Symphonia's probes score a
/// stream: the family with the highest score above [`Score::NONE`] loads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Score(pub u8);

impl Score {
    /// Not this family.
    pub const NONE: Score = Score(0);
    /// A layout this family shares with others (DAC's, which SNAC reuses): a more specific
    /// family wins over it.
    pub const SHARED_LAYOUT: Score = Score(50);
    /// Markers only this family has.
    pub const DISTINCTIVE: Score = Score(100);

    /// [`Score::DISTINCTIVE`] when `yes`, else [`Score::NONE`].
    pub fn distinctive_if(yes: bool) -> Score {
        if yes {
            Score::DISTINCTIVE
        } else {
            Score::NONE
        }
    }

    /// [`Score::SHARED_LAYOUT`] when `yes`, else [`Score::NONE`].
    pub fn shared_layout_if(yes: bool) -> Score {
        if yes {
            Score::SHARED_LAYOUT
        } else {
            Score::NONE
        }
    }
}

/// Where a model's architecture comes from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ArchSource<'a> {
    /// The `[architecture]` table of a model card.
    Card(&'a toml::Table),
    /// The reference implementation's own config file (e.g. WavTokenizer's training yaml).
    ReferenceConfig {
        /// The file's text.
        text: &'a str,
        /// Its path, for errors.
        source: &'a str,
    },
    /// Nothing given: infer from the weights' shapes.
    Infer,
}

impl ArchSource<'_> {
    /// Read a family's config from this source: a card's table through serde, a reference
    /// config through `from_reference`, otherwise `infer` on the weights.
    pub fn read<C: DeserializeOwned>(
        &self,
        name: &str,
        weights: &StateDict,
        from_reference: impl FnOnce(&str, &str) -> Result<C>,
        infer: impl FnOnce(&StateDict) -> Result<C>,
    ) -> Result<C> {
        match self {
            ArchSource::Card(table) => architecture(table, name),
            ArchSource::ReferenceConfig { text, source } => from_reference(text, source),
            ArchSource::Infer => infer(weights),
        }
    }
}

/// A card's `[architecture]` table as a family's config type.
pub fn architecture<C: DeserializeOwned>(table: &toml::Table, name: &str) -> Result<C> {
    table
        .clone()
        .try_into::<C>()
        .map_err(|e| Error::config(name, format!("architecture: {e}")))
}

/// A model as a family built it, with the checkpoint keys it did not read.
pub struct Loaded {
    /// The model.
    pub model: Box<dyn Codec>,
    /// Keys of the checkpoint that no layer read, sorted; empty for a complete checkpoint.
    /// Training-only entries a family knows are dropped before this is counted.
    pub unused_keys: Vec<String>,
}

impl Loaded {
    /// Wrap a built model and its unused keys.
    pub fn new(model: impl Codec + 'static, unused_keys: Vec<String>) -> Self {
        Self {
            model: Box::new(model),
            unused_keys,
        }
    }
}

/// The facts a card states that its family's config must agree with.
#[derive(Debug, Clone, PartialEq)]
pub struct CardFacts {
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Frames per second (of the finest stream).
    pub frame_rate: f64,
    /// Codebook sizes in stream order; `None` when the config does not fix them.
    pub codebooks: Option<Vec<u32>>,
    /// Frames per second of each codebook, for multi-scale families.
    pub codebook_frame_rates: Option<Vec<f64>>,
}

impl CardFacts {
    /// Check that `card` says what the config implies; the error names the first mismatch.
    pub fn check(&self, card: &ModelCard) -> Result<()> {
        let mismatch = |what: &str, card_says: String, config_says: String| {
            Err(Error::config(
                &card.name,
                format!(
                    "the card's {what} is {card_says} but its architecture gives {config_says}"
                ),
            ))
        };
        if card.sample_rate != self.sample_rate {
            return mismatch(
                "sample_rate",
                card.sample_rate.to_string(),
                self.sample_rate.to_string(),
            );
        }
        if (card.frame_rate - self.frame_rate).abs() > 1e-9 {
            return mismatch(
                "frame_rate",
                card.frame_rate.to_string(),
                self.frame_rate.to_string(),
            );
        }
        if let Some(books) = &self.codebooks {
            if &card.codebooks != books {
                return mismatch(
                    "codebooks",
                    format!("{:?}", card.codebooks),
                    format!("{books:?}"),
                );
            }
        }
        if let Some(rates) = &self.codebook_frame_rates {
            if card.codebook_frame_rates.as_ref() != Some(rates) {
                return mismatch(
                    "codebook_frame_rates",
                    format!("{:?}", card.codebook_frame_rates),
                    format!("{rates:?}"),
                );
            }
        }
        Ok(())
    }
}

/// One model family. Each family module has one value implementing this, and
/// [`super::FAMILIES`] lists them; the card loader, `--model` resolution, `codec convert` and the
/// card tests go through it and name no family.
pub trait Family: Send + Sync {
    /// The family's name, as cards and token files spell it.
    fn name(&self) -> &'static str;

    /// How well a checkpoint's keys (and shapes) match this family.
    fn weights_score(&self, weights: &StateDict) -> Score {
        let _ = weights;
        Score::NONE
    }

    /// How well a reference config file's text matches this family.
    fn config_score(&self, text: &str) -> Score {
        let _ = text;
        Score::NONE
    }

    /// The inference weights of a checkpoint in any layout the family accepts (training-only
    /// entries dropped, weight norm folded, keys in the family's own layout), as `codec convert`
    /// writes them. The result loads through the same path as the checkpoint.
    fn inference_weights(&self, state: StateDict) -> Result<StateDict> {
        Err(no_checkpoints(
            self.name(),
            self.graph_files(),
            &state.source,
        ))
    }

    /// For a family whose published weights are ONNX graphs (S3Tokenizer's): the graph's
    /// tensors in the family's own layout, as [`inference_weights`](Self::inference_weights)
    /// takes them; `None` when the graph is not this family's or the family reads no ONNX.
    fn onnx_weights(&self, graph: &OnnxGraph) -> Option<Result<StateDict>> {
        let _ = graph;
        None
    }

    /// Build the model from an ONNX graph's weights; with [`ArchSource::Infer`] the
    /// architecture is the one the graph implies. `None` as for
    /// [`onnx_weights`](Self::onnx_weights).
    fn load_onnx(
        &self,
        arch: ArchSource<'_>,
        graph: &OnnxGraph,
        name: &str,
        device: &Device,
    ) -> Option<Result<Loaded>> {
        let _ = (arch, graph, name, device);
        None
    }

    /// Build the model from its architecture and a checkpoint.
    fn load(
        &self,
        arch: ArchSource<'_>,
        weights: StateDict,
        name: &str,
        device: &Device,
    ) -> Result<Loaded> {
        let _ = (arch, device);
        let _ = weights;
        Err(no_checkpoints(self.name(), self.graph_files(), name))
    }

    /// Check a card of this family: its architecture parses and is valid, and the card's
    /// rates and codebooks agree with it.
    fn check_card(&self, card: &ModelCard) -> Result<()>;

    /// For a family whose published model is a set of graph files rather than a tensor
    /// checkpoint (Lyra's three TFLite files): their names, in the order
    /// [`load_graph`](Self::load_graph) takes them.
    fn graph_files(&self) -> Option<&'static [&'static str]> {
        None
    }

    /// Build a graph family's model from its files' bytes; the architecture comes from a
    /// card, or is the published model's when `arch` is `None`.
    fn load_graph(
        &self,
        arch: Option<&toml::Table>,
        files: &[Vec<u8>],
        name: &str,
        device: &Device,
    ) -> Result<Loaded> {
        let _ = (arch, files, device);
        Err(Error::UnknownModel {
            name: name.to_string(),
            hint: format!(
                "family '{}' loads a tensor checkpoint, not graph files",
                self.name()
            ),
        })
    }
}

fn no_checkpoints(family: &str, files: Option<&[&str]>, name: &str) -> Error {
    Error::UnknownModel {
        name: name.to_string(),
        hint: format!(
            "family '{family}' loads its graph files ({}), not a tensor checkpoint",
            files.unwrap_or_default().join(", ")
        ),
    }
}

/// Build a model from its config, a checkpoint, its name and a device; returns it and the keys
/// it did not read.
pub type LoadFn<C, M> = fn(&C, StateDict, &str, &Device) -> Result<(M, Vec<String>)>;

/// Read an ONNX graph's weights: the state dict in the family's layout and the config the graph
/// implies; `None` when the graph is not the family's.
pub type OnnxFn<C> = fn(&OnnxGraph) -> Option<Result<(StateDict, C)>>;

/// A family whose published model is a tensor checkpoint and whose architecture is a serde
/// config, as a table of its functions: a family module states what is its own (how to
/// recognise its files, read its config, map its layouts, build it) and this implements
/// [`Family`] from them, reading the architecture, building and checking cards once for all.
///
/// ```ignore
/// pub static FAMILY: CheckpointFamily<DacConfig, Dac> = CheckpointFamily {
///     name: "dac",
///     weights_score: |w| Score::shared_layout_if(looks_like_dac(w)),
///     config_score: |text| Score::distinctive_if(is_reference_config(text)),
///     inference_weights,
///     from_reference: DacConfig::from_reference_json,
///     infer: infer_config,
///     card_facts: DacConfig::card_facts,
///     load: Dac::load,
///     onnx: None,
/// };
/// ```
pub struct CheckpointFamily<C: 'static, M: 'static> {
    /// The family's name, as cards and token files spell it.
    pub name: &'static str,
    /// How well a checkpoint's keys (and shapes) match this family.
    pub weights_score: fn(&StateDict) -> Score,
    /// How well a reference config file's text matches this family.
    pub config_score: fn(&str) -> Score,
    /// See [`Family::inference_weights`].
    pub inference_weights: fn(StateDict) -> Result<StateDict>,
    /// The config from the reference implementation's own config file (text, path).
    pub from_reference: fn(&str, &str) -> Result<C>,
    /// The config a checkpoint given without one implies (from its shapes).
    pub infer: fn(&StateDict) -> Result<C>,
    /// Validate a config (errors name the source) and say what a card of it must state.
    pub card_facts: fn(&C, &str) -> Result<CardFacts>,
    /// Build the model; returns it and the keys it did not read.
    pub load: LoadFn<C, M>,
    /// For a family published as ONNX graphs: how to read one (see [`Family::onnx_weights`]).
    pub onnx: Option<OnnxFn<C>>,
}

impl<C, M> Family for CheckpointFamily<C, M>
where
    C: DeserializeOwned,
    M: Codec + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn weights_score(&self, weights: &StateDict) -> Score {
        (self.weights_score)(weights)
    }

    fn config_score(&self, text: &str) -> Score {
        (self.config_score)(text)
    }

    fn inference_weights(&self, state: StateDict) -> Result<StateDict> {
        (self.inference_weights)(state)
    }

    fn load(
        &self,
        arch: ArchSource<'_>,
        weights: StateDict,
        name: &str,
        device: &Device,
    ) -> Result<Loaded> {
        let config = arch.read(name, &weights, self.from_reference, self.infer)?;
        let (model, unused) = (self.load)(&config, weights, name, device)?;
        Ok(Loaded::new(model, unused))
    }

    fn onnx_weights(&self, graph: &OnnxGraph) -> Option<Result<StateDict>> {
        let read = self.onnx?;
        Some(read(graph)?.map(|(state, _)| state))
    }

    fn load_onnx(
        &self,
        arch: ArchSource<'_>,
        graph: &OnnxGraph,
        name: &str,
        device: &Device,
    ) -> Option<Result<Loaded>> {
        let read = self.onnx?;
        let weights = read(graph)?;
        Some(weights.and_then(|(state, implied)| {
            let config = match arch {
                ArchSource::Infer => implied,
                arch => arch.read(name, &state, self.from_reference, self.infer)?,
            };
            let (model, unused) = (self.load)(&config, state, name, device)?;
            Ok(Loaded::new(model, unused))
        }))
    }

    fn check_card(&self, card: &ModelCard) -> Result<()> {
        let config: C = architecture(&card.architecture, &card.name)?;
        (self.card_facts)(&config, &card.name)?.check(card)
    }
}

/// For families no reference config file describes.
pub fn no_config_file(_text: &str) -> Score {
    Score::NONE
}

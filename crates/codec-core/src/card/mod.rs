//! Model cards and model resolution: what `--model` means.
//!
//! A model card (a small TOML file in the repo's `models/` folder, compiled in) names a published
//! model: its family, rates, licence, hub repo and files, and its architecture. `--model` takes
//! a card name, a hub repo id, a local folder (config + checkpoint) or a local weight file.

mod hub;

pub use hub::{cached_file, fetch_file};

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::codec::Codec;
use crate::models::{self, ArchSource};
use crate::weights::StateDict;
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
}

/// A model card: one published (or project) model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    pub name: String,
    pub family: String,
    pub description: String,
    pub license: String,
    pub sample_rate: u32,
    pub frame_rate: f64,
    /// Codebook sizes, in stream order.
    pub codebooks: Vec<u32>,
    /// Frames per second of each codebook, for multi-scale models (SNAC) whose codebooks run
    /// at different rates; every codebook runs at `frame_rate` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codebook_frame_rates: Option<Vec<f64>>,
    #[serde(default)]
    pub training_data: Option<String>,
    #[serde(default)]
    pub homepage: Option<String>,
    #[serde(default)]
    pub hub: Option<HubFiles>,
    /// A weight file compiled into the library (from the repo's `models/` folder).
    #[serde(default)]
    pub embedded: Option<String>,
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
        match (models::graph_files(&self.family), self.embedded.as_deref()) {
            (Some(names), Some(folder)) => names.iter().all(|n| embedded_file(folder, n).is_some()),
            (None, Some(_)) => self.embedded_weights().is_some(),
            (_, None) => false,
        }
    }

    /// The weight file in the local hub cache, if it was downloaded before.
    pub fn cached_weights(&self) -> Option<PathBuf> {
        let hub = self.hub.as_ref()?;
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

/// What `--model` asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSpec {
    /// A compiled-in model card.
    Card(Box<ModelCard>),
    /// A hub repo id with no card of its own here.
    Hub {
        repo: String,
        revision: Option<String>,
    },
    /// A folder holding a config (card TOML or the reference's YAML) and a checkpoint.
    LocalDir(PathBuf),
    /// A single weight file; the architecture comes from a config beside it or the weights.
    LocalFile(PathBuf),
}

impl ModelSpec {
    /// Interpret a `--model` argument: an existing path first, then a card name, then a hub
    /// repo id (`owner/name`, optionally `@revision`).
    pub fn parse(arg: &str) -> Result<Self> {
        let path = Path::new(arg);
        if path.is_dir() {
            return Ok(ModelSpec::LocalDir(path.to_path_buf()));
        }
        if path.is_file() {
            return Ok(ModelSpec::LocalFile(path.to_path_buf()));
        }
        if let Some(card) = ModelCard::find(arg) {
            return Ok(ModelSpec::Card(Box::new(card)));
        }
        let (repo, revision) = match arg.split_once('@') {
            Some((r, rev)) => (r, Some(rev.to_string())),
            None => (arg, None),
        };
        let looks_like_repo = repo.split('/').count() == 2
            && repo.split('/').all(|p| !p.is_empty())
            && !arg.starts_with('.')
            && !arg.starts_with('/');
        if looks_like_repo {
            return Ok(ModelSpec::Hub {
                repo: repo.to_string(),
                revision,
            });
        }
        Err(Error::UnknownModel {
            name: arg.to_string(),
            hint: format!(
                "it is not a file, a folder, a model card or a hub repo id (owner/name); known cards: {}",
                ModelCard::builtin()
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }
}

/// Load the model a [`ModelSpec`] names onto `device`, downloading weights if needed.
pub fn load_model(spec: &ModelSpec, device: &Device) -> Result<Box<dyn Codec>> {
    match spec {
        ModelSpec::Card(card) => load_card(card, device),
        ModelSpec::Hub { repo, revision } => {
            let matching: Vec<ModelCard> = ModelCard::builtin()
                .into_iter()
                .filter(|c| c.hub.as_ref().is_some_and(|h| &h.repo == repo))
                .collect();
            match matching.as_slice() {
                [card] => load_card(card, device),
                [] => {
                    // A repo without a card here: it may ship its own card as `codec-card.toml`.
                    let card_path = fetch_file(repo, revision.as_deref(), "codec-card.toml")?;
                    let text = std::fs::read_to_string(&card_path)
                        .map_err(|e| Error::io(&card_path, e))?;
                    let card = ModelCard::from_toml(&text, &card_path.display().to_string())?;
                    load_card(&card, device)
                }
                several => Err(Error::UnknownModel {
                    name: repo.clone(),
                    hint: format!(
                        "this repo holds several models; pick one: {}",
                        several
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }),
            }
        }
        ModelSpec::LocalDir(dir) => load_dir(dir, device),
        ModelSpec::LocalFile(file) => load_file(file, None, device),
    }
}

/// The compiled-in file `folder/name` (graph families keep their files in a folder).
fn embedded_file(folder: &str, name: &str) -> Option<&'static [u8]> {
    let key = format!("{folder}/{name}");
    EMBEDDED_WEIGHTS
        .iter()
        .find(|(file, _)| *file == key)
        .map(|(_, bytes)| *bytes)
}

fn load_card(card: &ModelCard, device: &Device) -> Result<Box<dyn Codec>> {
    if let Some(names) = models::graph_files(&card.family) {
        let folder = card
            .embedded
            .as_deref()
            .ok_or_else(|| Error::UnknownModel {
                name: card.name.clone(),
                hint: "the card names no embedded model folder".into(),
            })?;
        let files = names
            .iter()
            .map(|n| {
                embedded_file(folder, n).map(<[u8]>::to_vec).ok_or_else(|| Error::UnknownModel {
                    name: card.name.clone(),
                    hint: format!(
                        "its files ({folder}/{n}) are not compiled into this build; rebuild with the `embedded` feature, or load a folder holding {}",
                        names.join(", ")
                    ),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        return models::load_graph_family(
            &card.family,
            Some(&card.architecture),
            &files,
            &card.name,
            device,
        );
    }
    if let Some(file) = &card.embedded {
        let bytes = card.embedded_weights().ok_or_else(|| Error::UnknownModel {
            name: card.name.clone(),
            hint: format!(
                "its weights ({file}) are not compiled into this build; rebuild with the `embedded` feature"
            ),
        })?;
        let state = StateDict::from_safetensors_bytes(bytes, &format!("embedded {file}"))?;
        let arch = ArchSource::Card(&card.architecture);
        return models::load_family(&card.family, arch, state, &card.name, device);
    }
    let hub = card.hub.as_ref().ok_or_else(|| Error::UnknownModel {
        name: card.name.clone(),
        hint: "the card names no weight files".into(),
    })?;
    let weights = fetch_file(&hub.repo, hub.revision.as_deref(), &hub.weights)?;
    let state = StateDict::load(&weights)?;
    models::load_family(
        &card.family,
        ArchSource::Card(&card.architecture),
        state,
        &card.name,
        device,
    )
}

/// Files in `dir` whose extension is one of `exts`, sorted.
fn files_with_ext(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut out: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    out.sort();
    Ok(out)
}

const WEIGHT_EXTS: &[&str] = &["safetensors", "ckpt", "pth", "pt", "th", "bin"];

/// A folder of a graph family's files (e.g. Lyra's three `.tflite`), with a card beside them
/// or the published architecture.
fn load_graph_dir(family: &str, dir: &Path, device: &Device) -> Result<Box<dyn Codec>> {
    let names = models::graph_files(family).unwrap_or_default();
    let files = names
        .iter()
        .map(|n| crate::audio::read_bounded(&dir.join(n), MAX_GRAPH_FILE_BYTES))
        .collect::<Result<Vec<_>>>()?;
    let mut cards = Vec::new();
    for path in files_with_ext(dir, &["toml"])? {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let card = ModelCard::from_toml(&text, &path.display().to_string())?;
        if card.family == family {
            cards.push(card);
        }
    }
    match cards.as_slice() {
        [card] => {
            models::load_graph_family(family, Some(&card.architecture), &files, &card.name, device)
        }
        _ => {
            let stem = dir
                .canonicalize()
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "local".into());
            models::load_graph_family(family, None, &files, &format!("local:{stem}"), device)
        }
    }
}

/// The largest graph file read (published ones are a few megabytes).
const MAX_GRAPH_FILE_BYTES: u64 = 256 << 20;

fn load_dir(dir: &Path, device: &Device) -> Result<Box<dyn Codec>> {
    if let Some(family) = models::detect_graph_family(dir) {
        return load_graph_dir(family, dir, device);
    }
    let weights = files_with_ext(dir, WEIGHT_EXTS)?;
    // A folder may hold a checkpoint beside other tensors (e.g. safetensors traces or a
    // conversion of the same weights): a PyTorch checkpoint wins, then a lone safetensors file.
    let checkpoints: Vec<&PathBuf> = weights
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e != "safetensors"))
        .collect();
    let safetensors: Vec<&PathBuf> = weights
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    // Several safetensors files (a model beside its traces): the hub's `model.safetensors`.
    let model_file: Vec<&PathBuf> = safetensors
        .iter()
        .copied()
        .filter(|p| p.file_name().is_some_and(|n| n == "model.safetensors"))
        .collect();
    let weight = match (checkpoints.as_slice(), safetensors.as_slice()) {
        ([one], _) | ([], [one]) => (*one).clone(),
        ([], [_, _, ..]) if model_file.len() == 1 => model_file[0].clone(),
        ([], []) => {
            return Err(Error::UnknownModel {
                name: dir.display().to_string(),
                hint: format!(
                    "the folder holds no weight file ({})",
                    WEIGHT_EXTS.join(", ")
                ),
            })
        }
        _ => {
            return Err(Error::UnknownModel {
                name: dir.display().to_string(),
                hint: format!(
                    "the folder holds several weight files ({}); pass one with --model FILE",
                    weights
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
        }
    };
    load_file(&weight, Some(dir), device)
}

/// A config found beside a weight file.
enum LocalConfig {
    Card(Box<ModelCard>),
    Reference { text: String, source: String },
}

/// The config for `weights` in `dir`: a model card named like the weight file (or naming it as
/// its embedded file), else the folder's only card, else the reference's YAML or `config.json`.
/// A folder of several unrelated cards (like the repo's `models/`) gives no card.
fn find_config(dir: &Path, weights: &Path) -> Result<Option<LocalConfig>> {
    let mut cards = Vec::new();
    for path in files_with_ext(dir, &["toml"])? {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        cards.push(ModelCard::from_toml(&text, &path.display().to_string())?);
    }
    let file_name = weights
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let stem = weights
        .file_stem()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let matching = cards
        .iter()
        .position(|c| c.name == stem || c.embedded.as_deref() == Some(file_name));
    let card = match (matching, cards.len()) {
        (Some(i), _) => Some(cards.swap_remove(i)),
        (None, 1) => cards.pop(),
        _ => None,
    };
    // The reference implementations' own configs: WavTokenizer's training YAML, or the
    // `config.json` that EnCodec/DAC/SNAC-style packages keep beside their weights.
    let mut yamls = files_with_ext(dir, &["yaml", "yml"])?;
    let json = dir.join("config.json");
    if json.is_file() {
        yamls.push(json);
    }
    if let Some(card) = card {
        return Ok(Some(LocalConfig::Card(Box::new(card))));
    }
    match yamls.as_slice() {
        [] => Ok(None),
        [one] => {
            let text = std::fs::read_to_string(one).map_err(|e| Error::io(one, e))?;
            Ok(Some(LocalConfig::Reference {
                text,
                source: one.display().to_string(),
            }))
        }
        several => Err(Error::config(
            dir.display().to_string(),
            format!("several configs, cannot tell which applies: {several:?}"),
        )),
    }
}

fn load_file(file: &Path, dir: Option<&Path>, device: &Device) -> Result<Box<dyn Codec>> {
    // One file of a graph family's set stands for its folder.
    if file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tflite"))
    {
        let folder = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        return match models::detect_graph_family(folder) {
            Some(family) => load_graph_dir(family, folder, device),
            None => Err(Error::UnknownModel {
                name: file.display().to_string(),
                hint: "a .tflite file is loaded with the rest of its model: Lyra v2 needs soundstream_encoder.tflite, quantizer.tflite and lyragan.tflite in one folder".into(),
            }),
        };
    }
    let dir = dir
        .map(Path::to_path_buf)
        .or_else(|| file.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    let state = StateDict::load(file)?;
    let local_name = || {
        let stem = dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "local".into());
        format!("local:{stem}")
    };
    match find_config(&dir, file)? {
        Some(LocalConfig::Card(card)) => models::load_family(
            &card.family,
            ArchSource::Card(&card.architecture),
            state,
            &card.name,
            device,
        ),
        Some(LocalConfig::Reference { text, source }) => {
            let family = models::detect_family_from_config(&text)
                .or_else(|| models::detect_family_from_weights(&state))
                .ok_or_else(|| {
                    Error::config(&source, "cannot tell which model family this config is for")
                })?;
            let name = local_name();
            models::load_family(
                family,
                ArchSource::ReferenceConfig {
                    text: &text,
                    source: &source,
                },
                state,
                &name,
                device,
            )
        }
        None => {
            let family =
                models::detect_family_from_weights(&state).ok_or_else(|| Error::UnknownModel {
                    name: file.display().to_string(),
                    hint:
                        "no config beside the weights and the key names match no supported family"
                            .into(),
                })?;
            let name = local_name();
            models::load_family(family, ArchSource::Infer, state, &name, device)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tinycodec_card_is_the_shipped_config() {
        use crate::models::tinycodec::TinyCodecConfig;
        let card = ModelCard::find("tinycodec-24khz").unwrap();
        let cfg: TinyCodecConfig = card.architecture.clone().try_into().unwrap();
        assert_eq!(cfg, TinyCodecConfig::tinycodec_24khz());
        cfg.validate("card").unwrap();
        assert_eq!(cfg.frame_rate(), card.frame_rate);
        assert_eq!(card.codebooks, vec![3125; 4]);
        assert_eq!(
            card.embedded.as_deref(),
            Some("tinycodec-24khz.safetensors")
        );
    }

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
            assert!(
                models::FAMILIES.contains(&card.family.as_str()),
                "{file}: unknown family"
            );
            if card.family == "snac" {
                let cfg: crate::models::snac::SnacConfig = card
                    .architecture
                    .clone()
                    .try_into()
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
                cfg.validate(file).unwrap();
                assert_eq!(cfg.frame_rate(), card.frame_rate, "{file}: frame rate");
                assert_eq!(cfg.sample_rate, card.sample_rate, "{file}: sample rate");
                assert_eq!(
                    card.codebooks,
                    vec![cfg.codebook_size as u32; cfg.vq_strides.len()],
                    "{file}: codebooks"
                );
                assert_eq!(
                    card.codebook_frame_rates,
                    Some(cfg.codebook_frame_rates()),
                    "{file}: codebook frame rates"
                );
            }
            if card.family == "dac" {
                let cfg: crate::models::dac::DacConfig = card
                    .architecture
                    .clone()
                    .try_into()
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
                cfg.validate(file).unwrap();
                assert_eq!(cfg.frame_rate(), card.frame_rate, "{file}: frame rate");
                assert_eq!(cfg.sample_rate, card.sample_rate, "{file}: sample rate");
                assert_eq!(
                    card.codebooks,
                    vec![cfg.codebook_size as u32; cfg.n_codebooks],
                    "{file}: codebooks"
                );
            }
            if card.family == "encodec" {
                let cfg: crate::models::encodec::EncodecConfig = card
                    .architecture
                    .clone()
                    .try_into()
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
                cfg.validate(file).unwrap();
                assert_eq!(cfg.frame_rate(), card.frame_rate, "{file}: frame rate");
                assert_eq!(cfg.sample_rate, card.sample_rate, "{file}: sample rate");
                assert_eq!(
                    card.codebooks,
                    vec![cfg.codebook_size as u32; cfg.num_quantizers],
                    "{file}: codebooks"
                );
                // Every bandwidth is the bitrate of a prefix of the card's codebooks.
                for bw in &cfg.bandwidths {
                    let n = cfg.codebooks_for_bandwidth(*bw);
                    let bits = card.frame_rate * (n as f64) * (cfg.codebook_size as f64).log2();
                    assert!((bits - bw * 1000.0).abs() < 1e-6, "{file}: {bw} kbit/s");
                }
            }
            if card.family == "mimi" {
                let cfg: crate::models::mimi::MimiConfig = card
                    .architecture
                    .clone()
                    .try_into()
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
                cfg.validate(file).unwrap();
                assert_eq!(cfg.frame_rate, card.frame_rate, "{file}: frame rate");
                assert_eq!(cfg.sample_rate, card.sample_rate, "{file}: sample rate");
                assert_eq!(
                    card.codebooks,
                    vec![cfg.quantizer.bins as u32; cfg.quantizer.n_q],
                    "{file}: codebooks"
                );
            }
            if card.family == "xcodec2" {
                let cfg: crate::models::xcodec2::XCodec2Config = card
                    .architecture
                    .clone()
                    .try_into()
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
                cfg.validate(file).unwrap();
                assert_eq!(cfg.frame_rate(), card.frame_rate, "{file}: frame rate");
                assert_eq!(cfg.sample_rate, card.sample_rate, "{file}: sample rate");
                assert_eq!(
                    card.codebooks,
                    vec![cfg.codebook_size() as u32],
                    "{file}: codebooks"
                );
            }
            if card.family == "wavtokenizer" {
                let cfg: crate::models::wavtokenizer::WavTokenizerConfig = card
                    .architecture
                    .clone()
                    .try_into()
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
                cfg.validate(file).unwrap();
                assert_eq!(cfg.frame_rate(), card.frame_rate, "{file}: frame rate");
                assert_eq!(cfg.sample_rate, card.sample_rate, "{file}: sample rate");
            }
        }
        assert_eq!(ModelCard::builtin().len(), BUILTIN_CARDS.len());
    }

    #[test]
    fn published_wavtokenizer_cards_match_named_configs() {
        use crate::models::wavtokenizer::WavTokenizerConfig;
        let cfg = |n: &str| -> WavTokenizerConfig {
            ModelCard::find(n).unwrap().architecture.try_into().unwrap()
        };
        assert_eq!(
            cfg("wavtokenizer-small-speech-75"),
            WavTokenizerConfig::frame75_24khz()
        );
        assert_eq!(
            cfg("wavtokenizer-large-unify-40"),
            WavTokenizerConfig::frame40_24khz()
        );
    }

    #[test]
    fn published_snac_cards_match_named_configs() {
        use crate::models::snac::SnacConfig;
        let cfg = |n: &str| -> SnacConfig {
            ModelCard::find(n).unwrap().architecture.try_into().unwrap()
        };
        assert_eq!(cfg("snac-24khz"), SnacConfig::snac_24khz());
        assert_eq!(cfg("snac-32khz"), SnacConfig::snac_32khz());
        assert_eq!(cfg("snac-44khz"), SnacConfig::snac_44khz());
        for (name, repo, bitrate) in [
            ("snac-24khz", "hubertsiuzdak/snac_24khz", 984.375),
            ("snac-32khz", "hubertsiuzdak/snac_32khz", 1875.0),
            ("snac-44khz", "hubertsiuzdak/snac_44khz", 2583.984375),
        ] {
            let card = ModelCard::find(name).unwrap();
            // Multi-scale: the bitrate sums each codebook at its own rate.
            assert!(
                (card.bitrate() - bitrate).abs() < 1e-6,
                "{name}: {}",
                card.bitrate()
            );
            let hub = card.hub.unwrap();
            assert_eq!(
                (hub.repo.as_str(), hub.weights.as_str()),
                (repo, "pytorch_model.bin")
            );
            assert_eq!(card.license, "MIT");
        }
    }

    #[test]
    fn published_dac_cards_match_named_configs() {
        use crate::models::dac::DacConfig;
        let cfg =
            |n: &str| -> DacConfig { ModelCard::find(n).unwrap().architecture.try_into().unwrap() };
        assert_eq!(cfg("dac-16khz"), DacConfig::dac_16khz());
        assert_eq!(cfg("dac-24khz"), DacConfig::dac_24khz());
        assert_eq!(cfg("dac-44khz"), DacConfig::dac_44khz());
        for (name, repo) in [
            ("dac-16khz", "descript/dac_16khz"),
            ("dac-24khz", "descript/dac_24khz"),
            ("dac-44khz", "descript/dac_44khz"),
        ] {
            let card = ModelCard::find(name).unwrap();
            let hub = card.hub.unwrap();
            assert_eq!(
                (hub.repo.as_str(), hub.weights.as_str()),
                (repo, "model.safetensors")
            );
            assert_eq!(card.license, "MIT");
        }
    }

    #[test]
    fn published_encodec_cards_match_named_configs() {
        use crate::models::encodec::EncodecConfig;
        let cfg = |n: &str| -> EncodecConfig {
            ModelCard::find(n).unwrap().architecture.try_into().unwrap()
        };
        assert_eq!(cfg("encodec-24khz"), EncodecConfig::encodec_24khz());
        assert_eq!(cfg("encodec-48khz"), EncodecConfig::encodec_48khz());
        for (name, repo) in [
            ("encodec-24khz", "facebook/encodec_24khz"),
            ("encodec-48khz", "facebook/encodec_48khz"),
        ] {
            let card = ModelCard::find(name).unwrap();
            let hub = card.hub.unwrap();
            assert_eq!(
                (hub.repo.as_str(), hub.weights.as_str()),
                (repo, "model.safetensors")
            );
            assert_eq!(card.license, "MIT");
        }
    }

    #[test]
    fn published_mimi_card_matches_the_named_config() {
        use crate::models::mimi::MimiConfig;
        let card = ModelCard::find("mimi").unwrap();
        let cfg: MimiConfig = card.architecture.clone().try_into().unwrap();
        assert_eq!(cfg, MimiConfig::mimi());
        assert!((card.bitrate() - 4400.0).abs() < 1e-6);
        // kyutai/mimi's transformers-layout file (mapped at load); moshi's is the alternative.
        let hub = card.hub.unwrap();
        assert_eq!(
            (hub.repo.as_str(), hub.weights.as_str()),
            ("kyutai/mimi", "model.safetensors")
        );
    }

    #[test]
    fn published_xcodec2_cards_match_named_configs() {
        use crate::models::xcodec2::XCodec2Config;
        let cfg = |n: &str| -> XCodec2Config {
            ModelCard::find(n).unwrap().architecture.try_into().unwrap()
        };
        assert_eq!(cfg("xcodec2"), XCodec2Config::xcodec2());
        assert_eq!(cfg("neucodec"), XCodec2Config::neucodec());
        for (name, repo, weights, license, rate) in [
            (
                "xcodec2",
                "HKUSTAudio/xcodec2",
                "model.safetensors",
                "CC-BY-NC-4.0",
                16000,
            ),
            (
                "neucodec",
                "neuphonic/neucodec",
                "pytorch_model.bin",
                "Apache-2.0",
                24000,
            ),
        ] {
            let card = ModelCard::find(name).unwrap();
            assert_eq!(card.family, "xcodec2");
            assert_eq!(card.sample_rate, rate);
            // 50 frames/s of one 16-bit code.
            assert_eq!(card.bitrate(), 800.0);
            assert_eq!(card.license, license);
            let hub = card.hub.unwrap();
            assert_eq!((hub.repo.as_str(), hub.weights.as_str()), (repo, weights));
        }
        // The non-commercial licence of X-Codec2's weights is spelled out where users see it.
        let desc = ModelCard::find("xcodec2").unwrap().description;
        assert!(desc.contains("non-commercial"), "{desc}");
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

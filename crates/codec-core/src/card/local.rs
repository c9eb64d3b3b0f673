//! Loading a model from a local folder or file: which weight file, which config beside it.

use std::path::{Path, PathBuf};

use candle_core::Device;

use super::ModelCard;
use crate::models::{self, ArchSource, Loaded};
use crate::weights::{OnnxGraph, StateDict};
use crate::{Error, Result};

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

const WEIGHT_EXTS: &[&str] = &["safetensors", "ckpt", "pth", "pt", "th", "bin", "onnx"];

/// A folder of a graph family's files (e.g. Lyra's three `.tflite`), with a card beside them
/// or the published architecture.
fn load_graph_dir(family: &dyn models::Family, dir: &Path, device: &Device) -> Result<Loaded> {
    let names = family.graph_files().unwrap_or_default();
    let files = names
        .iter()
        .map(|n| crate::audio::read_bounded(&dir.join(n), MAX_GRAPH_FILE_BYTES))
        .collect::<Result<Vec<_>>>()?;
    let mut cards = Vec::new();
    for path in files_with_ext(dir, &["toml"])? {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let card = ModelCard::from_toml(&text, &path.display().to_string())?;
        if card.family == family.name() {
            cards.push(card);
        }
    }
    match cards.as_slice() {
        [card] => family.load_graph(Some(&card.architecture), &files, &card.name, device),
        _ => {
            let stem = dir
                .canonicalize()
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "local".into());
            family.load_graph(None, &files, &format!("local:{stem}"), device)
        }
    }
}

/// The largest graph file read (published ones are a few megabytes).
const MAX_GRAPH_FILE_BYTES: u64 = 256 << 20;

pub(super) fn load_dir(dir: &Path, device: &Device) -> Result<Loaded> {
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
                    "the folder holds several weight files ({}); load one of them by its path",
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

pub(super) fn load_file(file: &Path, dir: Option<&Path>, device: &Device) -> Result<Loaded> {
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
    if models::is_onnx_file(file) {
        return load_onnx_file(file, &dir, device);
    }
    let state = StateDict::load(file)?;
    let local_name = || local_name(&dir);
    match find_config(&dir, file)? {
        Some(LocalConfig::Card(card)) => models::family(&card.family)?.load(
            ArchSource::Card(&card.architecture),
            state,
            &card.name,
            device,
        ),
        Some(LocalConfig::Reference { text, source }) => {
            let family = models::detect_from_config(&text)
                .or_else(|| models::detect_from_weights(&state))
                .ok_or_else(|| {
                    Error::config(&source, "cannot tell which model family this config is for")
                })?;
            let name = local_name();
            family.load(
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
                models::detect_from_weights(&state).ok_or_else(|| Error::UnknownModel {
                    name: file.display().to_string(),
                    hint:
                        "no config beside the weights and the key names match no supported family"
                            .into(),
                })?;
            let name = local_name();
            family.load(ArchSource::Infer, state, &name, device)
        }
    }
}

/// The name a model loaded from a local folder gets: `local:<folder>`.
fn local_name(dir: &Path) -> String {
    let stem = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "local".into());
    format!("local:{stem}")
}

/// An ONNX graph (S3Tokenizer's published weights): a card or reference config beside it
/// decides the architecture, else the graph itself.
fn load_onnx_file(file: &Path, dir: &Path, device: &Device) -> Result<Loaded> {
    let graph = OnnxGraph::load(file)?;
    match find_config(dir, file)? {
        Some(LocalConfig::Card(card)) => models::load_onnx(
            Some(models::family(&card.family)?),
            ArchSource::Card(&card.architecture),
            &graph,
            &card.name,
            device,
        ),
        Some(LocalConfig::Reference { text, source }) => models::load_onnx(
            models::detect_from_config(&text),
            ArchSource::ReferenceConfig {
                text: &text,
                source: &source,
            },
            &graph,
            &local_name(dir),
            device,
        ),
        None => models::load_onnx(None, ArchSource::Infer, &graph, &local_name(dir), device),
    }
}

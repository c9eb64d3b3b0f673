//! What a `--model` argument names, and loading a model card's weights.

use std::path::{Path, PathBuf};

use candle_core::Device;

use super::{embedded_file, fetch_file, local, ModelCard};
use crate::codec::Codec;
use crate::models::{self, ArchSource, Loaded};
use crate::weights::StateDict;
use crate::{Error, Result};

/// What `--model` asked for.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ModelSpec {
    /// A compiled-in model card.
    Card(Box<ModelCard>),
    /// A hub repo id with no card of its own here.
    Hub {
        /// `owner/name`.
        repo: String,
        /// A branch, tag or commit; `main` when `None`.
        revision: Option<String>,
    },
    /// A folder holding a config (card TOML or the reference's YAML) and a checkpoint.
    LocalDir(PathBuf),
    /// A single weight file; the architecture comes from a config beside it or the weights.
    LocalFile(PathBuf),
}

impl ModelSpec {
    /// Interpret a `--model` argument: a card name first (a folder of the same name in the
    /// working directory is reached as `./name`), then an existing path, then a hub repo id
    /// (`owner/name`, optionally `@revision`).
    ///
    /// ```
    /// use codec_core::ModelSpec;
    /// assert!(matches!(ModelSpec::parse("mimi")?, ModelSpec::Card(_)));
    /// assert!(matches!(ModelSpec::parse("kyutai/mimi@main")?, ModelSpec::Hub { .. }));
    /// assert!(matches!(ModelSpec::parse(".")?, ModelSpec::LocalDir(_)));
    /// # Ok::<(), codec_core::Error>(())
    /// ```
    pub fn parse(arg: &str) -> Result<Self> {
        // Card names hold no path separator; `./mimi` still names the folder.
        if let Some(card) = ModelCard::find(arg) {
            return Ok(ModelSpec::Card(Box::new(card)));
        }
        let path = Path::new(arg);
        if path.is_dir() {
            return Ok(ModelSpec::LocalDir(path.to_path_buf()));
        }
        if path.is_file() {
            return Ok(ModelSpec::LocalFile(path.to_path_buf()));
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
///
/// ```no_run
/// use codec_core::{load_model, Codec, Device, ModelSpec};
/// let model = load_model(&ModelSpec::parse("lyra-v2")?, &Device::Cpu)?;
/// assert_eq!(model.info().sample_rate, 16_000);
/// # Ok::<(), codec_core::Error>(())
/// ```
pub fn load_model(spec: &ModelSpec, device: &Device) -> Result<Box<dyn Codec>> {
    load_model_with_report(spec, device).map(|loaded| loaded.model)
}

/// [`load_model`], also returning the checkpoint keys the model did not read (a checkpoint
/// with keys no layer reads may be another variant of the family than its config says).
pub fn load_model_with_report(spec: &ModelSpec, device: &Device) -> Result<Loaded> {
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
        ModelSpec::LocalDir(dir) => local::load_dir(dir, device),
        ModelSpec::LocalFile(file) => local::load_file(file, None, device),
    }
}

fn load_card(card: &ModelCard, device: &Device) -> Result<Loaded> {
    let family = models::family(&card.family)?;
    if let Some(names) = family.graph_files() {
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
        return family.load_graph(Some(&card.architecture), &files, &card.name, device);
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
        return family.load(arch, state, &card.name, device);
    }
    let hub = card.hub.as_ref().ok_or_else(|| Error::UnknownModel {
        name: card.name.clone(),
        hint: card
            .weights_note
            .clone()
            .unwrap_or_else(|| "the card names no weight files".into()),
    })?;
    let weights = fetch_file(&hub.repo, hub.revision.as_deref(), &hub.weights)?;
    if models::is_onnx_file(&weights) {
        if !hub.merge.is_empty() {
            // Merging is defined on state dicts; an ONNX graph's keys come from its family.
            return Err(Error::UnknownModel {
                name: card.name.clone(),
                hint: "the card merges other files into an ONNX graph, which is not supported"
                    .into(),
            });
        }
        let graph = crate::weights::OnnxGraph::load(&weights)?;
        return models::load_onnx(
            Some(family),
            ArchSource::Card(&card.architecture),
            &graph,
            &card.name,
            device,
        );
    }
    let mut state = StateDict::load(&weights)?;
    for extra in &hub.merge {
        let path = fetch_file(&extra.repo, extra.revision.as_deref(), &extra.weights)?;
        merge_prefixed(&mut state, StateDict::load(&path)?, &extra.prefix)?;
    }
    family.load(
        ArchSource::Card(&card.architecture),
        state,
        &card.name,
        device,
    )
}

/// Add `extra`'s tensors to `state` under `prefix`; a key both have is an error (the files
/// were meant to be disjoint).
fn merge_prefixed(state: &mut StateDict, extra: StateDict, prefix: &str) -> Result<()> {
    for (key, tensor) in extra.tensors {
        let key = format!("{prefix}{key}");
        if state.tensors.contains_key(&key) {
            return Err(Error::weights(
                &extra.source,
                format!("`{key}` is also in {}: the files overlap", state.source),
            ));
        }
        state.tensors.insert(key, tensor);
    }
    state.source = format!("{} + {}", state.source, extra.source);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

    fn dict(source: &str, keys: &[&str]) -> StateDict {
        StateDict {
            source: source.into(),
            tensors: keys
                .iter()
                .map(|k| {
                    (
                        k.to_string(),
                        Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu).unwrap(),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn merged_files_join_under_their_prefix() {
        let mut main = dict("main.bin", &["decoder.w", "semantic_model.x"]);
        merge_prefixed(
            &mut main,
            dict("w2v.safetensors", &["encoder.w"]),
            "semantic_model.",
        )
        .unwrap();
        let mut keys: Vec<&str> = main.tensors.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            ["decoder.w", "semantic_model.encoder.w", "semantic_model.x"]
        );
        assert_eq!(main.source, "main.bin + w2v.safetensors");
        let err = merge_prefixed(&mut main, dict("again", &["x"]), "semantic_model.")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("semantic_model.x") && err.contains("overlap"),
            "{err}"
        );
    }
}

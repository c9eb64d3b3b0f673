//! Weight loading: checkpoint formats, weight-norm folding, key tracking and fingerprints.
//!
//! Every model family goes through the same steps: read a state dict ([`StateDict::load`]),
//! keep the keys under the model's prefix, fold weight norm once ([`StateDict::fold_weight_norm`]),
//! then hand the tensors to a [`candle_nn::VarBuilder`] backed by a [`TrackingBackend`] so that a
//! missing or misshaped tensor is an error that names it, and unused keys can be listed
//! ([`load_tracked`]).
//!
//! Each model is also built from any `VarBuilder` (`Model::new(config, vb, name)`: mmapped
//! safetensors, `VarBuilder::from_pth`, a renamed backend), in the family's own key layout
//! with weight norm folded, as `codec convert` writes it. [`build_fingerprinted`] records
//! what the model reads, so both ways give the model the same fingerprint.

mod checkpoint;
pub mod onnx;
mod tracking;

pub use checkpoint::{convert_to_safetensors, StateDict};
pub use onnx::{OnnxGraph, OnnxNode};
pub use tracking::{TrackingBackend, UsedKeys};

use std::collections::BTreeSet;

use std::collections::BTreeMap;
use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use crate::Error;

/// xxh3-64 over the sorted keys, shapes and f32 values of a set of tensors.
///
/// Recorded in token files so that decoding with other weights than the encoder's is caught.
pub fn fingerprint<'a>(
    tensors: impl IntoIterator<Item = (&'a String, &'a Tensor)>,
) -> crate::Result<u64> {
    let mut entries: Vec<_> = tensors.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for (name, tensor) in entries {
        hasher.update(name.as_bytes());
        for d in tensor.dims() {
            hasher.update(&(*d as u64).to_le_bytes());
        }
        let values = tensor
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let mut bytes = Vec::with_capacity(values.len() * 4);
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        hasher.update(&bytes);
    }
    Ok(hasher.digest())
}

/// Build a model from inference weights through a [`TrackingBackend`]: `build` gets a
/// `VarBuilder` over them (f32, on `device`); a missing or misshaped tensor is an error naming
/// it and the file. Returns what `build` made and the keys it did not read (sorted).
pub fn load_tracked<T>(
    state: StateDict,
    device: &Device,
    build: impl FnOnce(VarBuilder) -> crate::Result<T>,
) -> crate::Result<(T, Vec<String>)> {
    let source = state.source.clone();
    let all_keys: Vec<String> = state.tensors.keys().cloned().collect();
    let (backend, used) = TrackingBackend::new(state.tensors);
    let vb = VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone());
    // `build` names the model in its weight errors; the file is the better place to point at.
    let built = build(vb).map_err(|e| match e {
        Error::Build { source: cause, .. } => Error::Build {
            path: source.clone(),
            source: cause,
        },
        e => e,
    })?;
    let used: BTreeSet<String> = used.lock().expect("poisoned key set").clone();
    let mut unused: Vec<String> = all_keys.into_iter().filter(|k| !used.contains(k)).collect();
    unused.sort();
    Ok((built, unused))
}

/// Build a model's parts from `vb` (read as f32), and [`fingerprint`] every tensor they read.
/// A missing or misshaped tensor is an error naming it (and `model`).
pub fn build_fingerprinted<T>(
    vb: VarBuilder,
    model: &str,
    build: impl FnOnce(VarBuilder) -> candle_core::Result<T>,
) -> crate::Result<(T, u64)> {
    let device = vb.device().clone();
    let recorder = Recorder {
        inner: vb,
        read: Mutex::default(),
    };
    let (built, read) = {
        let vb = VarBuilder::from_backend(Box::new(&recorder), DType::F32, device);
        let built = build(vb).map_err(|source| Error::Build {
            path: model.to_string(),
            source,
        })?;
        (
            built,
            recorder.read.lock().expect("poisoned tensor map").clone(),
        )
    };
    Ok((built, fingerprint(&read)?))
}

/// Forwards to a `VarBuilder` and keeps every tensor served, by name.
struct Recorder<'a> {
    inner: VarBuilder<'a>,
    read: Mutex<BTreeMap<String, Tensor>>,
}

impl Recorder<'_> {
    fn keep(&self, name: &str, tensor: &Tensor) {
        self.read
            .lock()
            .expect("poisoned tensor map")
            .insert(name.to_string(), tensor.clone());
    }
}

impl SimpleBackend for &Recorder<'_> {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let t = self
            .inner
            .get_with_hints_dtype(s, name, h, dtype)?
            .to_device(dev)?;
        self.keep(name, &t);
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let t = self
            .inner
            .get_unchecked_dtype(name, dtype)?
            .to_device(dev)?;
        self.keep(name, &t);
        Ok(t)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.contains_tensor(name)
    }
}

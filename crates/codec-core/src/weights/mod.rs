//! Weight loading: checkpoint formats, weight-norm folding, key tracking and fingerprints.
//!
//! Every model family goes through the same steps: read a state dict ([`StateDict::load`]),
//! keep the keys under the model's prefix, fold weight norm once ([`StateDict::fold_weight_norm`]),
//! then hand the tensors to a [`candle_nn::VarBuilder`] backed by a [`TrackingBackend`] so that a
//! missing or misshaped tensor is an error that names it, and unused keys can be listed.

mod checkpoint;
mod tracking;

pub use checkpoint::{convert_to_safetensors, StateDict};
pub use tracking::{TrackingBackend, UsedKeys};

use std::collections::BTreeSet;

use candle_core::{DType, Device, Tensor};
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

/// The steps every family's loader shares: build a model's parts from inference weights through
/// a [`TrackingBackend`] (a missing or misshaped tensor is an error naming it and the file);
/// returns what `build` made, the weights' [`fingerprint`] and the keys it did not read (sorted).
pub fn build_tracked<T>(
    state: StateDict,
    device: &Device,
    build: impl FnOnce(VarBuilder) -> candle_core::Result<T>,
) -> crate::Result<(T, u64, Vec<String>)> {
    let fingerprint = fingerprint(&state.tensors)?;
    let source = state.source.clone();
    let all_keys: Vec<String> = state.tensors.keys().cloned().collect();
    let (backend, used) = TrackingBackend::new(state.tensors);
    let vb = VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone());
    let built = build(vb).map_err(|e| Error::weights(&source, e.to_string()))?;
    let used: BTreeSet<String> = used.lock().expect("poisoned key set").clone();
    let mut unused: Vec<String> = all_keys.into_iter().filter(|k| !used.contains(k)).collect();
    unused.sort();
    Ok((built, fingerprint, unused))
}

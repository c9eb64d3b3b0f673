//! MOSS-Audio-Tokenizer's checkpoint layout (`model.safetensors` as `save_pretrained`
//! writes it) and the config a checkpoint implies.
//!
//! - `encoder.{i}.*` / `decoder.{i}.*`: the index counts the patch modules too. A transformer
//!   stage has `input_proj.weight` and `output_proj.weight` (bias-free; absent where the
//!   widths are equal) and `transformer.layers.{n}.{norm1,norm2}.{weight,bias}`,
//!   `…self_attn.{in_projs,out_projs}.0.weight`, `…linear1/linear2.weight`,
//!   `…layer_scale_{1,2}.scale`.
//! - `quantizer.{input_proj,output_proj}` and `quantizer.quantizers.{n}.{in_proj,out_proj}`:
//!   weight-normed 1x1 convolutions with biases (`parametrizations.weight.original0/1`, or
//!   `weight_g/weight_v`); `quantizer.quantizers.{n}.codebook.weight`.
//!
//! [`inference_weights`] folds the weight norm, renames the stage `output_proj` to the
//! `output_projs.0` the shared transformer reads, and accepts the names the reference's load
//! hook accepts for the attention (`in_proj.weight`, `in_proj_weight`, `out_proj.weight`).

use candle_core::DType;

use super::config::MossAudioTokenizerConfig;
use crate::weights::StateDict;
use crate::{Error, Result};

/// Whether a state dict is MOSS-Audio-Tokenizer's (published or as [`inference_weights`]
/// leaves it): transformer stages under numbered encoder / decoder modules and the residual
/// LFQ's projections.
pub fn looks_like_moss_audio_tokenizer(state: &StateDict) -> bool {
    let has = |p: &str, s: &str| {
        state
            .tensors
            .keys()
            .any(|k| k.starts_with(p) && k.contains(s))
    };
    has("encoder.", ".transformer.layers.0.self_attn.")
        && has("decoder.", ".transformer.layers.0.self_attn.")
        && has("quantizer.quantizers.0.in_proj.", "")
        && has("quantizer.quantizers.0.codebook.weight", "")
}

/// The key a published name is read under, or `None` to keep it.
fn renamed(key: &str) -> Option<String> {
    // A stage's own output projection (not the quantizer's, which keeps its name).
    if !key.starts_with("quantizer.") {
        if let Some(stem) = key.strip_suffix(".output_proj.weight") {
            return Some(format!("{stem}.output_projs.0.weight"));
        }
    }
    for (old, new) in [
        (".self_attn.in_proj.weight", ".self_attn.in_projs.0.weight"),
        (".self_attn.in_proj_weight", ".self_attn.in_projs.0.weight"),
        (
            ".self_attn.out_proj.weight",
            ".self_attn.out_projs.0.weight",
        ),
    ] {
        if let Some(stem) = key.strip_suffix(old) {
            return Some(format!("{stem}{new}"));
        }
    }
    None
}

/// The inference weights: weight norm folded, names as the model reads them, f32. What
/// `codec convert` writes; it loads through the same path as the published file.
pub fn inference_weights(mut state: StateDict) -> Result<StateDict> {
    state.fold_weight_norm()?;
    let source = state.source.clone();
    let tensors = std::mem::take(&mut state.tensors);
    let mut out = std::collections::HashMap::with_capacity(tensors.len());
    for (key, tensor) in tensors {
        let key = renamed(&key).unwrap_or(key);
        if out.insert(key.clone(), tensor).is_some() {
            return Err(Error::weights(
                &source,
                format!("`{key}` is given twice (under two of its accepted names)"),
            ));
        }
    }
    let mut out = StateDict {
        source,
        tensors: out,
    };
    out.to_dtype(DType::F32)?;
    Ok(out)
}

/// The architecture of a checkpoint given without its `config.json`. Head counts and the
/// attention windows leave no trace in the shapes, so only the published model is
/// recognised: a checkpoint whose shapes are its own loads as it, anything else asks for
/// the config.
pub fn infer_config(state: &StateDict) -> Result<MossAudioTokenizerConfig> {
    let weights = inference_weights(state.clone())?;
    let config = MossAudioTokenizerConfig::moss_audio_tokenizer();
    let probes = [
        ("encoder.1.input_proj.weight", vec![768, 240]),
        (
            "encoder.7.transformer.layers.31.linear1.weight",
            vec![5120, 1280],
        ),
        ("quantizer.input_proj.weight", vec![512, 768, 1]),
        ("quantizer.quantizers.31.codebook.weight", vec![1024, 8]),
        ("decoder.6.output_projs.0.weight", vec![240, 768]),
    ];
    for (key, shape) in probes {
        let found = weights.tensors.get(key).map(|t| t.dims().to_vec());
        if found.as_deref() != Some(shape.as_slice()) {
            return Err(Error::config(
                &state.source,
                format!(
                    "not the published MOSS-Audio-Tokenizer (`{key}` is {found:?}, {shape:?} \
                     published); give the checkpoint's config.json beside it (the head counts \
                     and attention windows cannot be read off the weights)"
                ),
            ));
        }
    }
    Ok(config)
}

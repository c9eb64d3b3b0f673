//! SNAC's checkpoint layout, how it is told from DAC's, and the config a checkpoint implies.

use candle_core::DType;

use super::config::SnacConfig;
use crate::weights::StateDict;
use crate::{Error, Result};

/// Whether a config file's text is SNAC's `config.json` (it has `vq_strides`).
pub fn is_reference_config(text: &str) -> bool {
    matches!(
        serde_json::from_str::<serde_json::Value>(text),
        Ok(serde_json::Value::Object(obj)) if obj.contains_key("vq_strides")
    )
}

/// The shape of the first weight found under `stem` in any weight-norm spelling.
fn weight_dims(state: &StateDict, stem: &str) -> Option<Vec<usize>> {
    [".weight", ".weight_v", ".parametrizations.weight.original1"]
        .iter()
        .find_map(|s| state.tensors.get(&format!("{stem}{s}")))
        .map(|t| t.dims().to_vec())
}

/// Whether a state dict looks like a SNAC checkpoint: DAC's layout plus noise blocks, local
/// attention or depthwise residual convolutions.
pub fn looks_like_snac(state: &StateDict) -> bool {
    let has = |p: &str| state.tensors.keys().any(|k| k.starts_with(p));
    if !(has("quantizer.quantizers.0.codebook.") && has("encoder.block.") && has("decoder.model."))
    {
        return false;
    }
    let marker = state
        .tensors
        .keys()
        .any(|k| k.contains(".to_qkv.") || (k.starts_with("decoder.") && k.contains(".linear.")));
    let depthwise =
        weight_dims(state, "encoder.block.1.block.0.block.1").is_some_and(|d| d.get(1) == Some(&1));
    marker || depthwise
}

/// The inference weights, weight norm folded, f32: what [`Snac::load`](super::Snac::load) consumes and
/// `codec convert` writes.
pub fn inference_weights(mut state: StateDict) -> Result<StateDict> {
    state.fold_weight_norm()?;
    state.to_dtype(DType::F32)?;
    Ok(state)
}

/// Infer the architecture from a checkpoint's shapes. The sample rate, the codebook strides and
/// the attention window are not in the weights: they are taken from the published model of the
/// same architecture, or the load fails (the 32 and 44.1 kHz models differ only in rate).
pub fn infer_config(state: &StateDict) -> Result<SnacConfig> {
    let src = state.source.as_str();
    let dims = |stem: &str| -> Result<Vec<usize>> {
        weight_dims(state, stem).ok_or_else(|| {
            Error::config(
                src,
                format!("cannot infer the architecture: {stem}.weight is missing"),
            )
        })
    };
    let count = |prefix: &str, suffix: &str| {
        (0..)
            .take_while(|i| {
                state
                    .tensors
                    .keys()
                    .any(|k| k.starts_with(&format!("{prefix}{i}.{suffix}")))
            })
            .count()
    };
    let n_enc = (1..)
        .take_while(|i| weight_dims(state, &format!("encoder.block.{i}.block.4")).is_some())
        .count();
    let encoder_rates = (1..=n_enc)
        .map(|i| Ok(dims(&format!("encoder.block.{i}.block.4"))?[2] / 2))
        .collect::<Result<Vec<_>>>()?;
    let attention = state.tensors.keys().any(|k| k.contains(".to_qkv."));
    let depthwise = dims("encoder.block.1.block.0.block.1")?[1] == 1;
    let first_block = if depthwise { 2 } else { 1 } + usize::from(attention);
    let n_dec = (first_block..)
        .take_while(|i| weight_dims(state, &format!("decoder.model.{i}.block.1")).is_some())
        .count();
    let decoder_rates = (first_block..first_block + n_dec)
        .map(|i| Ok(dims(&format!("decoder.model.{i}.block.1"))?[2] / 2))
        .collect::<Result<Vec<_>>>()?;
    let decoder_dim = dims(if depthwise {
        "decoder.model.1"
    } else {
        "decoder.model.0"
    })?[0];
    let codebook = state
        .tensors
        .get("quantizer.quantizers.0.codebook.weight")
        .map(|t| t.dims().to_vec())
        .ok_or_else(|| Error::config(src, "cannot infer the architecture: no codebook"))?;
    let n_q = count("quantizer.quantizers.", "codebook.");
    let noise = state
        .tensors
        .keys()
        .any(|k| k.starts_with("decoder.") && k.contains(".linear."));
    let shape = SnacConfig {
        sample_rate: 0,
        encoder_dim: dims("encoder.block.0")?[0],
        encoder_rates,
        latent_dim: None,
        decoder_dim,
        decoder_rates,
        attn_window_size: None,
        codebook_size: codebook[0],
        codebook_dim: codebook[1],
        vq_strides: vec![0; n_q],
        noise,
        depthwise,
    };
    let same: Vec<SnacConfig> = SnacConfig::published_configs()
        .into_iter()
        .filter(|p| {
            SnacConfig {
                sample_rate: 0,
                attn_window_size: None,
                vq_strides: vec![0; p.vq_strides.len()],
                ..p.clone()
            } == shape
                && p.attn_window_size.is_some() == attention
        })
        .collect();
    match same.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::config(
            src,
            "this SNAC architecture matches no published model, and its sample rate and \
             codebook strides are not in the weights; put the reference's config.json beside them",
        )),
        several => Err(Error::config(
            src,
            format!(
                "the weights fit the published SNAC models at {} Hz, which differ only in sample \
                 rate; put the reference's config.json beside them",
                several
                    .iter()
                    .map(|c| c.sample_rate.to_string())
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        )),
    }
}

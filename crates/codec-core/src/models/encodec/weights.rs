//! EnCodec's checkpoint layouts (the original package's and transformers', mapped to the
//! original) and the config a checkpoint implies.

use candle_core::DType;

use super::config::EncodecConfig;
use super::{DECODER, ENCODER, QUANTIZER};
use crate::nn::seanet::{hf_decoder_upsampling_layers, hf_seanet_key_to_original};
use crate::nn::ConvNorm;
use crate::weights::StateDict;
use crate::{Error, Result};

/// Whether a state dict uses the transformers layout (`encoder.layers.*`, ...).
pub fn is_hf_layout(state: &StateDict) -> bool {
    state.tensors.keys().any(|k| {
        k.starts_with("encoder.layers.")
            || k.starts_with("decoder.layers.")
            || k.starts_with("quantizer.layers.")
    })
}

/// The original package's name of a transformers-layout key, or `None` when the key is not one
/// of the transformers `EncodecModel`'s (it is then kept as it is).
///
/// `upsampling` lists the decoder layer indices holding transposed convolutions; see
/// [`hf_decoder_upsampling_layers`]. The renaming (after transformers'
/// `convert_encodec_checkpoint_to_pytorch.py`, read backwards):
///
/// | transformers | original |
/// |---|---|
/// | `{encoder,decoder}.layers.I.conv.*` | `….model.I.conv.conv.*` (`convtr.convtr.*` for upsampling) |
/// | `{encoder,decoder}.layers.I.norm.*` | `….model.I.conv.norm.*` (`convtr.norm.*`) |
/// | `….layers.I.block.J.{conv,norm}.*` | `….model.I.block.J.conv.{conv,norm}.*` |
/// | `….layers.I.shortcut.{conv,norm}.*` | `….model.I.shortcut.conv.{conv,norm}.*` |
/// | `….layers.I.lstm.*` | `….model.I.lstm.*` |
/// | `quantizer.layers.N.codebook.*` | `quantizer.vq.layers.N._codebook.*` |
pub fn hf_key_to_original(key: &str, upsampling: &[usize]) -> Option<String> {
    if let Some(rest) = key.strip_prefix("quantizer.layers.") {
        let (n, rest) = rest.split_once('.')?;
        let rest = rest.strip_prefix("codebook.")?;
        return Some(format!("quantizer.vq.layers.{n}._codebook.{rest}"));
    }
    hf_seanet_key_to_original(key, upsampling)
}

/// Rename a transformers-layout state dict to the original package's layout (a no-op for one
/// already in it).
pub fn map_hf_keys(state: StateDict) -> StateDict {
    if !is_hf_layout(&state) {
        return state;
    }
    let upsampling = hf_decoder_upsampling_layers(state.tensors.keys());
    let tensors = state
        .tensors
        .into_iter()
        .map(|(k, v)| (hf_key_to_original(&k, &upsampling).unwrap_or(k), v))
        .collect();
    StateDict {
        source: state.source,
        tensors,
    }
}

/// Keep only the inference weights (original layout), fold weight norm, f32.
///
/// The result is what `codec convert` writes, and what [`Encodec::load`](super::Encodec::load) consumes.
pub fn inference_weights(state: StateDict) -> Result<StateDict> {
    keep_inference_weights(map_hf_keys(state), &[ENCODER, DECODER, QUANTIZER])
}

/// The keys under `prefixes` of an original-layout checkpoint, without the codebooks'
/// training statistics, weight norm folded, f32: EnCodec's inference weights, and those of
/// the families that reuse its layout (SpeechTokenizer adds its `transform`).
pub(crate) fn keep_inference_weights(mut state: StateDict, prefixes: &[&str]) -> Result<StateDict> {
    state.retain(|k| {
        let model = prefixes.iter().any(|p| k.starts_with(&format!("{p}.")));
        // k-means/EMA statistics of the codebooks are training state.
        let stats =
            k.ends_with(".cluster_size") || k.ends_with(".embed_avg") || k.ends_with(".inited");
        model && !stats
    });
    state.fold_weight_norm()?;
    state.to_dtype(DType::F32)?;
    Ok(state)
}

/// Whether a `config.json` is EnCodec's: a transformers `EncodecConfig`
/// (`"model_type": "encodec"`) or the package's arguments (`target_bandwidths` with `n_q` or
/// `bins`, see [`EncodecConfig::from_reference_json`]).
pub fn is_reference_config(text: &str) -> bool {
    let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(text) else {
        return false;
    };
    match obj.get("model_type").and_then(|m| m.as_str()) {
        Some(model_type) => model_type == "encodec",
        None => {
            obj.contains_key("target_bandwidths")
                && (obj.contains_key("n_q") || obj.contains_key("bins"))
        }
    }
}

/// Whether a state dict looks like an EnCodec model, in either layout.
pub fn looks_like_encodec(state: &StateDict) -> bool {
    let has = |p: &str| state.tensors.keys().any(|k| k.starts_with(p));
    (has("encoder.model.") && has("decoder.model.") && has("quantizer.vq.layers."))
        || (has("encoder.layers.") && has("decoder.layers.") && has("quantizer.layers."))
}

/// The published architecture whose shapes a checkpoint has, for a checkpoint given without a
/// config (the sample rate and segmenting cannot be read off the weights).
pub fn infer_config(state: &StateDict) -> Result<EncodecConfig> {
    let state = inference_weights(state.clone())?;
    let src = state.source.as_str();
    let dims = |k: &str| state.tensors.get(k).map(|t| t.dims().to_vec());
    let first = dims("encoder.model.0.conv.conv.weight");
    let embed = dims(&format!("{QUANTIZER}.layers.0._codebook.embed"));
    let n_q = state.count_indexed(|i| format!("{QUANTIZER}.layers.{i}._codebook.embed"));
    let group_norm = state
        .tensors
        .contains_key("encoder.model.0.conv.norm.weight");
    for cfg in [
        EncodecConfig::encodec_24khz(),
        EncodecConfig::encodec_48khz(),
    ] {
        let s = &cfg.seanet;
        let fits = first.as_deref() == Some(&[s.n_filters, s.channels, s.kernel_size][..])
            && embed.as_deref() == Some(&[cfg.codebook_size, s.dimension][..])
            && n_q == cfg.num_quantizers
            && group_norm == (s.norm == ConvNorm::TimeGroupNorm);
        if fits {
            return Ok(cfg);
        }
    }
    Err(Error::config(
        src,
        format!(
            "the weights (first conv {first:?}, codebooks {n_q} x {embed:?}, group norm: \
             {group_norm}) match neither published EnCodec model; put a config.json beside them"
        ),
    ))
}

//! DAC's checkpoint layouts (the original package's and transformers', mapped to the
//! original) and the config a checkpoint implies.

use candle_core::DType;

use super::config::DacConfig;
use crate::weights::StateDict;
use crate::{Error, Result};

/// Whether a config file's text is DAC's: the `DAC(**kwargs)` JSON (`encoder_rates`,
/// `n_codebooks`, no `vq_strides`) or a `transformers` `DacConfig`.
pub fn is_reference_config(text: &str) -> bool {
    let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(text) else {
        return false;
    };
    let hf = obj.get("model_type").and_then(|m| m.as_str()) == Some("dac");
    let original = obj.contains_key("encoder_rates")
        && obj.contains_key("n_codebooks")
        && !obj.contains_key("vq_strides");
    hf || original
}

/// Whether a state dict looks like a DAC checkpoint (original or `transformers` layout). SNAC
/// shares the layout; callers check [`crate::models::snac::looks_like_snac`] first.
pub fn looks_like_dac(state: &StateDict) -> bool {
    let has = |p: &str| state.tensors.keys().any(|k| k.starts_with(p));
    has("quantizer.quantizers.0.codebook.")
        && (has("encoder.block.") || has("encoder.conv1."))
        && (has("decoder.model.") || has("decoder.conv1."))
}

/// Whether a state dict uses the `transformers` names (`encoder.conv1`, `res_unit1`, ...).
pub fn is_hf_layout(state: &StateDict) -> bool {
    state.tensors.keys().any(|k| {
        k.starts_with("encoder.conv1.")
            || k.starts_with("decoder.conv1.")
            || k.contains(".res_unit")
            || k.contains(".conv_t1.")
    })
}

/// The original name of a `transformers` DAC key, given the number of encoder and decoder
/// blocks; `None` for a key that is not part of the HF layout.
///
/// ```
/// use codec_core::models::dac::hf_key_to_original;
/// assert_eq!(
///     hf_key_to_original("encoder.block.0.res_unit2.conv1.weight", 4, 4).as_deref(),
///     Some("encoder.block.1.block.1.block.1.weight")
/// );
/// assert_eq!(
///     hf_key_to_original("decoder.conv2.bias", 4, 4).as_deref(),
///     Some("decoder.model.6.bias")
/// );
/// ```
pub fn hf_key_to_original(key: &str, n_encoder: usize, n_decoder: usize) -> Option<String> {
    let parts: Vec<&str> = key.split('.').collect();
    let idx = |s: &str| s.parse::<usize>().ok();
    let unit = |s: &str| -> Option<usize> {
        let j = s.strip_prefix("res_unit")?.parse::<usize>().ok()?;
        (1..=3).contains(&j).then_some(j)
    };
    let layer = |s: &str| -> Option<usize> {
        match s {
            "snake1" => Some(0),
            "conv1" => Some(1),
            "snake2" => Some(2),
            "conv2" => Some(3),
            _ => None,
        }
    };
    let (stem, rest): (String, &[&str]) = match parts.as_slice() {
        ["quantizer", "quantizers", ..] => return Some(key.to_string()),
        ["encoder", "conv1", rest @ ..] => ("encoder.block.0".into(), rest),
        ["encoder", "snake1", rest @ ..] => (format!("encoder.block.{}", n_encoder + 1), rest),
        ["encoder", "conv2", rest @ ..] => (format!("encoder.block.{}", n_encoder + 2), rest),
        ["encoder", "block", i, u, l, rest @ ..] if unit(u).is_some() => (
            format!(
                "encoder.block.{}.block.{}.block.{}",
                idx(i)? + 1,
                unit(u)? - 1,
                layer(l)?
            ),
            rest,
        ),
        ["encoder", "block", i, "snake1", rest @ ..] => {
            (format!("encoder.block.{}.block.3", idx(i)? + 1), rest)
        }
        ["encoder", "block", i, "conv1", rest @ ..] => {
            (format!("encoder.block.{}.block.4", idx(i)? + 1), rest)
        }
        ["decoder", "conv1", rest @ ..] => ("decoder.model.0".into(), rest),
        ["decoder", "snake1", rest @ ..] => (format!("decoder.model.{}", n_decoder + 1), rest),
        ["decoder", "conv2", rest @ ..] => (format!("decoder.model.{}", n_decoder + 2), rest),
        ["decoder", "block", i, u, l, rest @ ..] if unit(u).is_some() => (
            format!(
                "decoder.model.{}.block.{}.block.{}",
                idx(i)? + 1,
                unit(u)? + 1,
                layer(l)?
            ),
            rest,
        ),
        ["decoder", "block", i, "snake1", rest @ ..] => {
            (format!("decoder.model.{}.block.0", idx(i)? + 1), rest)
        }
        ["decoder", "block", i, "conv_t1", rest @ ..] => {
            (format!("decoder.model.{}.block.1", idx(i)? + 1), rest)
        }
        _ => return None,
    };
    if rest.is_empty() {
        return None;
    }
    Some(format!("{stem}.{}", rest.join(".")))
}

/// Number of `{prefix}{i}.` blocks among the keys (one past the largest index).
fn count_blocks<'a>(keys: impl Iterator<Item = &'a String>, prefix: &str) -> usize {
    keys.filter_map(|k| {
        k.strip_prefix(prefix)?
            .split('.')
            .next()?
            .parse::<usize>()
            .ok()
    })
    .map(|i| i + 1)
    .max()
    .unwrap_or(0)
}

/// Rename a `transformers` state dict to the original layout (keys it does not know are kept).
pub fn from_hf_layout(state: StateDict) -> StateDict {
    let n_enc = count_blocks(state.tensors.keys(), "encoder.block.");
    let n_dec = count_blocks(state.tensors.keys(), "decoder.block.");
    let tensors = state
        .tensors
        .into_iter()
        .map(|(k, v)| (hf_key_to_original(&k, n_enc, n_dec).unwrap_or(k), v))
        .collect();
    StateDict {
        source: state.source,
        tensors,
    }
}

/// The inference weights in the original layout, weight norm folded, f32: what
/// [`Dac::load`](super::Dac::load) consumes and `codec convert` writes.
pub fn inference_weights(state: StateDict) -> Result<StateDict> {
    let mut state = if is_hf_layout(&state) {
        from_hf_layout(state)
    } else {
        state
    };
    state.fold_weight_norm()?;
    state.to_dtype(DType::F32)?;
    Ok(state)
}

/// Infer the architecture from a checkpoint's shapes. The sample rate is not in the weights:
/// it is taken from the published model of the same architecture, or the load fails.
pub fn infer_config(state: &StateDict) -> Result<DacConfig> {
    let src = state.source.clone();
    let state = inference_weights(state.clone())?;
    let dims = |key: &str| -> Result<Vec<usize>> {
        state
            .tensors
            .get(key)
            .map(|t| t.dims().to_vec())
            .ok_or_else(|| {
                Error::config(
                    &src,
                    format!("cannot infer the architecture: {key} is missing"),
                )
            })
    };
    let keys = || state.tensors.keys();
    let n_enc = count_blocks(keys(), "encoder.block.").saturating_sub(3);
    let n_dec = count_blocks(keys(), "decoder.model.").saturating_sub(3);
    let encoder_rates = (1..=n_enc)
        .map(|i| Ok(dims(&format!("encoder.block.{i}.block.4.weight"))?[2] / 2))
        .collect::<Result<Vec<_>>>()?;
    let decoder_rates = (1..=n_dec)
        .map(|i| Ok(dims(&format!("decoder.model.{i}.block.1.weight"))?[2] / 2))
        .collect::<Result<Vec<_>>>()?;
    let encoder_dim = dims("encoder.block.0.weight")?[0];
    let latent = dims(&format!("encoder.block.{}.weight", n_enc + 2))?[0];
    let codebook = dims("quantizer.quantizers.0.codebook.weight")?;
    let mut cfg = DacConfig {
        sample_rate: 0,
        encoder_dim,
        encoder_rates,
        latent_dim: (latent != encoder_dim << n_enc).then_some(latent),
        decoder_dim: dims("decoder.model.0.weight")?[0],
        decoder_rates,
        n_codebooks: count_blocks(keys(), "quantizer.quantizers."),
        codebook_size: codebook[0],
        codebook_dim: codebook[1],
    };
    let same_arch = DacConfig::published_configs().into_iter().find(|p| {
        DacConfig {
            sample_rate: 0,
            ..p.clone()
        } == cfg
    });
    match same_arch {
        Some(p) => cfg.sample_rate = p.sample_rate,
        None => {
            return Err(Error::config(
                &src,
                "the sample rate of this DAC architecture is not in the weights and it matches \
                 no published model; put the reference's config.json beside the weights",
            ))
        }
    }
    cfg.validate(&src)?;
    Ok(cfg)
}

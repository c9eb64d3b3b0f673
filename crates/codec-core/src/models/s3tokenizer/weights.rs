//! S3Tokenizer's state-dict layout (what the reference's `onnx2torch` derives from the
//! published ONNX graphs) and the config a checkpoint implies.

use candle_core::DType;

use super::config::{S3TokenizerConfig, HEAD_DIM};
use crate::weights::StateDict;
use crate::{Error, Result};

/// The encoder and the FSQ projection; Chatterbox's copies of the front end's buffers
/// (`_mel_filters`, `window`) are dropped (the front end is computed here), f32.
pub fn inference_weights(mut state: StateDict) -> Result<StateDict> {
    state.retain(|k| {
        k.starts_with("encoder.") || k.starts_with("quantizer._codebook.project_down.")
    });
    state.to_dtype(DType::F32)?;
    Ok(state)
}

/// Whether a state dict is S3Tokenizer v2 / v3's: FSMN blocks and the FSQ projection.
pub fn looks_like_s3tokenizer(state: &StateDict) -> bool {
    state
        .tensors
        .contains_key("encoder.blocks.0.attn.fsmn_block.weight")
        && state
            .tensors
            .contains_key("quantizer._codebook.project_down.weight")
}

/// The architecture a checkpoint's shapes imply: width and mel bands from `conv1`, blocks
/// counted, heads of 64, the FSMN kernel from its weight; the front end and windows as
/// published.
pub fn infer_config(state: &StateDict) -> Result<S3TokenizerConfig> {
    let src = state.source.as_str();
    let dims = |k: &str| {
        state
            .tensors
            .get(k)
            .map(|t| t.dims().to_vec())
            .ok_or_else(|| {
                Error::config(
                    src,
                    format!("no `{k}`: not an S3Tokenizer v2/v3 checkpoint"),
                )
            })
    };
    let conv1 = dims("encoder.conv1.weight")?;
    let fsmn = dims("encoder.blocks.0.attn.fsmn_block.weight")?;
    let (&[d_model, n_mels, _], &[_, _, fsmn_kernel]) = (conv1.as_slice(), fsmn.as_slice()) else {
        return Err(Error::config(src, "conv1 or the FSMN weight is not 3-D"));
    };
    let config = S3TokenizerConfig {
        d_model,
        n_mels,
        num_heads: d_model / HEAD_DIM,
        num_layers: state.count_indexed(|i| format!("encoder.blocks.{i}.attn_ln.weight")),
        fsmn_kernel,
        ..S3TokenizerConfig::s3tokenizer_v2()
    };
    config.validate(src)?;
    Ok(config)
}

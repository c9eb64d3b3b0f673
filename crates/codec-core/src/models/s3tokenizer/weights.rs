//! S3Tokenizer's state-dict layout (what the reference's `onnx2torch` derives from the
//! published ONNX graphs) and the config a checkpoint implies.

use candle_core::DType;

use super::config::{S3TokenizerConfig, S3Variant, HEAD_DIM};
use crate::weights::StateDict;
use crate::{Error, Result};

/// The encoder and the quantizer (v2's FSQ projection, v1's codebook); Chatterbox's copies of
/// the front end's buffers (`_mel_filters`, `window`) are dropped (the front end is computed
/// here), f32.
pub fn inference_weights(mut state: StateDict) -> Result<StateDict> {
    state.retain(|k| {
        k.starts_with("encoder.")
            || k.starts_with("quantizer._codebook.project_down.")
            || k == "quantizer._codebook.embed"
    });
    state.to_dtype(DType::F32)?;
    Ok(state)
}

/// Which S3Tokenizer structure a state dict holds, if any: v2 / v3's FSMN blocks and FSQ
/// projection, or v1's position table and VQ codebook.
pub fn variant_of(state: &StateDict) -> Option<S3Variant> {
    let has = |k: &str| state.tensors.contains_key(k);
    if has("encoder.blocks.0.attn.fsmn_block.weight")
        && has("quantizer._codebook.project_down.weight")
    {
        Some(S3Variant::V2)
    } else if has("encoder.positional_embedding")
        && has("quantizer._codebook.embed")
        && has("encoder.blocks.0.attn.query.weight")
    {
        Some(S3Variant::V1)
    } else {
        None
    }
}

/// Whether a state dict is S3Tokenizer's (any version).
pub fn looks_like_s3tokenizer(state: &StateDict) -> bool {
    variant_of(state).is_some()
}

/// The architecture a checkpoint's shapes imply: width and mel bands from `conv1`, blocks
/// counted, heads of 64, v2's FSMN kernel from its weight, v1's codebook and positions from
/// theirs; the front end and windows as published. v1 comes with two first-convolution
/// strides that no shape tells apart, so `conv1_stride` must be given for it (an ONNX graph's
/// `Conv` node states it; see [`super::onnx`]).
pub fn infer_config(state: &StateDict) -> Result<S3TokenizerConfig> {
    infer_with_stride(state, None)
}

/// [`infer_config`] with v1's first-convolution stride when known.
pub fn infer_with_stride(
    state: &StateDict,
    conv1_stride: Option<usize>,
) -> Result<S3TokenizerConfig> {
    let src = state.source.as_str();
    let dims = |k: &str| {
        state
            .tensors
            .get(k)
            .map(|t| t.dims().to_vec())
            .ok_or_else(|| Error::config(src, format!("no `{k}`: not an S3Tokenizer checkpoint")))
    };
    let conv1 = dims("encoder.conv1.weight")?;
    let &[d_model, n_mels, _] = conv1.as_slice() else {
        return Err(Error::config(src, "conv1's weight is not 3-D"));
    };
    let num_layers = state.count_indexed(|i| format!("encoder.blocks.{i}.attn_ln.weight"));
    let config = match variant_of(state) {
        Some(S3Variant::V2) | None => {
            let fsmn = dims("encoder.blocks.0.attn.fsmn_block.weight")?;
            let &[_, _, fsmn_kernel] = fsmn.as_slice() else {
                return Err(Error::config(src, "the FSMN weight is not 3-D"));
            };
            S3TokenizerConfig {
                d_model,
                n_mels,
                num_heads: d_model / HEAD_DIM,
                num_layers,
                fsmn_kernel,
                ..S3TokenizerConfig::s3tokenizer_v2()
            }
        }
        Some(S3Variant::V1) => {
            let stride = conv1_stride.ok_or_else(|| {
                Error::config(
                    src,
                    "an S3Tokenizer v1 checkpoint does not say whether it is the 50 Hz model \
                     (conv1 stride 1) or the 25 Hz one (stride 2): load it with the card \
                     s3tokenizer-v1-50hz or s3tokenizer-v1-25hz beside it, a config.json naming \
                     speech_tokenizer_v1 or speech_tokenizer_v1_25hz, or the ONNX file itself",
                )
            })?;
            let embed = dims("quantizer._codebook.embed")?;
            let positions = dims("encoder.positional_embedding")?;
            let (&[codes, _], &[audio_ctx, _]) = (embed.as_slice(), positions.as_slice()) else {
                return Err(Error::config(
                    src,
                    "the codebook or the position table is not 2-D",
                ));
            };
            S3TokenizerConfig {
                d_model,
                n_mels,
                num_heads: d_model / HEAD_DIM,
                num_layers,
                conv1_stride: stride,
                codebook_size: u32::try_from(codes).unwrap_or(u32::MAX),
                audio_ctx,
                ..S3TokenizerConfig::s3tokenizer_v1_50hz()
            }
        }
    };
    config.validate(src)?;
    Ok(config)
}

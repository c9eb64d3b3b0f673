//! Qwen3-TTS-Tokenizer-12Hz's checkpoint layout (`model.safetensors` of the hub repo) and the
//! config a checkpoint implies.
//!
//! `encoder.*` is a transformers `MimiModel` without its decoder half; it is renamed to moshi's
//! layout under `encoder.` with [`rename_hf_keys`] (query and key rows kept in transformers'
//! order: the encoder's transformer applies RoPE as transformers does, so no head count is
//! needed to load it). `decoder.*` is read as published.

use candle_core::DType;

use super::config::Qwen3TtsConfig;
use crate::models::mimi::rename_hf_keys;
use crate::weights::StateDict;
use crate::{Error, Result};

/// Whether a state dict is Qwen3-TTS-Tokenizer-12Hz's (published or as [`inference_weights`]
/// leaves it): a Mimi encoder under `encoder.` and the decoder's transformer and RVQ.
pub fn looks_like_qwen3_tts(state: &StateDict) -> bool {
    let has = |p: &str| state.tensors.keys().any(|k| k.starts_with(p));
    has("decoder.pre_transformer.layers.")
        && has("decoder.quantizer.rvq_first.")
        && (has("encoder.encoder.layers.") || has("encoder.encoder.model."))
}

/// The inference weights: the encoder renamed to moshi's layout (codebooks' `initialized`
/// flags dropped), the decoder as published, f32. What `codec convert` writes; it loads
/// through the same path as the published file.
pub fn inference_weights(state: StateDict) -> Result<StateDict> {
    let source = state.source.clone();
    let encoder = rename_hf_keys(state.strip_prefix("encoder."), None)?;
    let mut tensors: std::collections::HashMap<_, _> = encoder
        .tensors
        .into_iter()
        .filter(|(k, _)| !k.ends_with("._initialized"))
        .map(|(k, v)| (format!("encoder.{k}"), v))
        .collect();
    tensors.extend(
        state
            .tensors
            .into_iter()
            .filter(|(k, _)| k.starts_with("decoder.")),
    );
    let mut out = StateDict { source, tensors };
    out.to_dtype(DType::F32)?;
    Ok(out)
}

/// The architecture of a checkpoint given without its `config.json`: the published one with
/// the sizes read off the shapes. Head counts leave no trace in the shapes: heads of 64
/// channels are assumed, as published.
pub fn infer_config(state: &StateDict) -> Result<Qwen3TtsConfig> {
    let weights = inference_weights(state.clone())?;
    let src = state.source.as_str();
    let dims = |k: &str| {
        weights
            .tensors
            .get(k)
            .map(|t| t.dims().to_vec())
            .ok_or_else(|| {
                Error::config(
                    src,
                    format!("no `{k}`: not a Qwen3-TTS-Tokenizer-12Hz checkpoint"),
                )
            })
    };
    let mut config = Qwen3TtsConfig::qwen3_tts_tokenizer_12hz();
    let first = dims("encoder.encoder.model.0.conv.conv.weight")?;
    let e_proj = dims("encoder.quantizer.rvq_first.input_proj.weight")?;
    let e_book = dims("encoder.quantizer.rvq_first.vq.layers.0._codebook.embedding_sum")?;
    let e_fc1 = dims("encoder.encoder_transformer.transformer.layers.0.linear1.weight")?;
    let d_proj = dims("decoder.quantizer.rvq_first.output_proj.weight")?;
    let d_in = dims("decoder.pre_transformer.input_proj.weight")?;
    let d_q = dims("decoder.pre_transformer.layers.0.self_attn.q_proj.weight")?;
    let d_gate = dims("decoder.pre_transformer.layers.0.mlp.gate_proj.weight")?;
    let d_first = dims("decoder.decoder.0.conv.weight")?;
    let e = &mut config.encoder_config;
    e.num_filters = first[0];
    e.hidden_size = e_proj[1];
    e.codebook_dim = e_proj[0];
    e.vector_quantization_hidden_dimension = e_proj[0];
    e.codebook_size = e_book[0];
    e.intermediate_size = e_fc1[0];
    e.num_attention_heads = (e.hidden_size / 64).max(1);
    e.num_key_value_heads = e.num_attention_heads;
    e.head_dim = e.hidden_size / e.num_attention_heads;
    e.num_hidden_layers = weights.count_indexed(|i| {
        format!("encoder.encoder_transformer.transformer.layers.{i}.linear1.weight")
    });
    e.num_quantizers = 1 + weights.count_indexed(|i| {
        format!("encoder.quantizer.rvq_rest.vq.layers.{i}._codebook.embedding_sum")
    });
    let d = &mut config.decoder_config;
    d.codebook_dim = d_proj[0];
    d.codebook_size = e_book[0];
    d.num_quantizers = 1 + weights.count_indexed(|i| {
        format!("decoder.quantizer.rvq_rest.vq.layers.{i}._codebook.embedding_sum")
    });
    d.latent_dim = d_in[1];
    d.hidden_size = d_in[0];
    d.head_dim = 64;
    d.num_attention_heads = (d_q[0] / 64).max(1);
    d.num_key_value_heads = d.num_attention_heads;
    d.intermediate_size = d_gate[0];
    d.num_hidden_layers = weights
        .count_indexed(|i| format!("decoder.pre_transformer.layers.{i}.mlp.gate_proj.weight"));
    d.decoder_dim = d_first[0];
    config.encoder_valid_num_quantizers = d.num_quantizers;
    config.validate(src)?;
    Ok(config)
}

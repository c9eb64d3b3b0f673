//! Mimi's checkpoint layouts: moshi's, and transformers' mapped back to it; the config a
//! checkpoint implies.

use candle_core::{DType, Tensor};

use super::config::MimiConfig;
use crate::nn::seanet::{hf_decoder_upsampling_layers, hf_seanet_key_to_original};
use crate::weights::StateDict;
use crate::{Error, Result};

/// Prefixes of the inference weights.
const PREFIXES: &[&str] = &[
    "encoder.",
    "decoder.",
    "encoder_transformer.",
    "decoder_transformer.",
    "downsample.",
    "upsample.",
    "quantizer.",
];

/// Whether a state dict uses the Hugging Face transformers layout (`MimiModel`, kyutai/mimi's
/// `model.safetensors`).
pub fn is_hf_layout(state: &StateDict) -> bool {
    state.tensors.keys().any(|k| {
        k.starts_with("quantizer.semantic_residual_vector_quantizer.")
            || k.starts_with("encoder_transformer.layers.")
            || k.starts_with("encoder.layers.")
    })
}

/// moshi's name of a transformers-layout key (other than the attention's `q_proj`/`k_proj`/
/// `v_proj`, which [`map_hf_keys`] fuses), or `None` when the key is not one of `MimiModel`'s.
///
/// `upsampling` lists the decoder layers that are transposed convolutions
/// ([`hf_decoder_upsampling_layers`]). The renaming is transformers'
/// `convert_mimi_checkpoint_to_pytorch.py` read backwards; the SEANet keys are EnCodec's
/// ([`hf_seanet_key_to_original`]):
///
/// | transformers | moshi |
/// |---|---|
/// | `{encoder,decoder}.layers.I.conv.*` | `….model.I.conv.conv.*` (`convtr.convtr.*` for upsampling) |
/// | `….layers.I.block.J.conv.*`, `….layers.I.shortcut.conv.*` | `….model.I.block.J.conv.conv.*`, `….shortcut.conv.conv.*` |
/// | `{encoder,decoder}_transformer.layers.L.X` | `…_transformer.transformer.layers.L.Y` |
/// | X = `self_attn.o_proj`, `mlp.fc1`, `mlp.fc2` | Y = `self_attn.out_projs.0`, `linear1`, `linear2` |
/// | X = `input_layernorm`, `post_attention_layernorm` | Y = `norm1`, `norm2` |
/// | X = `self_attn_layer_scale`, `mlp_layer_scale` | Y = `layer_scale_1`, `layer_scale_2` |
/// | `downsample.conv.weight`, `upsample.conv.weight` | `downsample.conv.conv.conv.weight`, `upsample.convtr.convtr.convtr.weight` |
/// | `quantizer.{semantic,acoustic}_residual_vector_quantizer.{input,output}_proj.*` | `quantizer.rvq_{first,rest}.{input,output}_proj.*` |
/// | `….layers.N.codebook.{embed_sum,cluster_usage,initialized}` | `….vq.layers.N._codebook.{embedding_sum,cluster_usage,_initialized}` |
pub fn hf_key_to_moshi(key: &str, upsampling: &[usize]) -> Option<String> {
    if let Some(rest) = key.strip_prefix("quantizer.") {
        let (rvq, rest) = if let Some(r) = rest.strip_prefix("semantic_residual_vector_quantizer.")
        {
            ("rvq_first", r)
        } else {
            (
                "rvq_rest",
                rest.strip_prefix("acoustic_residual_vector_quantizer.")?,
            )
        };
        if rest.starts_with("input_proj.") || rest.starts_with("output_proj.") {
            return Some(format!("quantizer.{rvq}.{rest}"));
        }
        let (n, rest) = rest.strip_prefix("layers.")?.split_once('.')?;
        let buffer = match rest.strip_prefix("codebook.")? {
            "embed_sum" => "embedding_sum",
            "cluster_usage" => "cluster_usage",
            "initialized" => "_initialized",
            _ => return None,
        };
        return Some(format!("quantizer.{rvq}.vq.layers.{n}._codebook.{buffer}"));
    }
    for side in ["encoder", "decoder"] {
        if let Some(rest) = key.strip_prefix(&format!("{side}_transformer.layers.")) {
            let (l, x) = rest.split_once('.')?;
            let y = match x {
                "self_attn.o_proj.weight" => "self_attn.out_projs.0.weight",
                "mlp.fc1.weight" => "linear1.weight",
                "mlp.fc2.weight" => "linear2.weight",
                "input_layernorm.weight" => "norm1.weight",
                "input_layernorm.bias" => "norm1.bias",
                "post_attention_layernorm.weight" => "norm2.weight",
                "post_attention_layernorm.bias" => "norm2.bias",
                "self_attn_layer_scale.scale" => "layer_scale_1.scale",
                "mlp_layer_scale.scale" => "layer_scale_2.scale",
                _ => return None,
            };
            return Some(format!("{side}_transformer.transformer.layers.{l}.{y}"));
        }
    }
    if let Some(k) = hf_seanet_key_to_original(key, upsampling) {
        return Some(k);
    }
    match key {
        "downsample.conv.weight" => Some("downsample.conv.conv.conv.weight".into()),
        "upsample.conv.weight" => Some("upsample.convtr.convtr.convtr.weight".into()),
        _ => None,
    }
}

/// transformers' rows of a query or key projection `[heads * head_dim, d_model]` back to
/// moshi's: the conversion permuted each head's rows from interleaved RoPE pairs
/// `(0, 1), (2, 3), ...` to halves (evens, then odds) for its `rotate_half`.
fn unpermute_rope_rows(w: &Tensor, heads: usize) -> Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    if heads == 0 || !rows.is_multiple_of(2 * heads) {
        return Err(candle_core::Error::Msg(format!(
            "attention projection of {rows} rows does not split into {heads} heads of even size"
        ))
        .into());
    }
    Ok(w.reshape((heads, 2, rows / heads / 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))?)
}

/// Rename a transformers-layout state dict to moshi's layout (a no-op for one already in
/// it): keys by [`hf_key_to_moshi`], and each layer's `q_proj`, `k_proj`, `v_proj` fused into
/// moshi's `in_projs.0.weight` (queries and keys un-permuted for moshi's interleaved RoPE with
/// `heads` heads). Keys that are not `MimiModel`'s are kept as they are.
pub fn map_hf_keys(state: StateDict, heads: usize) -> Result<StateDict> {
    rename_hf_keys(state, Some(heads))
}

/// [`map_hf_keys`], with the query and key rows un-permuted for `Some(heads)` heads or kept in
/// transformers' order (`None`: for a transformer that applies RoPE the way transformers does,
/// [`StreamingTransformerConfig::rope_rotate_half`](crate::nn::moshi_transformer::StreamingTransformerConfig),
/// so that the renaming needs no head count).
pub fn rename_hf_keys(state: StateDict, unpermute_heads: Option<usize>) -> Result<StateDict> {
    if !is_hf_layout(&state) {
        return Ok(state);
    }
    let upsampling = hf_decoder_upsampling_layers(state.tensors.keys());
    let source = state.source;
    let mut tensors = std::collections::HashMap::new();
    let mut qkv: std::collections::BTreeMap<String, [Option<Tensor>; 3]> = Default::default();
    for (k, v) in state.tensors {
        let proj = ["q_proj", "k_proj", "v_proj"]
            .iter()
            .position(|p| k.ends_with(&format!(".self_attn.{p}.weight")));
        match (proj, k.split_once("_transformer.layers.")) {
            (Some(p), Some((side, rest))) => {
                let layer = rest.split('.').next().unwrap_or_default();
                let fused = format!(
                    "{side}_transformer.transformer.layers.{layer}.self_attn.in_projs.0.weight"
                );
                qkv.entry(fused).or_default()[p] = Some(v);
            }
            _ => {
                let name = hf_key_to_moshi(&k, &upsampling).unwrap_or(k);
                tensors.insert(name, v);
            }
        }
    }
    for (name, parts) in qkv {
        let [Some(q), Some(k), Some(v)] = parts else {
            return Err(Error::weights(
                &source,
                format!("{name}: the transformers layout needs q_proj, k_proj and v_proj"),
            ));
        };
        let (q, k) = match unpermute_heads {
            Some(heads) => (
                unpermute_rope_rows(&q, heads)?,
                unpermute_rope_rows(&k, heads)?,
            ),
            None => (q, k),
        };
        let fused = Tensor::cat(&[&q, &k, &v], 0)?;
        tensors.insert(name, fused);
    }
    Ok(StateDict { source, tensors })
}

/// Keep only the inference weights (drop the codebooks' `_initialized` flags), fold any weight
/// norm, f32. What `codec convert` writes and [`Mimi::load`](super::Mimi::load) consumes. A transformers-layout
/// state dict is renamed first ([`map_hf_keys`], heads of 64 channels as published).
pub fn inference_weights(state: StateDict) -> Result<StateDict> {
    let heads = state
        .tensors
        .get("encoder_transformer.layers.0.mlp.fc1.weight")
        .and_then(|w| w.dims().get(1).copied())
        .map_or(MimiConfig::mimi().transformer.num_heads, |d| {
            (d / 64).max(1)
        });
    inference_weights_with_heads(state, heads)
}

pub(super) fn inference_weights_with_heads(state: StateDict, heads: usize) -> Result<StateDict> {
    let mut state = map_hf_keys(state, heads)?;
    state.retain(|k| PREFIXES.iter().any(|p| k.starts_with(p)) && !k.ends_with("._initialized"));
    state.fold_weight_norm()?;
    state.to_dtype(DType::F32)?;
    Ok(state)
}

/// Whether a state dict looks like a Mimi model in moshi's layout.
pub fn looks_like_mimi(state: &StateDict) -> bool {
    let has = |p: &str| state.tensors.keys().any(|k| k.starts_with(p));
    (has("quantizer.rvq_first.") && has("encoder.model.") && has("decoder.model."))
        || (has("quantizer.semantic_residual_vector_quantizer.") && has("encoder.layers."))
}

/// Whether a `config.json` is moshi's Mimi config dict.
pub fn is_reference_config(text: &str) -> bool {
    let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(text) else {
        return false;
    };
    ["seanet", "quantizer", "transformer"]
        .iter()
        .all(|k| obj.get(*k).is_some_and(|v| v.is_object()))
        && obj["transformer"].get("d_model").is_some()
}

/// The architecture of a checkpoint given without a config: the published one, with the sizes
/// read off the shapes (heads of 64 channels, as published, since head counts leave no trace).
pub fn infer_config(state: &StateDict) -> Result<MimiConfig> {
    let heads = MimiConfig::mimi().transformer.num_heads;
    let state = &map_hf_keys(state.clone(), heads)?;
    let dims = |k: &str| {
        state
            .tensors
            .get(k)
            .map(|t| t.dims().to_vec())
            .ok_or_else(|| Error::weights(&state.source, format!("tensor {k} is missing")))
    };
    let mut cfg = MimiConfig::mimi();
    let first = dims("encoder.model.0.conv.conv.weight")?;
    let proj = dims("quantizer.rvq_first.input_proj.weight")?;
    let emb = dims("quantizer.rvq_first.vq.layers.0._codebook.embedding_sum")?;
    let lin1 = dims("encoder_transformer.transformer.layers.0.linear1.weight")?;
    let count = |prefix: &str| {
        (0..)
            .take_while(|i| {
                state
                    .tensors
                    .keys()
                    .any(|k| k.starts_with(&format!("{prefix}.{i}.")))
            })
            .count()
    };
    cfg.seanet.n_filters = first[0];
    cfg.seanet.dimension = proj[1];
    cfg.quantizer.dimension = proj[0];
    cfg.quantizer.input_dimension = proj[1];
    cfg.quantizer.output_dimension = proj[1];
    cfg.quantizer.bins = emb[0];
    cfg.quantizer.n_q = 1 + count("quantizer.rvq_rest.vq.layers");
    cfg.transformer.d_model = lin1[1];
    cfg.transformer.dim_feedforward = lin1[0];
    cfg.transformer.num_heads = (lin1[1] / 64).max(1);
    cfg.transformer.num_layers = count("encoder_transformer.transformer.layers");
    cfg.transformer.input_dimension = proj[1];
    cfg.transformer.output_dimensions = vec![proj[1]];
    cfg.validate(&state.source)?;
    Ok(cfg)
}

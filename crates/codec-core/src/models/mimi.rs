//! Mimi (Kyutai, Défossez et al. 2024, the audio tokenizer of Moshi): 24 kHz mono, 12.5 frames/s,
//! causal end to end, so it streams.
//!
//! - causal SEANet encoder (ratios `[8, 6, 5, 4]`, 25 Hz latent, plain convolutions, zero left
//!   padding) → causal transformer (RoPE, LayerNorm, layer scale, GELU MLP, 250-step context) →
//!   learnt stride-2 convolution (25 → 12.5 Hz, left context padded with the first sample);
//! - split residual VQ: `rvq_first` (1 semantic codebook) and `rvq_rest` (up to 31 acoustic
//!   ones) both quantize the same latent, each through its own 1x1 input projection, and their
//!   1x1 output projections are summed; codebooks of 2048 entries stored as moshi's EMA buffers
//!   (entry = `embedding_sum / max(cluster_usage, 1e-5)`);
//! - decoding mirrors it: depthwise transposed convolution (12.5 → 25 Hz), causal transformer,
//!   causal SEANet decoder.
//!
//! This follows the `moshi` package (`MimiModel.encode` / `decode`). Batch encoding pads the
//! input with zeros to whole frames of 1920 samples; every layer then runs as its streaming form
//! on a fresh state, so batch codes equal streamed codes over whole frames.
//!
//! # Weights
//!
//! moshi's state dict (`tokenizer-e351c8d8-checkpoint125.safetensors`): `encoder.model.*`,
//! `decoder.model.*` (`conv.conv.*` / `convtr.convtr.*`), `encoder_transformer.transformer.*`,
//! `decoder_transformer.transformer.*`, `downsample.conv.conv.conv.weight`,
//! `upsample.convtr.convtr.convtr.weight`, `quantizer.rvq_{first,rest}.{input,output}_proj.weight`
//! and `quantizer.rvq_{first,rest}.vq.layers.N._codebook.{embedding_sum,cluster_usage}` (the
//! `_initialized` flags are training state and dropped).
//!
//! The Hugging Face transformers layout (kyutai/mimi's `model.safetensors`, the card's file:
//! `encoder.layers.*`, `encoder_transformer.layers.*` with separate `q_proj`/`k_proj`/`v_proj`,
//! `quantizer.{semantic,acoustic}_residual_vector_quantizer.*`) is renamed to moshi's at load
//! ([`map_hf_keys`]), its query and key rows put back in moshi's interleaved-RoPE order.

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Conv1d, Conv1dConfig, VarBuilder};
use serde::{Deserialize, Serialize};

use super::{architecture, ArchSource, CardFacts, Family, Loaded, Score};
use crate::card::ModelCard;
use crate::codec::{CodeStreams, Codec, CodecInfo, EncodeOptions};
use crate::nn::seanet::{hf_decoder_upsampling_layers, hf_seanet_key_to_original, SeanetConfig};
use crate::nn::streaming_conv::{StreamingConv1d, StreamingConvConfig, StreamingConvTranspose1d};
use crate::nn::streaming_seanet::{StreamingSeanetDecoder, StreamingSeanetEncoder};
use crate::nn::streaming_transformer::{StreamingTransformer, StreamingTransformerConfig};
use crate::nn::{ConvNorm, PadMode};
use crate::quant::ResidualVq;
use crate::streaming::{
    StackDecoder, StackEncoder, StreamCodes, StreamingDecoder, StreamingEncoder, StreamingModule,
};
use crate::weights::{fingerprint, StateDict, TrackingBackend};
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

/// `EuclideanCodebook`'s `epsilon`: the floor of `cluster_usage`.
const CODEBOOK_EPSILON: f64 = 1e-5;

fn default_one() -> usize {
    1
}

/// moshi's SEANet arguments (`_seanet_kwargs`), as in a Mimi `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MimiSeanetConfig {
    /// Audio channels (1).
    pub channels: usize,
    /// Latent channels.
    pub dimension: usize,
    /// Causal convolutions (true).
    pub causal: bool,
    /// Channels of the first convolution.
    pub n_filters: usize,
    /// Residual blocks per ratio.
    pub n_residual_layers: usize,
    /// Must be `ELU` (alpha 1).
    pub activation: String,
    /// Channel reduction inside residual blocks.
    pub compress: usize,
    /// Dilation growth between residual blocks.
    pub dilation_base: usize,
    /// Only matters with a normalisation; Mimi has none.
    #[serde(default)]
    pub disable_norm_outer_blocks: usize,
    /// Kernel of the first convolution.
    pub kernel_size: usize,
    /// Kernel of the residual blocks.
    pub residual_kernel_size: usize,
    /// Kernel of the last convolution.
    pub last_kernel_size: usize,
    /// `none` (published) or `weight_norm` (folded at load).
    pub norm: String,
    /// `constant` (zeros).
    pub pad_mode: PadMode,
    /// Upsampling ratios as listed; the encoder applies them in reverse.
    pub ratios: Vec<usize>,
    /// Identity skip connections in residual blocks.
    pub true_skip: bool,
}

/// The split residual quantizer's arguments (`_quantizer_kwargs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MimiQuantizerConfig {
    /// Codebook vectors' dimension.
    pub dimension: usize,
    /// Codebooks in all, semantic ones included.
    pub n_q: usize,
    /// Entries per codebook.
    pub bins: usize,
    /// Latent channels in (the SEANet's `dimension`).
    pub input_dimension: usize,
    /// Latent channels out.
    pub output_dimension: usize,
    /// Codebooks of `rvq_first` (moshi's `n_q_semantic`, 1).
    #[serde(default = "default_one")]
    pub n_q_semantic: usize,
}

/// The transformers' arguments (`_transformer_kwargs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MimiTransformerConfig {
    /// Width of the residual stream.
    pub d_model: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Layers.
    pub num_layers: usize,
    /// Causal attention (true).
    pub causal: bool,
    /// Initial layer scale; `None` for no layer scale.
    #[serde(default)]
    pub layer_scale: Option<f64>,
    /// Steps of attention context.
    pub context: usize,
    /// `[batch, channels, time]` in and out (true for Mimi).
    #[serde(default)]
    pub conv_layout: bool,
    /// RoPE maximum period.
    pub max_period: f64,
    /// `none` only.
    pub gating: String,
    /// `layer_norm` only.
    pub norm: String,
    /// `rope` only.
    pub positional_embedding: String,
    /// Hidden width of the MLP.
    pub dim_feedforward: usize,
    /// Channels in.
    pub input_dimension: usize,
    /// Channels out (one output).
    pub output_dimensions: Vec<usize>,
}

/// Architecture of a Mimi model: moshi's config dict (`sample_rate`, `channels`, `frame_rate`,
/// `seanet`, `quantizer`, `transformer`), the same in a `config.json` and in a card's
/// `[architecture]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MimiConfig {
    /// Audio sample rate, Hz.
    pub sample_rate: u32,
    /// Audio channels (1).
    pub channels: usize,
    /// Code frames per second (12.5).
    pub frame_rate: f64,
    /// Encoder / decoder convolutions.
    pub seanet: MimiSeanetConfig,
    /// The split residual quantizer.
    pub quantizer: MimiQuantizerConfig,
    /// Both transformers (encoder and decoder side).
    pub transformer: MimiTransformerConfig,
}

impl MimiConfig {
    /// The published model (moshi's `_seanet_kwargs` etc., `kyutai/mimi`).
    pub fn mimi() -> Self {
        Self {
            sample_rate: 24000,
            channels: 1,
            frame_rate: 12.5,
            seanet: MimiSeanetConfig {
                channels: 1,
                dimension: 512,
                causal: true,
                n_filters: 64,
                n_residual_layers: 1,
                activation: "ELU".into(),
                compress: 2,
                dilation_base: 2,
                disable_norm_outer_blocks: 0,
                kernel_size: 7,
                residual_kernel_size: 3,
                last_kernel_size: 3,
                norm: "none".into(),
                pad_mode: PadMode::Zero,
                ratios: vec![8, 6, 5, 4],
                true_skip: true,
            },
            quantizer: MimiQuantizerConfig {
                dimension: 256,
                n_q: 32,
                bins: 2048,
                input_dimension: 512,
                output_dimension: 512,
                n_q_semantic: 1,
            },
            transformer: MimiTransformerConfig {
                d_model: 512,
                num_heads: 8,
                num_layers: 8,
                causal: true,
                layer_scale: Some(0.01),
                context: 250,
                conv_layout: true,
                max_period: 10000.0,
                gating: "none".into(),
                norm: "layer_norm".into(),
                positional_embedding: "rope".into(),
                dim_feedforward: 2048,
                input_dimension: 512,
                output_dimensions: vec![512],
            },
        }
    }

    /// Read moshi's config dict from JSON (a `config.json` beside the weights).
    pub fn from_reference_json(text: &str, source: &str) -> Result<Self> {
        let cfg: Self = serde_json::from_str(text)
            .map_err(|e| Error::config(source, format!("not a Mimi config: {e}")))?;
        cfg.validate(source)?;
        Ok(cfg)
    }

    /// The SEANet as the shared blocks describe it.
    pub fn seanet_config(&self) -> SeanetConfig {
        let s = &self.seanet;
        SeanetConfig {
            channels: s.channels,
            dimension: s.dimension,
            n_filters: s.n_filters,
            n_residual_layers: s.n_residual_layers,
            ratios: s.ratios.clone(),
            kernel_size: s.kernel_size,
            residual_kernel_size: s.residual_kernel_size,
            last_kernel_size: s.last_kernel_size,
            dilation_base: s.dilation_base,
            causal: s.causal,
            pad_mode: s.pad_mode,
            true_skip: s.true_skip,
            compress: s.compress,
            lstm: 0,
            norm: ConvNorm::None,
        }
    }

    fn transformer_config(&self) -> StreamingTransformerConfig {
        let t = &self.transformer;
        StreamingTransformerConfig {
            d_model: t.d_model,
            num_heads: t.num_heads,
            num_layers: t.num_layers,
            dim_feedforward: t.dim_feedforward,
            context: t.context,
            max_period: t.max_period,
            layer_scale: t.layer_scale.is_some(),
            input_dimension: t.input_dimension,
            output_dimension: t.output_dimensions.first().copied().unwrap_or(t.d_model),
        }
    }

    /// Samples per SEANet latent frame (the product of the ratios).
    pub fn encoder_hop_length(&self) -> usize {
        self.seanet.ratios.iter().product()
    }

    /// Latent frames per code frame (the down/upsampling stride, 2).
    pub fn resample_stride(&self) -> usize {
        let encoder_rate = self.sample_rate as f64 / self.encoder_hop_length().max(1) as f64;
        (encoder_rate / self.frame_rate).round() as usize
    }

    /// Samples per code frame (1920).
    pub fn frame_size(&self) -> usize {
        self.encoder_hop_length() * self.resample_stride()
    }

    /// Check that the parts agree with each other and are what this port implements.
    pub fn validate(&self, source: &str) -> Result<()> {
        let bad = |m: String| Err(Error::config(source, m));
        let s = &self.seanet;
        let q = &self.quantizer;
        let t = &self.transformer;
        if self.channels != 1 || s.channels != 1 {
            return bad(format!("Mimi is mono, not {} channels", self.channels));
        }
        if !s.causal || !t.causal {
            return bad("only the causal Mimi is supported".into());
        }
        if s.activation != "ELU" {
            return bad(format!("activation {} (only ELU)", s.activation));
        }
        if s.norm != "none" && s.norm != "weight_norm" {
            return bad(format!("seanet norm {} (none or weight_norm)", s.norm));
        }
        if s.pad_mode != PadMode::Zero {
            return bad(format!("seanet pad_mode {:?} (only constant)", s.pad_mode));
        }
        if s.ratios.is_empty() || s.ratios.contains(&0) || s.n_filters == 0 || s.compress == 0 {
            return bad("ratios, n_filters and compress must be positive".into());
        }
        if self.frame_rate.is_nan() || self.frame_rate <= 0.0 {
            return bad(format!("frame_rate {} must be positive", self.frame_rate));
        }
        let stride = self.resample_stride();
        let encoder_rate = self.sample_rate as f64 / self.encoder_hop_length() as f64;
        if stride < 2 || (encoder_rate / stride as f64 - self.frame_rate).abs() > 1e-9 {
            return bad(format!(
                "frame_rate {} must be the SEANet's {encoder_rate} Hz divided by an integer >= 2",
                self.frame_rate
            ));
        }
        if q.input_dimension != s.dimension
            || q.output_dimension != s.dimension
            || t.input_dimension != s.dimension
            || t.output_dimensions.len() != 1
            || t.output_dimensions[0] != s.dimension
        {
            return bad(format!(
                "quantizer and transformer dimensions must equal the SEANet's {}",
                s.dimension
            ));
        }
        if q.n_q_semantic == 0 || q.n_q <= q.n_q_semantic || q.bins == 0 || q.dimension == 0 {
            return bad(format!(
                "quantizer: n_q {} must exceed n_q_semantic {} (>= 1), bins and dimension positive",
                q.n_q, q.n_q_semantic
            ));
        }
        if t.gating != "none" || t.norm != "layer_norm" || t.positional_embedding != "rope" {
            return bad(format!(
                "transformer: gating {}, norm {}, positional_embedding {} (supported: none, \
                 layer_norm, rope)",
                t.gating, t.norm, t.positional_embedding
            ));
        }
        if t.num_heads == 0
            || !t.d_model.is_multiple_of(t.num_heads)
            || !(t.d_model / t.num_heads).is_multiple_of(2)
        {
            return bad(format!(
                "transformer: d_model {} must split into {} heads of even size",
                t.d_model, t.num_heads
            ));
        }
        if t.context == 0 || !t.conv_layout {
            return bad("transformer: context must be positive, conv_layout true".into());
        }
        Ok(())
    }
}

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
        let fused = Tensor::cat(
            &[
                &unpermute_rope_rows(&q, heads)?,
                &unpermute_rope_rows(&k, heads)?,
                &v,
            ],
            0,
        )?;
        tensors.insert(name, fused);
    }
    Ok(StateDict { source, tensors })
}

/// Keep only the inference weights (drop the codebooks' `_initialized` flags), fold any weight
/// norm, f32. What `codec convert` writes and [`Mimi::load`] consumes. A transformers-layout
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

fn inference_weights_with_heads(state: StateDict, heads: usize) -> Result<StateDict> {
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

/// One residual VQ of the split quantizer with its 1x1 projections (moshi's
/// `ResidualVectorQuantizer` with `force_projection`).
#[derive(Debug, Clone)]
struct ProjectedRvq {
    input_proj: Conv1d,
    output_proj: Conv1d,
    vq: ResidualVq,
}

impl ProjectedRvq {
    fn new(n_q: usize, q: &MimiQuantizerConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let conv = |i: usize, o: usize, vb: VarBuilder| -> candle_core::Result<Conv1d> {
            Ok(Conv1d::new(
                vb.get((o, i, 1), "weight")?,
                None,
                Conv1dConfig::default(),
            ))
        };
        Ok(Self {
            input_proj: conv(q.input_dimension, q.dimension, vb.pp("input_proj"))?,
            output_proj: conv(q.dimension, q.output_dimension, vb.pp("output_proj"))?,
            vq: ResidualVq::from_ema(n_q, q.bins, q.dimension, CODEBOOK_EPSILON, vb.pp("vq"))?,
        })
    }

    fn encode(&self, x: &Tensor, n_q: usize) -> candle_core::Result<Tensor> {
        self.vq.encode(&self.input_proj.forward(x)?, n_q)
    }

    fn decode(&self, codes: &Tensor) -> candle_core::Result<Tensor> {
        self.output_proj.forward(&self.vq.decode(codes)?)
    }
}

/// The split residual quantizer: `rvq_first` (semantic) and `rvq_rest` (acoustic) quantize the
/// same latent; decoding sums their outputs.
#[derive(Debug, Clone)]
struct SplitRvq {
    first: ProjectedRvq,
    rest: ProjectedRvq,
    n_first: usize,
}

impl SplitRvq {
    /// Latent `[batch, dim, frames]` → codes `[batch, n_q, frames]` (u32).
    fn encode(&self, x: &Tensor, n_q: usize) -> candle_core::Result<Tensor> {
        let first = self.first.encode(x, self.n_first.min(n_q))?;
        if n_q <= self.n_first {
            return Ok(first);
        }
        let rest = self.rest.encode(x, n_q - self.n_first)?;
        Tensor::cat(&[&first, &rest], 1)
    }

    /// Codes `[batch, k, frames]` (any `k >= 1`) → latent `[batch, dim, frames]`.
    fn decode(&self, codes: &Tensor) -> candle_core::Result<Tensor> {
        let k = codes.dim(1)?;
        let n = self.n_first.min(k);
        let mut q = self.first.decode(&codes.narrow(1, 0, n)?)?;
        if k > self.n_first {
            q = (q + self.rest.decode(&codes.narrow(1, n, k - n)?)?)?;
        }
        Ok(q)
    }
}

/// The layers that carry state on the encoding side.
#[derive(Debug, Clone)]
struct EncoderStack {
    seanet: StreamingSeanetEncoder,
    transformer: StreamingTransformer,
    downsample: StreamingConv1d,
}

impl StreamingModule for EncoderStack {
    fn step(&mut self, xs: Option<&Tensor>) -> Result<Option<Tensor>> {
        let x = self.seanet.step(xs)?;
        let x = self.transformer.step(x.as_ref())?;
        self.downsample.step(x.as_ref())
    }

    fn reset_state(&mut self) {
        self.seanet.reset_state();
        self.transformer.reset_state();
        self.downsample.reset_state();
    }
}

/// The layers that carry state on the decoding side.
#[derive(Debug, Clone)]
struct DecoderStack {
    upsample: StreamingConvTranspose1d,
    transformer: StreamingTransformer,
    seanet: StreamingSeanetDecoder,
}

impl StreamingModule for DecoderStack {
    fn step(&mut self, xs: Option<&Tensor>) -> Result<Option<Tensor>> {
        let x = self.upsample.step(xs)?;
        let x = self.transformer.step(x.as_ref())?;
        self.seanet.step(x.as_ref())
    }

    fn reset_state(&mut self) {
        self.upsample.reset_state();
        self.transformer.reset_state();
        self.seanet.reset_state();
    }
}

/// A loaded Mimi model.
pub struct Mimi {
    info: CodecInfo,
    config: MimiConfig,
    device: Device,
    encoder: EncoderStack,
    quantizer: SplitRvq,
    decoder: DecoderStack,
}

impl Mimi {
    /// Build the model from a state dict (moshi's layout). Every inference tensor must be
    /// present with the right shape; the error names the one that is not. Returns the model
    /// and the keys it did not use (should be empty).
    pub fn load(
        config: &MimiConfig,
        state: StateDict,
        name: &str,
        device: &Device,
    ) -> Result<(Self, Vec<String>)> {
        config.validate(name)?;
        let state = inference_weights_with_heads(state, config.transformer.num_heads)?;
        let fingerprint = fingerprint(&state.tensors)?;
        let source = state.source.clone();
        let all_keys: Vec<String> = state.tensors.keys().cloned().collect();
        let (backend, used) = TrackingBackend::new(state.tensors);
        let vb = VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone());
        let wrap = |e: candle_core::Error| Error::weights(&source, e.to_string());
        let seanet = config.seanet_config();
        let tcfg = config.transformer_config();
        let dim = config.seanet.dimension;
        let stride = config.resample_stride();
        let q = &config.quantizer;
        let build = || -> candle_core::Result<(EncoderStack, SplitRvq, DecoderStack)> {
            let encoder = EncoderStack {
                seanet: StreamingSeanetEncoder::new(&seanet, vb.pp("encoder"))?,
                transformer: StreamingTransformer::new(&tcfg, vb.pp("encoder_transformer"))?,
                downsample: StreamingConv1d::new(
                    dim,
                    dim,
                    StreamingConvConfig::new(2 * stride)
                        .stride(stride)
                        .bias(false)
                        .pad_mode(PadMode::Replicate),
                    vb.pp("downsample").pp("conv"),
                )?,
            };
            let quantizer = SplitRvq {
                first: ProjectedRvq::new(q.n_q_semantic, q, vb.pp("quantizer").pp("rvq_first"))?,
                rest: ProjectedRvq::new(
                    q.n_q - q.n_q_semantic,
                    q,
                    vb.pp("quantizer").pp("rvq_rest"),
                )?,
                n_first: q.n_q_semantic,
            };
            let decoder = DecoderStack {
                // Channel-wise (moshi's `upsample_channel_wise_bug`), no bias.
                upsample: StreamingConvTranspose1d::new(
                    dim,
                    dim,
                    StreamingConvConfig::new(2 * stride)
                        .stride(stride)
                        .groups(dim)
                        .bias(false),
                    vb.pp("upsample").pp("convtr"),
                )?,
                transformer: StreamingTransformer::new(&tcfg, vb.pp("decoder_transformer"))?,
                seanet: StreamingSeanetDecoder::new(&seanet, vb.pp("decoder"))?,
            };
            Ok((encoder, quantizer, decoder))
        };
        let (encoder, quantizer, decoder) = build().map_err(wrap)?;
        let used = used.lock().expect("poisoned key set").clone();
        let mut unused: Vec<String> = all_keys.into_iter().filter(|k| !used.contains(k)).collect();
        unused.sort();
        let info = CodecInfo {
            name: name.to_string(),
            family: "mimi".into(),
            sample_rate: config.sample_rate,
            channels: 1,
            frame_rate: config.frame_rate,
            codebook_sizes: vec![q.bins as u32; q.n_q],
            codebook_frame_rates: vec![config.frame_rate; q.n_q],
            bandwidths_kbps: Vec::new(),
            fingerprint,
        };
        let model = Self {
            info,
            config: config.clone(),
            device: device.clone(),
            encoder,
            quantizer,
            decoder,
        };
        Ok((model, unused))
    }

    /// The architecture.
    pub fn config(&self) -> &MimiConfig {
        &self.config
    }

    fn num_codebooks(&self, options: &EncodeOptions) -> Result<usize> {
        let max = self.config.quantizer.n_q;
        let n = options.num_codebooks.unwrap_or(max);
        if n == 0 || n > max {
            return Err(Error::InvalidCodes(format!(
                "{n} codebooks requested, model {} has 1 to {max}",
                self.info.name
            )));
        }
        Ok(n)
    }

    fn check_audio(&self, audio: &Tensor) -> Result<()> {
        let dims = audio.dims();
        if dims.len() != 3 || dims[1] != 1 {
            return Err(Error::InvalidAudio(format!(
                "Mimi model {} takes audio shaped [batch, 1, samples], got {dims:?}",
                self.info.name
            )));
        }
        Ok(())
    }

    fn check_codes(&self, codes: &Tensor) -> Result<Tensor> {
        let dims = codes.dims();
        let max_q = self.config.quantizer.n_q;
        if dims.len() != 3 || dims[1] == 0 || dims[1] > max_q {
            return Err(Error::InvalidCodes(format!(
                "expected codes shaped [batch, 1..={max_q}, frames], got {dims:?}"
            )));
        }
        let codes = codes.to_device(&self.device)?.to_dtype(DType::U32)?;
        if codes.elem_count() > 0 {
            let max = codes.flatten_all()?.max(0)?.to_scalar::<u32>()?;
            if max as usize >= self.config.quantizer.bins {
                return Err(Error::InvalidCodes(format!(
                    "code {max} is out of range for a codebook of {} entries",
                    self.config.quantizer.bins
                )));
            }
        }
        Ok(codes)
    }
}

/// Batch encode/decode runs the streaming stacks over the clip in pieces of this many frames
/// (10 s): the same result as one piece (the layers are causal and carry their state), with
/// memory bounded by the piece instead of the clip (a 60 s decode in one piece peaked at 3.4 GB).
const BATCH_CHUNK_FRAMES: usize = 125;

/// Feed `x` through a fresh streaming `stack` in pieces of `chunk` steps along time and join
/// the outputs.
fn run_in_chunks(
    stack: &mut impl StreamingModule,
    x: &Tensor,
    chunk: usize,
) -> Result<Option<Tensor>> {
    let len = x.dim(D::Minus1)?;
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < len {
        let n = chunk.min(len - start);
        pieces.extend(stack.step(Some(&x.narrow(D::Minus1, start, n)?))?);
        start += n;
    }
    Ok(match pieces.len() {
        0 => None,
        1 => pieces.pop(),
        _ => Some(Tensor::cat(&pieces, D::Minus1)?),
    })
}

impl Codec for Mimi {
    fn info(&self) -> &CodecInfo {
        &self.info
    }

    fn device(&self) -> &Device {
        &self.device
    }

    /// Codes with every codebook (32 for the published model; Moshi itself uses the first 8:
    /// see [`Codec::encode_with`]).
    fn encode(&self, audio: &Tensor) -> Result<Tensor> {
        self.encode_with(audio, &EncodeOptions::default())?
            .stacked()
    }

    fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        let codes = self.check_codes(codes)?;
        if codes.dim(2)? == 0 {
            let b = codes.dim(0)?;
            return Ok(Tensor::zeros((b, 1, 0), DType::F32, &self.device)?);
        }
        let latent = self.quantizer.decode(&codes)?;
        let mut decoder = self.decoder.clone();
        decoder.reset_state();
        run_in_chunks(&mut decoder, &latent, BATCH_CHUNK_FRAMES)?
            .ok_or_else(|| Error::InvalidCodes("no frames to decode".into()))
    }

    /// The input is padded with zeros to whole frames of 1920 samples, as moshi does.
    fn encode_with(&self, audio: &Tensor, options: &EncodeOptions) -> Result<CodeStreams> {
        self.check_audio(audio)?;
        let n_q = self.num_codebooks(options)?;
        let audio = audio.to_device(&self.device)?.to_dtype(DType::F32)?;
        let (b, _, len) = audio.dims3()?;
        let frame = self.config.frame_size();
        let padded_len = len.div_ceil(frame) * frame;
        if padded_len == 0 {
            let empty = Tensor::zeros((b, n_q, 0), DType::U32, &self.device)?;
            return CodeStreams::from_stacked(&empty);
        }
        let audio = audio.pad_with_zeros(2, 0, padded_len - len)?;
        let mut encoder = self.encoder.clone();
        encoder.reset_state();
        let latent = run_in_chunks(&mut encoder, &audio, BATCH_CHUNK_FRAMES * frame)?
            .ok_or_else(|| Error::InvalidAudio("too short to encode".into()))?;
        let codes = self.quantizer.encode(&latent, n_q)?;
        CodeStreams::from_stacked(&codes)
    }

    fn supports_streaming(&self) -> bool {
        true
    }

    fn streaming_encoder(
        &self,
        batch: usize,
        options: &EncodeOptions,
    ) -> Result<Box<dyn StreamingEncoder + '_>> {
        let n_q = self.num_codebooks(options)?;
        Ok(Box::new(StackEncoder::new(
            self,
            self.encoder.clone(),
            batch,
            n_q,
        )))
    }

    fn streaming_decoder(&self, batch: usize) -> Result<Box<dyn StreamingDecoder + '_>> {
        Ok(Box::new(StackDecoder::new(
            self,
            self.decoder.clone(),
            batch,
        )))
    }
}

impl StreamCodes for Mimi {
    fn stream_frame_size(&self) -> usize {
        self.config.frame_size()
    }

    fn stream_device(&self) -> &Device {
        &self.device
    }

    fn check_stream_audio(&self, audio: &Tensor) -> Result<()> {
        self.check_audio(audio)
    }

    fn latent_to_codes(&self, latent: &Tensor, n_q: usize) -> Result<Tensor> {
        Ok(self.quantizer.encode(latent, n_q)?)
    }

    fn codes_to_latent(&self, codes: &Tensor) -> Result<Tensor> {
        let codes = self.check_codes(codes)?;
        Ok(self.quantizer.decode(&codes)?)
    }
}

/// The mimi family.
pub struct MimiFamily;

/// The registry's entry for this family.
pub static FAMILY: MimiFamily = MimiFamily;

impl Family for MimiFamily {
    fn name(&self) -> &'static str {
        "mimi"
    }

    fn weights_score(&self, weights: &StateDict) -> Score {
        Score::distinctive_if(looks_like_mimi(weights))
    }

    fn config_score(&self, text: &str) -> Score {
        Score::distinctive_if(is_reference_config(text))
    }

    fn inference_weights(&self, state: StateDict) -> Result<StateDict> {
        inference_weights(state)
    }

    fn load(
        &self,
        arch: ArchSource<'_>,
        weights: StateDict,
        name: &str,
        device: &Device,
    ) -> Result<Loaded> {
        let config: MimiConfig = arch.read(
            name,
            &weights,
            MimiConfig::from_reference_json,
            infer_config,
        )?;
        let (model, unused) = Mimi::load(&config, weights, name, device)?;
        Ok(Loaded::new(model, unused))
    }

    fn check_card(&self, card: &ModelCard) -> Result<()> {
        let cfg: MimiConfig = architecture(&card.architecture, &card.name)?;
        cfg.validate(&card.name)?;
        CardFacts {
            sample_rate: cfg.sample_rate,
            frame_rate: cfg.frame_rate,
            codebooks: Some(vec![cfg.quantizer.bins as u32; cfg.quantizer.n_q]),
            codebook_frame_rates: None,
        }
        .check(card)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_config_is_valid_and_round_trips() {
        let cfg = MimiConfig::mimi();
        cfg.validate("test").unwrap();
        assert_eq!(cfg.frame_size(), 1920);
        assert_eq!(cfg.resample_stride(), 2);
        let text = toml::to_string(&cfg).unwrap();
        let back: MimiConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, cfg);
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(is_reference_config(&json));
        assert_eq!(MimiConfig::from_reference_json(&json, "x").unwrap(), cfg);
    }

    #[test]
    fn hf_keys_map_to_moshi() {
        let up = [2, 5, 8, 11];
        for (hf, moshi) in [
            (
                "encoder.layers.0.conv.bias",
                "encoder.model.0.conv.conv.bias",
            ),
            (
                "encoder.layers.1.block.3.conv.weight",
                "encoder.model.1.block.3.conv.conv.weight",
            ),
            (
                "decoder.layers.2.conv.weight",
                "decoder.model.2.convtr.convtr.weight",
            ),
            (
                "decoder.layers.14.conv.bias",
                "decoder.model.14.conv.conv.bias",
            ),
            (
                "encoder_transformer.layers.7.self_attn.o_proj.weight",
                "encoder_transformer.transformer.layers.7.self_attn.out_projs.0.weight",
            ),
            (
                "decoder_transformer.layers.0.post_attention_layernorm.bias",
                "decoder_transformer.transformer.layers.0.norm2.bias",
            ),
            (
                "decoder_transformer.layers.3.mlp_layer_scale.scale",
                "decoder_transformer.transformer.layers.3.layer_scale_2.scale",
            ),
            ("downsample.conv.weight", "downsample.conv.conv.conv.weight"),
            (
                "upsample.conv.weight",
                "upsample.convtr.convtr.convtr.weight",
            ),
            (
                "quantizer.semantic_residual_vector_quantizer.input_proj.weight",
                "quantizer.rvq_first.input_proj.weight",
            ),
            (
                "quantizer.acoustic_residual_vector_quantizer.layers.30.codebook.embed_sum",
                "quantizer.rvq_rest.vq.layers.30._codebook.embedding_sum",
            ),
            (
                "quantizer.acoustic_residual_vector_quantizer.layers.0.codebook.initialized",
                "quantizer.rvq_rest.vq.layers.0._codebook._initialized",
            ),
        ] {
            assert_eq!(hf_key_to_moshi(hf, &up).as_deref(), Some(moshi), "{hf}");
        }
        assert_eq!(hf_key_to_moshi("encoder.model.0.conv.conv.bias", &up), None);
    }

    #[test]
    fn unsupported_settings_are_named() {
        let mut cfg = MimiConfig::mimi();
        cfg.transformer.gating = "silu".into();
        let err = cfg.validate("cfg").unwrap_err().to_string();
        assert!(err.contains("gating"), "{err}");
        let mut cfg = MimiConfig::mimi();
        cfg.frame_rate = 10.0;
        assert!(cfg.validate("cfg").is_err());
    }

    #[test]
    fn published_mimi_card_matches_the_named_config() {
        let card = ModelCard::find("mimi").unwrap();
        let cfg: MimiConfig = card.architecture.clone().try_into().unwrap();
        assert_eq!(cfg, MimiConfig::mimi());
        assert!((card.bitrate() - 4400.0).abs() < 1e-6);
        // kyutai/mimi's transformers-layout file (mapped at load); moshi's is the alternative.
        let hub = card.hub.unwrap();
        assert_eq!(
            (hub.repo.as_str(), hub.weights.as_str()),
            ("kyutai/mimi", "model.safetensors")
        );
    }
}

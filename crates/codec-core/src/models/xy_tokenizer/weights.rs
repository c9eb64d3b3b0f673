//! XY-Tokenizer's checkpoint layouts: the repo's (`vocos.*`) and MOSS-TTSD's
//! (`enhanced_vocos.*`), both `torch.save({"generator": state_dict})` with weight norm as
//! `weight_g` / `weight_v`; and the config a checkpoint's shapes imply.

use candle_core::DType;

use super::config::XyTokenizerConfig;
use crate::weights::StateDict;
use crate::{Error, Result};

/// MOSS-TTSD's name of the vocoder.
const ENHANCED_VOCOS: &str = "enhanced_vocos.";
/// The family's own name of it.
const VOCOS: &str = "vocos.";

/// The inference weights in the family's layout: the vocoder under `vocos.`, the RVQ's
/// training state (`inited`, `cluster_size`, `embed_avg`) dropped, weight norm folded, f32.
pub fn inference_weights(mut state: StateDict) -> Result<StateDict> {
    let renamed: Vec<String> = state
        .tensors
        .keys()
        .filter(|k| k.starts_with(ENHANCED_VOCOS))
        .cloned()
        .collect();
    for key in renamed {
        let new = format!("{VOCOS}{}", &key[ENHANCED_VOCOS.len()..]);
        if state.tensors.contains_key(&new) {
            return Err(Error::weights(
                &state.source,
                format!("both {key} and {new}: two vocoders in one checkpoint"),
            ));
        }
        let t = state.tensors.remove(&key).expect("key listed above");
        state.tensors.insert(new, t);
    }
    state.retain(|k| {
        !(k.starts_with("quantizer.quantizers.")
            && (k.ends_with(".inited")
                || k.ends_with(".cluster_size")
                || k.ends_with(".embed_avg")))
    });
    state.fold_weight_norm()?;
    state.to_dtype(DType::F32)?;
    Ok(state)
}

/// Whether a state dict is XY-Tokenizer's (either vocoder name, weight norm folded or not).
pub fn looks_like_xy_tokenizer(state: &StateDict) -> bool {
    let has = |k: &str| state.tensors.contains_key(k);
    has("semantic_encoder.conv1.weight")
        && has("acoustic_encoder.conv1.weight")
        && has("pre_rvq_adapter.positional_embedding")
        && has("post_rvq_adapter.positional_embedding")
        && (has("vocos.head.out.weight") || has("enhanced_vocos.head.out.weight"))
}

/// The architecture a checkpoint's shapes imply: widths from the weights, layers counted,
/// heads of 64 (the published model's; no shape tells them), the front end, positions and
/// strides as published, the output rate from the vocoder head's rows (`n_fft + 2`, hop
/// `n_fft / 4`).
pub fn infer_config(state: &StateDict) -> Result<XyTokenizerConfig> {
    let src = state.source.as_str();
    let vocos = if state.tensors.contains_key("vocos.head.out.weight") {
        VOCOS
    } else {
        ENHANCED_VOCOS
    };
    let dims = |k: &str| -> Result<Vec<usize>> {
        state
            .tensors
            .get(k)
            .map(|t| t.dims().to_vec())
            .ok_or_else(|| Error::config(src, format!("no `{k}`: not an XY-Tokenizer checkpoint")))
    };
    let dim = |k: &str, i: usize| -> Result<usize> {
        dims(k)?
            .get(i)
            .copied()
            .ok_or_else(|| Error::config(src, format!("`{k}` has no dimension {i}")))
    };
    let layers = |prefix: &str| {
        state.count_indexed(|i| format!("{prefix}.layers.{i}.self_attn_layer_norm.weight"))
    };
    let heads = |d: usize| -> Result<usize> {
        if d == 0 || !d.is_multiple_of(64) {
            return Err(Error::config(
                src,
                format!("width {d} is not a multiple of 64: give the config (heads unknown)"),
            ));
        }
        Ok(d / 64)
    };
    let mut c = XyTokenizerConfig::xy_tokenizer();
    let encoder = |prefix: &str, e: &mut super::config::AudioEncoderKwargs| -> Result<()> {
        e.d_model = dim(&format!("{prefix}.conv1.weight"), 0)?;
        e.num_mel_bins = dim(&format!("{prefix}.conv1.weight"), 1)?;
        e.encoder_layers = layers(prefix);
        e.encoder_attention_heads = heads(e.d_model)?;
        e.encoder_ffn_dim = dim(&format!("{prefix}.layers.0.fc1.weight"), 0)?;
        Ok(())
    };
    encoder("semantic_encoder", &mut c.semantic_encoder_kwargs)?;
    encoder("acoustic_encoder", &mut c.acoustic_encoder_kwargs)?;
    c.feature_extractor_kwargs.feature_size = c.semantic_encoder_kwargs.num_mel_bins;
    let adapter = |prefix: &str, a: &mut super::config::TransformerKwargs| -> Result<()> {
        a.d_model = dim(&format!("{prefix}.positional_embedding"), 1)?;
        a.max_source_positions = dim(&format!("{prefix}.positional_embedding"), 0)?;
        a.input_dim = match dims(&format!("{prefix}.proj.weight")) {
            Ok(d) => d[1],
            Err(_) => a.d_model,
        };
        a.output_dim = match dims(&format!("{prefix}.out_proj.weight")) {
            Ok(d) => d[0],
            Err(_) => a.d_model,
        };
        a.encoder_layers = layers(prefix);
        a.encoder_attention_heads = heads(a.d_model)?;
        a.encoder_ffn_dim = dim(&format!("{prefix}.layers.0.fc1.weight"), 0)?;
        Ok(())
    };
    adapter(
        "semantic_encoder_adapter",
        &mut c.semantic_encoder_adapter_kwargs,
    )?;
    adapter("pre_rvq_adapter", &mut c.pre_rvq_adapter_kwargs)?;
    adapter("post_rvq_adapter", &mut c.post_rvq_adapter_kwargs)?;
    c.downsample_kwargs.d_model = dim("downsample.gate_proj.weight", 1)?;
    c.downsample_kwargs.avg_pooler = dim("downsample.gate_proj.weight", 2)?;
    let rvq_dim = dim("quantizer.quantizers.0.codebook", 1)?;
    c.quantizer_kwargs = super::config::QuantizerKwargs {
        input_dim: c.downsample_kwargs.d_model * c.downsample_kwargs.avg_pooler,
        rvq_dim,
        output_dim: c.post_rvq_adapter_kwargs.input_dim,
        num_quantizers: state.count_indexed(|i| format!("quantizer.quantizers.{i}.codebook")),
        codebook_size: u32::try_from(dim("quantizer.quantizers.0.codebook", 0)?)
            .map_err(|_| Error::config(src, "codebook too large"))?,
        codebook_dim: rvq_dim,
    };
    c.upsample_kwargs.d_model = dim("upsample.up_conv.weight", 1)?;
    c.upsample_kwargs.stride = dim("upsample.up_conv.weight", 2)?;
    let dec = &mut c.acoustic_decoder_kwargs;
    dec.d_model = dim("acoustic_decoder.deconv1.weight", 0)?;
    dec.num_mel_bins = dim("acoustic_decoder.deconv2.weight", 1)?;
    dec.decoder_layers = layers("acoustic_decoder");
    dec.decoder_attention_heads = heads(dec.d_model)?;
    dec.decoder_ffn_dim = dim("acoustic_decoder.layers.0.fc1.weight", 0)?;
    let v = &mut c.vocos_kwargs;
    v.input_channels = dim(&format!("{vocos}backbone.embed.weight"), 1)?;
    v.dim = dim(&format!("{vocos}backbone.embed.weight"), 0)?;
    v.intermediate_dim = dim(&format!("{vocos}backbone.convnext.0.pwconv1.weight"), 0)?;
    v.num_layers = state.count_indexed(|i| format!("{vocos}backbone.convnext.{i}.gamma"));
    let rows = dim(&format!("{vocos}head.out.weight"), 0)?;
    v.n_fft = rows.saturating_sub(2);
    v.hop_size = v.n_fft / 4;
    let out_rate = c.frame_rate() * c.output_hop() as f64;
    c.output_sample_rate = (out_rate as u32 != c.input_sample_rate).then_some(out_rate as u32);
    c.validate(src)?;
    Ok(c)
}

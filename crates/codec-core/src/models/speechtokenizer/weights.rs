//! SpeechTokenizer's checkpoint layout (the reference's plain state dict, EnCodec's key
//! names plus `transform.*`) and the config a checkpoint implies.

use super::config::SpeechTokenizerConfig;
use super::{DECODER, ENCODER, QUANTIZER, TRANSFORM};
use crate::models::encodec::keep_inference_weights;
use crate::weights::StateDict;
use crate::{Error, Result};

/// Keep only the inference weights (encoder, quantizer, semantic head, decoder; the codebooks'
/// k-means statistics are training state), fold weight norm, f32. What `codec convert`
/// writes and [`SpeechTokenizer::load`](super::SpeechTokenizer::load) consumes.
pub fn inference_weights(state: StateDict) -> Result<StateDict> {
    keep_inference_weights(state, &[ENCODER, DECODER, QUANTIZER, TRANSFORM])
}

/// Whether a state dict looks like a SpeechTokenizer: EnCodec's layout with the semantic head
/// (`transform.weight`) or a bidirectional encoder LSTM (`*_reverse` weights), which EnCodec
/// checkpoints never have.
pub fn looks_like_speechtokenizer(state: &StateDict) -> bool {
    let has = |p: &str| state.tensors.keys().any(|k| k.starts_with(p));
    let marker = state.tensors.contains_key("transform.weight")
        || state
            .tensors
            .keys()
            .any(|k| k.starts_with("encoder.model.") && k.contains(".lstm.weight_ih_l0_reverse"));
    marker && has("encoder.model.") && has("decoder.model.") && has("quantizer.vq.layers.")
}

/// The `encoder.model.{i}` indices holding a direct convolution, in order, with their
/// weights' shapes (the first, the strided ones, the last).
fn encoder_convs(state: &StateDict) -> Vec<(usize, Vec<usize>)> {
    let mut convs: Vec<(usize, Vec<usize>)> = state
        .tensors
        .iter()
        .filter_map(|(k, t)| {
            let rest = k.strip_prefix("encoder.model.")?;
            let (i, rest) = rest.split_once('.')?;
            (rest == "conv.conv.weight").then(|| Some((i.parse().ok()?, t.dims().to_vec())))?
        })
        .collect();
    convs.sort();
    convs
}

/// The architecture a checkpoint's shapes imply, for one given without a config: widths,
/// strides (from the strided convolutions' kernels, `2 * stride`), residual blocks per stage,
/// LSTM depth and direction, semantic width and codebooks. The sample rate cannot be read off
/// the weights: the published 16 kHz is assumed.
pub fn infer_config(state: &StateDict) -> Result<SpeechTokenizerConfig> {
    let state = inference_weights(state.clone())?;
    let src = state.source.as_str();
    let fail = |what: &str| {
        Error::config(
            src,
            format!("{what}: not a SpeechTokenizer checkpoint; put its config.json beside it"),
        )
    };
    let dims = |k: &str| state.tensors.get(k).map(|t| t.dims().to_vec());
    let convs = encoder_convs(&state);
    let [(_, first), strided @ .., (last_index, _)] = convs.as_slice() else {
        return Err(fail("fewer than two encoder convolutions"));
    };
    let n_filters = *first.first().ok_or_else(|| fail("first convolution"))?;
    // Applied in the encoder from the smallest stride; the config lists them reversed.
    let mut ratios = strided
        .iter()
        .map(|(_, shape)| shape.get(2).map(|k| k / 2).filter(|&r| r > 0))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| fail("strided convolutions"))?;
    ratios.reverse();
    let second = strided.first().map_or(*last_index, |(i, _)| *i);
    let n_residual_layers = (1..second)
        .filter(|i| {
            state
                .tensors
                .contains_key(&format!("encoder.model.{i}.block.1.conv.conv.weight"))
        })
        .count();
    let lstm_prefix = |l: usize| format!("encoder.model.{}.lstm.weight_ih_l{l}", last_index - 2);
    let lstm = state.count_indexed(lstm_prefix);
    let bidirectional = state
        .tensors
        .contains_key(&format!("{}_reverse", lstm_prefix(0)));
    let embed = dims(&format!("{QUANTIZER}.layers.0._codebook.embed"))
        .ok_or_else(|| fail("no codebooks"))?;
    let [codebook_size, dimension] = embed[..] else {
        return Err(fail("codebook shape"));
    };
    let num_quantizers = state.count_indexed(|i| format!("{QUANTIZER}.layers.{i}._codebook.embed"));
    let semantic_dimension = match dims(&format!("{TRANSFORM}.weight")) {
        Some(shape) => shape[0],
        None => dimension,
    };
    let mut config = SpeechTokenizerConfig::speechtokenizer_hubert_avg();
    let s = &mut config.seanet;
    s.n_filters = n_filters;
    s.dimension = dimension;
    s.ratios = ratios;
    s.n_residual_layers = n_residual_layers;
    s.lstm = lstm;
    s.bidirectional_lstm = bidirectional;
    config.semantic_dimension = semantic_dimension;
    config.codebook_size = codebook_size;
    config.num_quantizers = num_quantizers;
    config.validate(src)?;
    Ok(config)
}

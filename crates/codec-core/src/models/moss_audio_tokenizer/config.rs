//! MOSS-Audio-Tokenizer's architecture: the fields of its `config.json`
//! (`MossAudioTokenizerConfig`) under the same names in a card. The encoder and decoder are
//! lists of modules in execution order, each a patch (merge or split of `patch_size` frames)
//! or a projected causal transformer.

use serde::{Deserialize, Serialize};

use crate::models::CardFacts;
use crate::nn::moshi_transformer::StreamingTransformerConfig;
use crate::{Error, Result};

/// Bounds that keep a corrupt config from sizing a runaway model (published: widths up to
/// 5120, 32 layers, 32 codebooks of 1024, patches up to 240).
const MAX_WIDTH: usize = 1 << 14;
const MAX_LAYERS: usize = 128;
const MAX_MODULES: usize = 32;
const MAX_CODEBOOKS: usize = 64;
const MAX_CODEBOOK_SIZE: usize = 1 << 16;
const MAX_PATCH: usize = 4096;
/// Attention windows longer than this many seconds are refused (published: 10 s).
const MAX_CONTEXT_SECONDS: f64 = 3600.0;

fn max_period() -> f64 {
    10_000.0
}
fn layer_norm() -> String {
    "layer_norm".into()
}
fn no_gating() -> String {
    "none".into()
}
fn sin() -> String {
    "sin".into()
}

/// One module of the encoder or decoder list, tagged by `module_type` as in `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "module_type")]
pub enum StageConfig {
    /// `PatchedPretransform`: in the encoder, `[b, d, t] -> [b, d * h, t / h]` (channel
    /// `c * h + j` is channel `c` at offset `j` of the patch); in the decoder the inverse.
    PatchedPretransform {
        /// `h`, frames per patch.
        patch_size: usize,
    },
    /// `Transformer`: a [`TransformerStageConfig`].
    Transformer(TransformerStageConfig),
}

/// A `ProjectedTransformer`: bias-free input projection (absent when `input_dimension ==
/// d_model`), causal transformer layers, output projection (absent when equal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerStageConfig {
    /// Channels in.
    pub input_dimension: usize,
    /// Channels out.
    pub output_dimension: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Attention heads (head width even, for RoPE).
    pub num_heads: usize,
    /// Layers.
    pub num_layers: usize,
    /// Hidden width of the GELU MLP.
    pub dim_feedforward: usize,
    /// Causal attention (the only kind this port runs; the reference's default is not).
    #[serde(default)]
    pub causal: bool,
    /// Time-last tensors between modules (the reference transposes either way).
    #[serde(default)]
    pub conv_layout: bool,
    /// RoPE's `max_period`.
    #[serde(default = "max_period")]
    pub max_period: f64,
    /// The layer scale's initial value; present means the layers have `layer_scale_{1,2}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_scale: Option<f64>,
    /// The MLP (`none`: linear, GELU, linear).
    #[serde(default = "no_gating")]
    pub gating: String,
    /// The layer norm (`layer_norm`, eps 1e-5).
    #[serde(default = "layer_norm")]
    pub norm: String,
    /// Positions (`rope`; the reference's default `sin` is not supported).
    #[serde(default = "sin")]
    pub positional_embedding: String,
}

/// The residual LFQ between encoder and decoder (`quantizer_kwargs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantizerConfig {
    /// Channels of the encoder's output.
    pub input_dim: usize,
    /// Channels the stages work in (`input_proj`, a weight-normed 1x1 conv, when different).
    pub rvq_dim: usize,
    /// Channels handed to the decoder (`output_proj` when different from `rvq_dim`).
    pub output_dim: usize,
    /// Stages (codebooks).
    pub num_quantizers: usize,
    /// Entries per codebook.
    pub codebook_size: usize,
    /// Width of an entry (the stages' `in_proj` projects `rvq_dim` to it).
    pub codebook_dim: usize,
    /// `rlfq` (or its training variant `random_prefix_rlfq`: the same at inference).
    pub quantizer_type: String,
}

/// A MOSS-Audio-Tokenizer architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MossAudioTokenizerConfig {
    /// Audio sample rate, Hz (`sampling_rate` is the same attribute).
    #[serde(alias = "sampling_rate")]
    pub sample_rate: u32,
    /// Samples per code frame: the product of the encoder's patches.
    pub downsample_rate: usize,
    /// Seconds each attention window spans, at every stage's own frame rate.
    pub causal_transformer_context_duration: f64,
    /// The encoder's modules in order.
    pub encoder_kwargs: Vec<StageConfig>,
    /// The decoder's modules in order.
    pub decoder_kwargs: Vec<StageConfig>,
    /// The quantizer.
    pub quantizer_kwargs: QuantizerConfig,
}

/// A transformer stage as built: its config and attention window in frames.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct BuiltStage {
    /// The module's index in its list (the checkpoint's `encoder.{i}` / `decoder.{i}`).
    pub index: usize,
    pub transformer: StreamingTransformerConfig,
}

impl MossAudioTokenizerConfig {
    /// OpenMOSS-Team/MOSS-Audio-Tokenizer: 24 kHz mono, 12.5 frames/s, 32 codebooks of 1024,
    /// 1.77 B parameters (the repository's `config.json`).
    pub fn moss_audio_tokenizer() -> Self {
        let t = |input: usize, output: usize, d: usize| {
            let (heads, layers, ff) = if d == 1280 {
                (20, 32, 5120)
            } else {
                (12, 12, 3072)
            };
            StageConfig::Transformer(TransformerStageConfig {
                input_dimension: input,
                output_dimension: output,
                d_model: d,
                num_heads: heads,
                num_layers: layers,
                dim_feedforward: ff,
                causal: true,
                conv_layout: true,
                max_period: 10_000.0,
                layer_scale: Some(0.01),
                gating: "none".into(),
                norm: "layer_norm".into(),
                positional_embedding: "rope".into(),
            })
        };
        let p = |h: usize| StageConfig::PatchedPretransform { patch_size: h };
        Self {
            sample_rate: 24_000,
            downsample_rate: 1920,
            causal_transformer_context_duration: 10.0,
            encoder_kwargs: vec![
                p(240),
                t(240, 384, 768),
                p(2),
                t(768, 384, 768),
                p(2),
                t(768, 640, 768),
                p(2),
                t(1280, 768, 1280),
            ],
            decoder_kwargs: vec![
                t(768, 1280, 1280),
                p(2),
                t(640, 768, 768),
                p(2),
                t(384, 768, 768),
                p(2),
                t(384, 240, 768),
                p(240),
            ],
            quantizer_kwargs: QuantizerConfig {
                input_dim: 768,
                rvq_dim: 512,
                output_dim: 768,
                num_quantizers: 32,
                codebook_size: 1024,
                codebook_dim: 8,
                quantizer_type: "rlfq".into(),
            },
        }
    }

    /// Code frames per second.
    pub fn frame_rate(&self) -> f64 {
        self.sample_rate as f64 / self.downsample_rate as f64
    }

    /// Read the reference's `config.json`: the fields above, the rest (`architectures`,
    /// `auto_map`, `code_dim`, `reversed_decoder_kwargs`, `version`, ...) ignored as the
    /// reference does. The quantizer's type falls back to the top-level `quantizer_type`.
    pub fn from_reference_json(text: &str, source: &str) -> Result<Self> {
        let bad = |m: String| Error::config(source, m);
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let mut kept = serde_json::Map::new();
        for key in [
            "sample_rate",
            "downsample_rate",
            "causal_transformer_context_duration",
            "encoder_kwargs",
            "decoder_kwargs",
            "quantizer_kwargs",
        ] {
            if let Some(v) = json.get(key) {
                kept.insert(key.into(), v.clone());
            }
        }
        if !kept.contains_key("sample_rate") {
            if let Some(v) = json.get("sampling_rate") {
                kept.insert("sample_rate".into(), v.clone());
            }
        }
        if let (Some(serde_json::Value::Object(q)), Some(t)) =
            (kept.get_mut("quantizer_kwargs"), json.get("quantizer_type"))
        {
            q.entry("quantizer_type").or_insert_with(|| t.clone());
        }
        let config: Self =
            serde_json::from_value(kept.into()).map_err(|e| bad(format!("config.json: {e}")))?;
        config.validate(source)?;
        Ok(config)
    }

    /// The transformer stages of `modules` (the encoder's when `encoder`), with their windows:
    /// `int(rate * causal_transformer_context_duration)` frames at the stage's frame rate,
    /// which starts at the sample rate in the encoder and at the code rate in the decoder.
    pub(super) fn stages(&self, encoder: bool) -> Vec<BuiltStage> {
        let (modules, mut rate) = if encoder {
            (&self.encoder_kwargs, self.sample_rate as f64)
        } else {
            (&self.decoder_kwargs, self.frame_rate())
        };
        let mut out = Vec::new();
        for (index, m) in modules.iter().enumerate() {
            match m {
                StageConfig::PatchedPretransform { patch_size } => {
                    if encoder {
                        rate /= *patch_size as f64;
                    } else {
                        rate *= *patch_size as f64;
                    }
                }
                StageConfig::Transformer(t) => {
                    // `int()` in the reference: truncation (12.5 frames -> 12).
                    let context = (rate * self.causal_transformer_context_duration) as usize;
                    out.push(BuiltStage {
                        index,
                        transformer: StreamingTransformerConfig {
                            d_model: t.d_model,
                            num_heads: t.num_heads,
                            num_layers: t.num_layers,
                            dim_feedforward: t.dim_feedforward,
                            context,
                            max_period: t.max_period,
                            layer_scale: t.layer_scale.is_some(),
                            input_dimension: t.input_dimension,
                            output_dimension: t.output_dimension,
                            rope_rotate_half: false,
                        },
                    });
                }
            }
        }
        out
    }

    /// Check that the parts agree with each other and are what this port implements.
    pub fn validate(&self, source: &str) -> Result<()> {
        let bad = |m: String| Err(Error::config(source, m));
        if self.sample_rate == 0 || self.downsample_rate == 0 {
            return bad("sample_rate and downsample_rate must be positive".into());
        }
        let d = self.causal_transformer_context_duration;
        if !(d.is_finite() && d > 0.0 && d <= MAX_CONTEXT_SECONDS) {
            return bad(format!(
                "causal_transformer_context_duration {d} must be in (0, {MAX_CONTEXT_SECONDS}] s"
            ));
        }
        let q = &self.quantizer_kwargs;
        if !matches!(q.quantizer_type.as_str(), "rlfq" | "random_prefix_rlfq") {
            return bad(format!(
                "quantizer_type `{}`: only the residual LFQ (`rlfq`) is supported",
                q.quantizer_type
            ));
        }
        let widths = [q.input_dim, q.rvq_dim, q.output_dim, q.codebook_dim];
        if widths.iter().any(|&w| w == 0 || w > MAX_WIDTH) {
            return bad(format!("quantizer widths must be 1 to {MAX_WIDTH}"));
        }
        if q.rvq_dim == q.codebook_dim {
            return bad(format!(
                "rvq_dim {} equal to codebook_dim: stages without projections are not supported",
                q.rvq_dim
            ));
        }
        if q.num_quantizers == 0 || q.num_quantizers > MAX_CODEBOOKS {
            return bad(format!(
                "1 to {MAX_CODEBOOKS} quantizers, not {}",
                q.num_quantizers
            ));
        }
        if q.codebook_size < 2 || q.codebook_size > MAX_CODEBOOK_SIZE {
            return bad(format!(
                "codebook_size {} must be 2 to {MAX_CODEBOOK_SIZE}",
                q.codebook_size
            ));
        }
        // Walk each list, following the channel count: it must arrive at the quantizer's
        // input (encoder) and at one audio channel (decoder).
        for (encoder, modules, start, end, what) in [
            (true, &self.encoder_kwargs, 1, q.input_dim, "encoder"),
            (false, &self.decoder_kwargs, q.output_dim, 1, "decoder"),
        ] {
            if modules.is_empty() || modules.len() > MAX_MODULES {
                return bad(format!("{what}: 1 to {MAX_MODULES} modules"));
            }
            let (mut channels, mut ratio) = (start, 1usize);
            for (i, m) in modules.iter().enumerate() {
                match m {
                    StageConfig::PatchedPretransform { patch_size: h } => {
                        let h = *h;
                        if h == 0 || h > MAX_PATCH {
                            return bad(format!("{what}.{i}: patch_size must be 1 to {MAX_PATCH}"));
                        }
                        ratio = ratio.saturating_mul(h);
                        if encoder {
                            channels = channels.saturating_mul(h);
                        } else if channels.is_multiple_of(h) {
                            channels /= h;
                        } else {
                            return bad(format!(
                                "{what}.{i}: {channels} channels do not split into patches of {h}"
                            ));
                        }
                    }
                    StageConfig::Transformer(t) => {
                        let dims = [t.input_dimension, t.output_dimension, t.d_model];
                        if dims.iter().any(|&w| w == 0 || w > MAX_WIDTH)
                            || t.dim_feedforward == 0
                            || t.dim_feedforward > 4 * MAX_WIDTH
                        {
                            return bad(format!("{what}.{i}: widths must be 1 to {MAX_WIDTH}"));
                        }
                        if t.input_dimension != channels {
                            return bad(format!(
                                "{what}.{i}: input_dimension {} but {channels} channels arrive",
                                t.input_dimension
                            ));
                        }
                        if t.num_heads == 0
                            || !t.d_model.is_multiple_of(t.num_heads)
                            || !(t.d_model / t.num_heads).is_multiple_of(2)
                        {
                            return bad(format!(
                                "{what}.{i}: d_model {} must split into {} heads of even width",
                                t.d_model, t.num_heads
                            ));
                        }
                        if t.num_layers == 0 || t.num_layers > MAX_LAYERS {
                            return bad(format!("{what}.{i}: 1 to {MAX_LAYERS} layers"));
                        }
                        if !t.causal
                            || t.gating != "none"
                            || t.norm != "layer_norm"
                            || t.positional_embedding != "rope"
                        {
                            return bad(format!(
                                "{what}.{i}: only causal layers with gating `none`, norm \
                                 `layer_norm` and positional_embedding `rope` are supported \
                                 (causal {}, gating `{}`, norm `{}`, positional_embedding `{}`)",
                                t.causal, t.gating, t.norm, t.positional_embedding
                            ));
                        }
                        if !(t.max_period.is_finite() && t.max_period > 1.0) {
                            return bad(format!("{what}.{i}: max_period must exceed 1"));
                        }
                        channels = t.output_dimension;
                    }
                }
            }
            if channels != end {
                return bad(format!(
                    "{what}: ends with {channels} channels, {end} are needed"
                ));
            }
            if ratio != self.downsample_rate {
                return bad(format!(
                    "{what}: patches multiply to {ratio}, not downsample_rate {}",
                    self.downsample_rate
                ));
            }
        }
        for encoder in [true, false] {
            if let Some(s) = self
                .stages(encoder)
                .iter()
                .find(|s| s.transformer.context == 0)
            {
                return bad(format!(
                    "{}.{}: causal_transformer_context_duration {d} s is under one frame",
                    if encoder { "encoder" } else { "decoder" },
                    s.index
                ));
            }
        }
        Ok(())
    }

    /// Validate the config (errors name `source`) and say what a card of it must state.
    pub fn card_facts(&self, source: &str) -> Result<CardFacts> {
        self.validate(source)?;
        let q = &self.quantizer_kwargs;
        Ok(CardFacts {
            sample_rate: self.sample_rate,
            frame_rate: self.frame_rate(),
            codebooks: Some(vec![q.codebook_size as u32; q.num_quantizers]),
            codebook_frame_rates: None,
        })
    }
}

/// Whether a `config.json` is MOSS-Audio-Tokenizer's: the reference's architecture name.
pub fn is_reference_config(text: &str) -> bool {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(text) else {
        return false;
    };
    let named = |v: Option<&serde_json::Value>| {
        v.and_then(|a| a.as_array())
            .is_some_and(|a| a.iter().any(|x| x == "MossAudioTokenizerModel"))
    };
    named(json.get("architectures"))
        || json
            .get("auto_map")
            .and_then(|m| m.get("AutoModel"))
            .and_then(|m| m.as_str())
            .is_some_and(|m| m.ends_with("MossAudioTokenizerModel"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_config_is_valid_with_the_published_windows() {
        let cfg = MossAudioTokenizerConfig::moss_audio_tokenizer();
        cfg.validate("test").unwrap();
        assert_eq!(cfg.frame_rate(), 12.5);
        let ctx = |enc| {
            cfg.stages(enc)
                .iter()
                .map(|s| (s.index, s.transformer.context))
                .collect::<Vec<_>>()
        };
        assert_eq!(ctx(true), [(1, 1000), (3, 500), (5, 250), (7, 125)]);
        assert_eq!(ctx(false), [(0, 125), (2, 250), (4, 500), (6, 1000)]);
        let text = toml::to_string(&cfg).unwrap();
        let back: MossAudioTokenizerConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn the_class_defaults_decoder_is_refused() {
        // The config class's default decoder has a fifth stage and upsamples 3840x.
        let mut cfg = MossAudioTokenizerConfig::moss_audio_tokenizer();
        let extra = cfg.decoder_kwargs[4].clone();
        cfg.decoder_kwargs.insert(6, extra);
        cfg.decoder_kwargs
            .insert(7, StageConfig::PatchedPretransform { patch_size: 2 });
        let err = cfg.validate("cfg").unwrap_err().to_string();
        assert!(err.contains("3840"), "{err}");
    }

    #[test]
    fn unsupported_settings_are_refused_by_name() {
        let mut cfg = MossAudioTokenizerConfig::moss_audio_tokenizer();
        cfg.quantizer_kwargs.quantizer_type = "rvq".into();
        assert!(cfg.validate("c").unwrap_err().to_string().contains("rvq"));
        let mut cfg = MossAudioTokenizerConfig::moss_audio_tokenizer();
        if let StageConfig::Transformer(t) = &mut cfg.encoder_kwargs[1] {
            t.gating = "silu".into();
        }
        assert!(cfg.validate("c").unwrap_err().to_string().contains("silu"));
        let mut cfg = MossAudioTokenizerConfig::moss_audio_tokenizer();
        cfg.causal_transformer_context_duration = 0.01;
        assert!(cfg.validate("c").is_err());
    }
}

//! Qwen3-TTS-Tokenizer-12Hz's architecture: the fields of its `config.json`
//! (`Qwen3TTSTokenizerV2Config`, with a transformers `MimiConfig` as `encoder_config` and the
//! decoder's own config as `decoder_config`), under the same names in a card.

use serde::{Deserialize, Serialize};

use crate::models::CardFacts;
use crate::nn::moshi_transformer::StreamingTransformerConfig;
use crate::nn::seanet::SeanetConfig;
use crate::nn::{ConvNorm, PadMode};
use crate::{Error, Result};

/// Bounds that keep a corrupt config from sizing a runaway model (published: widths up to
/// 1536, 8 layers, 32 codebooks of 2048).
const MAX_WIDTH: usize = 1 << 13;
const MAX_LAYERS: usize = 64;
const MAX_CODEBOOKS: usize = 64;
const MAX_CODEBOOK_SIZE: usize = 1 << 16;
const MAX_RATIO: usize = 64;

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn constant() -> String {
    "constant".into()
}
fn gelu() -> String {
    "gelu".into()
}
fn silu() -> String {
    "silu".into()
}
fn chunk_frames() -> usize {
    300
}
fn left_context_frames() -> usize {
    25
}

/// The encoder: transformers' `MimiModel` without its decoder half (the `MimiConfig` fields
/// that shape it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Qwen3TtsEncoderConfig {
    /// Audio sample rate, Hz.
    pub sampling_rate: u32,
    /// Audio channels (1).
    #[serde(default = "one")]
    pub audio_channels: usize,
    /// Latent width (SEANet output, transformer width).
    pub hidden_size: usize,
    /// Channels of the first convolution.
    pub num_filters: usize,
    /// Residual blocks per ratio.
    pub num_residual_layers: usize,
    /// SEANet ratios as listed (the encoder applies them in reverse).
    pub upsampling_ratios: Vec<usize>,
    /// Kernel of the first convolution.
    pub kernel_size: usize,
    /// Kernel of the last convolution.
    pub last_kernel_size: usize,
    /// Kernel of the residual blocks.
    pub residual_kernel_size: usize,
    /// Dilation growth between residual blocks.
    pub dilation_growth_rate: usize,
    /// Channel reduction inside residual blocks.
    pub compress: usize,
    /// Causal convolutions (true).
    #[serde(default = "yes")]
    pub use_causal_conv: bool,
    /// Padding of the SEANet convolutions (`constant`).
    #[serde(default = "constant")]
    pub pad_mode: String,
    /// Convolution shortcuts in residual blocks (false: identity).
    #[serde(default)]
    pub use_conv_shortcut: bool,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Key/value heads (equal to the heads).
    pub num_key_value_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
    /// Hidden width of the GELU MLP.
    pub intermediate_size: usize,
    /// The MLP's activation (`gelu`, exact).
    #[serde(default = "gelu")]
    pub hidden_act: String,
    /// Biases in the attention projections (false).
    #[serde(default)]
    pub attention_bias: bool,
    /// LayerNorm epsilon (1e-5).
    pub norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// The config's attention window. The reference's attention (eager or sdpa) does not apply
    /// it: every step sees the whole clip before it, and so does this port.
    pub sliding_window: usize,
    /// Entries per codebook.
    pub codebook_size: usize,
    /// Width of the codebook entries.
    pub codebook_dim: usize,
    /// Width the quantizers project to (equal to `codebook_dim`).
    pub vector_quantization_hidden_dimension: usize,
    /// Codebooks in all, the semantic one included (32; the tokenizer keeps the first
    /// `encoder_valid_num_quantizers`).
    pub num_quantizers: usize,
    /// Codebooks of the semantic RVQ (1).
    #[serde(default = "one")]
    pub num_semantic_quantizers: usize,
    /// Code frames per second (12.5).
    #[serde(rename = "_frame_rate")]
    pub frame_rate: f64,
}

/// The decoder (`Qwen3TTSTokenizerV2DecoderConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Qwen3TtsDecoderConfig {
    /// Width of the dequantized latent; the RVQ entries are half of it.
    pub codebook_dim: usize,
    /// Entries per codebook.
    pub codebook_size: usize,
    /// Codebooks decoded.
    pub num_quantizers: usize,
    /// Codebooks of the semantic RVQ (1).
    #[serde(default = "one")]
    pub num_semantic_quantizers: usize,
    /// Channels after the first convolution and of the upsampling stages.
    pub latent_dim: usize,
    /// Width of the transformer.
    pub hidden_size: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Key/value heads (equal to the heads).
    pub num_key_value_heads: usize,
    /// Width of a head (`heads * head_dim` need not equal `hidden_size`).
    pub head_dim: usize,
    /// Hidden width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// The MLP's gate activation (`silu`).
    #[serde(default = "silu")]
    pub hidden_act: String,
    /// Biases in the attention projections (false).
    #[serde(default)]
    pub attention_bias: bool,
    /// Each query sees itself and the `sliding_window - 1` steps before it.
    pub sliding_window: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// Channels of the first SnakeBeta stage (halved by each upsampling block).
    pub decoder_dim: usize,
    /// Strides of the SnakeBeta blocks.
    pub upsample_rates: Vec<usize>,
    /// Strides of the ConvNeXt upsampling stages before them.
    pub upsampling_ratios: Vec<usize>,
}

/// Architecture of a Qwen3-TTS-Tokenizer-12Hz model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Qwen3TtsConfig {
    /// Sample rate of the audio in, Hz.
    pub input_sample_rate: u32,
    /// Sample rate of the audio out (the same).
    pub output_sample_rate: u32,
    /// Samples per code frame when encoding (1920).
    pub encode_downsample_rate: usize,
    /// Samples per code frame when decoding (1920).
    pub decode_upsample_rate: usize,
    /// Codebooks the tokenizer keeps of the encoder's (16).
    pub encoder_valid_num_quantizers: usize,
    /// The Mimi encoder.
    pub encoder_config: Qwen3TtsEncoderConfig,
    /// The decoder.
    pub decoder_config: Qwen3TtsDecoderConfig,
    /// Frames decoded per piece (the reference's `chunked_decode` default, 300).
    #[serde(default = "chunk_frames")]
    pub decode_chunk_frames: usize,
    /// Frames of left context each piece after the first re-decodes and drops (25).
    #[serde(default = "left_context_frames")]
    pub decode_left_context_frames: usize,
}

impl Qwen3TtsConfig {
    /// The published Qwen/Qwen3-TTS-Tokenizer-12Hz.
    pub fn qwen3_tts_tokenizer_12hz() -> Self {
        Self {
            input_sample_rate: 24000,
            output_sample_rate: 24000,
            encode_downsample_rate: 1920,
            decode_upsample_rate: 1920,
            encoder_valid_num_quantizers: 16,
            encoder_config: Qwen3TtsEncoderConfig {
                sampling_rate: 24000,
                audio_channels: 1,
                hidden_size: 512,
                num_filters: 64,
                num_residual_layers: 1,
                upsampling_ratios: vec![8, 6, 5, 4],
                kernel_size: 7,
                last_kernel_size: 3,
                residual_kernel_size: 3,
                dilation_growth_rate: 2,
                compress: 2,
                use_causal_conv: true,
                pad_mode: constant(),
                use_conv_shortcut: false,
                num_hidden_layers: 8,
                num_attention_heads: 8,
                num_key_value_heads: 8,
                head_dim: 64,
                intermediate_size: 2048,
                hidden_act: gelu(),
                attention_bias: false,
                norm_eps: 1e-5,
                rope_theta: 10000.0,
                sliding_window: 250,
                codebook_size: 2048,
                codebook_dim: 256,
                vector_quantization_hidden_dimension: 256,
                num_quantizers: 32,
                num_semantic_quantizers: 1,
                frame_rate: 12.5,
            },
            decoder_config: Qwen3TtsDecoderConfig {
                codebook_dim: 512,
                codebook_size: 2048,
                num_quantizers: 16,
                num_semantic_quantizers: 1,
                latent_dim: 1024,
                hidden_size: 512,
                num_attention_heads: 16,
                num_key_value_heads: 16,
                head_dim: 64,
                intermediate_size: 1024,
                num_hidden_layers: 8,
                hidden_act: silu(),
                attention_bias: false,
                sliding_window: 72,
                rms_norm_eps: 1e-5,
                rope_theta: 10000.0,
                decoder_dim: 1536,
                upsample_rates: vec![8, 5, 4, 3],
                upsampling_ratios: vec![2, 2],
            },
            decode_chunk_frames: chunk_frames(),
            decode_left_context_frames: left_context_frames(),
        }
    }

    /// Read the hub folder's `config.json`. Fields this port has no use for (training and
    /// cache settings, `model_type`, the encoder's decoder-side settings) are ignored; every
    /// field that shapes the computation is read and checked.
    pub fn from_reference_json(text: &str, source: &str) -> Result<Self> {
        let json: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::config(source, format!("not JSON: {e}")))?;
        if !is_reference_config_value(&json) {
            return Err(Error::config(
                source,
                "not a Qwen3-TTS-Tokenizer-12Hz config (model_type qwen3_tts_tokenizer_12hz)",
            ));
        }
        // Keep the keys this config has (taken from the published one), drop the others.
        let known = serde_json::to_value(Self::qwen3_tts_tokenizer_12hz())
            .map_err(|e| Error::config(source, e.to_string()))?;
        let filtered = keep_known(&json, &known);
        let config: Self = serde_json::from_value(filtered)
            .map_err(|e| Error::config(source, format!("config.json: {e}")))?;
        config.validate(source)?;
        Ok(config)
    }

    /// Code frames per second.
    pub fn frame_rate(&self) -> f64 {
        self.input_sample_rate as f64 / self.encode_downsample_rate as f64
    }

    /// Samples per SEANet latent frame (the product of the ratios, 960).
    pub fn encoder_hop(&self) -> usize {
        self.encoder_config.upsampling_ratios.iter().product()
    }

    /// The encoder's SEANet as the shared blocks describe it.
    pub(super) fn seanet_config(&self) -> SeanetConfig {
        let e = &self.encoder_config;
        SeanetConfig {
            channels: 1,
            dimension: e.hidden_size,
            n_filters: e.num_filters,
            n_residual_layers: e.num_residual_layers,
            ratios: e.upsampling_ratios.clone(),
            kernel_size: e.kernel_size,
            residual_kernel_size: e.residual_kernel_size,
            last_kernel_size: e.last_kernel_size,
            dilation_base: e.dilation_growth_rate,
            causal: true,
            pad_mode: PadMode::Zero,
            true_skip: true,
            compress: e.compress,
            lstm: 0,
            bidirectional_lstm: false,
            norm: ConvNorm::None,
        }
    }

    /// The encoder's transformer: causal over the whole clip (see
    /// [`Qwen3TtsEncoderConfig::sliding_window`]), transformers' RoPE convention.
    pub(super) fn encoder_transformer_config(&self) -> StreamingTransformerConfig {
        let e = &self.encoder_config;
        StreamingTransformerConfig {
            d_model: e.hidden_size,
            num_heads: e.num_attention_heads,
            num_layers: e.num_hidden_layers,
            dim_feedforward: e.intermediate_size,
            context: usize::MAX,
            max_period: e.rope_theta,
            layer_scale: true,
            input_dimension: e.hidden_size,
            output_dimension: e.hidden_size,
            rope_rotate_half: true,
        }
    }

    /// Check that the parts agree with each other and are what this port implements.
    pub fn validate(&self, source: &str) -> Result<()> {
        let bad = |m: String| Err(Error::config(source, m));
        let e = &self.encoder_config;
        let d = &self.decoder_config;
        if self.input_sample_rate == 0
            || self.input_sample_rate != self.output_sample_rate
            || e.sampling_rate != self.input_sample_rate
        {
            return bad(format!(
                "input_sample_rate {}, output_sample_rate {} and the encoder's sampling_rate {} \
                 must be one positive rate",
                self.input_sample_rate, self.output_sample_rate, e.sampling_rate
            ));
        }
        if e.audio_channels != 1 {
            return bad(format!("mono only, not {} channels", e.audio_channels));
        }
        if !e.use_causal_conv || e.pad_mode != "constant" || e.use_conv_shortcut {
            return bad(format!(
                "the encoder must be causal with constant padding and identity shortcuts \
                 (use_causal_conv {}, pad_mode {}, use_conv_shortcut {})",
                e.use_causal_conv, e.pad_mode, e.use_conv_shortcut
            ));
        }
        if e.hidden_act != "gelu" || d.hidden_act != "silu" || e.attention_bias || d.attention_bias
        {
            return bad(format!(
                "activations gelu (encoder) and silu (decoder) without attention biases, not \
                 {} / {}",
                e.hidden_act, d.hidden_act
            ));
        }
        let ratios = &e.upsampling_ratios;
        let sizes = [
            e.hidden_size,
            e.num_filters,
            e.intermediate_size,
            e.codebook_dim,
            d.codebook_dim,
            d.latent_dim,
            d.hidden_size,
            d.intermediate_size,
            d.decoder_dim,
            e.num_attention_heads * e.head_dim,
            d.num_attention_heads * d.head_dim,
        ];
        if sizes.iter().any(|&s| s == 0 || s > MAX_WIDTH) {
            return bad(format!("widths must be 1 to {MAX_WIDTH}"));
        }
        let kernels = [
            e.kernel_size,
            e.last_kernel_size,
            e.residual_kernel_size,
            e.compress,
            e.dilation_growth_rate,
        ];
        if kernels.iter().any(|&k| k == 0 || k > MAX_RATIO) || e.num_residual_layers > 8 {
            return bad("encoder kernels, compress and dilation growth must be 1 to 64".into());
        }
        let all_ratios = ratios
            .iter()
            .chain(&d.upsample_rates)
            .chain(&d.upsampling_ratios);
        if ratios.is_empty()
            || d.upsample_rates.is_empty()
            || ratios.len() > 8
            || d.upsample_rates.len() + d.upsampling_ratios.len() > 8
            || all_ratios.clone().any(|&r| r == 0 || r > MAX_RATIO)
        {
            return bad("ratios must be 1 to 64, at most 8 of each kind".into());
        }
        if self.encode_downsample_rate != 2 * self.encoder_hop() {
            return bad(format!(
                "encode_downsample_rate {} must be twice the SEANet's hop {} (the stride-2 \
                 downsampling)",
                self.encode_downsample_rate,
                self.encoder_hop()
            ));
        }
        let up: usize = d
            .upsample_rates
            .iter()
            .chain(&d.upsampling_ratios)
            .product();
        if self.decode_upsample_rate != up || up != self.encode_downsample_rate {
            return bad(format!(
                "decode_upsample_rate {} must equal the decoder's strides' product {up} and the \
                 encode_downsample_rate {}",
                self.decode_upsample_rate, self.encode_downsample_rate
            ));
        }
        if (self.frame_rate() - e.frame_rate).abs() > 1e-9 {
            return bad(format!(
                "the encoder's _frame_rate {} is not {} / {}",
                e.frame_rate, self.input_sample_rate, self.encode_downsample_rate
            ));
        }
        if !d.decoder_dim.is_multiple_of(1 << d.upsample_rates.len()) {
            return bad(format!(
                "decoder_dim {} must halve {} times",
                d.decoder_dim,
                d.upsample_rates.len()
            ));
        }
        for (what, layers, heads, kv, head_dim) in [
            (
                "encoder",
                e.num_hidden_layers,
                e.num_attention_heads,
                e.num_key_value_heads,
                e.head_dim,
            ),
            (
                "decoder",
                d.num_hidden_layers,
                d.num_attention_heads,
                d.num_key_value_heads,
                d.head_dim,
            ),
        ] {
            if layers == 0 || layers > MAX_LAYERS || heads == 0 || kv != heads {
                return bad(format!(
                    "{what}: 1 to {MAX_LAYERS} layers and as many key/value heads as heads \
                     ({layers} layers, {heads} heads, {kv} key/value heads)"
                ));
            }
            if !head_dim.is_multiple_of(2) {
                return bad(format!("{what}: head_dim {head_dim} must be even (RoPE)"));
            }
        }
        if e.num_attention_heads * e.head_dim != e.hidden_size {
            return bad(format!(
                "encoder: {} heads of {} must make hidden_size {}",
                e.num_attention_heads, e.head_dim, e.hidden_size
            ));
        }
        if e.norm_eps != 1e-5 {
            return bad(format!("encoder norm_eps {} (1e-5)", e.norm_eps));
        }
        let in_range = d.rms_norm_eps > 0.0 && d.rms_norm_eps < 1.0;
        if !(in_range && e.rope_theta > 1.0 && d.rope_theta > 1.0) {
            return bad("rms_norm_eps in (0, 1), rope_theta above 1".into());
        }
        if d.sliding_window == 0 {
            return bad("the decoder's sliding_window must be positive".into());
        }
        if e.vector_quantization_hidden_dimension != e.codebook_dim {
            return bad(format!(
                "encoder vector_quantization_hidden_dimension {} must equal codebook_dim {}",
                e.vector_quantization_hidden_dimension, e.codebook_dim
            ));
        }
        if !d.codebook_dim.is_multiple_of(2) {
            return bad(format!(
                "decoder codebook_dim {} must be even",
                d.codebook_dim
            ));
        }
        let books_ok = |n: usize, semantic: usize| semantic == 1 && n > 1 && n <= MAX_CODEBOOKS;
        if !books_ok(e.num_quantizers, e.num_semantic_quantizers)
            || !books_ok(d.num_quantizers, d.num_semantic_quantizers)
        {
            return bad(format!(
                "one semantic codebook and 2 to {MAX_CODEBOOKS} in all, on both sides"
            ));
        }
        if self.encoder_valid_num_quantizers != d.num_quantizers
            || d.num_quantizers > e.num_quantizers
        {
            return bad(format!(
                "encoder_valid_num_quantizers {} must equal the decoder's num_quantizers {} \
                 (at most the encoder's {})",
                self.encoder_valid_num_quantizers, d.num_quantizers, e.num_quantizers
            ));
        }
        if e.codebook_size != d.codebook_size
            || e.codebook_size == 0
            || e.codebook_size > MAX_CODEBOOK_SIZE
        {
            return bad(format!(
                "codebook sizes {} (encoder) and {} (decoder) must be one size up to \
                 {MAX_CODEBOOK_SIZE}",
                e.codebook_size, d.codebook_size
            ));
        }
        if self.decode_chunk_frames == 0
            || self.decode_left_context_frames >= self.decode_chunk_frames
        {
            return bad(format!(
                "decode_chunk_frames {} must exceed decode_left_context_frames {}",
                self.decode_chunk_frames, self.decode_left_context_frames
            ));
        }
        Ok(())
    }

    /// Validate the config (errors name `source`) and say what a card of it must state.
    pub fn card_facts(&self, source: &str) -> Result<CardFacts> {
        self.validate(source)?;
        Ok(CardFacts {
            sample_rate: self.input_sample_rate,
            frame_rate: self.frame_rate(),
            codebooks: Some(vec![
                self.decoder_config.codebook_size as u32;
                self.encoder_valid_num_quantizers
            ]),
            codebook_frame_rates: None,
        })
    }
}

fn is_reference_config_value(json: &serde_json::Value) -> bool {
    json.get("model_type").and_then(|v| v.as_str()) == Some("qwen3_tts_tokenizer_12hz")
}

/// Whether a `config.json` is Qwen3-TTS-Tokenizer-12Hz's.
pub fn is_reference_config(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|j| is_reference_config_value(&j))
}

/// `value` with only the object keys that `known` has, recursively into objects `known` has.
fn keep_known(value: &serde_json::Value, known: &serde_json::Value) -> serde_json::Value {
    match (value, known) {
        (serde_json::Value::Object(v), serde_json::Value::Object(k)) => v
            .iter()
            .filter_map(|(key, item)| k.get(key).map(|kk| (key.clone(), keep_known(item, kk))))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        _ => value.clone(),
    }
}

//! XY-Tokenizer's architecture, named as the reference's `generator_params` (the yaml that
//! `XY_Tokenizer.load_from_checkpoint` reads): one table per module, `*_kwargs`.

use serde::{Deserialize, Serialize};

use crate::models::CardFacts;
use crate::{Error, Result};

fn gelu() -> String {
    "gelu".into()
}

fn same() -> String {
    "same".into()
}

fn is_gelu(s: &str) -> bool {
    s == "gelu"
}

fn is_same(s: &str) -> bool {
    s == "same"
}

/// The Whisper-style log-mel front end (`MelFeatureExtractor`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureExtractorKwargs {
    /// Seconds every clip is padded (or cut) to: 30.
    pub chunk_length: usize,
    /// Mel bands: 80.
    pub feature_size: usize,
    /// STFT hop: 160.
    pub hop_length: usize,
    /// STFT size: 400.
    pub n_fft: usize,
    /// Input rate: 16000.
    pub sampling_rate: u32,
}

/// A Whisper-style audio encoder (`OmniAudioEncoder`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioEncoderKwargs {
    /// Mel bands in.
    pub num_mel_bins: usize,
    /// Input rate.
    pub sampling_rate: u32,
    /// Mel hop.
    pub hop_length: usize,
    /// conv2's stride: 2.
    pub stride_size: usize,
    /// Both convolutions' kernel: 3.
    pub kernel_size: usize,
    /// Width.
    pub d_model: usize,
    /// Unused by the reference's forward (its `embed_scale` is never applied).
    #[serde(default)]
    pub scale_embedding: bool,
    /// Seconds the position table covers: 30.
    pub max_audio_seconds: usize,
    /// Transformer layers.
    pub encoder_layers: usize,
    /// Attention heads.
    pub encoder_attention_heads: usize,
    /// FFN width.
    pub encoder_ffn_dim: usize,
    /// `gelu` (exact).
    #[serde(default = "gelu", skip_serializing_if = "is_gelu")]
    pub activation_function: String,
}

/// The transformer "decoder" before the vocoder (`OmniAudioDecoder`, non-causal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioDecoderKwargs {
    /// Mel bands out.
    pub num_mel_bins: usize,
    /// Input rate.
    pub sampling_rate: u32,
    /// Mel hop.
    pub hop_length: usize,
    /// deconv1's stride: 2.
    pub stride_size: usize,
    /// Both transposed convolutions' kernel: 3.
    pub kernel_size: usize,
    /// Width.
    pub d_model: usize,
    /// Unused, as for the encoders.
    #[serde(default)]
    pub scale_embedding: bool,
    /// Seconds the position table covers: 30.
    pub max_audio_seconds: usize,
    /// Transformer layers.
    pub decoder_layers: usize,
    /// Attention heads.
    pub decoder_attention_heads: usize,
    /// FFN width.
    pub decoder_ffn_dim: usize,
    /// `gelu` (exact).
    #[serde(default = "gelu", skip_serializing_if = "is_gelu")]
    pub activation_function: String,
}

/// An adapter (`Transformer`): optional input and output projections around the layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransformerKwargs {
    /// Channels in (`proj` when it differs from `d_model`).
    pub input_dim: usize,
    /// Channels out (`out_proj` when it differs from `d_model`).
    pub output_dim: usize,
    /// Width.
    pub d_model: usize,
    /// Rows of the position table.
    pub max_source_positions: usize,
    /// Layers.
    pub encoder_layers: usize,
    /// Attention heads.
    pub encoder_attention_heads: usize,
    /// FFN width.
    pub encoder_ffn_dim: usize,
    /// `gelu` (exact).
    #[serde(default = "gelu", skip_serializing_if = "is_gelu")]
    pub activation_function: String,
}

/// `ResidualDownConv`: 4 frames into one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownsampleKwargs {
    /// Width in.
    pub d_model: usize,
    /// Frames per output frame: 4.
    pub avg_pooler: usize,
}

/// The residual VQ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantizerKwargs {
    /// Channels in (`input_proj`).
    pub input_dim: usize,
    /// The RVQ's width.
    pub rvq_dim: usize,
    /// Channels out (`output_proj`).
    pub output_dim: usize,
    /// Stages: 8.
    pub num_quantizers: usize,
    /// Entries per stage: 1024.
    pub codebook_size: u32,
    /// Entry width (equal to `rvq_dim`: no per-stage projections).
    pub codebook_dim: usize,
}

/// `UpConv`: one frame into 4.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpsampleKwargs {
    /// Width out.
    pub d_model: usize,
    /// Frames per input frame: 4.
    pub stride: usize,
}

/// The Vocos vocoder (ConvNeXt backbone, iSTFT head).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VocosKwargs {
    /// Mel bands in.
    pub input_channels: usize,
    /// Width.
    pub dim: usize,
    /// ConvNeXt MLP width.
    pub intermediate_dim: usize,
    /// ConvNeXt blocks.
    pub num_layers: usize,
    /// iSTFT size: 640 / 960 / 1280 for 16 / 24 / 32 kHz out.
    pub n_fft: usize,
    /// iSTFT hop: 160 / 240 / 320.
    pub hop_size: usize,
    /// `same` (the only padding implemented).
    #[serde(default = "same", skip_serializing_if = "is_same")]
    pub padding: String,
}

/// XY-Tokenizer's architecture: the reference's `generator_params`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XyTokenizerConfig {
    /// The encoder's rate (`sample_rate` in the repo's yaml, `input_sample_rate` in
    /// MOSS-TTSD's).
    #[serde(alias = "sample_rate")]
    pub input_sample_rate: u32,
    /// The vocoder's rate (MOSS-TTSD's yaml); absent: the input rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_sample_rate: Option<u32>,
    /// Input samples per code (MOSS-TTSD 32 kHz yaml), checked when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder_downsample_rate: Option<usize>,
    /// Output samples per code (MOSS-TTSD 32 kHz yaml), checked when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoder_upsample_rate: Option<usize>,
    /// Front end.
    pub feature_extractor_kwargs: FeatureExtractorKwargs,
    /// Semantic encoder.
    pub semantic_encoder_kwargs: AudioEncoderKwargs,
    /// Its adapter.
    pub semantic_encoder_adapter_kwargs: TransformerKwargs,
    /// Acoustic encoder.
    pub acoustic_encoder_kwargs: AudioEncoderKwargs,
    /// Adapter over both branches.
    pub pre_rvq_adapter_kwargs: TransformerKwargs,
    /// 50 -> 12.5 Hz.
    pub downsample_kwargs: DownsampleKwargs,
    /// The RVQ.
    pub quantizer_kwargs: QuantizerKwargs,
    /// Adapter after the RVQ.
    pub post_rvq_adapter_kwargs: TransformerKwargs,
    /// 12.5 -> 50 Hz.
    pub upsample_kwargs: UpsampleKwargs,
    /// Transformer to mel frames, 50 -> 100 Hz.
    pub acoustic_decoder_kwargs: AudioDecoderKwargs,
    /// Vocoder.
    pub vocos_kwargs: VocosKwargs,
}

/// Bounds on what a config may ask for (the published model is well inside them).
const MAX_WIDTH: usize = 16384;
const MAX_LAYERS: usize = 256;
const MAX_POSITIONS: usize = 1 << 16;

fn encoder(d_model: usize, layers: usize, heads: usize, ffn: usize) -> AudioEncoderKwargs {
    AudioEncoderKwargs {
        num_mel_bins: 80,
        sampling_rate: 16000,
        hop_length: 160,
        stride_size: 2,
        kernel_size: 3,
        d_model,
        scale_embedding: false,
        max_audio_seconds: 30,
        encoder_layers: layers,
        encoder_attention_heads: heads,
        encoder_ffn_dim: ffn,
        activation_function: gelu(),
    }
}

fn adapter(
    input_dim: usize,
    d_model: usize,
    output_dim: usize,
    positions: usize,
    layers: usize,
) -> TransformerKwargs {
    TransformerKwargs {
        input_dim,
        output_dim,
        d_model,
        max_source_positions: positions,
        encoder_layers: layers,
        encoder_attention_heads: d_model / 64,
        encoder_ffn_dim: 4 * d_model,
        activation_function: gelu(),
    }
}

impl XyTokenizerConfig {
    /// The repo's release (fdugyt/XY_Tokenizer, `config/xy_tokenizer_config.yaml`): 16 kHz in
    /// and out.
    pub fn xy_tokenizer() -> Self {
        let d = 768;
        Self {
            input_sample_rate: 16000,
            output_sample_rate: None,
            encoder_downsample_rate: None,
            decoder_upsample_rate: None,
            feature_extractor_kwargs: FeatureExtractorKwargs {
                chunk_length: 30,
                feature_size: 80,
                hop_length: 160,
                n_fft: 400,
                sampling_rate: 16000,
            },
            semantic_encoder_kwargs: encoder(d, 12, 12, 3072),
            semantic_encoder_adapter_kwargs: adapter(d, d, d, 1500, 4),
            acoustic_encoder_kwargs: encoder(d, 12, 12, 3072),
            pre_rvq_adapter_kwargs: adapter(2 * d, d, d, 1500, 4),
            downsample_kwargs: DownsampleKwargs {
                d_model: d,
                avg_pooler: 4,
            },
            quantizer_kwargs: QuantizerKwargs {
                input_dim: 4 * d,
                rvq_dim: 512,
                output_dim: 4 * d,
                num_quantizers: 8,
                codebook_size: 1024,
                codebook_dim: 512,
            },
            post_rvq_adapter_kwargs: adapter(4 * d, d, 4 * d, 375, 4),
            upsample_kwargs: UpsampleKwargs {
                d_model: d,
                stride: 4,
            },
            acoustic_decoder_kwargs: AudioDecoderKwargs {
                num_mel_bins: 80,
                sampling_rate: 16000,
                hop_length: 160,
                stride_size: 2,
                kernel_size: 3,
                d_model: d,
                scale_embedding: false,
                max_audio_seconds: 30,
                decoder_layers: 12,
                decoder_attention_heads: 12,
                decoder_ffn_dim: 3072,
                activation_function: gelu(),
            },
            vocos_kwargs: VocosKwargs {
                input_channels: 80,
                dim: 512,
                intermediate_dim: 4096,
                num_layers: 30,
                n_fft: 640,
                hop_size: 160,
                padding: same(),
            },
        }
    }

    /// MOSS-TTSD v0.5's XY_Tokenizer_TTSD_V0: the same model decoding to 24 kHz.
    pub fn xy_tokenizer_ttsd_v0() -> Self {
        let mut c = Self::xy_tokenizer();
        c.output_sample_rate = Some(24000);
        c.vocos_kwargs.n_fft = 960;
        c.vocos_kwargs.hop_size = 240;
        c
    }

    /// MOSS-TTSD v0.7 / v1.0's tokenizer: the same model decoding to 32 kHz.
    pub fn xy_tokenizer_32k() -> Self {
        let mut c = Self::xy_tokenizer();
        c.output_sample_rate = Some(32000);
        c.encoder_downsample_rate = Some(1280);
        c.decoder_upsample_rate = Some(2560);
        c.vocos_kwargs.n_fft = 1280;
        c.vocos_kwargs.hop_size = 320;
        c
    }

    /// The config from the reference's yaml: its `generator_params` (or the top level when the
    /// text is the `generator_params` table itself).
    pub fn from_reference_yaml(text: &str, source: &str) -> Result<Self> {
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
            .map_err(|e| Error::config(source, format!("not valid YAML: {e}")))?;
        let params = match doc.get("generator_params") {
            Some(p) => p.clone(),
            None => doc,
        };
        let config: Self = serde_yaml_ng::from_value(params)
            .map_err(|e| Error::config(source, format!("generator_params: {e}")))?;
        config.validate(source)?;
        Ok(config)
    }

    /// The rate of the decoded audio.
    pub fn output_rate(&self) -> u32 {
        self.output_sample_rate.unwrap_or(self.input_sample_rate)
    }

    /// Input samples per code frame: mel hop x encoder stride x down-sampling (1280).
    pub fn input_hop(&self) -> usize {
        self.feature_extractor_kwargs.hop_length
            * self.semantic_encoder_kwargs.stride_size
            * self.downsample_kwargs.avg_pooler
    }

    /// Output samples per code frame: up-sampling x decoder stride x vocoder hop.
    pub fn output_hop(&self) -> usize {
        self.upsample_kwargs.stride
            * self.acoustic_decoder_kwargs.stride_size
            * self.vocos_kwargs.hop_size
    }

    /// Code frames per second (12.5).
    pub fn frame_rate(&self) -> f64 {
        self.input_sample_rate as f64 / self.input_hop() as f64
    }

    /// Input samples of one encoder window (`chunk_length` seconds: 480,000).
    pub fn window_samples(&self) -> usize {
        self.feature_extractor_kwargs.chunk_length * self.input_sample_rate as usize
    }

    /// Mel frames of one window (3000).
    pub fn window_mel_frames(&self) -> usize {
        self.window_samples() / self.feature_extractor_kwargs.hop_length
    }

    /// Rows of an encoder's or the decoder's position table:
    /// `(max_audio_seconds * sampling_rate // hop_length) // stride_size` (1500).
    pub fn encoder_positions(e: &AudioEncoderKwargs) -> usize {
        (e.max_audio_seconds * e.sampling_rate as usize / e.hop_length.max(1))
            / e.stride_size.max(1)
    }

    /// Rows of the decoder's position table.
    pub fn decoder_positions(&self) -> usize {
        let d = &self.acoustic_decoder_kwargs;
        (d.max_audio_seconds * d.sampling_rate as usize / d.hop_length.max(1))
            / d.stride_size.max(1)
    }

    /// Code frames of one decode window (30 s: 375).
    pub fn window_codes(&self) -> usize {
        self.window_samples() / self.input_hop()
    }

    /// Check the modules fit together and every size is bounded; the error names `source`.
    pub fn validate(&self, source: &str) -> Result<()> {
        let bad = |reason: String| Err(Error::config(source, reason));
        let fe = &self.feature_extractor_kwargs;
        let widths = [
            fe.feature_size,
            fe.n_fft,
            fe.hop_length,
            self.semantic_encoder_kwargs.d_model,
            self.semantic_encoder_kwargs.encoder_ffn_dim,
            self.acoustic_encoder_kwargs.d_model,
            self.acoustic_encoder_kwargs.encoder_ffn_dim,
            self.downsample_kwargs.d_model,
            self.quantizer_kwargs.input_dim,
            self.quantizer_kwargs.rvq_dim,
            self.quantizer_kwargs.output_dim,
            self.upsample_kwargs.d_model,
            self.acoustic_decoder_kwargs.d_model,
            self.acoustic_decoder_kwargs.decoder_ffn_dim,
            self.vocos_kwargs.dim,
            self.vocos_kwargs.intermediate_dim,
            self.vocos_kwargs.n_fft,
            self.vocos_kwargs.hop_size,
        ];
        if widths.iter().any(|&w| w == 0 || w > MAX_WIDTH) {
            return bad(format!("every width must be 1 to {MAX_WIDTH}"));
        }
        if self.input_sample_rate == 0 || self.input_sample_rate > 384_000 {
            return bad(format!("input_sample_rate {}", self.input_sample_rate));
        }
        if fe.sampling_rate != self.input_sample_rate
            || fe.chunk_length == 0
            || fe.chunk_length > 600
        {
            return bad(format!(
                "the front end's sampling_rate {} must be the input rate {} and its chunk_length \
                 1 to 600 s",
                fe.sampling_rate, self.input_sample_rate
            ));
        }
        if fe.n_fft < 2 || fe.hop_length > fe.n_fft {
            return bad("the front end's n_fft must be at least its hop".into());
        }
        let transformer = |what: &str, d: usize, layers: usize, heads: usize, ffn: usize| {
            if layers > MAX_LAYERS
                || heads == 0
                || !d.is_multiple_of(heads)
                || ffn == 0
                || ffn > MAX_WIDTH
                || d == 0
                || d > MAX_WIDTH
            {
                return Err(Error::config(
                    source,
                    format!(
                        "{what}: width {d}, {layers} layers (at most {MAX_LAYERS}), {heads} heads \
                         (must divide the width), FFN {ffn}"
                    ),
                ));
            }
            Ok(())
        };
        for (what, e) in [
            ("semantic_encoder_kwargs", &self.semantic_encoder_kwargs),
            ("acoustic_encoder_kwargs", &self.acoustic_encoder_kwargs),
        ] {
            transformer(
                what,
                e.d_model,
                e.encoder_layers,
                e.encoder_attention_heads,
                e.encoder_ffn_dim,
            )?;
            if e.num_mel_bins != fe.feature_size
                || e.stride_size != 2
                || e.kernel_size != 3
                || e.hop_length != fe.hop_length
                || e.activation_function != "gelu"
            {
                return bad(format!(
                    "{what}: {} mel bins (the front end gives {}), stride {} (2), kernel {} (3), \
                     hop {} ({}), activation {} (gelu)",
                    e.num_mel_bins,
                    fe.feature_size,
                    e.stride_size,
                    e.kernel_size,
                    e.hop_length,
                    fe.hop_length,
                    e.activation_function
                ));
            }
            let positions = Self::encoder_positions(e);
            if positions > MAX_POSITIONS || positions < self.window_mel_frames() / 2 {
                return bad(format!(
                    "{what}: {positions} positions for a window of {} mel frames",
                    self.window_mel_frames()
                ));
            }
        }
        if self.semantic_encoder_kwargs.stride_size != self.acoustic_encoder_kwargs.stride_size {
            return bad("the two encoders' strides differ".into());
        }
        for (what, a) in [
            (
                "semantic_encoder_adapter_kwargs",
                &self.semantic_encoder_adapter_kwargs,
            ),
            ("pre_rvq_adapter_kwargs", &self.pre_rvq_adapter_kwargs),
            ("post_rvq_adapter_kwargs", &self.post_rvq_adapter_kwargs),
        ] {
            transformer(
                what,
                a.d_model,
                a.encoder_layers,
                a.encoder_attention_heads,
                a.encoder_ffn_dim,
            )?;
            if a.input_dim == 0
                || a.input_dim > MAX_WIDTH
                || a.output_dim == 0
                || a.output_dim > MAX_WIDTH
                || a.max_source_positions == 0
                || a.max_source_positions > MAX_POSITIONS
                || a.activation_function != "gelu"
            {
                return bad(format!(
                    "{what}: input {} / output {} widths, {} positions, activation {}",
                    a.input_dim, a.output_dim, a.max_source_positions, a.activation_function
                ));
            }
        }
        let sem = &self.semantic_encoder_kwargs;
        let sem_adapter = &self.semantic_encoder_adapter_kwargs;
        let pre = &self.pre_rvq_adapter_kwargs;
        let down = &self.downsample_kwargs;
        let q = &self.quantizer_kwargs;
        let post = &self.post_rvq_adapter_kwargs;
        let up = &self.upsample_kwargs;
        let dec = &self.acoustic_decoder_kwargs;
        let voc = &self.vocos_kwargs;
        let chain = [
            (
                "semantic_encoder_adapter input_dim",
                sem_adapter.input_dim,
                sem.d_model,
            ),
            (
                "pre_rvq_adapter input_dim",
                pre.input_dim,
                sem_adapter.output_dim + self.acoustic_encoder_kwargs.d_model,
            ),
            ("downsample d_model", down.d_model, pre.output_dim),
            (
                "quantizer input_dim",
                q.input_dim,
                down.d_model * down.avg_pooler,
            ),
            ("quantizer codebook_dim", q.codebook_dim, q.rvq_dim),
            ("post_rvq_adapter input_dim", post.input_dim, q.output_dim),
            (
                "post_rvq_adapter output_dim",
                post.output_dim,
                up.d_model * up.stride,
            ),
            ("acoustic_decoder d_model", dec.d_model, up.d_model),
            ("upsample stride", up.stride, down.avg_pooler),
            ("vocos input_channels", voc.input_channels, dec.num_mel_bins),
            (
                "acoustic_decoder num_mel_bins",
                dec.num_mel_bins,
                fe.feature_size,
            ),
            (
                "acoustic_decoder stride_size",
                dec.stride_size,
                sem.stride_size,
            ),
        ];
        for (what, got, want) in chain {
            if got != want {
                return bad(format!(
                    "{what} is {got}, the modules around it need {want}"
                ));
            }
        }
        if !(1..=64).contains(&down.avg_pooler)
            || q.num_quantizers == 0
            || q.num_quantizers > 64
            || q.codebook_size == 0
            || q.codebook_size > 1 << 20
        {
            return bad(format!(
                "avg_pooler {} (1 to 64), {} quantizers (1 to 64) of {} entries (1 to 2^20)",
                down.avg_pooler, q.num_quantizers, q.codebook_size
            ));
        }
        transformer(
            "acoustic_decoder_kwargs",
            dec.d_model,
            dec.decoder_layers,
            dec.decoder_attention_heads,
            dec.decoder_ffn_dim,
        )?;
        if dec.kernel_size != 3 || dec.activation_function != "gelu" || dec.hop_length == 0 {
            return bad("acoustic_decoder_kwargs: kernel 3 and gelu are implemented".into());
        }
        if voc.num_layers > MAX_LAYERS
            || voc.padding != "same"
            || voc.hop_size > voc.n_fft
            || !(voc.n_fft - voc.hop_size).is_multiple_of(2)
        {
            return bad(format!(
                "vocos_kwargs: {} layers, padding {} (same), n_fft {} and hop {} (n_fft - hop even)",
                voc.num_layers, voc.padding, voc.n_fft, voc.hop_size
            ));
        }
        // The decode window's frames must fit the post-RVQ and decoder position tables.
        let codes = self.window_codes();
        if codes == 0
            || codes > post.max_source_positions
            || codes * up.stride > self.decoder_positions()
        {
            return bad(format!(
                "a {} s window is {codes} code frames: more than the post-RVQ adapter's {} \
                 positions or the decoder's {}",
                fe.chunk_length,
                post.max_source_positions,
                self.decoder_positions()
            ));
        }
        let frames50 = self.window_mel_frames() / 2;
        if sem_adapter.max_source_positions < frames50 || pre.max_source_positions < frames50 {
            return bad(format!(
                "the adapters' position tables ({} and {} rows) are shorter than a window's \
                 {frames50} encoder frames",
                sem_adapter.max_source_positions, pre.max_source_positions
            ));
        }
        let out_rate = self.output_rate() as f64;
        let implied = self.frame_rate() * self.output_hop() as f64;
        if (out_rate - implied).abs() > 1e-6 || out_rate > 384_000.0 {
            return bad(format!(
                "output_sample_rate {out_rate} but the decoder gives {} samples per code at {} \
                 codes/s ({implied} Hz)",
                self.output_hop(),
                self.frame_rate()
            ));
        }
        if self
            .encoder_downsample_rate
            .is_some_and(|r| r != self.input_hop())
            || self
                .decoder_upsample_rate
                .is_some_and(|r| r != self.output_hop())
        {
            return bad(format!(
                "encoder_downsample_rate / decoder_upsample_rate {:?} / {:?}, the modules give {} \
                 / {}",
                self.encoder_downsample_rate,
                self.decoder_upsample_rate,
                self.input_hop(),
                self.output_hop()
            ));
        }
        Ok(())
    }

    /// Validate and say what a card of this config states. The codec's one rate is the
    /// decoder's (see the family's docs: the encoder takes audio at that rate and resamples
    /// it to its own 16 kHz).
    pub fn card_facts(&self, source: &str) -> Result<CardFacts> {
        self.validate(source)?;
        Ok(CardFacts {
            sample_rate: self.output_rate(),
            frame_rate: self.frame_rate(),
            codebooks: Some(vec![
                self.quantizer_kwargs.codebook_size;
                self.quantizer_kwargs.num_quantizers
            ]),
            codebook_frame_rates: None,
        })
    }
}

/// Whether a yaml holds XY-Tokenizer's `generator_params`.
pub fn is_reference_config(text: &str) -> bool {
    text.contains("semantic_encoder_adapter_kwargs")
        && text.contains("pre_rvq_adapter_kwargs")
        && text.contains("vocos_kwargs")
}

//! SpeechTokenizer (Zhang et al. 2023, `ZhangXInFD/SpeechTokenizer`): 16 kHz mono, a
//! non-causal SEANet encoder whose LSTM runs in both directions, residual VQ of 8 codebooks of
//! 1024 entries at 50 frames/s whose first stage was distilled from HuBERT during training (at
//! inference it is an ordinary RVQ stage: its codes are the "semantic tokens", the rest add
//! timbre and detail), and an EnCodec-style SEANet decoder.
//!
//! This follows the `speechtokenizer` package 1.0.1 (`SpeechTokenizer.encode` / `decode`):
//!
//! - the encoder is EnCodec's SEANet (reflect padding, weight norm, 1x1-conv shortcuts) with a
//!   2-layer *bidirectional* LSTM: its output (`[forward, backward]`, twice the channels) plus
//!   the input repeated twice on channels, then ELU and a convolution to `dimension`;
//! - the decoder is EnCodec's, with a unidirectional LSTM;
//! - `transform`, a Linear from `dimension` to `semantic_dimension` (HuBERT's 768), is the
//!   distillation head: encode and decode do not use it;
//!   [`SpeechTokenizer::semantic_features`] gives its output.
//!
//! An input of `L` samples gives `ceil(L / 320)` frames (the convolutions pad the end so the
//! last window is full) and decodes to `320` samples per frame.
//!
//! # Weights
//!
//! The published `SpeechTokenizer.pt` is a plain state dict in EnCodec's original layout
//! (`encoder.model.*`, `decoder.model.*`, weight norm as `weight_g`/`weight_v`,
//! `quantizer.vq.layers.N._codebook.*`) plus `transform.*`; its `config.json` holds the model
//! fields ([`SpeechTokenizerConfig::from_reference_json`]) beside training settings.
//!
//! # Models built on it
//!
//! DM-Codec and FuseCodec publish checkpoints of this architecture (they change the training
//! targets, not the inference graph, as their papers describe it); a checkpoint with the same
//! key layout and a `config.json` of these fields loads here. None was available to test
//! against, so their cards are not shipped.

mod config;
mod weights;

pub use config::*;
pub use weights::*;

use std::sync::Arc;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

use crate::long_form::{LongForm, Windowing};
use crate::nn::linear::Linear;

use super::{CheckpointFamily, Score};
use crate::codec::{CodeStreams, Codec, CodecInfo, EncodeOptions};
use crate::nn::seanet::{SeanetDecoder, SeanetEncoder};
use crate::quant::ResidualVq;
use crate::weights::{build_fingerprinted, load_tracked, StateDict};
use crate::Result;

/// Prefixes of the inference weights in the reference's state dict.
const ENCODER: &str = "encoder";
const DECODER: &str = "decoder";
const QUANTIZER: &str = "quantizer.vq";
const TRANSFORM: &str = "transform";

/// A loaded SpeechTokenizer model. Encode only whole clips: the bidirectional LSTM needs the
/// whole sequence, so the model does not stream.
#[derive(Clone)]
pub struct SpeechTokenizer {
    info: CodecInfo,
    config: SpeechTokenizerConfig,
    device: Device,
    encoder: Arc<SeanetEncoder>,
    quantizer: ResidualVq,
    /// The distillation head; `None` when `semantic_dimension == dimension` (`nn.Identity`).
    transform: Option<Linear>,
    decoder: Arc<SeanetDecoder>,
}

impl SpeechTokenizer {
    /// Build the model from the reference's state dict or its converted safetensors. Every
    /// inference tensor must be present with the right shape; the error names the one that is
    /// not. Returns the model and the keys it did not use (should be empty).
    pub fn load(
        config: &SpeechTokenizerConfig,
        state: StateDict,
        name: &str,
        device: &Device,
    ) -> Result<(Self, Vec<String>)> {
        let state = inference_weights(state)?;
        load_tracked(state, device, |vb| Self::new(config, vb, name))
    }

    /// Build the model from a `VarBuilder` over inference weights (the reference's layout,
    /// weight norm folded: what [`inference_weights`] returns and `codec convert` writes).
    pub fn new(config: &SpeechTokenizerConfig, vb: VarBuilder, name: &str) -> Result<Self> {
        config.validate(name)?;
        let device = vb.device().clone();
        let s = &config.seanet;
        let ((encoder, quantizer, transform, decoder), fingerprint) =
            build_fingerprinted(vb, name, |vb| {
                let encoder = SeanetEncoder::new(s, vb.pp(ENCODER))?;
                let quantizer = ResidualVq::new(
                    config.num_quantizers,
                    config.codebook_size,
                    s.dimension,
                    vb.pp(QUANTIZER),
                )?;
                let transform = if config.semantic_dimension != s.dimension {
                    Some(crate::nn::linear::linear(
                        s.dimension,
                        config.semantic_dimension,
                        vb.pp(TRANSFORM),
                    )?)
                } else {
                    None
                };
                // The reference builds its decoder with `bidirectional=False`.
                let decoder_seanet = crate::nn::seanet::SeanetConfig {
                    bidirectional_lstm: false,
                    ..s.clone()
                };
                let decoder = SeanetDecoder::new(&decoder_seanet, 1.0, vb.pp(DECODER))?;
                Ok((encoder, quantizer, transform, decoder))
            })?;
        let frame_rate = config.frame_rate();
        let info = CodecInfo {
            name: name.to_string(),
            family: FAMILY.name.into(),
            sample_rate: config.sample_rate,
            channels: 1,
            frame_rate,
            codebook_sizes: vec![config.codebook_size as u32; config.num_quantizers],
            codebook_frame_rates: vec![frame_rate; config.num_quantizers],
            bandwidths_kbps: Vec::new(),
            fingerprint,
        };
        Ok(Self {
            info,
            config: config.clone(),
            device,
            encoder: Arc::new(encoder),
            quantizer,
            transform,
            decoder: Arc::new(decoder),
        })
    }

    /// The architecture.
    pub fn config(&self) -> &SpeechTokenizerConfig {
        &self.config
    }

    /// Audio `[batch, 1, samples]` → encoder latent `[batch, dimension, frames]`.
    pub fn encode_latent(&self, audio: &Tensor) -> Result<Tensor> {
        self.check_audio(audio)?;
        let audio = audio.to_device(&self.device)?.to_dtype(DType::F32)?;
        Ok(self.encoder.forward(&audio)?)
    }

    /// Encoder latent `[batch, dimension, frames]` → codes `[batch, n_q, frames]` with the
    /// first `n_q` codebooks.
    pub fn quantize_latent(&self, latent: &Tensor, n_q: usize) -> Result<Tensor> {
        Ok(self.quantizer.encode(latent, n_q)?)
    }

    /// Codes of the first `k` codebooks `[batch, k, frames]` → the quantized latent
    /// `[batch, dimension, frames]` (the sum of their entries), what the decoder reads.
    pub fn dequantize(&self, codes: &Tensor) -> Result<Tensor> {
        crate::codec::check_stacked_codes(
            codes,
            self.config.num_quantizers,
            self.config.codebook_size,
            &self.info.name,
        )?;
        let codes = codes.to_device(&self.device)?.to_dtype(DType::U32)?;
        Ok(self.quantizer.decode(&codes)?)
    }

    /// The distillation head's output for audio `[batch, 1, samples]`: `transform` of the first
    /// stage's quantized latent, `[batch, frames, semantic_dimension]` (the reference's
    /// `forward` returns it as `feature`; the HuBERT-aligned content representation).
    pub fn semantic_features(&self, audio: &Tensor) -> Result<Tensor> {
        let latent = self.encode_latent(audio)?;
        let first = self.quantizer.encode(&latent, 1)?;
        let quantized = self.quantizer.decode(&first)?.transpose(1, 2)?;
        Ok(match &self.transform {
            Some(t) => t.forward(&quantized)?,
            None => quantized.contiguous()?,
        })
    }

    fn check_audio(&self, audio: &Tensor) -> Result<()> {
        crate::codec::check_mono_audio(audio, &self.info.name)
    }
}

impl Codec for SpeechTokenizer {
    /// Approximate windows with 1 s of context on each side: the encoder's LSTM runs both ways
    /// over its whole input. On 60 s of real audio every code equals one pass's and the audio
    /// is 130 dB from it (`tests/long_form.rs`).
    fn long_form(&self) -> LongForm {
        LongForm::Windowed(Windowing::approximate_seconds(&self.info, 1, 1))
    }

    fn info(&self) -> &CodecInfo {
        &self.info
    }

    fn device(&self) -> &Device {
        &self.device
    }

    /// Codes with every codebook.
    fn encode(&self, audio: &Tensor) -> Result<Tensor> {
        self.encode_with(audio, &EncodeOptions::default())?
            .stacked()
    }

    /// Decode codes of the first `k` codebooks (the sum of their entries), `1 <= k <= n_q`.
    fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        Ok(self.decoder.forward(&self.dequantize(codes)?)?)
    }

    /// Only the requested codebooks' stages run (residual VQ).
    fn encode_with(&self, audio: &Tensor, options: &EncodeOptions) -> Result<CodeStreams> {
        let n_q = options.codebooks_for(&self.info, self.config.num_quantizers)?;
        let latent = self.encode_latent(audio)?;
        CodeStreams::from_stacked(&self.quantizer.encode(&latent, n_q)?)
    }
}

/// The SpeechTokenizer family's entry in the registry.
pub static FAMILY: CheckpointFamily<SpeechTokenizerConfig, SpeechTokenizer> = CheckpointFamily {
    name: "speechtokenizer",
    weights_score: |weights| Score::distinctive_if(looks_like_speechtokenizer(weights)),
    config_score: |text| Score::distinctive_if(is_reference_config(text)),
    inference_weights,
    from_reference: SpeechTokenizerConfig::from_reference_json,
    infer: infer_config,
    card_facts: SpeechTokenizerConfig::card_facts,
    load: SpeechTokenizer::load,
    onnx: None,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelCard;

    #[test]
    fn published_config_is_valid() {
        let c = SpeechTokenizerConfig::speechtokenizer_hubert_avg();
        c.validate("test").unwrap();
        assert_eq!(c.hop_length(), 320);
        assert_eq!(c.frame_rate(), 50.0);
    }

    #[test]
    fn reference_json_reads_the_model_fields_and_ignores_training_ones() {
        let published = r#"{"resblock": "1", "num_gpus": 3, "batch_size": 60,
            "learning_rate": 0.0001, "n_filters": 64, "strides": [8, 5, 4, 2],
            "dimension": 1024, "semantic_dimension": 768, "bidirectional": true,
            "dilation_base": 2, "residual_kernel_size": 3, "n_residual_layers": 1,
            "lstm_layers": 2, "activation": "ELU", "segment_size": 48000,
            "sample_rate": 16000, "codebook_size": 1024, "n_q": 8}"#;
        assert!(is_reference_config(published));
        let cfg = SpeechTokenizerConfig::from_reference_json(published, "config.json").unwrap();
        assert_eq!(cfg, SpeechTokenizerConfig::speechtokenizer_hubert_avg());
        // Missing or unsupported fields are named.
        let missing = published.replace("\"lstm_layers\"", "\"lstm_layer\"");
        let err = SpeechTokenizerConfig::from_reference_json(&missing, "config.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lstm_layers"), "{err}");
        let snake = published.replace("\"ELU\"", "\"Snake\"");
        let err = SpeechTokenizerConfig::from_reference_json(&snake, "config.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("Snake"), "{err}");
        let huge = published.replace("\"n_filters\": 64", "\"n_filters\": 4096");
        assert!(SpeechTokenizerConfig::from_reference_json(&huge, "config.json").is_err());
        // EnCodec's package config is not SpeechTokenizer's.
        assert!(!is_reference_config(
            r#"{"target_bandwidths": [1.5], "n_q": 32, "ratios": [8, 5, 4, 2]}"#
        ));
    }

    #[test]
    fn config_round_trips_through_toml() {
        let cfg = SpeechTokenizerConfig::speechtokenizer_hubert_avg();
        let text = toml::to_string(&cfg).unwrap();
        let back: SpeechTokenizerConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn published_card_matches_the_named_config() {
        let card = ModelCard::find("speechtokenizer-hubert-avg").unwrap();
        let cfg: SpeechTokenizerConfig = card.architecture.clone().try_into().unwrap();
        assert_eq!(cfg, SpeechTokenizerConfig::speechtokenizer_hubert_avg());
        let hub = card.hub.unwrap();
        assert_eq!(hub.repo, "fnlp/SpeechTokenizer");
        assert_eq!(hub.weights, "speechtokenizer_hubert_avg/SpeechTokenizer.pt");
        assert_eq!(card.license, "Apache-2.0");
    }
}

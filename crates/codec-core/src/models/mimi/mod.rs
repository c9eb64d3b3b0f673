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

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;

use super::{CheckpointFamily, Score};
use crate::codec::{CodeStreams, Codec, CodecInfo, EncodeOptions};
use crate::error::{AudioProblem, CodesProblem};
use crate::long_form::LongForm;
use crate::nn::conv::{SConv1dConfig, SConvTranspose1dConfig};
use crate::nn::moshi_transformer::StreamingTransformer;
use crate::nn::seanet::{SeanetDecoder, SeanetEncoder};
use crate::nn::PadMode;
use crate::nn::{ConvNorm, SConv1d, SConvTranspose1d};
use crate::quant::{ProjectedRvq, SplitRvq};
use crate::streaming::{
    StackCodec, StackDecoder, StackEncoder, StreamingDecoder, StreamingEncoder, StreamingModule,
};
use crate::weights::{build_fingerprinted, load_tracked, StateDict};
use crate::{Error, Result};

mod config;
mod weights;

pub use config::*;
pub use weights::*;

/// `EuclideanCodebook`'s `epsilon`: the floor of `cluster_usage`.
const CODEBOOK_EPSILON: f64 = 1e-5;

/// The layers that carry state on the encoding side.
#[derive(Debug, Clone)]
struct EncoderStack {
    seanet: SeanetEncoder,
    transformer: StreamingTransformer,
    downsample: SConv1d,
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

    fn reset_item(&mut self, index: usize) -> Result<()> {
        self.seanet.reset_item(index)?;
        self.transformer.reset_item(index)?;
        self.downsample.reset_item(index)
    }
}

/// The layers that carry state on the decoding side.
#[derive(Debug, Clone)]
struct DecoderStack {
    upsample: SConvTranspose1d,
    transformer: StreamingTransformer,
    seanet: SeanetDecoder,
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

    /// Every layer of the decoding side, its transformer included (moshi's
    /// `reset_batch_idx` resets the encoder's transformer twice and the decoder's never).
    fn reset_item(&mut self, index: usize) -> Result<()> {
        self.upsample.reset_item(index)?;
        self.transformer.reset_item(index)?;
        self.seanet.reset_item(index)
    }
}

/// A loaded Mimi model.
#[derive(Clone)]
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
        let state = inference_weights_with_heads(state, config.transformer.num_heads)?;
        load_tracked(state, device, |vb| Self::new(config, vb, name))
    }

    /// Build the model from a `VarBuilder` over inference weights in moshi's layout (what
    /// [`inference_weights`] returns and `codec convert` writes), read as f32. A missing or
    /// misshaped tensor is an error naming it.
    pub fn new(config: &MimiConfig, vb: VarBuilder, name: &str) -> Result<Self> {
        config.validate(name)?;
        let device = vb.device().clone();
        let seanet = config.seanet_config();
        let tcfg = config.transformer_config();
        let dim = config.seanet.dimension;
        let stride = config.resample_stride();
        let q = &config.quantizer;
        let build =
            |vb: VarBuilder| -> candle_core::Result<(EncoderStack, SplitRvq, DecoderStack)> {
                let encoder = EncoderStack {
                    seanet: SeanetEncoder::new(&seanet, vb.pp("encoder"))?,
                    transformer: StreamingTransformer::new(&tcfg, vb.pp("encoder_transformer"))?,
                    downsample: SConv1d::new(
                        dim,
                        dim,
                        SConv1dConfig::new(2 * stride, true, PadMode::Replicate)
                            .stride(stride)
                            .bias(false)
                            .norm(ConvNorm::None),
                        vb.pp("downsample").pp("conv"),
                    )?,
                };
                let dims = [q.input_dimension, q.dimension, q.output_dimension];
                let rvq = |n_q, vb| ProjectedRvq::new(n_q, q.bins, dims, CODEBOOK_EPSILON, vb);
                let quantizer = SplitRvq::new(
                    rvq(q.n_q_semantic, vb.pp("quantizer").pp("rvq_first"))?,
                    rvq(q.n_q - q.n_q_semantic, vb.pp("quantizer").pp("rvq_rest"))?,
                    q.n_q_semantic,
                );
                let decoder = DecoderStack {
                    // Channel-wise (moshi's `upsample_channel_wise_bug`), no bias.
                    upsample: SConvTranspose1d::new(
                        dim,
                        dim,
                        SConvTranspose1dConfig::new(2 * stride, stride, true)
                            .groups(dim)
                            .bias(false)
                            .norm(ConvNorm::None),
                        vb.pp("upsample").pp("convtr"),
                    )?,
                    transformer: StreamingTransformer::new(&tcfg, vb.pp("decoder_transformer"))?,
                    seanet: SeanetDecoder::new(&seanet, 1.0, vb.pp("decoder"))?,
                };
                Ok((encoder, quantizer, decoder))
            };
        let ((encoder, quantizer, decoder), fingerprint) = build_fingerprinted(vb, name, build)?;
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
        Ok(model)
    }

    /// The architecture.
    pub fn config(&self) -> &MimiConfig {
        &self.config
    }

    fn num_codebooks(&self, options: &EncodeOptions) -> Result<usize> {
        options.codebooks_for(&self.info, self.config.quantizer.n_q)
    }

    fn check_audio(&self, audio: &Tensor) -> Result<()> {
        let dims = audio.dims();
        if dims.len() != 3 || dims[1] != 1 {
            return Err(Error::audio_shape(
                &self.info.name,
                "[batch, 1, samples]",
                dims,
            ));
        }
        Ok(())
    }

    fn check_codes(&self, codes: &Tensor) -> Result<Tensor> {
        let dims = codes.dims();
        let max_q = self.config.quantizer.n_q;
        if dims.len() != 3 || dims[1] == 0 || dims[1] > max_q {
            return Err(Error::codes_shape(
                &self.info.name,
                format!("[batch, 1..={max_q}, frames]"),
                dims,
            ));
        }
        let codes = codes.to_device(&self.device)?.to_dtype(DType::U32)?;
        if codes.elem_count() > 0 {
            let max = codes.flatten_all()?.max(0)?.to_scalar::<u32>()?;
            if max as usize >= self.config.quantizer.bins {
                return Err(Error::InvalidCodes(CodesProblem::OutOfRange {
                    codebook: None,
                    code: max.into(),
                    size: self.config.quantizer.bins,
                }));
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
    /// Long inputs through the streaming encoder and decoder: the codes of one pass.
    fn long_form(&self) -> LongForm {
        LongForm::Streamed
    }

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
            .ok_or(Error::InvalidCodes(CodesProblem::NoFrames))
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
        let latent =
            run_in_chunks(&mut encoder, &audio, BATCH_CHUNK_FRAMES * frame)?.ok_or_else(|| {
                Error::InvalidAudio(AudioProblem::TooShort {
                    model: self.info.name.clone(),
                })
            })?;
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
    ) -> Result<Box<dyn StreamingEncoder>> {
        let n_q = self.num_codebooks(options)?;
        Ok(Box::new(StackEncoder::new(
            self.clone(),
            self.encoder.clone(),
            batch,
            n_q,
        )))
    }

    fn streaming_decoder(&self, batch: usize) -> Result<Box<dyn StreamingDecoder>> {
        Ok(Box::new(StackDecoder::new(
            self.clone(),
            self.decoder.clone(),
            batch,
        )))
    }
}

impl StackCodec for Mimi {
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

    /// Causal, zero-padded convolutions and a transformer with per-row positions.
    fn stream_resets_items(&self) -> bool {
        true
    }
}

/// The mimi family's entry in the registry.
pub static FAMILY: CheckpointFamily<MimiConfig, Mimi> = CheckpointFamily {
    name: "mimi",
    weights_score: |weights| Score::distinctive_if(looks_like_mimi(weights)),
    config_score: |text| Score::distinctive_if(is_reference_config(text)),
    inference_weights,
    from_reference: MimiConfig::from_reference_json,
    infer: infer_config,
    card_facts: MimiConfig::card_facts,
    load: Mimi::load,
    onnx: None,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelCard;

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
        // Settings Mimi does not have are refused when the config is read.
        let json = serde_json::to_string(&MimiConfig::mimi())
            .unwrap()
            .replace(r#""gating":"none""#, r#""gating":"silu""#);
        let err = MimiConfig::from_reference_json(&json, "cfg")
            .unwrap_err()
            .to_string();
        assert!(err.contains("silu"), "{err}");
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

//! MOSS-Audio-Tokenizer (OpenMOSS, 2026; "CAT"): 24 kHz mono, 12.5 frames/s, 32 codebooks
//! of 1024, a purely transformer codec of 1.77 B parameters.
//!
//! - Encoder: the waveform cut into patches of 240 samples, then four causal transformers
//!   with 2x patch merges between them (channel-major: channel `c * h + j` is channel `c` at
//!   offset `j`), each attending over a sliding window of `causal_transformer_context_duration`
//!   (10 s) at its own frame rate, in one pass as in steps.
//! - Quantizer: a residual LFQ, 32 stages picking by cosine similarity in 8 dimensions and
//!   subtracting the raw entry; weight-normed 1x1 projections with biases. The input is padded
//!   to whole frames and `ceil(samples / 1920)` frames come out, but the last, partial one is
//!   masked as the reference masks it (its residual is zero, so it gets the codes nearest each
//!   stage's bias) unless the `mask_partial_frame` option is off (the reference's ONNX
//!   export quantizes it like any other).
//! - Decoder: the mirror image, ending in a 240-sample patch split: `frames * 1920` samples,
//!   no clamp.
//!
//! Streaming reproduces the reference's `chunk_duration` mode: chunks of
//! `stream_chunk_frames` frames (default 1, 80 ms) through a ring KV cache as large as each
//! window, which sees less than the sliding window inside a chunk, so streamed codes differ
//! from whole-file codes once a stream outgrows the window (and are the reference's streaming
//! codes). A stream keeps whole frames only; one shorter than a chunk is encoded as a whole
//! file, as the reference does.
//!
//! ```no_run
//! use codec_core::{load_model, Codec, DType, Device, ModelSpec, Tensor};
//! // The hub folder, or a local one: `ModelSpec::parse("path/to/folder")`.
//! let mut model = load_model(&ModelSpec::parse("moss-audio-tokenizer")?, &Device::Cpu)?;
//! let audio = Tensor::zeros((1, 1, 24_000), DType::F32, &Device::Cpu)?;
//! let codes = model.encode(&audio)?; // [1, 32, 13]: 1 s, the 13th frame partial (masked)
//! let audio = model.decode(&codes)?; // [1, 1, 13 * 1920]
//! model.set_option("stream_chunk_frames", "5")?; // streams in 0.4 s chunks
//! # Ok::<(), codec_core::Error>(())
//! ```
//!
//! # Weights
//!
//! The hub folder (OpenMOSS-Team/MOSS-Audio-Tokenizer): `config.json`
//! (`MossAudioTokenizerConfig`) and `model.safetensors`. See [`weights`] for the layout.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::{CheckpointFamily, Score};
use crate::codec::{
    bad_option_value, check_mono_audio, check_stacked_codes, unknown_option, CodeStreams, Codec,
    CodecInfo, EncodeOptions, ModelOption,
};
use crate::long_form::{LongForm, Windowing};
use crate::weights::{build_fingerprinted, load_tracked, StateDict};
use crate::{Error, Result};

mod config;
mod stack;
mod stream;
pub mod weights;

pub use config::*;
pub use weights::{infer_config, inference_weights, looks_like_moss_audio_tokenizer};

use stack::{Quantizer, Stack};

/// Whole-file encodes and decodes run the stacks in pieces of this many code frames (10 s):
/// the same output as one pass (the attention is a sliding window either way), with memory
/// bounded by the piece.
const PIECE_FRAMES: usize = 125;

/// The model's parts, shared (cheaply cloned) with its streams.
#[derive(Clone)]
struct Parts {
    encoder: Stack,
    quantizer: Quantizer,
    decoder: Stack,
    device: Device,
    hop: usize,
}

impl Parts {
    /// Encoder output `[b, input_dim, frames]` of audio `[b, 1, samples]` (padded here to
    /// whole frames), on a fresh non-streaming state, in pieces; with `trace`, every
    /// transformer's output.
    fn encode_latent(
        &self,
        audio: &Tensor,
        trace: Option<&mut Vec<(usize, Tensor)>>,
    ) -> Result<Tensor> {
        let audio = pad_to_frames(audio, self.hop)?;
        let samples = audio.dim(2)?;
        let mut stack = self.encoder.clone();
        stack.reset(false);
        let piece = PIECE_FRAMES * self.hop;
        let mut out = Vec::with_capacity(samples.div_ceil(piece));
        let mut traces: Vec<Vec<(usize, Tensor)>> = Vec::new();
        for start in (0..samples).step_by(piece) {
            let n = piece.min(samples - start);
            let mut t = trace.is_some().then(Vec::new);
            out.push(stack.step(&audio.narrow(2, start, n)?, t.as_mut())?);
            traces.extend(t);
        }
        if let Some(trace) = trace {
            trace.extend(cat_traces(traces)?);
        }
        Ok(Tensor::cat(&out, 2)?)
    }

    /// Audio `[b, 1, frames * hop]` of the decoder input `[b, output_dim, frames]`, on a fresh
    /// non-streaming state, in pieces.
    fn decode_latent(
        &self,
        latent: &Tensor,
        trace: Option<&mut Vec<(usize, Tensor)>>,
    ) -> Result<Tensor> {
        let frames = latent.dim(2)?;
        let mut stack = self.decoder.clone();
        stack.reset(false);
        let mut out = Vec::with_capacity(frames.div_ceil(PIECE_FRAMES));
        let mut traces = Vec::new();
        for start in (0..frames).step_by(PIECE_FRAMES) {
            let n = PIECE_FRAMES.min(frames - start);
            let mut t = trace.is_some().then(Vec::new);
            out.push(stack.step(&latent.narrow(2, start, n)?, t.as_mut())?);
            traces.extend(t);
        }
        if let Some(trace) = trace {
            trace.extend(cat_traces(traces)?);
        }
        Ok(Tensor::cat(&out, 2)?)
    }
}

/// Per-piece traces `[(index, output)]` joined along time.
fn cat_traces(pieces: Vec<Vec<(usize, Tensor)>>) -> Result<Vec<(usize, Tensor)>> {
    let Some(first) = pieces.first() else {
        return Ok(Vec::new());
    };
    (0..first.len())
        .map(|i| {
            let parts: Vec<&Tensor> = pieces.iter().map(|p| &p[i].1).collect();
            Ok((first[i].0, Tensor::cat(&parts, 2)?))
        })
        .collect()
}

/// `audio` `[b, c, t]` right-padded with zeros to a multiple of `hop`.
fn pad_to_frames(audio: &Tensor, hop: usize) -> Result<Tensor> {
    let t = audio.dim(2)?;
    let pad = t.next_multiple_of(hop) - t;
    Ok(if pad == 0 {
        audio.clone()
    } else {
        audio.pad_with_zeros(2, 0, pad)?
    })
}

/// What [`MossAudioTokenizer::trace`] returns: every stage of an encode and a decode.
#[derive(Debug, Clone)]
pub struct MossTrace {
    /// Each transformer stage's output `[b, channels, frames]`, by its `encoder.{i}` index.
    pub encoder: Vec<(usize, Tensor)>,
    /// The quantizer's input `[b, input_dim, frames]`.
    pub encoder_hidden_states: Tensor,
    /// After the quantizer's `input_proj`, `[b, rvq_dim, frames]`.
    pub rvq_input: Tensor,
    /// Codes `[b, n_q, frames]`.
    pub codes: Tensor,
    /// The decoder's input `[b, output_dim, frames]`, from the codes.
    pub decoder_input: Tensor,
    /// Each transformer stage's output, by its `decoder.{i}` index.
    pub decoder: Vec<(usize, Tensor)>,
    /// The audio `[b, 1, frames * 1920]`.
    pub decoded: Tensor,
}

/// A loaded MOSS-Audio-Tokenizer.
pub struct MossAudioTokenizer {
    info: CodecInfo,
    config: MossAudioTokenizerConfig,
    parts: Parts,
    /// Mask the last, partial frame as `encode` does (false: quantize it, as the ONNX export).
    mask_partial_frame: bool,
    /// Code frames per streaming chunk.
    stream_chunk_frames: usize,
}

impl MossAudioTokenizer {
    /// Build the model from a state dict in the published layout (or as
    /// [`inference_weights`] leaves it). Every tensor must be present with the right shape;
    /// the error names the one that is not. Returns the model and the keys it did not use.
    pub fn load(
        config: &MossAudioTokenizerConfig,
        state: StateDict,
        name: &str,
        device: &Device,
    ) -> Result<(Self, Vec<String>)> {
        let state = inference_weights(state)?;
        load_tracked(state, device, |vb| Self::new(config, vb, name))
    }

    /// Build the model from a `VarBuilder` over [`inference_weights`], read as f32.
    pub fn new(config: &MossAudioTokenizerConfig, vb: VarBuilder, name: &str) -> Result<Self> {
        config.validate(name)?;
        let device = vb.device().clone();
        let ((encoder, quantizer, decoder), fingerprint) = build_fingerprinted(vb, name, |vb| {
            Ok((
                Stack::new(config, true, vb.pp("encoder"))?,
                Quantizer::new(config, vb.pp("quantizer"))?,
                Stack::new(config, false, vb.pp("decoder"))?,
            ))
        })?;
        let frame_rate = config.frame_rate();
        let q = &config.quantizer_kwargs;
        let info = CodecInfo {
            name: name.to_string(),
            family: FAMILY.name.into(),
            sample_rate: config.sample_rate,
            channels: 1,
            frame_rate,
            codebook_sizes: vec![q.codebook_size as u32; q.num_quantizers],
            codebook_frame_rates: vec![frame_rate; q.num_quantizers],
            bandwidths_kbps: Vec::new(),
            fingerprint,
        };
        Ok(Self {
            info,
            config: config.clone(),
            parts: Parts {
                encoder,
                quantizer,
                decoder,
                device,
                hop: config.downsample_rate,
            },
            mask_partial_frame: true,
            stream_chunk_frames: 1,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &MossAudioTokenizerConfig {
        &self.config
    }

    /// The longest streaming chunk, in code frames: what fits every stage's window (the
    /// reference's `chunk_duration <= causal_transformer_context_duration`).
    pub fn max_stream_chunk_frames(&self) -> usize {
        let hop = self.config.downsample_rate;
        let per_code_frame = |encoder: bool| {
            let modules = if encoder {
                &self.config.encoder_kwargs
            } else {
                &self.config.decoder_kwargs
            };
            // Frames of each transformer stage per code frame.
            let mut ratio = if encoder { hop } else { 1 };
            let mut out = Vec::new();
            for m in modules {
                match m {
                    StageConfig::PatchedPretransform { patch_size } if encoder => {
                        ratio /= patch_size
                    }
                    StageConfig::PatchedPretransform { patch_size } => ratio *= patch_size,
                    StageConfig::Transformer(_) => out.push(ratio.max(1)),
                }
            }
            out
        };
        let limit = |encoder: bool| {
            self.config
                .stages(encoder)
                .iter()
                .zip(per_code_frame(encoder))
                .map(|(s, r)| s.transformer.context / r)
                .min()
                .unwrap_or(usize::MAX)
        };
        limit(true).min(limit(false))
    }

    /// Check audio `[batch, 1, samples > 0]` and bring it to the model's device as f32.
    fn prepare_audio(&self, audio: &Tensor) -> Result<Tensor> {
        check_mono_audio(audio, &self.info.name)?;
        Ok(audio.to_device(&self.parts.device)?.to_dtype(DType::F32)?)
    }

    /// Encode a batch of clips right-padded to one length, `lengths` their own sample counts
    /// (the reference's `batch_encode` with its padding mask): codes `[batch, n_q,
    /// ceil(samples / 1920)]`, each clip's frames from `floor(length / 1920)` on masked. The
    /// transformers are causal, so every clip's codes over its own frames equal its lone
    /// encode's.
    pub fn encode_padded(&self, audio: &Tensor, lengths: &[usize], n_q: usize) -> Result<Tensor> {
        let audio = self.prepare_audio(audio)?;
        let (b, _, samples) = audio.dims3()?;
        if lengths.len() != b || lengths.iter().any(|&l| l > samples) {
            return Err(Error::Unsupported(format!(
                "{} lengths for a batch of {b} clips of {samples} samples: one length per clip, \
                 none past the end",
                lengths.len()
            )));
        }
        let n_q = EncodeOptions::new(Some(n_q)).codebooks_for(&self.info, n_q)?;
        let latent = self.parts.encode_latent(&audio, None)?;
        let valid = self.valid_frames(lengths, latent.dim(2)?);
        self.parts.quantizer.encode(&latent, n_q, &valid)
    }

    /// Frames that count for clips of `lengths` samples in `frames` padded frames.
    fn valid_frames(&self, lengths: &[usize], frames: usize) -> Vec<usize> {
        lengths
            .iter()
            .map(|&l| {
                if self.mask_partial_frame {
                    l / self.config.downsample_rate
                } else {
                    frames
                }
            })
            .collect()
    }

    /// Every stage of an encode and a decode of `audio` `[b, 1, samples]` with `n_q`
    /// codebooks, to compare with a reference's trace.
    pub fn trace(&self, audio: &Tensor, n_q: usize) -> Result<MossTrace> {
        let audio = self.prepare_audio(audio)?;
        let (b, _, samples) = audio.dims3()?;
        let mut encoder = Vec::new();
        let latent = self.parts.encode_latent(&audio, Some(&mut encoder))?;
        let valid = self.valid_frames(&vec![samples; b], latent.dim(2)?);
        let codes = self.parts.quantizer.encode(&latent, n_q, &valid)?;
        let decoder_input = self.parts.quantizer.decode(&codes)?;
        let mut decoder = Vec::new();
        let decoded = self
            .parts
            .decode_latent(&decoder_input, Some(&mut decoder))?;
        Ok(MossTrace {
            encoder,
            rvq_input: self.parts.quantizer.project_in(&latent)?,
            encoder_hidden_states: latent,
            codes,
            decoder_input,
            decoder,
            decoded,
        })
    }

    fn check_codes(&self, codes: &Tensor) -> Result<Tensor> {
        let q = &self.config.quantizer_kwargs;
        check_stacked_codes(codes, q.num_quantizers, q.codebook_size, &self.info.name)?;
        Ok(codes.to_device(&self.parts.device)?.to_dtype(DType::U32)?)
    }
}

impl Codec for MossAudioTokenizer {
    /// Approximate causal windows with one attention window (10 s) of context on the left: its
    /// streams are the reference's streaming mode, whose codes differ from one pass's by
    /// design, and its stacked sliding-window transformers reach back further than any
    /// affordable context. On 60 s of real audio 96.7 % of codes equal one pass's (the deep
    /// stages differ first) and the audio is 38.5 dB from it (`tests/long_form.rs`).
    fn long_form(&self) -> LongForm {
        let c = &self.config;
        let context = (c.causal_transformer_context_duration * c.frame_rate()).ceil() as usize;
        LongForm::Windowed(Windowing::approximate(c.downsample_rate, context, context).causal())
    }

    fn info(&self) -> &CodecInfo {
        &self.info
    }

    fn device(&self) -> &Device {
        &self.parts.device
    }

    /// Codes `[batch, 32, ceil(samples / 1920)]`, the last frame masked when partial.
    fn encode(&self, audio: &Tensor) -> Result<Tensor> {
        self.encode_with(audio, &EncodeOptions::default())?
            .stacked()
    }

    /// Any prefix of the 32 codebooks: the first `n` rows of the 32-codebook codes.
    fn encode_with(&self, audio: &Tensor, options: &EncodeOptions) -> Result<CodeStreams> {
        let books = self.config.quantizer_kwargs.num_quantizers;
        let n_q = options.codebooks_for(&self.info, books)?;
        let audio = self.prepare_audio(audio)?;
        let (b, _, samples) = audio.dims3()?;
        CodeStreams::from_stacked(&self.encode_padded(&audio, &vec![samples; b], n_q)?)
    }

    /// Audio `[batch, 1, frames * 1920]` of codes `[batch, 1..=32, frames]` (a prefix of the
    /// codebooks decodes coarser), not clamped.
    fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        let codes = self.check_codes(codes)?;
        let latent = self.parts.quantizer.decode(&codes)?;
        self.parts.decode_latent(&latent, None)
    }

    fn options(&self) -> Vec<ModelOption> {
        vec![
            ModelOption::new(
                "mask_partial_frame",
                "true: the last, partial frame's codes are those of a masked (zero) residual, \
                 as the reference's encode gives them; false: it is quantized like the others, \
                 as the reference's ONNX export does",
                self.mask_partial_frame,
            ),
            ModelOption::new(
                "stream_chunk_frames",
                "code frames per streaming chunk (80 ms each; the reference's chunk_duration), \
                 1 up to the attention window",
                self.stream_chunk_frames,
            ),
        ]
    }

    fn set_option(&mut self, name: &str, value: &str) -> Result<()> {
        match name {
            "mask_partial_frame" => {
                self.mask_partial_frame = value
                    .parse()
                    .map_err(|_| bad_option_value(name, value, "true or false"))?;
            }
            "stream_chunk_frames" => {
                let max = self.max_stream_chunk_frames();
                self.stream_chunk_frames = value
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n >= 1 && n <= max)
                    .ok_or_else(|| {
                        bad_option_value(name, value, "a whole number of frames within the window")
                    })?;
            }
            _ => return Err(unknown_option(&self.info, &self.options(), name)),
        }
        Ok(())
    }

    fn supports_streaming(&self) -> bool {
        true
    }

    fn streaming_encoder(
        &self,
        batch: usize,
        options: &EncodeOptions,
    ) -> Result<Box<dyn crate::streaming::StreamingEncoder>> {
        let books = self.config.quantizer_kwargs.num_quantizers;
        let n_q = options.codebooks_for(&self.info, books)?;
        Ok(Box::new(stream::ChunkEncoder::new(
            self.parts.clone(),
            self.info.name.clone(),
            batch,
            n_q,
            self.stream_chunk_frames,
            self.mask_partial_frame,
        )?))
    }

    fn streaming_decoder(
        &self,
        batch: usize,
    ) -> Result<Box<dyn crate::streaming::StreamingDecoder>> {
        let q = &self.config.quantizer_kwargs;
        Ok(Box::new(stream::ChunkDecoder::new(
            self.parts.clone(),
            self.info.name.clone(),
            batch,
            (q.num_quantizers, q.codebook_size),
            self.stream_chunk_frames,
        )?))
    }
}

/// The MOSS-Audio-Tokenizer family's entry in the registry.
pub static FAMILY: CheckpointFamily<MossAudioTokenizerConfig, MossAudioTokenizer> =
    CheckpointFamily {
        name: "moss-audio-tokenizer",
        weights_score: |weights| Score::distinctive_if(looks_like_moss_audio_tokenizer(weights)),
        config_score: |text| Score::distinctive_if(is_reference_config(text)),
        inference_weights,
        from_reference: MossAudioTokenizerConfig::from_reference_json,
        infer: infer_config,
        card_facts: MossAudioTokenizerConfig::card_facts,
        load: MossAudioTokenizer::load,
        onnx: None,
    };

//! S3Tokenizer v1, v2 and v3 (FunAudioLLM; CosyVoice 1 / 2 / 3, Chatterbox): the supervised
//! semantic speech tokenizer, 16 kHz in, one stream of codes out (v2 / v3: 6561 at 25 tokens/s;
//! v1: 4096 at 50 or 25 tokens/s). Encode only: its decoder is CosyVoice's flow-matching model,
//! not a codec's.
//!
//! This follows the `s3tokenizer` package 0.3.0 (`S3TokenizerV2`, `log_mel_spectrogram`,
//! `padding`, `quantize`; v1 as `S3Tokenizer`, below):
//!
//! - front end ([`LogMel`]): 128-band Whisper log-mel, 400-point centred STFT every 160
//!   samples, the last frame dropped, floored 8 below the utterance's maximum;
//! - two convolutions (k3, stride 2, padding 1) with exact GELU: 100 -> 25 frames/s;
//! - blocks: `x += out(attn(LN(x))) + fsmn(v)`, `x += mlp(LN(x))`; attention without a key
//!   bias, rotary embeddings (rotate-half, heads of 64, positions from 0) on queries and keys,
//!   both scaled by `64^-0.25`; the FSMN memory is a depthwise convolution (k31, no bias) over
//!   the values, plus the values;
//! - FSQ: `tanh(project_down(x)) * 0.999`, rounded half to even, `+ 1`: 8 digits in {0, 1, 2},
//!   code = `sum d_i 3^i`.
//!
//! v1 is Whisper's encoder: the first convolution has stride 1 (50 Hz) or 2 (the 25 Hz model),
//! the checkpoint's sinusoid table is added after the convolutions, blocks are
//! `x += out(attn(LN(x)))`, `x += mlp(LN(x))` (no FSMN, no rotary), and the code is the
//! nearest row of a 4096-entry codebook to the L2-normalised output (`argmax -(|x|^2 - 2 x.e +
//! |e|^2)`).
//!
//! Inputs over 30 s (3000 mel frames) take the reference's long path: windows of 3000 frames
//! every 2600 (the last one zero-padded, its padding masked), merged by keeping tokens
//! `[0, n - m)` of the first window, `[m, n - m)` of the middle ones and `[m, n)` of the
//! last, `m` being 2 s of tokens (50 at 25 Hz, 100 at 50 Hz).
//!
//! # Weights
//!
//! The published weights are ONNX graphs only (`speech_tokenizer_v1.onnx`,
//! `speech_tokenizer_v2.onnx`, `speech_tokenizer_v3.onnx`), read directly ([`onnx`]: the keys
//! the reference's `onnx2torch` / `onnx2torch_v3` derive from the graph's node names). The
//! state dict they give is also read from a `.pt` or safetensors file (`encoder.conv{1,2}.*`,
//! `encoder.blocks.N.{attn,attn_ln,mlp,mlp_ln}.*`, `quantizer._codebook.project_down.*` or
//! v1's `encoder.positional_embedding` and `quantizer._codebook.embed`).

mod config;
pub mod onnx;
mod weights;

pub use config::*;
pub use weights::*;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::VarBuilder;

use crate::nn::linear::Linear;

use super::{CheckpointFamily, Score};
use crate::codec::{CodeStreams, Codec, CodecInfo};
use crate::dsp::mel::LogMel;
use crate::error::AudioProblem;
use crate::nn::conv::DepthwiseConv1d;
use crate::nn::conv1d::{Conv1d, Conv1dConfig};
use crate::nn::norm::{layer_norm, LayerNorm};
use crate::weights::{build_fingerprinted, load_tracked, StateDict};
use crate::{Error, Result};

/// The attention bias of a padded key (`mask_to_bias`).
const MASKED: f32 = -1.0e10;
/// FSQ's scale before rounding (the reference writes float32 0.999 as 0.9990000128746033).
const FSQ_SCALE: f32 = 0.999;

/// One encoder block.
#[derive(Debug, Clone)]
struct Block {
    attn_ln: LayerNorm,
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    /// v2's FSMN memory; v1 has none.
    fsmn: Option<DepthwiseConv1d>,
    /// v2 rotates queries and keys; v1's positions were added to the input.
    rotary: bool,
    mlp_ln: LayerNorm,
    mlp_in: Linear,
    mlp_out: Linear,
    heads: usize,
}

/// What a block needs to know of the padding: the valid tokens of a window.
struct Padding {
    /// `[1, 1, 1, tokens]` attention bias: 0, or [`MASKED`] on padded keys.
    bias: Option<Tensor>,
    /// `[1, tokens, 1]`: 1 on valid tokens, 0 on padded ones.
    rows: Option<Tensor>,
}

impl Padding {
    fn mask_rows(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.rows {
            Some(m) => x.broadcast_mul(m),
            None => Ok(x.clone()),
        }
    }
}

impl Block {
    fn new(cfg: &S3TokenizerConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let d = cfg.d_model;
        let attn = vb.pp("attn");
        Ok(Self {
            attn_ln: layer_norm(d, cfg.layer_norm_eps, vb.pp("attn_ln"))?,
            query: crate::nn::linear::linear(d, d, attn.pp("query"))?,
            key: crate::nn::linear::linear_no_bias(d, d, attn.pp("key"))?,
            value: crate::nn::linear::linear(d, d, attn.pp("value"))?,
            out: crate::nn::linear::linear(d, d, attn.pp("out"))?,
            fsmn: match cfg.variant {
                S3Variant::V2 => Some(DepthwiseConv1d::without_bias(
                    d,
                    cfg.fsmn_kernel,
                    (cfg.fsmn_kernel - 1) / 2,
                    attn.pp("fsmn_block"),
                )?),
                S3Variant::V1 => None,
            },
            rotary: cfg.variant == S3Variant::V2,
            mlp_ln: layer_norm(d, cfg.layer_norm_eps, vb.pp("mlp_ln"))?,
            mlp_in: crate::nn::linear::linear(d, 4 * d, vb.pp("mlp").pp(0))?,
            mlp_out: crate::nn::linear::linear(4 * d, d, vb.pp("mlp").pp(2))?,
            heads: cfg.num_heads,
        })
    }

    /// `x` `[1, tokens, d]`; `cos`/`sin` `[tokens, 64]` (unused by v1's blocks).
    fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        padding: &Padding,
    ) -> candle_core::Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let h = self.attn_ln.forward(x)?;
        let q = self.query.forward(&h)?;
        let k = self.key.forward(&h)?;
        let v = self.value.forward(&h)?;
        // FSMN memory over the values (before the heads and the rotary embedding).
        let memory = match &self.fsmn {
            Some(fsmn) => {
                let v_masked = padding.mask_rows(&v)?;
                let memory = fsmn
                    .forward(&v_masked.transpose(1, 2)?.contiguous()?)?
                    .transpose(1, 2)?;
                Some(padding.mask_rows(&(memory + &v_masked)?)?)
            }
            None => None,
        };

        let heads = |x: &Tensor| x.reshape((b, t, self.heads, HEAD_DIM));
        let scale = (HEAD_DIM as f64).powf(-0.25);
        let positioned = |x: &Tensor| -> candle_core::Result<Tensor> {
            let x = heads(x)?;
            let x = if self.rotary {
                rotate(&x, cos, sin)?
            } else {
                x
            };
            (x * scale)?.transpose(1, 2)?.contiguous()
        };
        let q = positioned(&q)?;
        let k = positioned(&k)?;
        let v = heads(&v)?.transpose(1, 2)?.contiguous()?;
        let mut scores = q.matmul(&k.t()?.contiguous()?)?; // [b, heads, t, t]
        if let Some(bias) = &padding.bias {
            scores = scores.broadcast_add(bias)?;
        }
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let attended = weights.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?;
        let attended = self.out.forward(&attended)?;
        let x = match memory {
            Some(memory) => (x + (attended + memory)?)?,
            None => (x + attended)?,
        };
        let m = self
            .mlp_out
            .forward(&self.mlp_in.forward(&self.mlp_ln.forward(&x)?)?.gelu_erf()?)?;
        x + m
    }
}

/// Rotary embedding in the rotate-half form on `x` `[b, t, heads, 64]`: dims `i` and `i + 32`
/// share angle `i`.
fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    let half = HEAD_DIM / 2;
    let rotated = Tensor::cat(
        &[
            &x.narrow(D::Minus1, half, half)?.neg()?,
            &x.narrow(D::Minus1, 0, half)?,
        ],
        D::Minus1,
    )?;
    let (t, _) = cos.dims2()?;
    let shape = (1, t, 1, HEAD_DIM);
    x.broadcast_mul(&cos.reshape(shape)?)?
        .add(&rotated.broadcast_mul(&sin.reshape(shape)?)?)
}

/// The reference's rotary table, `[2048, 64]` cos and sin, computed in float32 as torch does:
/// `freqs = 1 / 10000^(2i / 64)`, angle `t * freqs[i]`, repeated for the two halves.
fn rotary_table(device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let half = HEAD_DIM / 2;
    let freqs: Vec<f32> = (0..half)
        .map(|i| 1.0 / 10000f32.powf((2 * i) as f32 / HEAD_DIM as f32))
        .collect();
    let mut cos = Vec::with_capacity(ROTARY_POSITIONS * HEAD_DIM);
    let mut sin = Vec::with_capacity(ROTARY_POSITIONS * HEAD_DIM);
    for t in 0..ROTARY_POSITIONS {
        let row: Vec<f32> = freqs.iter().map(|&f| t as f32 * f).collect();
        for _ in 0..2 {
            cos.extend(row.iter().map(|&a| (a as f64).cos() as f32));
            sin.extend(row.iter().map(|&a| (a as f64).sin() as f32));
        }
    }
    Ok((
        Tensor::from_vec(cos, (ROTARY_POSITIONS, HEAD_DIM), device)?,
        Tensor::from_vec(sin, (ROTARY_POSITIONS, HEAD_DIM), device)?,
    ))
}

/// How the encoder output becomes a code.
#[derive(Debug, Clone)]
enum Quantizer {
    /// v2: `project_down` to 8 values, FSQ of 3 levels each.
    Fsq(Linear),
    /// v1: the nearest codebook row to the L2-normalised output.
    Vq {
        /// The codebook transposed, `[d, codes]`.
        embed_t: Tensor,
        /// `|e|^2` of each row, `[1, codes]`.
        norms: Tensor,
    },
}

/// A loaded S3Tokenizer v1 / v2 / v3 (encode only).
#[derive(Clone)]
pub struct S3Tokenizer {
    info: CodecInfo,
    config: S3TokenizerConfig,
    device: Device,
    frontend: LogMel,
    conv1: Conv1d,
    conv2: Conv1d,
    blocks: Vec<Block>,
    /// v1's absolute position table `[audio_ctx, d]`.
    positions: Option<Tensor>,
    quantizer: Quantizer,
    cos: Tensor,
    sin: Tensor,
}

impl S3Tokenizer {
    /// Build the model from a state dict in the reference's layout (the `.pt` that
    /// `onnx2torch` writes, or safetensors of it). Every tensor must be present with the right
    /// shape; the error names the one that is not. Returns the model and the keys it did not
    /// use (should be empty).
    pub fn load(
        config: &S3TokenizerConfig,
        state: StateDict,
        name: &str,
        device: &Device,
    ) -> Result<(Self, Vec<String>)> {
        let state = inference_weights(state)?;
        load_tracked(state, device, |vb| Self::new(config, vb, name))
    }

    /// Build the model from a `VarBuilder` over the reference's layout.
    pub fn new(config: &S3TokenizerConfig, vb: VarBuilder, name: &str) -> Result<Self> {
        config.validate(name)?;
        let device = vb.device().clone();
        let d = config.d_model;
        let ((conv1, conv2, blocks, positions, quantizer), fingerprint) =
            build_fingerprinted(vb, name, |vb| {
                let enc = vb.pp("encoder");
                let conv = |in_c: usize, stride: usize, vb: VarBuilder| {
                    let cfg = Conv1dConfig {
                        padding: 1,
                        stride,
                        ..Default::default()
                    };
                    Conv1d::load(in_c, d, 3, cfg, vb)
                };
                let conv1 = conv(config.n_mels, config.conv1_stride, enc.pp("conv1"))?;
                let conv2 = conv(d, 2, enc.pp("conv2"))?;
                let blocks = (0..config.num_layers)
                    .map(|i| Block::new(config, enc.pp("blocks").pp(i)))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                let codebook = vb.pp("quantizer").pp("_codebook");
                let (positions, quantizer) = match config.variant {
                    S3Variant::V2 => (
                        None,
                        Quantizer::Fsq(crate::nn::linear::linear(
                            d,
                            8,
                            codebook.pp("project_down"),
                        )?),
                    ),
                    S3Variant::V1 => {
                        let positions = enc.get((config.audio_ctx, d), "positional_embedding")?;
                        let embed = codebook.get((config.codebook_size as usize, d), "embed")?;
                        let norms = embed.sqr()?.sum_keepdim(1)?.t()?.contiguous()?;
                        let embed_t = embed.t()?.contiguous()?;
                        (Some(positions), Quantizer::Vq { embed_t, norms })
                    }
                };
                Ok((conv1, conv2, blocks, positions, quantizer))
            })?;
        let (cos, sin) = rotary_table(&device)?;
        let frame_rate = config.frame_rate();
        let info = CodecInfo {
            name: name.to_string(),
            family: FAMILY.name.into(),
            sample_rate: config.sample_rate,
            channels: 1,
            frame_rate,
            codebook_sizes: vec![config.codebook_size],
            codebook_frame_rates: vec![frame_rate],
            bandwidths_kbps: Vec::new(),
            fingerprint,
        };
        Ok(Self {
            info,
            frontend: LogMel::new(
                config.sample_rate,
                config.n_fft,
                config.hop_length,
                config.n_mels,
            ),
            config: config.clone(),
            device,
            conv1,
            conv2,
            blocks,
            positions,
            quantizer,
            cos,
            sin,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &S3TokenizerConfig {
        &self.config
    }

    /// The front end of one utterance (16 kHz samples): `[n_mels, frames]`.
    pub fn log_mel(&self, samples: &[f32]) -> Result<Tensor> {
        let (mel, frames) = self.frontend.log_mel(samples);
        Ok(Tensor::from_vec(
            mel,
            (self.config.n_mels, frames),
            &self.device,
        )?)
    }

    /// The encoder over one window of log-mel frames `[n_mels, frames]` of which the first
    /// `valid` are real (the rest padding, masked as the reference masks it): the encoder output
    /// `[tokens, d_model]` and how many of its tokens are valid.
    pub fn encode_window(&self, mel: &Tensor, valid: usize) -> Result<(Tensor, usize)> {
        let (_, frames) = mel.dims2()?;
        let valid = valid.min(frames);
        let c = &self.config;
        let keep = |x: &Tensor, n: usize| -> candle_core::Result<Tensor> {
            let len = x.dim(D::Minus1)?;
            if n >= len {
                return Ok(x.clone());
            }
            x.narrow(D::Minus1, 0, n)?
                .pad_with_zeros(D::Minus1, 0, len - n)
        };
        let x = keep(&mel.unsqueeze(0)?, valid)?;
        let x = self.conv1.forward(&x)?.gelu_erf()?;
        let x = keep(&x, c.conv1_frames(valid))?;
        let x = self.conv2.forward(&x)?.gelu_erf()?;
        let mut x = x.transpose(1, 2)?.contiguous()?; // [1, tokens, d]
        let tokens = x.dim(1)?;
        let valid_tokens = c.tokens_for_mel_frames(valid);
        if tokens > c.max_positions() {
            return Err(Error::InvalidAudio(AudioProblem::Shape {
                model: self.info.name.clone(),
                expected: format!(
                    "windows of at most {} mel frames",
                    c.hop_samples() / c.hop_length * c.max_positions()
                ),
                got: vec![frames],
            }));
        }
        if let Some(positions) = &self.positions {
            x = x.broadcast_add(&positions.narrow(0, 0, tokens)?)?;
        }
        let padding = if valid_tokens < tokens {
            let mask: Vec<f32> = (0..tokens)
                .map(|j| f32::from(u8::from(j < valid_tokens)))
                .collect();
            let bias: Vec<f32> = mask
                .iter()
                .map(|&m| if m > 0.0 { 0.0 } else { MASKED })
                .collect();
            Padding {
                bias: Some(Tensor::from_vec(bias, (1, 1, 1, tokens), &self.device)?),
                rows: Some(Tensor::from_vec(mask, (1, tokens, 1), &self.device)?),
            }
        } else {
            Padding {
                bias: None,
                rows: None,
            }
        };
        let cos = self.cos.narrow(0, 0, tokens)?;
        let sin = self.sin.narrow(0, 0, tokens)?;
        for block in &self.blocks {
            x = block.forward(&x, &cos, &sin, &padding)?;
        }
        Ok((x.squeeze(0)?, valid_tokens))
    }

    /// Codes of encoder outputs `[tokens, d_model]`, and what they were chosen from: v2's
    /// values before `tanh` `[tokens, 8]`, or v1's scores `-(|x|^2 - 2 x.e + |e|^2)` of the
    /// L2-normalised output against each codebook row `[tokens, codes]`.
    pub fn quantize(&self, hidden: &Tensor) -> Result<(Vec<u32>, Tensor)> {
        let project_down = match &self.quantizer {
            Quantizer::Fsq(project_down) => project_down,
            Quantizer::Vq { embed_t, norms } => {
                // F.normalize: x / max(|x|, 1e-12); then the reference's distance, term by term.
                let norm = hidden.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
                let x = hidden.broadcast_div(&norm)?;
                let xx = x.sqr()?.sum_keepdim(1)?;
                let xe = (x.matmul(embed_t)? * 2.0)?;
                let score = xx.broadcast_sub(&xe)?.broadcast_add(norms)?.neg()?;
                let codes = score.argmax(1)?.to_dtype(DType::U32)?.to_vec1::<u32>()?;
                return Ok((codes, score));
            }
        };
        let pre = project_down.forward(hidden)?;
        let t = pre.tanh()?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let codes = t
            .iter()
            .map(|row| {
                row.iter().rev().fold(0u32, |code, &v| {
                    // round half to even (torch.round), + 1: a digit in {0, 1, 2}.
                    let digit = ((v * FSQ_SCALE).round_ties_even() + 1.0) as u32;
                    code * 3 + digit.min(2)
                })
            })
            .collect();
        Ok((codes, pre))
    }

    /// The codes of one utterance's samples, through the long path beyond one window.
    fn encode_samples(&self, samples: &[f32]) -> Result<Vec<u32>> {
        let mel = self.log_mel(samples)?;
        let frames = mel.dim(1)?;
        if frames == 0 {
            return Err(Error::InvalidAudio(AudioProblem::TooShort {
                model: self.info.name.clone(),
            }));
        }
        let c = &self.config;
        if frames <= c.window_frames {
            let (hidden, _) = self.encode_window(&mel, frames)?;
            return Ok(self.quantize(&hidden)?.0);
        }
        // Windows of `window_frames` every `window_hop_frames`, each zero-padded to a full
        // window; the overlaps split half and half.
        let starts: Vec<usize> = (0..frames).step_by(c.window_hop_frames).collect();
        let margin = c.merge_margin_tokens();
        let mut codes = Vec::new();
        for (i, &start) in starts.iter().enumerate() {
            let len = c.window_frames.min(frames - start);
            let window = mel
                .narrow(1, start, len)?
                .pad_with_zeros(1, 0, c.window_frames - len)?;
            let (hidden, n) = self.encode_window(&window, len)?;
            let (window_codes, _) = self.quantize(&hidden.narrow(0, 0, n)?)?;
            let from = if i == 0 { 0 } else { margin };
            let to = if i + 1 == starts.len() {
                n
            } else {
                n.saturating_sub(margin)
            };
            if from < to {
                codes.extend_from_slice(&window_codes[from..to]);
            }
        }
        Ok(codes)
    }

    /// Whether this is the v1 structure (VQ codebook) or v2's (FSQ).
    pub fn variant(&self) -> S3Variant {
        self.config.variant
    }

    /// Why decoding fails.
    fn encode_only(&self) -> Error {
        Error::Unsupported(format!(
            "model {} is encode only: S3Tokenizer's tokens are decoded by CosyVoice's \
             flow-matching model and vocoder, which are not part of a codec library",
            self.info.name
        ))
    }
}

impl Codec for S3Tokenizer {
    fn info(&self) -> &CodecInfo {
        &self.info
    }

    fn device(&self) -> &Device {
        &self.device
    }

    /// Codes `[batch, 1, tokens]`, each item encoded on its own (the log-mel floor is per
    /// utterance, as the reference computes it).
    fn encode(&self, audio: &Tensor) -> Result<Tensor> {
        crate::codec::encode_each_item(audio, &self.info.name, |samples| {
            let codes = self.encode_samples(samples)?;
            let n = codes.len();
            Ok(Tensor::from_vec(codes, (1, 1, n), &self.device)?)
        })
    }

    fn decode(&self, _codes: &Tensor) -> Result<Tensor> {
        Err(self.encode_only())
    }

    fn decode_streams(&self, _codes: &CodeStreams) -> Result<Tensor> {
        Err(self.encode_only())
    }
}

/// The S3Tokenizer family's entry in the registry.
pub static FAMILY: CheckpointFamily<S3TokenizerConfig, S3Tokenizer> = CheckpointFamily {
    name: "s3tokenizer",
    weights_score: |weights| Score::distinctive_if(looks_like_s3tokenizer(weights)),
    config_score: |text| Score::distinctive_if(is_reference_config(text)),
    inference_weights,
    from_reference: S3TokenizerConfig::from_reference_json,
    infer: infer_config,
    card_facts: S3TokenizerConfig::card_facts,
    load: S3Tokenizer::load,
    onnx: Some(onnx::from_onnx),
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelCard;

    #[test]
    fn published_configs() {
        let v2 = S3TokenizerConfig::s3tokenizer_v2();
        v2.validate("v2").unwrap();
        assert_eq!(v2.frame_rate(), 25.0);
        assert_eq!(v2.merge_margin_tokens(), 50);
        assert_eq!(v2.tokens_for_mel_frames(300), 75);
        assert_eq!(v2.tokens_for_mel_frames(250), 63);
        assert_eq!(v2.tokens_for_mel_frames(703), 176);
        assert_eq!(v2.tokens_for_samples(528_492), 826); // the fixture's long case
        assert_eq!(v2.tokens_for_samples(60 * 16000), 1500);
        S3TokenizerConfig::s3tokenizer_v3().validate("v3").unwrap();
        // v1: 50 Hz keeps conv1's frames, merges with 100-token margins (2 s).
        let v1 = S3TokenizerConfig::s3tokenizer_v1_50hz();
        v1.validate("v1").unwrap();
        assert_eq!(v1.frame_rate(), 50.0);
        assert_eq!(v1.merge_margin_tokens(), 100);
        assert_eq!(v1.tokens_for_mel_frames(300), 150);
        assert_eq!(v1.tokens_for_mel_frames(3000), 1500); // a window fills the 1500 positions
        assert_eq!(v1.tokens_for_samples(528_492), 1652); // the generated fixture's long case
        let v1_25 = S3TokenizerConfig::s3tokenizer_v1_25hz();
        assert_eq!(v1_25.frame_rate(), 25.0);
        assert_eq!(v1_25.merge_margin_tokens(), 50);
        assert_eq!(v1_25.tokens_for_samples(528_492), 826);
        // A v1 window longer than its position table, a v2 with v1's codebook: refused.
        let long_window = S3TokenizerConfig {
            window_frames: 3002,
            ..v1.clone()
        };
        assert!(long_window.validate("v1").is_err());
        let mixed = S3TokenizerConfig {
            codebook_size: 4096,
            ..v2.clone()
        };
        assert!(mixed.validate("v2").is_err());
        for (card, cfg) in [
            ("s3tokenizer-v2", S3TokenizerConfig::s3tokenizer_v2()),
            ("s3tokenizer-v3", S3TokenizerConfig::s3tokenizer_v3()),
            (
                "s3tokenizer-v1-50hz",
                S3TokenizerConfig::s3tokenizer_v1_50hz(),
            ),
            (
                "s3tokenizer-v1-25hz",
                S3TokenizerConfig::s3tokenizer_v1_25hz(),
            ),
        ] {
            let card = ModelCard::find(card).unwrap();
            let from_card: S3TokenizerConfig = card.architecture.clone().try_into().unwrap();
            assert_eq!(from_card, cfg);
        }
    }

    #[test]
    fn reference_config_fields() {
        let text = r#"{"name": "speech_tokenizer_v2_25hz", "class": "S3TokenizerV2",
            "config": {"n_mels": 128, "n_audio_ctx": 1500, "n_audio_state": 1280,
            "n_audio_head": 20, "n_audio_layer": 6, "n_codebook_size": 6561}}"#;
        assert!(is_reference_config(text));
        assert_eq!(
            S3TokenizerConfig::from_reference_json(text, "c").unwrap(),
            S3TokenizerConfig::s3tokenizer_v2()
        );
        // v1: the stride from the name, as the reference takes it.
        let v1 = text.replace("v2_25hz", "v1").replace("6561", "4096");
        assert_eq!(
            S3TokenizerConfig::from_reference_json(&v1, "c").unwrap(),
            S3TokenizerConfig::s3tokenizer_v1_50hz()
        );
        let v1_25 = text.replace("v2_25hz", "v1_25hz").replace("6561", "4096");
        assert_eq!(
            S3TokenizerConfig::from_reference_json(&v1_25, "c").unwrap(),
            S3TokenizerConfig::s3tokenizer_v1_25hz()
        );
        // A v1 codebook without a name that says which v1.
        let unnamed = text
            .replace("speech_tokenizer_v2_25hz", "")
            .replace("6561", "4096");
        let err = S3TokenizerConfig::from_reference_json(&unnamed, "c")
            .unwrap_err()
            .to_string();
        assert!(err.contains("speech_tokenizer_v1_25hz"), "{err}");
        let odd = text.replace("\"n_audio_head\": 20", "\"n_audio_head\": 16");
        assert!(S3TokenizerConfig::from_reference_json(&odd, "c").is_err());
        assert!(!is_reference_config(r#"{"n_q": 8, "strides": [8]}"#));
    }
}

//! X-Codec2 (Ye et al. 2025) and NeuCodec (Neuphonic 2025).
//!
//! One FSQ codebook of 65 536 codes at 50 frames/s. Decoding: FSQ index → digits → codes →
//! `project_out` (the quantizer's `get_output_from_indices`), `fc_post_a`, a Vocos backbone with
//! transformer blocks, an iSTFT head with "same" padding. X-Codec2 decodes to 16 kHz (hop 320),
//! NeuCodec to 24 kHz (hop 480) from the same 50 Hz codes.
//!
//! Encoding ([`encoder`]): w2v-BERT 2.0 semantic features beside BigCodec's acoustic encoder,
//! fused by `fc_prior` into the FSQ's input ([`XCodec2::quantize_latent`]), FSQ with its bound
//! applied twice. X-Codec2's checkpoint embeds w2v-BERT; a checkpoint without the encoder's
//! weights (NeuCodec's loads w2v-BERT from another repository) decodes only, and
//! [`Codec::encode`] says so.
//!
//! Checkpoint keys (the reference `XCodec2Model` / `NeuCodec` state dict; X-Codec2's Lightning
//! checkpoint has the same names under `state_dict`): `generator.quantizer.project_{in,out}.*`,
//! `generator.backbone.*`, `generator.head.*`, `fc_post_a.*`; the encoder's `semantic_model.*`
//! (w2v-BERT layers 0..15 read, 16..23 dropped), `SemanticEncoder_module.*`, `CodecEnc.*`
//! (`weight_g`/`weight_v` folded; SnakeBeta's `beta` also spelt `bias`), `fc_prior.*`.
//! Training-only parts (`fc_post_s`, `SemanticDecoder`, ...) are dropped.

pub mod encoder;

pub use encoder::{EncoderStages, Framing, XCodec2Encoder, XCodec2EncoderConfig, SEMANTIC_LAYER};

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

use crate::long_form::{LongForm, Windowing};
use crate::nn::linear::Linear;
use serde::{Deserialize, Serialize};

use super::{CardFacts, CheckpointFamily, Score};
use crate::codec::{Codec, CodecInfo};
use crate::dsp::IstftPadding;
use crate::nn::vocos::{IstftHead, TransformerVocosBackbone, TransformerVocosConfig};
use crate::quant::Fsq;
use crate::weights::{build_fingerprinted, load_tracked, StateDict};
use crate::{Error, Result};

const QUANTIZER: &str = "generator.quantizer";
const BACKBONE: &str = "generator.backbone";
const HEAD: &str = "generator.head";
const POST_A: &str = "fc_post_a";

/// Architecture of an X-Codec2-family decoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XCodec2Config {
    /// Rate of the decoded audio, in Hz.
    pub sample_rate: u32,
    /// Rate of the audio the encoder takes, in Hz: 16 kHz for both published models.
    pub encoder_sample_rate: u32,
    /// Output samples per code frame.
    pub hop_length: usize,
    /// iSTFT size; the reference uses `4 * hop_length`.
    pub n_fft: usize,
    /// Width of the decoder's backbone.
    pub hidden_dim: usize,
    /// Transformer blocks of the backbone.
    pub depth: usize,
    /// Attention heads.
    pub heads: usize,
    /// Width of the rotary position embedding (the reference's `pos_meb_dim`).
    pub pos_meb_dim: usize,
    /// Size of the latent the FSQ projects from and to.
    pub vq_dim: usize,
    /// FSQ levels per dimension (the codebook is their product).
    pub fsq_levels: Vec<usize>,
    /// The encoder, for models that encode (a checkpoint without its weights decodes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<XCodec2EncoderConfig>,
}

impl XCodec2Config {
    fn published(sample_rate: u32, hop_length: usize) -> Self {
        Self {
            sample_rate,
            encoder_sample_rate: 16_000,
            hop_length,
            n_fft: 4 * hop_length,
            hidden_dim: 1024,
            depth: 12,
            heads: 16,
            pos_meb_dim: 64,
            vq_dim: 2048,
            fsq_levels: vec![4; 8],
            encoder: None,
        }
    }

    /// X-Codec2 (`HKUSTAudio/xcodec2`): 16 kHz out, hop 320, with its encoder.
    pub fn xcodec2() -> Self {
        Self {
            encoder: Some(XCodec2EncoderConfig::xcodec2()),
            ..Self::published(16_000, 320)
        }
    }

    /// NeuCodec (`neuphonic/neucodec`): the same decoder upsampling to 24 kHz, hop 480.
    /// Its encoder is X-Codec2's with NeuCodec's framing; its checkpoint holds all of it but
    /// w2v-BERT 2.0, which the reference loads from facebook/w2v-bert-2.0 (give both files'
    /// tensors together, w2v-BERT's under `semantic_model.`, to encode).
    pub fn neucodec() -> Self {
        Self {
            encoder: Some(XCodec2EncoderConfig {
                framing: Framing::Neucodec,
                ..XCodec2EncoderConfig::xcodec2()
            }),
            ..Self::published(24_000, 480)
        }
    }

    /// Code frames per second.
    pub fn frame_rate(&self) -> f64 {
        self.sample_rate as f64 / self.hop_length as f64
    }

    /// Entries of the (single) codebook: the product of the FSQ levels.
    pub fn codebook_size(&self) -> usize {
        self.fsq_levels.iter().product()
    }

    /// The decoder backbone's settings.
    pub fn backbone(&self) -> TransformerVocosConfig {
        TransformerVocosConfig {
            hidden_dim: self.hidden_dim,
            depth: self.depth,
            heads: self.heads,
            pos_meb_dim: self.pos_meb_dim,
        }
    }

    /// Check that the parts agree with each other.
    pub fn validate(&self, source: &str) -> Result<()> {
        let bad = |m: String| Err(Error::config(source, m));
        if self.sample_rate == 0 || self.encoder_sample_rate == 0 || self.hop_length == 0 {
            return bad("sample_rate, encoder_sample_rate and hop_length must be positive".into());
        }
        if self.n_fft < self.hop_length || !self.n_fft.is_multiple_of(2) {
            return bad(format!(
                "n_fft {} must be even and at least hop_length {}",
                self.n_fft, self.hop_length
            ));
        }
        if self.heads == 0 || !self.hidden_dim.is_multiple_of(self.heads) {
            return bad(format!(
                "hidden_dim {} is not a multiple of {} heads",
                self.hidden_dim, self.heads
            ));
        }
        if self.hidden_dim / self.heads != self.pos_meb_dim {
            return bad(format!(
                "pos_meb_dim {} must equal the head size {} (the rotary embedding covers a head)",
                self.pos_meb_dim,
                self.hidden_dim / self.heads
            ));
        }
        if !self.hidden_dim.is_multiple_of(32) {
            return bad(format!(
                "hidden_dim {} must be a multiple of 32 (GroupNorm groups)",
                self.hidden_dim
            ));
        }
        if self.vq_dim == 0 {
            return bad("vq_dim must be positive".into());
        }
        Fsq::new(&self.fsq_levels).map_err(|e| Error::config(source, e.to_string()))?;
        if self.codebook_size() > u32::MAX as usize {
            return bad("the FSQ codebook is too large".into());
        }
        if let Some(e) = &self.encoder {
            if let Some(problem) = e.problem() {
                return bad(format!("encoder: {problem}"));
            }
            if e.semantic_hidden + e.acoustic_dim != self.vq_dim {
                return bad(format!(
                    "encoder: semantic_hidden {} + acoustic_dim {} must equal vq_dim {}",
                    e.semantic_hidden, e.acoustic_dim, self.vq_dim
                ));
            }
            let rate = self.encoder_sample_rate as f64 / e.hop() as f64;
            if (rate - self.frame_rate()).abs() > 1e-9 {
                return bad(format!(
                    "encoder: {} Hz / hop {} must give the decoder's {} frames/s",
                    self.encoder_sample_rate,
                    e.hop(),
                    self.frame_rate()
                ));
            }
        }
        Ok(())
    }

    /// Read a reference config: the constructor arguments of `CodecDecoderVocos` plus the rates
    /// (`hidden_dim`, `depth`, `heads`, `pos_meb_dim`, `hop_length`, `vq_dim`, `fsq_levels`,
    /// `sample_rate`; absent ones take X-Codec2's values), or the published `config.json` of
    /// `HKUSTAudio/xcodec2` (`"model_type": "xcodec2"`).
    pub fn from_reference_json(text: &str, source: &str) -> Result<Self> {
        let doc: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::config(source, format!("not valid JSON: {e}")))?;
        let obj = doc
            .as_object()
            .ok_or_else(|| Error::config(source, "not a JSON object"))?;
        let int = |key: &str| -> Result<Option<usize>> {
            match obj.get(key) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(|x| Some(x as usize))
                    .ok_or_else(|| Error::config(source, format!("{key} is not an integer"))),
            }
        };
        let mut cfg = match int("sample_rate")? {
            Some(24_000) => Self::neucodec(),
            _ => Self::xcodec2(),
        };
        if !obj.contains_key("model_type") {
            // The decoder's constructor arguments describe the decoder only.
            cfg.encoder = None;
        }
        if let Some(e) = cfg.encoder.as_mut() {
            // BigCodecConfig's widths (`XCodec2Model`'s `config.json`).
            if let Some(h) = int("semantic_hidden_size")? {
                e.semantic_hidden = h;
            }
            if let Some(h) = int("codec_encoder_hidden_size")? {
                e.acoustic_dim = h;
            }
        }
        if let Some(h) = int("hop_length")? {
            cfg.hop_length = h;
            cfg.n_fft = 4 * h;
        }
        if let Some(sr) = int("sample_rate")? {
            cfg.sample_rate = sr as u32;
        }
        if let Some(h) = int("codec_decoder_hidden_size")? {
            cfg.hidden_dim = h;
        }
        for (key, field) in [
            ("hidden_dim", &mut cfg.hidden_dim),
            ("depth", &mut cfg.depth),
            ("heads", &mut cfg.heads),
            ("pos_meb_dim", &mut cfg.pos_meb_dim),
            ("vq_dim", &mut cfg.vq_dim),
        ] {
            if let Some(v) = int(key)? {
                *field = v;
            }
        }
        if let Some(levels) = obj.get("fsq_levels") {
            cfg.fsq_levels = levels
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .map(|v| v.as_u64().map(|x| x as usize))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| Error::config(source, "fsq_levels is not a list of integers"))?;
        }
        cfg.validate(source)?;
        Ok(cfg)
    }
}

/// Whether a JSON config is X-Codec2's (published `config.json`, or the decoder's arguments).
pub fn is_reference_config(text: &str) -> bool {
    let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(text) else {
        return false;
    };
    matches!(
        obj.get("model_type").and_then(|m| m.as_str()),
        Some("xcodec2" | "xcodec")
    ) || (obj.contains_key("fsq_levels") && obj.contains_key("pos_meb_dim"))
}

/// Whether a state dict holds an X-Codec2-family decoder.
pub fn looks_like_xcodec2(state: &StateDict) -> bool {
    let has = |p: &str| state.tensors.keys().any(|k| k.starts_with(p));
    has("generator.backbone.transformers.") && has("generator.head.") && has("fc_post_a.")
}

fn is_decoder_key(k: &str) -> bool {
    [
        "generator.quantizer.project_in.",
        "generator.quantizer.project_out.",
        "generator.backbone.",
        "generator.head.",
        "fc_post_a.",
    ]
    .iter()
    .any(|p| k.starts_with(p))
}

fn is_inference_key(k: &str) -> bool {
    if let Some(rest) = k.strip_prefix("semantic_model.encoder.layers.") {
        // Layers after the one the reference reads are stored but never run.
        return rest
            .split('.')
            .next()
            .and_then(|l| l.parse::<usize>().ok())
            .is_some_and(|l| l < SEMANTIC_LAYER);
    }
    is_decoder_key(k)
        || [
            "semantic_model.feature_projection.",
            "SemanticEncoder_module.",
            "CodecEnc.",
            "fc_prior.",
        ]
        .iter()
        .any(|p| k.starts_with(p))
}

/// Keep the tensors inference reads, as float32: the decoder's (and the FSQ projections), and
/// the encoder's (w2v-BERT up to layer 16, the semantic and acoustic encoders, `fc_prior`) with
/// weight norm folded and SnakeBeta's `bias` spelt `beta`.
///
/// Dropped: w2v-BERT's later layers and its `masked_spec_embed` (training), the semantic
/// decoder and `fc_post_s` of training, and any non-persistent FSQ buffers.
pub fn inference_weights(mut state: StateDict) -> Result<StateDict> {
    // An encoder side without w2v-BERT or without the acoustic encoder cannot encode
    // (NeuCodec's file, decoder-only exports): only its decoder is kept.
    let has = |k: &str| state.tensors.contains_key(k);
    let whole_encoder = has("semantic_model.feature_projection.projection.weight")
        && state
            .tensors
            .keys()
            .any(|k| k.starts_with("CodecEnc.conv_blocks.0."));
    if whole_encoder {
        state.retain(is_inference_key);
    } else {
        state.retain(is_decoder_key);
    }
    state.fold_weight_norm()?;
    // The package's own modules call SnakeBeta's second parameter `bias` (transformers 4.x
    // renamed every `beta` so on load); the published file says `beta`.
    let renamed: Vec<String> = state
        .tensors
        .keys()
        .filter(|k| k.starts_with("CodecEnc.") && k.ends_with(".act.bias"))
        .cloned()
        .collect();
    for k in renamed {
        if let Some(t) = state.tensors.remove(&k) {
            state
                .tensors
                .insert(format!("{}.act.beta", k.trim_end_matches(".act.bias")), t);
        }
    }
    state.to_dtype(DType::F32)?;
    Ok(state)
}

/// Infer the architecture from the shapes, for a checkpoint given without a config. The head
/// size is taken as 64 (both published models) and the output rate as 50 frames/s times the hop
/// (16 kHz for hop 320, 24 kHz for hop 480).
pub fn infer_config(state: &StateDict) -> Result<XCodec2Config> {
    let src = state.source.as_str();
    let dims = |key: &str| -> Result<Vec<usize>> {
        state
            .tensors
            .get(key)
            .map(|t| t.dims().to_vec())
            .ok_or_else(|| {
                Error::config(
                    src,
                    format!("cannot infer the architecture: {key} is missing"),
                )
            })
    };
    let embed = dims(&format!("{BACKBONE}.embed.weight"))?;
    let project_out = dims(&format!("{QUANTIZER}.project_out.weight"))?;
    let window = dims(&format!("{HEAD}.istft.window"))?;
    let depth = state.count_indexed(|i| format!("{BACKBONE}.transformers.{i}.att_norm.weight"));
    let hidden = embed[0];
    let n_fft = window[0];
    let hop = n_fft / 4;
    let cfg = XCodec2Config {
        sample_rate: (hop * 50) as u32,
        encoder_sample_rate: 16_000,
        hop_length: hop,
        n_fft,
        hidden_dim: hidden,
        depth,
        heads: hidden / 64,
        pos_meb_dim: 64,
        vq_dim: project_out[0],
        fsq_levels: vec![4; project_out[1]],
        encoder: infer_encoder(state)?.map(|e| XCodec2EncoderConfig {
            // NeuCodec (24 kHz out) frames its front end without the side padding.
            framing: if hop == 480 {
                Framing::Neucodec
            } else {
                Framing::Xcodec2
            },
            ..e
        }),
    };
    cfg.validate(src)?;
    Ok(cfg)
}

/// The encoder's architecture from its shapes, when the checkpoint holds it (heads of 64 and
/// dilations 1, 3, 9 assumed, as published).
fn infer_encoder(state: &StateDict) -> Result<Option<XCodec2EncoderConfig>> {
    let state = &inference_weights(state.clone())?;
    let dims = |key: &str| state.tensors.get(key).map(|t| t.dims().to_vec());
    let (Some(projection), Some(first), Some(ffn)) = (
        dims("semantic_model.feature_projection.projection.weight"),
        dims("CodecEnc.conv_blocks.0.weight"),
        dims("semantic_model.encoder.layers.0.ffn1.intermediate_dense.weight"),
    ) else {
        return Ok(None);
    };
    let mut cfg = XCodec2EncoderConfig::xcodec2();
    cfg.semantic_hidden = projection[0];
    cfg.semantic_heads = (projection[0] / 64).max(1);
    cfg.semantic_intermediate = ffn[0];
    cfg.acoustic_ngf = first[0];
    let units = cfg.acoustic_dilations.len();
    let blocks =
        state.count_indexed(|i| format!("CodecEnc.conv_blocks.{}.block.0.block.1.weight", i + 1));
    cfg.acoustic_ratios = (1..=blocks)
        .map(|i| {
            dims(&format!(
                "CodecEnc.conv_blocks.{i}.block.{}.weight",
                units + 1
            ))
            .map(|d| d[2] / 2)
            .unwrap_or(0)
        })
        .collect();
    if let Some(last) = dims("CodecEnc.conv_final_block.1.weight") {
        cfg.acoustic_dim = last[0];
    }
    Ok(Some(cfg))
}

/// A loaded X-Codec2 or NeuCodec decoder.
pub struct XCodec2 {
    info: CodecInfo,
    config: XCodec2Config,
    device: Device,
    fsq: Fsq,
    project_in: Linear,
    project_out: Linear,
    fc_post_a: Linear,
    backbone: TransformerVocosBackbone,
    head: IstftHead,
    /// `None` when the checkpoint holds the decoder only.
    encoder: Option<XCodec2Encoder>,
}

impl XCodec2 {
    /// Build from a state dict (the published checkpoint, whole or decoder-only).
    ///
    /// Every decoder tensor must be present with the right shape; the error names the one that
    /// is not. Returns the model and the decoder-side keys it did not use (should be empty).
    pub fn load(
        config: &XCodec2Config,
        state: StateDict,
        name: &str,
        device: &Device,
    ) -> Result<(Self, Vec<String>)> {
        let mut state = inference_weights(state)?;
        if config.encoder.is_none() {
            // A decoder-only config reads none of the encoder's keys (inference_weights has
            // already dropped an encoder side that cannot encode).
            state.retain(is_decoder_key);
        }
        load_tracked(state, device, |vb| Self::new(config, vb, name))
    }

    /// Build from a `VarBuilder` over [`inference_weights`]' layout (see [`crate::weights`]).
    /// The encoder is built when the config has one and the weights hold it
    /// (`CodecEnc.conv_blocks.0.weight` present); otherwise the model decodes only.
    pub fn new(config: &XCodec2Config, vb: VarBuilder, name: &str) -> Result<Self> {
        config.validate(name)?;
        let fsq = Fsq::new(&config.fsq_levels).map_err(|e| Error::config(name, e.to_string()))?;
        let device = vb.device().clone();
        let with_encoder = config
            .encoder
            .as_ref()
            .filter(|_| vb.contains_tensor("CodecEnc.conv_blocks.0.weight"));
        let ((project_in, project_out, fc_post_a, backbone, head, encoder), fingerprint) =
            build_fingerprinted(vb, name, |vb| {
                let q = vb.pp(QUANTIZER);
                let project_in =
                    crate::nn::linear::linear(config.vq_dim, fsq.dims(), q.pp("project_in"))?;
                let project_out =
                    crate::nn::linear::linear(fsq.dims(), config.vq_dim, q.pp("project_out"))?;
                let fc_post_a =
                    crate::nn::linear::linear(config.vq_dim, config.hidden_dim, vb.pp(POST_A))?;
                let backbone = TransformerVocosBackbone::new(&config.backbone(), vb.pp(BACKBONE))?;
                let head = IstftHead::new(
                    config.hidden_dim,
                    config.n_fft,
                    config.hop_length,
                    IstftPadding::Same,
                    vb.pp(HEAD),
                )?;
                let encoder = with_encoder
                    .map(|e| {
                        XCodec2Encoder::new(
                            e,
                            config.encoder_sample_rate,
                            config.vq_dim,
                            vb.clone(),
                        )
                    })
                    .transpose()?;
                Ok((project_in, project_out, fc_post_a, backbone, head, encoder))
            })?;
        let info = CodecInfo {
            name: name.to_string(),
            family: "xcodec2".into(),
            sample_rate: config.sample_rate,
            channels: 1,
            frame_rate: config.frame_rate(),
            codebook_sizes: vec![config.codebook_size() as u32],
            codebook_frame_rates: vec![config.frame_rate()],
            bandwidths_kbps: Vec::new(),
            fingerprint,
        };
        let model = Self {
            info,
            config: config.clone(),
            device: device.clone(),
            fsq,
            project_in,
            project_out,
            fc_post_a,
            backbone,
            head,
            encoder,
        };
        Ok(model)
    }

    /// The encoder, when the checkpoint holds it.
    pub fn encoder(&self) -> Option<&XCodec2Encoder> {
        self.encoder.as_ref()
    }

    /// The architecture.
    pub fn config(&self) -> &XCodec2Config {
        &self.config
    }

    /// The quantizer (`generator(latent, vq=True)`): latent `[batch, vq_dim, frames]` → codes
    /// `[batch, 1, frames]` (`u32`).
    pub fn quantize_latent(&self, latent: &Tensor) -> Result<Tensor> {
        let dims = latent.dims();
        if dims.len() != 3 || dims[1] != self.config.vq_dim || dims[2] == 0 {
            return Err(Error::LatentShape {
                model: self.info.name.clone(),
                expected: format!("[batch, {}, frames > 0]", self.config.vq_dim),
                got: dims.to_vec(),
            });
        }
        let z = latent
            .to_device(&self.device)?
            .to_dtype(DType::F32)?
            .transpose(1, 2)?
            .contiguous()?;
        let z = self.project_in.forward(&z)?; // [b, frames, digits]
                                              // `ResidualFSQ` bounds its input once (`first(self.layers).bound(x)`) before the layer,
                                              // whose `FSQ.quantize` bounds it again: the codes come from bound(bound(z)).
        let residual = self.fsq.bound(&z)?;
        Ok(self.fsq.encode(&residual)?.unsqueeze(1)?)
    }

    /// The quantizer's `get_output_from_indices`: codes `[batch, 1, frames]` → latent
    /// `[batch, frames, vq_dim]`.
    pub fn codes_to_latent(&self, codes: &Tensor) -> Result<Tensor> {
        self.check_codes(codes)?;
        let codes = codes.to_device(&self.device)?.squeeze(1)?;
        let quantized = self.fsq.indices_to_codes(&codes)?; // [b, frames, digits]
        Ok(self.project_out.forward(&quantized)?)
    }

    /// `fc_post_a`: latent `[batch, frames, vq_dim]` → `[batch, frames, hidden_dim]`.
    pub fn post_a(&self, latent: &Tensor) -> Result<Tensor> {
        Ok(self.fc_post_a.forward(latent)?)
    }

    /// Backbone and head: `[batch, frames, hidden_dim]` → audio `[batch, 1, frames * hop]`.
    pub fn synthesize(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.backbone.forward(&x.transpose(1, 2)?.contiguous()?)?;
        Ok(self.head.forward(&x)?.unsqueeze(1)?)
    }

    fn check_codes(&self, codes: &Tensor) -> Result<()> {
        crate::codec::check_stacked_codes(codes, 1, self.config.codebook_size(), &self.info.name)
    }
}

impl Codec for XCodec2 {
    /// Approximate windows with 1 s of context on each side: the front end normalises its
    /// whole input and w2v-BERT and the decoder's transformer attend over all of it. On 60 s
    /// of real audio with the fixture's random weights, 29.6 % of codes equal one pass's (a
    /// code is 8 FSQ digits) and the audio is 16.3 dB from it (`tests/long_form.rs`); set
    /// `window_seconds` to `None` for one pass, at memory quadratic in the length.
    fn long_form(&self) -> LongForm {
        LongForm::Windowed(Windowing::approximate_seconds(&self.info, 1, 1))
    }

    // Measured bit-identical in batches of 1 to 5 (tests/batch_identity.rs).
    fn batch_invariant(&self) -> bool {
        true
    }

    fn info(&self) -> &CodecInfo {
        &self.info
    }

    fn device(&self) -> &Device {
        &self.device
    }

    /// Codes `[batch, 1, frames]`, each item encoded on its own (the reference's front end
    /// normalises per utterance).
    fn encode(&self, audio: &Tensor) -> Result<Tensor> {
        let Some(encoder) = &self.encoder else {
            return Err(Error::Unsupported(format!(
                "model {} cannot encode audio: its checkpoint holds the decoder only (encoding \
                 needs the encoder's weights: w2v-BERT 2.0, the semantic and acoustic encoders; \
                 NeuCodec keeps w2v-BERT 2.0 in another repository, whose separate loading is \
                 not supported yet). Make the codes with the reference Python package, save \
                 them as .npy, and import them as a token file for this model \
                 (`codec import-codes`)",
                self.info.name
            )));
        };
        crate::codec::encode_each_item(audio, &self.info.name, |samples| {
            self.quantize_latent(&encoder.latent(samples, &self.device)?)
        })
    }

    fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        let latent = self.codes_to_latent(codes)?;
        let x = self.post_a(&latent)?;
        self.synthesize(&x)
    }
}

impl XCodec2Config {
    /// Validate the config (errors name `source`) and say what a card of it must state.
    pub fn card_facts(&self, source: &str) -> Result<CardFacts> {
        self.validate(source)?;
        Ok(CardFacts {
            sample_rate: self.sample_rate,
            frame_rate: self.frame_rate(),
            codebooks: Some(vec![self.codebook_size() as u32]),
            codebook_frame_rates: None,
        })
    }
}

/// The xcodec2 family's entry in the registry.
pub static FAMILY: CheckpointFamily<XCodec2Config, XCodec2> = CheckpointFamily {
    name: "xcodec2",
    weights_score: |weights| Score::distinctive_if(looks_like_xcodec2(weights)),
    config_score: |text| Score::distinctive_if(is_reference_config(text)),
    inference_weights,
    from_reference: XCodec2Config::from_reference_json,
    infer: infer_config,
    card_facts: XCodec2Config::card_facts,
    load: XCodec2::load,
    onnx: None,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelCard;

    #[test]
    fn published_configs_are_valid() {
        for cfg in [XCodec2Config::xcodec2(), XCodec2Config::neucodec()] {
            cfg.validate("test").unwrap();
            assert_eq!(cfg.frame_rate(), 50.0);
            assert_eq!(cfg.codebook_size(), 65_536);
        }
        assert_eq!(XCodec2Config::neucodec().n_fft, 1920);
    }

    #[test]
    fn reference_json_forms() {
        let fixture = r#"{"hidden_dim": 128, "depth": 2, "heads": 2, "pos_meb_dim": 64,
            "hop_length": 320, "vq_dim": 64, "fsq_levels": [4,4,4,4,4,4,4,4], "sample_rate": 16000}"#;
        assert!(is_reference_config(fixture));
        let cfg = XCodec2Config::from_reference_json(fixture, "t").unwrap();
        assert_eq!(
            (cfg.hidden_dim, cfg.depth, cfg.heads, cfg.vq_dim, cfg.n_fft),
            (128, 2, 2, 64, 1280)
        );
        let published = r#"{"model_type": "xcodec2", "codec_decoder_hidden_size": 1024,
            "codec_encoder_hidden_size": 1024, "semantic_hidden_size": 1024, "use_vocos": true}"#;
        assert!(is_reference_config(published));
        assert_eq!(
            XCodec2Config::from_reference_json(published, "t").unwrap(),
            XCodec2Config::xcodec2()
        );
        assert!(!is_reference_config(r#"{"vq_strides": [4, 2, 1]}"#));
        let bad = r#"{"fsq_levels": [4, 4], "pos_meb_dim": 32}"#;
        let err = XCodec2Config::from_reference_json(bad, "t").unwrap_err();
        assert!(err.to_string().contains("pos_meb_dim"), "{err}");
    }

    #[test]
    fn published_xcodec2_cards_match_named_configs() {
        let cfg = |n: &str| -> XCodec2Config {
            ModelCard::find(n).unwrap().architecture.try_into().unwrap()
        };
        assert_eq!(cfg("xcodec2"), XCodec2Config::xcodec2());
        assert_eq!(cfg("neucodec"), XCodec2Config::neucodec());
        for (name, repo, weights, license, rate) in [
            (
                "xcodec2",
                "HKUSTAudio/xcodec2",
                "model.safetensors",
                "CC-BY-NC-4.0",
                16000,
            ),
            (
                "neucodec",
                "neuphonic/neucodec",
                "pytorch_model.bin",
                "Apache-2.0",
                24000,
            ),
        ] {
            let card = ModelCard::find(name).unwrap();
            assert_eq!(card.family, "xcodec2");
            assert_eq!(card.sample_rate, rate);
            // 50 frames/s of one 16-bit code.
            assert_eq!(card.bitrate(), 800.0);
            assert_eq!(card.license, license);
            let hub = card.hub.unwrap();
            assert_eq!((hub.repo.as_str(), hub.weights.as_str()), (repo, weights));
        }
        // The non-commercial licence of X-Codec2's weights is spelled out where users see it.
        let desc = ModelCard::find("xcodec2").unwrap().description;
        assert!(desc.contains("non-commercial"), "{desc}");
    }
}

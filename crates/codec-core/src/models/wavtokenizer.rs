//! WavTokenizer (Ji et al. 2024): SEANet encoder, one large VQ codebook, Vocos backbone with
//! `pos_net` and AdaLayerNorm, iSTFT head. 24 kHz mono, 40 or 75 tokens per second.
//!
//! Checkpoint keys (the Lightning `state_dict` of `decoder.experiment.WavTokenizer`):
//! `feature_extractor.encodec.encoder.*`, `feature_extractor.encodec.quantizer.vq.layers.*`,
//! `backbone.*`, `head.*`. The SEANet decoder, discriminators and loss buffers are skipped.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::{CardFacts, CheckpointFamily, Score};
use crate::codec::{Codec, CodecInfo};
use crate::dsp::IstftPadding;
use crate::long_form::{LongForm, Windowing};
use crate::nn::seanet::{SeanetConfig, SeanetEncoder};
use crate::nn::vocos::{IstftHead, VocosBackbone, VocosConfig};
use crate::nn::{ConvNorm, PadMode};
use crate::quant::ResidualVq;
use crate::weights::{build_fingerprinted, load_tracked, StateDict};
use crate::{Error, Result};

/// Prefixes of the generator's inference weights in a checkpoint.
const ENCODER: &str = "feature_extractor.encodec.encoder";
const QUANTIZER: &str = "feature_extractor.encodec.quantizer.vq";
const BACKBONE: &str = "backbone";
const HEAD: &str = "head";

/// The iSTFT head's hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadConfig {
    /// Input channels (the backbone's width).
    pub dim: usize,
    /// FFT size of the iSTFT.
    pub n_fft: usize,
    /// Samples between iSTFT frames.
    pub hop_length: usize,
    /// How the iSTFT pads (WavTokenizer's `same` or `center`).
    pub padding: IstftPadding,
}

/// Architecture of a WavTokenizer model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WavTokenizerConfig {
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// The EnCodec-style SEANet encoder.
    pub encoder: SeanetConfig,
    /// Entries of the codebook.
    pub codebook_size: usize,
    /// Codebooks (1 in the published models).
    pub num_quantizers: usize,
    /// The Vocos backbone.
    pub backbone: VocosConfig,
    /// The iSTFT head.
    pub head: HeadConfig,
    /// AdaLayerNorm conditioning id used at inference (the reference always passes 0).
    #[serde(default)]
    pub bandwidth_id: usize,
}

impl WavTokenizerConfig {
    /// The encoder `EncodecFeatures` builds for the given downsampling ratios.
    fn encoder(ratios: Vec<usize>) -> SeanetConfig {
        SeanetConfig {
            channels: 1,
            dimension: 512,
            n_filters: 32,
            n_residual_layers: 1,
            ratios,
            kernel_size: 7,
            residual_kernel_size: 3,
            last_kernel_size: 7,
            dilation_base: 2,
            causal: false,
            pad_mode: PadMode::Reflect,
            true_skip: false,
            compress: 2,
            lstm: 2,
            bidirectional_lstm: false,
            norm: ConvNorm::WeightNorm,
        }
    }

    fn published(ratios: Vec<usize>, n_fft: usize, hop: usize) -> Self {
        Self {
            sample_rate: 24000,
            encoder: Self::encoder(ratios),
            codebook_size: 4096,
            num_quantizers: 1,
            backbone: VocosConfig {
                input_channels: 512,
                dim: 768,
                intermediate_dim: 2304,
                num_layers: 12,
                adanorm_num_embeddings: Some(4),
                pos_net: true,
            },
            head: HeadConfig {
                dim: 768,
                n_fft,
                hop_length: hop,
                padding: IstftPadding::Same,
            },
            bandwidth_id: 0,
        }
    }

    /// The published 75 tokens/s architecture (`..._frame75_3s_nq1_code4096_dim512_...yaml`).
    pub fn frame75_24khz() -> Self {
        Self::published(vec![8, 5, 4, 2], 1280, 320)
    }

    /// The published 40 tokens/s architecture (`..._frame40_3s_nq1_code4096_dim512_...yaml`).
    pub fn frame40_24khz() -> Self {
        Self::published(vec![6, 5, 5, 4], 2400, 600)
    }

    /// Code frames per second.
    pub fn frame_rate(&self) -> f64 {
        self.sample_rate as f64 / self.encoder.hop_length() as f64
    }

    /// Read the reference implementation's training yaml (`model.init_args`).
    pub fn from_reference_yaml(text: &str, source: &str) -> Result<Self> {
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
            .map_err(|e| Error::config(source, format!("not valid YAML: {e}")))?;
        let args = &doc["model"]["init_args"];
        let get = |v: &serde_yaml_ng::Value, what: &str| -> Result<usize> {
            v.as_u64()
                .map(|x| x as usize)
                .ok_or_else(|| Error::config(source, format!("missing or non-integer {what}")))
        };
        let fe = &args["feature_extractor"]["init_args"];
        let bb = &args["backbone"]["init_args"];
        let hd = &args["head"]["init_args"];
        let ratios = fe["dowmsamples"]
            .as_sequence()
            .ok_or_else(|| Error::config(source, "missing feature_extractor dowmsamples"))?
            .iter()
            .map(|v| get(v, "dowmsamples entry"))
            .collect::<Result<Vec<_>>>()?;
        let padding = match hd["padding"].as_str().unwrap_or("same") {
            "same" => IstftPadding::Same,
            "center" => IstftPadding::Center,
            other => {
                return Err(Error::config(
                    source,
                    format!("unsupported head padding {other}"),
                ))
            }
        };
        let cfg = Self {
            sample_rate: args["sample_rate"].as_u64().unwrap_or(24000) as u32,
            encoder: Self::encoder(ratios),
            codebook_size: get(&fe["vq_bins"], "vq_bins")?,
            num_quantizers: get(&fe["num_quantizers"], "num_quantizers")?,
            backbone: VocosConfig {
                input_channels: get(&bb["input_channels"], "backbone input_channels")?,
                dim: get(&bb["dim"], "backbone dim")?,
                intermediate_dim: get(&bb["intermediate_dim"], "backbone intermediate_dim")?,
                num_layers: get(&bb["num_layers"], "backbone num_layers")?,
                adanorm_num_embeddings: bb["adanorm_num_embeddings"].as_u64().map(|x| x as usize),
                pos_net: true,
            },
            head: HeadConfig {
                dim: get(&hd["dim"], "head dim")?,
                n_fft: get(&hd["n_fft"], "head n_fft")?,
                hop_length: get(&hd["hop_length"], "head hop_length")?,
                padding,
            },
            bandwidth_id: 0,
        };
        cfg.validate(source)?;
        Ok(cfg)
    }

    /// Check that the parts agree with each other.
    pub fn validate(&self, source: &str) -> Result<()> {
        let bad = |m: String| Err(Error::config(source, m));
        if self.encoder.hop_length() != self.head.hop_length {
            return bad(format!(
                "encoder hop {} differs from head hop {}",
                self.encoder.hop_length(),
                self.head.hop_length
            ));
        }
        if self.backbone.dim != self.head.dim {
            return bad(format!(
                "backbone dim {} differs from head dim {}",
                self.backbone.dim, self.head.dim
            ));
        }
        if self.encoder.dimension != self.backbone.input_channels {
            return bad("encoder dimension differs from backbone input_channels".into());
        }
        if let Some(n) = self.backbone.adanorm_num_embeddings {
            if self.bandwidth_id >= n {
                return bad(format!(
                    "bandwidth_id {} out of range (< {n})",
                    self.bandwidth_id
                ));
            }
        }
        if self.codebook_size == 0 || self.num_quantizers == 0 || self.sample_rate == 0 {
            return bad("codebook_size, num_quantizers and sample_rate must be positive".into());
        }
        Ok(())
    }
}

/// Keep only the generator's inference weights and fold weight norm.
///
/// The result is what `codec convert` writes, and what [`WavTokenizer::load`] consumes.
pub fn inference_weights(mut state: StateDict) -> Result<StateDict> {
    state.retain(|k| {
        let generator = [ENCODER, QUANTIZER, BACKBONE, HEAD]
            .iter()
            .any(|p| k.starts_with(&format!("{p}.")));
        // k-means/EMA statistics of the codebook are training state.
        let stats =
            k.ends_with(".cluster_size") || k.ends_with(".embed_avg") || k.ends_with(".inited");
        generator && !stats
    });
    state.fold_weight_norm()?;
    state.to_dtype(DType::F32)?;
    Ok(state)
}

/// A loaded WavTokenizer model.
pub struct WavTokenizer {
    info: CodecInfo,
    config: WavTokenizerConfig,
    device: Device,
    encoder: SeanetEncoder,
    quantizer: ResidualVq,
    backbone: VocosBackbone,
    head: IstftHead,
}

impl WavTokenizer {
    /// Build the model from a state dict (checkpoint or converted safetensors).
    ///
    /// Every inference tensor must be present with the right shape; the error names the one
    /// that is not. Returns the model and the keys it did not use (should be empty).
    pub fn load(
        config: &WavTokenizerConfig,
        state: StateDict,
        name: &str,
        device: &Device,
    ) -> Result<(Self, Vec<String>)> {
        let state = inference_weights(state)?;
        load_tracked(state, device, |vb| Self::new(config, vb, name))
    }

    /// Build from a `VarBuilder` over [`inference_weights`]' layout (see [`crate::weights`]).
    pub fn new(config: &WavTokenizerConfig, vb: VarBuilder, name: &str) -> Result<Self> {
        config.validate(name)?;
        let device = vb.device().clone();
        let ((encoder, quantizer, backbone, head), fingerprint) =
            build_fingerprinted(vb, name, |vb| {
                let encoder = SeanetEncoder::new(&config.encoder, vb.pp(ENCODER))?;
                let quantizer = ResidualVq::new(
                    config.num_quantizers,
                    config.codebook_size,
                    config.encoder.dimension,
                    vb.pp(QUANTIZER),
                )?;
                let backbone = VocosBackbone::new(&config.backbone, vb.pp(BACKBONE))?;
                let head = IstftHead::new(
                    config.head.dim,
                    config.head.n_fft,
                    config.head.hop_length,
                    config.head.padding,
                    vb.pp(HEAD),
                )?;
                Ok((encoder, quantizer, backbone, head))
            })?;
        let info = CodecInfo {
            name: name.to_string(),
            family: "wavtokenizer".into(),
            sample_rate: config.sample_rate,
            channels: 1,
            frame_rate: config.frame_rate(),
            codebook_sizes: vec![config.codebook_size as u32; config.num_quantizers],
            codebook_frame_rates: vec![config.frame_rate(); config.num_quantizers],
            bandwidths_kbps: Vec::new(),
            fingerprint,
        };
        let model = Self {
            info,
            config: config.clone(),
            device: device.clone(),
            encoder,
            quantizer,
            backbone,
            head,
        };
        Ok(model)
    }

    /// The architecture.
    pub fn config(&self) -> &WavTokenizerConfig {
        &self.config
    }

    /// Audio `[batch, 1, samples]` → encoder latent `[batch, 512, frames]`.
    pub fn encode_latent(&self, audio: &Tensor) -> Result<Tensor> {
        Ok(self.encoder.forward(audio)?)
    }

    /// Codes `[batch, n_q, frames]` → features `[batch, 512, frames]` (`codes_to_features`).
    pub fn codes_to_features(&self, codes: &Tensor) -> Result<Tensor> {
        Ok(self.quantizer.decode(codes)?)
    }

    /// Features `[batch, 512, frames]` → backbone output `[batch, frames, dim]`.
    pub fn backbone(&self, features: &Tensor) -> Result<Tensor> {
        Ok(self.backbone.forward(features, self.config.bandwidth_id)?)
    }

    fn check_audio(&self, audio: &Tensor) -> Result<()> {
        crate::codec::check_mono_audio(audio, &self.info.name)
    }

    fn check_codes(&self, codes: &Tensor) -> Result<()> {
        crate::codec::check_stacked_codes(
            codes,
            self.config.num_quantizers,
            self.config.codebook_size,
            &self.info.name,
        )
    }
}

impl Codec for WavTokenizer {
    /// Approximate windows: the encoder's LSTM and the decoder's `pos_net` (group norms and
    /// attention over the whole input) see the clip, so a window sees its 30 s and 1 s of
    /// context on each side. On 60 s of real audio (`tests/long_form.rs`, the fixture's
    /// random weights) every code equals one pass's and the audio is 30.5 dB from it (25 dB on
    /// 100 s of varied recordings). One pass over a long clip is no option anyway: the
    /// attention's memory grows with the square of the length (30 minutes: 73 GB).
    fn long_form(&self) -> LongForm {
        LongForm::Windowed(Windowing::approximate_seconds(&self.info, 1, 1))
    }

    // Measured bit-identical in batches of 1 to 8 (tests/batch_identity.rs).
    fn batch_invariant(&self) -> bool {
        true
    }

    fn info(&self) -> &CodecInfo {
        &self.info
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn encode(&self, audio: &Tensor) -> Result<Tensor> {
        self.check_audio(audio)?;
        let audio = audio.to_device(&self.device)?.to_dtype(DType::F32)?;
        let latent = self.encode_latent(&audio)?;
        Ok(self.quantizer.encode(&latent, self.config.num_quantizers)?)
    }

    fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        self.check_codes(codes)?;
        let codes = codes.to_device(&self.device)?.to_dtype(DType::U32)?;
        let features = self.codes_to_features(&codes)?;
        let x = self.backbone(&features)?;
        Ok(self.head.forward(&x)?.unsqueeze(1)?)
    }
}

/// Whether a state dict holds a WavTokenizer (its EnCodec-style encoder under
/// `feature_extractor.encodec`, a Vocos backbone and head).
pub fn looks_like_wavtokenizer(state: &StateDict) -> bool {
    let has = |p: &str| state.tensors.keys().any(|k| k.starts_with(p));
    has("feature_extractor.encodec.") && has("backbone.") && has("head.")
}

/// Whether a config file is WavTokenizer's training YAML.
pub fn is_reference_config(text: &str) -> bool {
    text.contains("decoder.experiment.WavTokenizer") || text.contains("EncodecFeatures")
}

/// Infer the architecture from the shapes of a checkpoint's tensors, for a checkpoint given
/// without a config. The encoder follows `EncodecFeatures`; ratios come from the kernel sizes
/// of the downsampling convolutions, sizes from the backbone and head weights.
pub fn infer_config(state: &StateDict) -> Result<WavTokenizerConfig> {
    let src = state.source.as_str();
    let dims = |key: &str| -> Result<Vec<usize>> {
        let t = state
            .tensors
            .get(key)
            .or_else(|| state.tensors.get(&key.replace(".weight", ".weight_v")))
            .ok_or_else(|| {
                Error::config(
                    src,
                    format!("cannot infer the architecture: {key} is missing"),
                )
            })?;
        Ok(t.dims().to_vec())
    };
    // Downsampling convs sit at indices 3, 6, 9, 12 with kernel 2 * stride (encoder order).
    let mut ratios = Vec::new();
    for idx in [3, 6, 9, 12] {
        let k = dims(&format!("{ENCODER}.model.{idx}.conv.conv.weight"))?[2];
        ratios.push(k / 2);
    }
    ratios.reverse();
    let embed = dims(&format!("{QUANTIZER}.layers.0._codebook.embed"))?;
    let num_quantizers = state.count_indexed(|i| format!("{QUANTIZER}.layers.{i}._codebook.embed"));
    let bb_embed = dims(&format!("{BACKBONE}.embed.weight"))?;
    let pw1 = dims(&format!("{BACKBONE}.convnext.0.pwconv1.weight"))?;
    let num_layers = state.count_indexed(|i| format!("{BACKBONE}.convnext.{i}.pwconv1.weight"));
    let adanorm = state
        .tensors
        .get(&format!("{BACKBONE}.norm.scale.weight"))
        .map(|t| t.dims()[0]);
    let window = dims(&format!("{HEAD}.istft.window"))?;
    let hop = ratios.iter().product();
    let cfg = WavTokenizerConfig {
        sample_rate: 24000,
        encoder: WavTokenizerConfig::encoder(ratios),
        codebook_size: embed[0],
        num_quantizers,
        backbone: VocosConfig {
            input_channels: bb_embed[1],
            dim: bb_embed[0],
            intermediate_dim: pw1[0],
            num_layers,
            adanorm_num_embeddings: adanorm,
            pos_net: state
                .tensors
                .contains_key(&format!("{BACKBONE}.pos_net.0.conv1.weight")),
        },
        head: HeadConfig {
            dim: bb_embed[0],
            n_fft: window[0],
            hop_length: hop,
            padding: IstftPadding::Same,
        },
        bandwidth_id: 0,
    };
    cfg.validate(src)?;
    Ok(cfg)
}

impl WavTokenizerConfig {
    /// Validate the config (errors name `source`) and say what a card of it must state.
    pub fn card_facts(&self, source: &str) -> Result<CardFacts> {
        self.validate(source)?;
        Ok(CardFacts {
            sample_rate: self.sample_rate,
            frame_rate: self.frame_rate(),
            codebooks: None,
            codebook_frame_rates: None,
        })
    }
}

/// The wavtokenizer family's entry in the registry.
pub static FAMILY: CheckpointFamily<WavTokenizerConfig, WavTokenizer> = CheckpointFamily {
    name: "wavtokenizer",
    weights_score: |weights| Score::distinctive_if(looks_like_wavtokenizer(weights)),
    config_score: |text| Score::distinctive_if(is_reference_config(text)),
    inference_weights,
    from_reference: WavTokenizerConfig::from_reference_yaml,
    infer: infer_config,
    card_facts: WavTokenizerConfig::card_facts,
    load: WavTokenizer::load,
    onnx: None,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelCard;

    #[test]
    fn published_wavtokenizer_cards_match_named_configs() {
        let cfg = |n: &str| -> WavTokenizerConfig {
            ModelCard::find(n).unwrap().architecture.try_into().unwrap()
        };
        assert_eq!(
            cfg("wavtokenizer-small-speech-75"),
            WavTokenizerConfig::frame75_24khz()
        );
        assert_eq!(
            cfg("wavtokenizer-large-unify-40"),
            WavTokenizerConfig::frame40_24khz()
        );
    }
}

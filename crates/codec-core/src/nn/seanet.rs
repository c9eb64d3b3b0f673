//! The SEANet convolutional encoder used by EnCodec and WavTokenizer, and EnCodec's decoder.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::conv::{
    ConvNorm, PadMode, SConv1d, SConv1dConfig, SConvTranspose1d, SConvTranspose1dConfig,
};
use super::kernels::activation::elu;
use super::kernels::Activation;
use super::lstm::{Lstm, StreamingLstm};

mod stream;

pub use stream::can_stream;

/// Hyperparameters of a SEANet encoder, named as in EnCodec's `SEANetEncoder`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeanetConfig {
    /// Audio channels.
    pub channels: usize,
    /// Latent channels.
    pub dimension: usize,
    /// Channels of the first convolution.
    pub n_filters: usize,
    /// Residual blocks per ratio.
    pub n_residual_layers: usize,
    /// Upsampling ratios as the reference lists them; the encoder applies them in reverse.
    pub ratios: Vec<usize>,
    /// Kernel of the first convolution.
    pub kernel_size: usize,
    /// Kernel of the residual blocks.
    pub residual_kernel_size: usize,
    /// Kernel of the last convolution.
    pub last_kernel_size: usize,
    /// Dilation growth between residual blocks.
    pub dilation_base: usize,
    /// Causal convolutions.
    pub causal: bool,
    /// How convolutions pad.
    pub pad_mode: PadMode,
    /// Identity skip connections in residual blocks.
    pub true_skip: bool,
    /// Channel reduction inside residual blocks.
    pub compress: usize,
    /// LSTM layers after the convolutions (0 for none).
    pub lstm: usize,
    /// The encoder's LSTM runs in both directions (SpeechTokenizer's `bidirectional`): its
    /// output has twice the channels, its skip is the input repeated twice, and the last
    /// convolution reads `2 x` the channels. The decoder's LSTM is unidirectional either way.
    /// Such an encoder cannot stream.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bidirectional_lstm: bool,
    /// Normalisation of every convolution (EnCodec's `norm`); weight norm when absent.
    #[serde(default)]
    pub norm: ConvNorm,
}

impl SeanetConfig {
    /// Samples per output frame: the product of the ratios.
    pub fn hop_length(&self) -> usize {
        self.ratios.iter().product()
    }

    /// An [`SConv1dConfig`] with this network's causality, padding and normalisation.
    fn conv(&self, kernel_size: usize) -> SConv1dConfig {
        SConv1dConfig::new(kernel_size, self.causal, self.pad_mode).norm(self.norm)
    }
}

/// One layer of a SEANet network, as [`SeanetConfig::encoder_layers`] /
/// [`SeanetConfig::decoder_layers`] lay them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeanetLayer {
    /// A convolution `in_c → out_c`, after an ELU when `elu`.
    Conv {
        elu: bool,
        in_c: usize,
        out_c: usize,
        kernel: usize,
        stride: usize,
    },
    /// ELU then a transposed convolution `in_c → out_c`, kernel `2 * stride`.
    ConvTr {
        in_c: usize,
        out_c: usize,
        stride: usize,
    },
    /// A residual block on `dim` channels.
    Resnet { dim: usize, dilation: usize },
    /// The LSTM (with its skip) on `dim` channels; `2 * dim` out when `bidirectional`.
    Lstm { dim: usize, bidirectional: bool },
}

impl SeanetConfig {
    /// The encoder's layers with their index in the reference's `nn.Sequential` (the ELUs
    /// take indices of their own and are folded into the layer after them): a convolution to
    /// `n_filters`, per ratio (in reverse) the residual blocks and a strided convolution
    /// (`kernel = 2 * ratio`) doubling the channels, the LSTM, then ELU + the last convolution
    /// to `dimension`.
    pub(crate) fn encoder_layers(&self) -> Vec<(usize, SeanetLayer)> {
        let mut out = Vec::new();
        let mut idx = 0;
        let mut mult = 1;
        let conv = |elu, in_c, out_c, kernel, stride| SeanetLayer::Conv {
            elu,
            in_c,
            out_c,
            kernel,
            stride,
        };
        out.push((
            idx,
            conv(false, self.channels, self.n_filters, self.kernel_size, 1),
        ));
        idx += 1;
        for &ratio in self.ratios.iter().rev() {
            let dim = mult * self.n_filters;
            for j in 0..self.n_residual_layers {
                let dilation = self.dilation_base.pow(j as u32);
                out.push((idx, SeanetLayer::Resnet { dim, dilation }));
                idx += 1;
            }
            idx += 1; // activation
            out.push((idx, conv(true, dim, dim * 2, ratio * 2, ratio)));
            idx += 1;
            mult *= 2;
        }
        let mut dim = mult * self.n_filters;
        if self.lstm > 0 {
            let bidirectional = self.bidirectional_lstm;
            out.push((idx, SeanetLayer::Lstm { dim, bidirectional }));
            idx += 1;
            if bidirectional {
                dim *= 2;
            }
        }
        idx += 1; // activation
        out.push((
            idx,
            conv(true, dim, self.dimension, self.last_kernel_size, 1),
        ));
        out
    }

    /// Input samples before the last one that an encoder output frame depends on, for a
    /// causal encoder without an LSTM (`None` otherwise: a centred convolution looks ahead, an
    /// LSTM back without bound): each convolution adds its span less one, in input samples.
    pub fn encoder_receptive_field(&self) -> Option<usize> {
        if !self.causal || self.lstm > 0 {
            return None;
        }
        let (mut field, mut jump) = (0usize, 1usize);
        for (_, layer) in self.encoder_layers() {
            match layer {
                SeanetLayer::Conv { kernel, stride, .. } => {
                    field += (kernel - 1) * jump;
                    jump *= stride;
                }
                SeanetLayer::Resnet { dilation, .. } => {
                    field += (self.residual_kernel_size - 1) * dilation * jump;
                }
                SeanetLayer::Lstm { .. } | SeanetLayer::ConvTr { .. } => return None,
            }
        }
        Some(field)
    }

    /// The decoder's layers, the mirror of [`encoder_layers`](Self::encoder_layers): a
    /// convolution to `2^len(ratios) * n_filters` channels, the LSTM, per ratio (in the listed
    /// order) ELU + a transposed convolution halving the channels and the residual blocks, then
    /// ELU + the last convolution to `channels`.
    pub(crate) fn decoder_layers(&self) -> Vec<(usize, SeanetLayer)> {
        let mut out = Vec::new();
        let mut idx = 0;
        let mut mult = 1 << self.ratios.len();
        let first = SeanetLayer::Conv {
            elu: false,
            in_c: self.dimension,
            out_c: mult * self.n_filters,
            kernel: self.kernel_size,
            stride: 1,
        };
        out.push((idx, first));
        idx += 1;
        if self.lstm > 0 {
            out.push((
                idx,
                SeanetLayer::Lstm {
                    dim: mult * self.n_filters,
                    bidirectional: false,
                },
            ));
            idx += 1;
        }
        for &ratio in &self.ratios {
            let dim = mult * self.n_filters;
            idx += 1; // activation
            let up = SeanetLayer::ConvTr {
                in_c: dim,
                out_c: dim / 2,
                stride: ratio,
            };
            out.push((idx, up));
            idx += 1;
            for j in 0..self.n_residual_layers {
                let dilation = self.dilation_base.pow(j as u32);
                out.push((
                    idx,
                    SeanetLayer::Resnet {
                        dim: dim / 2,
                        dilation,
                    },
                ));
                idx += 1;
            }
            mult /= 2;
        }
        idx += 1; // activation
        let last = SeanetLayer::Conv {
            elu: true,
            in_c: self.n_filters,
            out_c: self.channels,
            kernel: self.last_kernel_size,
            stride: 1,
        };
        out.push((idx, last));
        out
    }
}

#[derive(Debug, Clone)]
struct ResnetBlock {
    conv1: SConv1d,
    conv2: SConv1d,
    shortcut: Option<SConv1d>,
    /// Streaming: skip-path samples waiting for the convolutions' output (a reflect-padded
    /// convolution outputs nothing until it can mirror its first samples).
    pending_skip: Option<Tensor>,
}

impl ResnetBlock {
    fn new(dim: usize, dilation: usize, cfg: &SeanetConfig, vb: VarBuilder) -> Result<Self> {
        let hidden = dim / cfg.compress;
        let block = vb.pp("block");
        let c1 = cfg.conv(cfg.residual_kernel_size).dilation(dilation);
        let conv1 = SConv1d::new(dim, hidden, c1, block.pp(1))?;
        let conv2 = SConv1d::new(hidden, dim, cfg.conv(1), block.pp(3))?;
        let shortcut = if cfg.true_skip {
            None
        } else {
            Some(SConv1d::new(dim, dim, cfg.conv(1), vb.pp("shortcut"))?)
        };
        Ok(Self {
            conv1,
            conv2,
            shortcut,
            pending_skip: None,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // elu(conv1(elu(x))) and skip + conv2(..) fused into the convolutions' output tiles.
        let y = self
            .conv1
            .forward_fused(&elu(x, 1.0)?, Activation::Elu(1.0), None)?;
        let skip = match &self.shortcut {
            Some(s) => s.forward(x)?,
            None => x.clone(),
        };
        self.conv2.forward_fused(&y, Activation::None, Some(&skip))
    }
}

#[derive(Debug, Clone)]
enum Layer {
    Conv(SConv1d),
    /// ELU then convolution (the activation has its own index in the reference's Sequential).
    EluConv(SConv1d),
    /// ELU then transposed convolution (decoder upsampling).
    EluConvTr(SConvTranspose1d),
    Resnet(Box<ResnetBlock>),
    /// LSTM over time with a skip connection (its `(h, c)` carried between stream steps).
    Lstm(StreamingLstm),
}

fn run_layers(layers: &[Layer], x: &Tensor) -> Result<Tensor> {
    let mut x = x.clone();
    for layer in layers {
        x = match layer {
            Layer::Conv(c) => c.forward(&x)?,
            Layer::EluConv(c) => c.forward(&elu(&x, 1.0)?)?,
            Layer::EluConvTr(c) => c.forward(&elu(&x, 1.0)?)?,
            Layer::Resnet(r) => r.forward(&x)?,
            Layer::Lstm(l) => {
                // EnCodec's SLSTM: over time, plus the input (skip); a bidirectional one's
                // skip is the input twice over (`x.repeat(1, 1, 2)` in SpeechTokenizer).
                let seq = x.transpose(1, 2)?.contiguous()?;
                let y = l.lstm().forward(&seq)?;
                let skip = if l.lstm().is_bidirectional() {
                    Tensor::cat(&[&seq, &seq], 2)?
                } else {
                    seq
                };
                (y + skip)?.transpose(1, 2)?.contiguous()?
            }
        };
    }
    Ok(x)
}

/// SEANet encoder: audio `[batch, channels, samples]` → latent `[batch, dimension, frames]`.
///
/// Weights at `model.{i}.*`, the indices of the reference's `nn.Sequential`.
///
/// One network for both modes (moshi's `SEANetEncoder`): [`Module::forward`] over a whole clip,
/// and, for a causal network without group norm or a bidirectional LSTM ([`can_stream`]),
/// [`StreamingModule::step`](crate::streaming::StreamingModule::step) over pieces of any length,
/// one frame per `hop_length` samples once they are complete, every layer's state (convolution
/// contexts, the LSTM's `(h, c)`) carried between steps. A clone shares the weights and starts
/// from the clone's state; [`reset_state`](crate::streaming::StreamingModule::reset_state)
/// starts a new stream.
#[derive(Debug, Clone)]
pub struct SeanetEncoder {
    layers: Vec<Layer>,
    /// [`can_stream`] of the config.
    streamable: bool,
    /// Samples per output frame.
    hop: usize,
    /// [`SeanetConfig::encoder_receptive_field`].
    receptive_field: Option<usize>,
}

impl SeanetEncoder {
    /// The encoder `cfg` describes, with weights at `vb` (`model.*`).
    pub fn new(cfg: &SeanetConfig, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("model");
        let layers = cfg
            .encoder_layers()
            .into_iter()
            .map(|(i, layer)| build_layer(cfg, layer, 1.0, vb.pp(i)))
            .collect::<Result<_>>()?;
        Ok(Self {
            layers,
            streamable: can_stream(cfg),
            hop: cfg.hop_length(),
            receptive_field: cfg.encoder_receptive_field(),
        })
    }

    /// [`forward`](Module::forward) computed `window` output frames at a time, each window
    /// re-reading the input its first frame depends on, so that memory is bounded by the
    /// window rather than the clip (the first convolution of a 1-hour clip would otherwise
    /// hold tens of GB). The result is the whole-clip one: a causal encoder's frame depends on
    /// no input after it and none further back than its receptive field, and a window ending
    /// on a frame boundary needs no end padding. Encoders with a look-ahead or an LSTM run whole.
    pub fn forward_in_windows(&self, x: &Tensor, window: usize) -> Result<Tensor> {
        let len = x.dim(D::Minus1)?;
        let Some(field) = self.receptive_field else {
            return self.forward(x);
        };
        let window = window.max(1);
        let frames = len.div_ceil(self.hop);
        if frames <= window {
            return self.forward(x);
        }
        let context = field.div_ceil(self.hop);
        let mut pieces = Vec::with_capacity(frames.div_ceil(window));
        for start in (0..frames).step_by(window) {
            let skip = context.min(start);
            let from = (start - skip) * self.hop;
            let to = ((start + window) * self.hop).min(len);
            let y = self.forward(&x.narrow(D::Minus1, from, to - from)?)?;
            let n = window.min(frames - start);
            pieces.push(y.narrow(D::Minus1, skip, n)?);
        }
        Tensor::cat(&pieces, D::Minus1)
    }
}

/// The batch form of one [`SeanetLayer`]; `trim_right_ratio` is the transposed convolutions'.
fn build_layer(
    cfg: &SeanetConfig,
    layer: SeanetLayer,
    trim_right_ratio: f64,
    vb: VarBuilder,
) -> Result<Layer> {
    Ok(match layer {
        SeanetLayer::Conv {
            elu,
            in_c,
            out_c,
            kernel,
            stride,
        } => {
            let conv = SConv1d::new(in_c, out_c, cfg.conv(kernel).stride(stride), vb)?;
            if elu {
                Layer::EluConv(conv)
            } else {
                Layer::Conv(conv)
            }
        }
        SeanetLayer::ConvTr {
            in_c,
            out_c,
            stride,
        } => {
            let up = SConvTranspose1dConfig::new(stride * 2, stride, cfg.causal)
                .norm(cfg.norm)
                .trim_right_ratio(trim_right_ratio);
            Layer::EluConvTr(SConvTranspose1d::new(in_c, out_c, up, vb)?)
        }
        SeanetLayer::Resnet { dim, dilation } => {
            Layer::Resnet(Box::new(ResnetBlock::new(dim, dilation, cfg, vb)?))
        }
        SeanetLayer::Lstm { dim, bidirectional } => {
            Layer::Lstm(StreamingLstm::new(if bidirectional {
                Lstm::bidirectional(dim, dim, cfg.lstm, vb.pp("lstm"))?
            } else {
                Lstm::new(dim, dim, cfg.lstm, vb.pp("lstm"))?
            }))
        }
    })
}

impl Module for SeanetEncoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        run_layers(&self.layers, x)
    }
}

/// SEANet decoder (EnCodec's `SEANetDecoder`, no final activation): latent
/// `[batch, dimension, frames]` → audio `[batch, channels, frames * hop_length]`.
///
/// The mirror of [`SeanetEncoder`] built from the same [`SeanetConfig`]: a convolution to
/// `2^len(ratios) * n_filters` channels, the LSTM with skip, then per ratio (in the listed order)
/// ELU + [`SConvTranspose1d`] (`kernel = 2 * ratio`, `stride = ratio`) halving the channels and
/// the residual blocks, then ELU + the last convolution to `channels`. Weights at `model.{i}.*`.
///
/// Both modes, like [`SeanetEncoder`]: streaming (with `trim_right_ratio` 1) gives
/// `frames * hop_length` samples per step, the overlap of each transposed convolution carried
/// to the next.
#[derive(Debug, Clone)]
pub struct SeanetDecoder {
    layers: Vec<Layer>,
    /// [`can_stream`] of the config, with everything trimmed on the right.
    streamable: bool,
}

impl SeanetDecoder {
    /// `trim_right_ratio`: see [`SConvTranspose1dConfig::trim_right_ratio`] (EnCodec: 1.0).
    pub fn new(cfg: &SeanetConfig, trim_right_ratio: f64, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("model");
        let layers = cfg
            .decoder_layers()
            .into_iter()
            .map(|(i, layer)| build_layer(cfg, layer, trim_right_ratio, vb.pp(i)))
            .collect::<Result<_>>()?;
        Ok(Self {
            layers,
            streamable: can_stream(cfg) && trim_right_ratio == 1.0,
        })
    }
}

impl Module for SeanetDecoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        run_layers(&self.layers, x)
    }
}

/// The original (EnCodec / moshi) name of a SEANet key in the Hugging Face transformers layout
/// (EnCodec's and Mimi's `encoder.layers.*` / `decoder.layers.*`), or `None` for any other key.
///
/// `upsampling` lists the decoder layer indices holding transposed convolutions
/// ([`hf_decoder_upsampling_layers`]). The renaming (transformers' conversion scripts read
/// backwards):
///
/// | transformers | original |
/// |---|---|
/// | `{encoder,decoder}.layers.I.conv.*` | `….model.I.conv.conv.*` (`convtr.convtr.*` for upsampling) |
/// | `{encoder,decoder}.layers.I.norm.*` | `….model.I.conv.norm.*` (`convtr.norm.*`) |
/// | `….layers.I.block.J.{conv,norm}.*` | `….model.I.block.J.conv.{conv,norm}.*` |
/// | `….layers.I.shortcut.{conv,norm}.*` | `….model.I.shortcut.conv.{conv,norm}.*` |
/// | `….layers.I.lstm.*` | `….model.I.lstm.*` |
pub fn hf_seanet_key_to_original(key: &str, upsampling: &[usize]) -> Option<String> {
    let (part, rest) = if let Some(r) = key.strip_prefix("encoder.layers.") {
        ("encoder", r)
    } else {
        ("decoder", key.strip_prefix("decoder.layers.")?)
    };
    let (idx, rest) = rest.split_once('.')?;
    let i: usize = idx.parse().ok()?;
    let conv = if part == "decoder" && upsampling.contains(&i) {
        "convtr"
    } else {
        "conv"
    };
    let mapped = if rest.starts_with("lstm.") {
        rest.to_string()
    } else if let Some(s) = rest.strip_prefix("conv.") {
        format!("{conv}.{conv}.{s}")
    } else if let Some(s) = rest.strip_prefix("norm.") {
        format!("{conv}.norm.{s}")
    } else {
        let (module, sub) = if let Some(r) = rest.strip_prefix("shortcut.") {
            ("shortcut".to_string(), r)
        } else {
            let r = rest.strip_prefix("block.")?;
            let (j, r) = r.split_once('.')?;
            (format!("block.{j}"), r)
        };
        if sub.starts_with("conv.") || sub.starts_with("norm.") {
            format!("{module}.conv.{sub}")
        } else {
            return None;
        }
    };
    Some(format!("{part}.model.{i}.{mapped}"))
}

/// Decoder layers of a transformers-layout state dict that are transposed convolutions: the
/// layers with a direct `conv` other than the first and the last (the SEANet decoder's order is
/// conv, LSTM, then per ratio ELU + transposed conv + residual blocks, then ELU + conv).
pub fn hf_decoder_upsampling_layers<'a>(keys: impl IntoIterator<Item = &'a String>) -> Vec<usize> {
    let mut direct: Vec<usize> = keys
        .into_iter()
        .filter_map(|k| {
            let rest = k.strip_prefix("decoder.layers.")?;
            let (idx, rest) = rest.split_once('.')?;
            (rest.starts_with("conv.") || rest.starts_with("norm."))
                .then(|| idx.parse().ok())
                .flatten()
        })
        .collect();
    direct.sort_unstable();
    direct.dedup();
    if direct.len() <= 2 {
        return Vec::new();
    }
    direct[1..direct.len() - 1].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// A small causal encoder with random weights.
    fn random_encoder(cfg: &SeanetConfig) -> Result<SeanetEncoder> {
        let dev = Device::Cpu;
        let map = VarMap::new();
        SeanetEncoder::new(cfg, VarBuilder::from_varmap(&map, DType::F32, &dev))?;
        for (i, var) in map.all_vars().iter().enumerate() {
            let t = var.as_tensor();
            let scale = 1.0 / (t.elem_count() as f64).sqrt().max(1.0) + 0.05 * (i % 3) as f64;
            var.set(&Tensor::randn(0f32, scale as f32, t.shape(), &dev)?)?;
        }
        SeanetEncoder::new(cfg, VarBuilder::from_varmap(&map, DType::F32, &dev))
    }

    #[test]
    fn windows_give_the_whole_clip_result() -> Result<()> {
        let cfg = SeanetConfig {
            channels: 1,
            dimension: 8,
            n_filters: 4,
            n_residual_layers: 1,
            ratios: vec![4, 3, 2],
            kernel_size: 7,
            residual_kernel_size: 3,
            last_kernel_size: 3,
            dilation_base: 2,
            causal: true,
            pad_mode: PadMode::Zero,
            true_skip: true,
            compress: 2,
            lstm: 0,
            bidirectional_lstm: false,
            norm: ConvNorm::None,
        };
        // Each convolution's span less one, times the hop of its input: 6, then per ratio
        // (2, 3, 4 in encoder order) the residual block's 2 and the strided conv's 2r - 1:
        // 6 + (2 + 3) + 2 (2 + 5) + 6 (2 + 7) + 24 * 2.
        assert_eq!(cfg.encoder_receptive_field(), Some(127));
        let encoder = random_encoder(&cfg)?;
        for len in [24 * 37, 24 * 37 + 5, 24 * 5 - 1] {
            let x = Tensor::randn(0f32, 1.0, (2, 1, len), &Device::Cpu)?;
            let whole = encoder.forward(&x)?;
            let windowed = encoder.forward_in_windows(&x, 5)?;
            assert_eq!(whole.dims(), windowed.dims(), "{len}");
            let diff = (&whole - &windowed)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()?;
            assert!(diff < 1e-5, "{len}: windows differ by {diff}");
        }
        // A window too short for the field would differ: the check can fail.
        let x = Tensor::randn(0f32, 1.0, (1, 1, 24 * 20), &Device::Cpu)?;
        assert!(encoder.receptive_field.is_some());
        let mut short = encoder.forward(&x.narrow(2, 24 * 10, 24 * 10)?)?;
        short = short.narrow(2, 0, 3)?;
        let whole = encoder.forward(&x)?.narrow(2, 10, 3)?;
        let diff = (&whole - &short)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        assert!(diff > 1e-3, "cutting the context changed nothing: {diff}");
        Ok(())
    }
}

//! XY-Tokenizer's modules, run on the valid frames of one clip (`[1, frames, channels]`,
//! time-major): no 30 s padding and so no masks, which give the reference's numbers on the
//! frames it keeps (its attention masks padded keys, and nothing else reads them).

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

use crate::nn::linear::Linear;

use super::config::{AudioDecoderKwargs, AudioEncoderKwargs, TransformerKwargs, XyTokenizerConfig};
use crate::dsp::IstftPadding;
use crate::nn::conv1d::{Conv1d, Conv1dConfig};
use crate::nn::norm::{layer_norm, LayerNorm};
use crate::nn::torch_conv::ConvTranspose;
use crate::nn::vocos::{IstftHead, VocosBackbone, VocosConfig};

/// LayerNorm eps of the transformers and `ResidualDownConv` (PyTorch's default).
const LN_EPS: f64 = 1e-5;

/// A pre-LN transformer layer (`OmniWhisperTransformerLayer`): non-causal attention with
/// `q * head_dim^-0.5`, no key bias; exact-GELU FFN.
#[derive(Debug, Clone)]
struct Layer {
    attn_norm: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    ffn_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
}

impl Layer {
    fn new(d: usize, heads: usize, ffn: usize, vb: VarBuilder) -> Result<Self> {
        let attn = vb.pp("self_attn");
        Ok(Self {
            attn_norm: layer_norm(d, LN_EPS, vb.pp("self_attn_layer_norm"))?,
            q: crate::nn::linear::linear(d, d, attn.pp("q_proj"))?,
            k: crate::nn::linear::linear_no_bias(d, d, attn.pp("k_proj"))?,
            v: crate::nn::linear::linear(d, d, attn.pp("v_proj"))?,
            out: crate::nn::linear::linear(d, d, attn.pp("out_proj"))?,
            ffn_norm: layer_norm(d, LN_EPS, vb.pp("final_layer_norm"))?,
            fc1: crate::nn::linear::linear(d, ffn, vb.pp("fc1"))?,
            fc2: crate::nn::linear::linear(ffn, d, vb.pp("fc2"))?,
            heads,
        })
    }

    /// `x` `[b, t, d]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let hd = d / self.heads;
        let h = self.attn_norm.forward(x)?;
        let q = (self.q.forward(&h)? * (hd as f64).powf(-0.5))?;
        let k = self.k.forward(&h)?;
        let v = self.v.forward(&h)?;
        let heads = |x: Tensor| -> Result<Tensor> {
            x.reshape((b, t, self.heads, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (heads(q)?, heads(k)?, heads(v)?);
        let scores = q.matmul(&k.t()?.contiguous()?)?;
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let attended = weights.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?;
        let x = (x + self.out.forward(&attended)?)?;
        let h = self.fc1.forward(&self.ffn_norm.forward(&x)?)?.gelu_erf()?;
        x + self.fc2.forward(&h)?
    }
}

/// Position table, layers and the final LayerNorm: the part every transformer shares.
#[derive(Debug, Clone)]
struct Stack {
    positions: Tensor,
    layers: Vec<Layer>,
    norm: LayerNorm,
}

impl Stack {
    fn new(
        d: usize,
        positions: usize,
        layers: usize,
        heads: usize,
        ffn: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            positions: vb.get((positions, d), "positional_embedding")?,
            layers: (0..layers)
                .map(|i| Layer::new(d, heads, ffn, vb.pp("layers").pp(i)))
                .collect::<Result<Vec<_>>>()?,
            norm: layer_norm(d, LN_EPS, vb.pp("layer_norm"))?,
        })
    }

    /// `x` `[1, t, d]` + positions, layers, norm.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let t = x.dim(1)?;
        let rows = self.positions.dim(0)?;
        if t > rows {
            candle_core::bail!("{t} frames but a position table of {rows}");
        }
        let mut x = x.broadcast_add(&self.positions.narrow(0, 0, t)?)?;
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        self.norm.forward(&x)
    }
}

/// A Whisper-style encoder (`OmniAudioEncoder`): conv1 (k3) and conv2 (k3, stride 2), exact
/// GELU after each, then the transformer.
#[derive(Debug, Clone)]
pub(super) struct AudioEncoder {
    conv1: Conv1d,
    conv2: Conv1d,
    stack: Stack,
}

impl AudioEncoder {
    pub(super) fn new(e: &AudioEncoderKwargs, vb: VarBuilder) -> Result<Self> {
        let conv = |in_c: usize, stride: usize, vb: VarBuilder| {
            let cfg = Conv1dConfig {
                padding: 1,
                stride,
                ..Default::default()
            };
            Conv1d::load(in_c, e.d_model, e.kernel_size, cfg, vb)
        };
        Ok(Self {
            conv1: conv(e.num_mel_bins, 1, vb.pp("conv1"))?,
            conv2: conv(e.d_model, e.stride_size, vb.pp("conv2"))?,
            stack: Stack::new(
                e.d_model,
                XyTokenizerConfig::encoder_positions(e),
                e.encoder_layers,
                e.encoder_attention_heads,
                e.encoder_ffn_dim,
                vb,
            )?,
        })
    }

    /// Mel `[1, n_mels, frames]` (the valid frames and the next) -> `[1, valid, d]`.
    pub(super) fn forward(&self, mel: &Tensor, valid: usize) -> Result<Tensor> {
        let x = self.conv1.forward(mel)?.gelu_erf()?;
        let x = self.conv2.forward(&x)?.gelu_erf()?;
        let x = x.narrow(2, 0, valid)?.transpose(1, 2)?.contiguous()?;
        self.stack.forward(&x)
    }
}

/// An adapter (`Transformer`): `proj`, positions, layers, norm, `out_proj`.
#[derive(Debug, Clone)]
pub(super) struct Adapter {
    proj: Option<Linear>,
    stack: Stack,
    out_proj: Option<Linear>,
}

impl Adapter {
    pub(super) fn new(a: &TransformerKwargs, vb: VarBuilder) -> Result<Self> {
        let proj = (a.input_dim != a.d_model)
            .then(|| crate::nn::linear::linear(a.input_dim, a.d_model, vb.pp("proj")))
            .transpose()?;
        let out_proj = (a.output_dim != a.d_model)
            .then(|| crate::nn::linear::linear(a.d_model, a.output_dim, vb.pp("out_proj")))
            .transpose()?;
        Ok(Self {
            proj,
            stack: Stack::new(
                a.d_model,
                a.max_source_positions,
                a.encoder_layers,
                a.encoder_attention_heads,
                a.encoder_ffn_dim,
                vb,
            )?,
            out_proj,
        })
    }

    /// `[1, t, input_dim]` -> `[1, t, output_dim]`.
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = match &self.proj {
            Some(p) => p.forward(x)?,
            None => x.clone(),
        };
        let x = self.stack.forward(&x)?;
        match &self.out_proj {
            Some(p) => p.forward(&x),
            None => Ok(x),
        }
    }
}

/// `ResidualDownConv`: groups of `pool` frames, `LN(down(SiLU(gate(x)) * up(x)) + x)` where
/// `x` is the group's frames concatenated (frame-major) and gate / up are the stride-`pool`
/// convolutions, as matrices over that concatenation.
#[derive(Debug, Clone)]
pub(super) struct Downsample {
    gate: Linear,
    up: Linear,
    down: Linear,
    norm: LayerNorm,
    pool: usize,
}

/// A `[out, in, k]` convolution weight as the `[out, k * in]` matrix over `k` frames
/// concatenated frame-major.
fn frames_matrix(w: Tensor) -> Result<Tensor> {
    let (out, _, _) = w.dims3()?;
    w.permute((0, 2, 1))?.contiguous()?.reshape((out, ()))
}

impl Downsample {
    pub(super) fn new(d: usize, pool: usize, vb: VarBuilder) -> Result<Self> {
        let wide = d * pool;
        let conv = |name: &str| -> Result<Linear> {
            Ok(Linear::new(
                frames_matrix(vb.pp(name).get((wide, d, pool), "weight")?)?,
                None,
            ))
        };
        Ok(Self {
            gate: conv("gate_proj")?,
            up: conv("up_proj")?,
            down: crate::nn::linear::linear_no_bias(wide, wide, vb.pp("down_proj"))?,
            norm: layer_norm(wide, LN_EPS, vb.pp("layer_norm"))?,
            pool,
        })
    }

    /// `[1, t, d]` -> `[1, t / pool, pool * d]` (a partial last group dropped).
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let groups = t / self.pool;
        let x = x.narrow(1, 0, groups * self.pool)?.contiguous()?.reshape((
            b,
            groups,
            self.pool * d,
        ))?;
        let g = self.gate.forward(&x)?;
        let u = self.up.forward(&x)?;
        let c = self.down.forward(&(candle_nn::ops::silu(&g)? * u)?)?;
        self.norm.forward(&(c + x)?)
    }
}

/// The residual VQ: `input_proj`, nearest-entry stages on the residual, `output_proj` (both
/// projections weight-normed 1x1 convolutions, folded, as matrices).
#[derive(Debug, Clone)]
pub(super) struct Rvq {
    input_proj: Linear,
    output_proj: Linear,
    /// `[size, dim]` per stage.
    codebooks: Vec<Tensor>,
    /// `|e|^2` per entry, `[1, size]`, per stage.
    norms: Vec<Tensor>,
}

fn pointwise(in_c: usize, out_c: usize, vb: VarBuilder) -> Result<Linear> {
    let w = vb.get((out_c, in_c, 1), "weight")?.reshape((out_c, in_c))?;
    Ok(Linear::new(w, Some(vb.get(out_c, "bias")?)))
}

/// What one encode pass through the RVQ gives.
pub(super) struct Quantized {
    /// `input_proj`'s output `[t, rvq_dim]`.
    pub rvq_input: Tensor,
    /// Each stage's input residual `[t, rvq_dim]`.
    pub residuals: Vec<Tensor>,
    /// Each stage's chosen entries (straight-through value) `[t, rvq_dim]`.
    pub chosen: Vec<Tensor>,
    /// Codes per stage.
    pub codes: Vec<Vec<u32>>,
    /// `output_proj` of the stages' sum `[t, output_dim]`.
    pub zq: Tensor,
}

impl Rvq {
    pub(super) fn new(c: &XyTokenizerConfig, vb: VarBuilder) -> Result<Self> {
        let q = &c.quantizer_kwargs;
        let mut codebooks = Vec::with_capacity(q.num_quantizers);
        let mut norms = Vec::with_capacity(q.num_quantizers);
        for i in 0..q.num_quantizers {
            let e = vb
                .pp("quantizers")
                .pp(i)
                .get((q.codebook_size as usize, q.codebook_dim), "codebook")?;
            norms.push(e.sqr()?.sum_keepdim(1)?.t()?.contiguous()?);
            codebooks.push(e);
        }
        Ok(Self {
            input_proj: pointwise(q.input_dim, q.rvq_dim, vb.pp("input_proj"))?,
            output_proj: pointwise(q.rvq_dim, q.output_dim, vb.pp("output_proj"))?,
            codebooks,
            norms,
        })
    }

    /// Stages.
    pub(super) fn stages(&self) -> usize {
        self.codebooks.len()
    }

    /// Quantize `[t, input_dim]` with the first `n_q` stages: per stage the entry with the
    /// largest `-(|x|^2 - 2 x.e + |e|^2)`, then residual minus its straight-through value.
    pub(super) fn encode(&self, x: &Tensor, n_q: usize) -> Result<Quantized> {
        let z = self.input_proj.forward(x)?;
        let mut residual = z.clone();
        let mut sum = z.zeros_like()?;
        let mut residuals = Vec::with_capacity(n_q);
        let mut chosen = Vec::with_capacity(n_q);
        let mut codes = Vec::with_capacity(n_q);
        for (book, norms) in self.codebooks.iter().zip(&self.norms).take(n_q) {
            let rr = residual.sqr()?.sum_keepdim(1)?;
            let re = (residual.matmul(&book.t()?)? * 2.0)?;
            let dist = rr.broadcast_sub(&re)?.broadcast_add(norms)?;
            let idx = dist.argmin(1)?.to_dtype(DType::U32)?;
            let entry = book.index_select(&idx, 0)?;
            // z_e + (z_q - z_e), as the reference's straight-through estimator rounds it.
            let st = (&residual + (&entry - &residual)?)?;
            residuals.push(residual.clone());
            residual = (&residual - &st)?;
            sum = (sum + &st)?;
            chosen.push(st);
            codes.push(idx.to_vec1::<u32>()?);
        }
        Ok(Quantized {
            rvq_input: z,
            residuals,
            chosen,
            codes,
            zq: self.output_proj.forward(&sum)?,
        })
    }

    /// The stages' entries summed (in stage order, from zero) and `output_proj`:
    /// `[t, output_dim]`.
    pub(super) fn decode(
        &self,
        codes: &[Vec<u32>],
        device: &candle_core::Device,
    ) -> Result<Tensor> {
        let mut sum: Option<Tensor> = None;
        for (book, stage) in self.codebooks.iter().zip(codes) {
            let idx = Tensor::from_slice(stage, stage.len(), device)?;
            let e = book.index_select(&idx, 0)?;
            sum = Some(match sum {
                None => (e.zeros_like()? + e)?,
                Some(s) => (s + e)?,
            });
        }
        let sum = sum.ok_or_else(|| candle_core::Error::Msg("no codebooks".into()))?;
        self.output_proj.forward(&sum)
    }
}

/// `UpConv` (ConvTranspose1d, kernel = stride, no bias) and the transformer "decoder"
/// (`OmniAudioDecoder`) with its two transposed convolutions to mel frames.
#[derive(Debug, Clone)]
pub(super) struct MelDecoder {
    /// `[in, out * stride]`: each input frame's `stride` output frames, channel-major.
    up: Tensor,
    up_out: usize,
    stride: usize,
    stack: Stack,
    deconv1: ConvTranspose,
    deconv2: ConvTranspose,
    conv_stride: usize,
}

impl MelDecoder {
    pub(super) fn new(c: &XyTokenizerConfig, vb: VarBuilder) -> Result<Self> {
        let u = &c.upsample_kwargs;
        let d: &AudioDecoderKwargs = &c.acoustic_decoder_kwargs;
        let in_c = u.d_model * u.stride;
        let up = vb
            .pp("upsample")
            .pp("up_conv")
            .get((in_c, u.d_model, u.stride), "weight")?
            .reshape((in_c, u.d_model * u.stride))?;
        let dv = vb.pp("acoustic_decoder");
        Ok(Self {
            up,
            up_out: u.d_model,
            stride: u.stride,
            stack: Stack::new(
                d.d_model,
                c.decoder_positions(),
                d.decoder_layers,
                d.decoder_attention_heads,
                d.decoder_ffn_dim,
                dv.clone(),
            )?,
            deconv1: ConvTranspose::new(
                d.d_model,
                d.d_model,
                d.kernel_size,
                d.stride_size,
                0,
                0,
                dv.pp("deconv1"),
            )?,
            deconv2: ConvTranspose::new(
                d.d_model,
                d.num_mel_bins,
                d.kernel_size,
                1,
                0,
                0,
                dv.pp("deconv2"),
            )?,
            conv_stride: d.stride_size,
        })
    }

    /// `UpConv`: `[1, t, in]` -> `[1, t * stride, out]`.
    pub(super) fn upsample(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let y = x.broadcast_matmul(&self.up)?; // [b, t, out * stride], (o, k) order
        y.reshape((b, t, self.up_out, self.stride))?
            .transpose(2, 3)?
            .contiguous()?
            .reshape((b, t * self.stride, self.up_out))
    }

    /// The transformer and the transposed convolutions: `[1, t, d]` -> mel-like features
    /// `[1, n_mels, t * stride]`.
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let t = x.dim(1)?;
        let x = self.stack.forward(x)?.transpose(1, 2)?.contiguous()?;
        let y = self.deconv1.forward(&x)?.gelu_erf()?;
        let y = self.deconv2.forward(&y)?.gelu_erf()?;
        y.narrow(D::Minus1, 0, t * self.conv_stride)
    }
}

/// The Vocos vocoder: ConvNeXt backbone, iSTFT head.
pub(super) struct Vocoder {
    pub(super) backbone: VocosBackbone,
    pub(super) head: IstftHead,
}

impl Vocoder {
    pub(super) fn new(c: &XyTokenizerConfig, vb: VarBuilder) -> Result<Self> {
        let v = &c.vocos_kwargs;
        let cfg = VocosConfig {
            input_channels: v.input_channels,
            dim: v.dim,
            intermediate_dim: v.intermediate_dim,
            num_layers: v.num_layers,
            adanorm_num_embeddings: None,
            pos_net: false,
        };
        Ok(Self {
            backbone: VocosBackbone::new(&cfg, vb.pp("backbone"))?,
            head: IstftHead::new(
                v.dim,
                v.n_fft,
                v.hop_size,
                IstftPadding::Same,
                vb.pp("head"),
            )?,
        })
    }
}

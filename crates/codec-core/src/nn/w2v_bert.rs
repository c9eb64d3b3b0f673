//! w2v-BERT 2.0's conformer encoder (transformers' `Wav2Vec2BertModel`, facebook/w2v-bert-2.0),
//! up to a chosen layer: the semantic model of X-Codec2 and NeuCodec.
//!
//! Feature projection (LayerNorm over the 160 stacked fbank values, Linear), then per layer:
//! `x + 0.5 FFN1(LN x)`, `+ MHSA(LN x)`, `+ ConvModule(x)`, `+ 0.5 FFN2(LN x)`, LayerNorm.
//! Attention: q/k/v/out projections with biases and transformers' `relative_key` positions: the
//! score of query `i` and key `j` gains `q_i . E[clamp(j - i, -left, right) + left] / sqrt(d)`.
//! Conv module: LayerNorm, pointwise conv to twice the width (no bias), GLU over channels,
//! depthwise conv (kernel 31, padded on the left only, no bias), LayerNorm, swish, pointwise
//! conv (no bias). FFNs: Linear, swish, Linear. LayerNorm epsilon 1e-5.
//!
//! Weights (`vb` is `Wav2Vec2BertModel`): `feature_projection.{layer_norm,projection}.*`,
//! `encoder.layers.N.{ffn1,ffn2}.{intermediate_dense,output_dense}.*`,
//! `….{ffn1_layer_norm,self_attn_layer_norm,ffn2_layer_norm,final_layer_norm}.*`,
//! `….self_attn.{linear_q,linear_k,linear_v,linear_out}.*`, `….self_attn.distance_embedding.weight`,
//! `….conv_module.{layer_norm,pointwise_conv1,depthwise_conv,depthwise_layer_norm,pointwise_conv2}.*`.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

use crate::nn::linear::Linear;

use super::norm::{layer_norm, LayerNorm};
use super::DepthwiseConv1d;

/// Queries handled at once: bounds the score and position-bias matrices on long inputs.
const QUERY_CHUNK: usize = 512;

/// Hyperparameters of the encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct W2vBertConfig {
    /// Width (1024).
    pub hidden_size: usize,
    /// Attention heads (16).
    pub num_heads: usize,
    /// Hidden width of the FFNs (4096).
    pub intermediate_size: usize,
    /// Layers run: the hidden state taken is the output of this many layers (X-Codec2: 16).
    pub num_layers: usize,
    /// Input features per step (160: two stacked 80-bin frames).
    pub feature_dim: usize,
    /// Depthwise kernel of the conv module (31).
    pub conv_kernel: usize,
    /// Relative positions kept to the left (64) and right (8).
    pub left_max_positions: usize,
    /// See `left_max_positions`.
    pub right_max_positions: usize,
    /// LayerNorm epsilon (1e-5).
    pub layer_norm_eps: f64,
}

impl W2vBertConfig {
    /// facebook/w2v-bert-2.0 up to layer 16 (X-Codec2's `hidden_states[16]`).
    pub fn w2v_bert_2_layer_16() -> Self {
        Self {
            hidden_size: 1024,
            num_heads: 16,
            intermediate_size: 4096,
            num_layers: 16,
            feature_dim: 160,
            conv_kernel: 31,
            left_max_positions: 64,
            right_max_positions: 8,
            layer_norm_eps: 1e-5,
        }
    }
}

#[derive(Debug, Clone)]
struct FeedForward {
    norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
}

impl FeedForward {
    fn new(cfg: &W2vBertConfig, norm: VarBuilder, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm: layer_norm(cfg.hidden_size, cfg.layer_norm_eps, norm)?,
            intermediate: crate::nn::linear::linear(
                cfg.hidden_size,
                cfg.intermediate_size,
                vb.pp("intermediate_dense"),
            )?,
            output: crate::nn::linear::linear(
                cfg.intermediate_size,
                cfg.hidden_size,
                vb.pp("output_dense"),
            )?,
        })
    }

    /// `0.5 * FFN(LN x)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.intermediate.forward(&self.norm.forward(x)?)?.silu()?;
        self.output.forward(&h)? * 0.5
    }
}

#[derive(Debug, Clone)]
struct RelativeAttention {
    norm: LayerNorm,
    /// q, k and v stacked: one product for the three.
    qkv: Linear,
    out: Linear,
    /// `[left + right + 1, head_dim]`.
    distance: Tensor,
    heads: usize,
    left: usize,
    right: usize,
}

impl RelativeAttention {
    fn new(cfg: &W2vBertConfig, norm: VarBuilder, vb: VarBuilder) -> Result<Self> {
        let h = cfg.hidden_size;
        let w = |n: &str| vb.pp(n).get((h, h), "weight");
        let b = |n: &str| vb.pp(n).get(h, "bias");
        let qkv = Linear::new(
            Tensor::cat(&[w("linear_q")?, w("linear_k")?, w("linear_v")?], 0)?,
            Some(Tensor::cat(
                &[b("linear_q")?, b("linear_k")?, b("linear_v")?],
                0,
            )?),
        );
        let positions = cfg.left_max_positions + cfg.right_max_positions + 1;
        Ok(Self {
            norm: layer_norm(h, cfg.layer_norm_eps, norm)?,
            qkv,
            out: crate::nn::linear::linear(h, h, vb.pp("linear_out"))?,
            distance: vb
                .pp("distance_embedding")
                .get((positions, h / cfg.num_heads), "weight")?,
            heads: cfg.num_heads,
            left: cfg.left_max_positions,
            right: cfg.right_max_positions,
        })
    }

    /// `MHSA(LN x)`, `x` `[batch, time, hidden]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        let (h, d) = (self.heads, c / self.heads);
        let qkv = self
            .qkv
            .forward(&self.norm.forward(x)?)?
            .reshape((b, t, 3, h, d))?;
        let part = |i: usize| -> Result<Tensor> {
            qkv.narrow(2, i, 1)?
                .squeeze(2)?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let scale = (d as f64).sqrt().recip();
        let kt = k.t()?.contiguous()?;
        let table_t = self.distance.t()?.contiguous()?;
        let mut outs = Vec::with_capacity(t.div_ceil(QUERY_CHUNK));
        for qs in (0..t).step_by(QUERY_CHUNK) {
            let qn = QUERY_CHUNK.min(t - qs);
            let qc = q.narrow(2, qs, qn)?;
            let scores = qc.matmul(&kt)?;
            // q . E[r] for every relative position r, then picked per (query, key).
            let by_position = qc.broadcast_matmul(&table_t)?; // [b, h, qn, positions]
            let index: Vec<u32> = (qs..qs + qn)
                .flat_map(|i| {
                    (0..t).map(move |j| {
                        let r = (j as i64 - i as i64).clamp(-(self.left as i64), self.right as i64);
                        (r + self.left as i64) as u32
                    })
                })
                .collect();
            let index = Tensor::from_vec(index, (1, 1, qn, t), x.device())?
                .broadcast_as((b, h, qn, t))?
                .contiguous()?;
            let bias = by_position.contiguous()?.gather(&index, D::Minus1)?;
            let w = ((scores + bias)? * scale)?;
            outs.push(candle_nn::ops::softmax_last_dim(&w)?.matmul(&v)?);
        }
        let y = Tensor::cat(&outs, 2)?.transpose(1, 2)?.reshape((b, t, c))?;
        self.out.forward(&y)
    }
}

#[derive(Debug, Clone)]
struct ConvModule {
    norm: LayerNorm,
    pointwise1: Tensor,
    depthwise: DepthwiseConv1d,
    depthwise_norm: LayerNorm,
    pointwise2: Tensor,
    kernel: usize,
}

impl ConvModule {
    fn new(cfg: &W2vBertConfig, vb: VarBuilder) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(Self {
            norm: layer_norm(h, cfg.layer_norm_eps, vb.pp("layer_norm"))?,
            pointwise1: vb
                .pp("pointwise_conv1")
                .get((2 * h, h, 1), "weight")?
                .squeeze(2)?,
            depthwise: DepthwiseConv1d::without_bias(
                h,
                cfg.conv_kernel,
                0,
                vb.pp("depthwise_conv"),
            )?,
            depthwise_norm: layer_norm(h, cfg.layer_norm_eps, vb.pp("depthwise_layer_norm"))?,
            pointwise2: vb
                .pp("pointwise_conv2")
                .get((h, h, 1), "weight")?
                .squeeze(2)?,
            kernel: cfg.conv_kernel,
        })
    }

    /// `x` `[batch, time, hidden]` → the module's output (the residual is added outside).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.pointwise1.dim(1)?;
        let y = self
            .norm
            .forward(x)?
            .broadcast_matmul(&self.pointwise1.t()?)?;
        // GLU over channels: first half times the sigmoid of the second.
        let gated =
            (y.narrow(D::Minus1, 0, h)? * candle_nn::ops::sigmoid(&y.narrow(D::Minus1, h, h)?)?)?;
        let g = gated
            .transpose(1, 2)?
            .pad_with_zeros(D::Minus1, self.kernel - 1, 0)?;
        let g = self.depthwise.forward(&g)?.transpose(1, 2)?;
        let g = self.depthwise_norm.forward(&g.contiguous()?)?.silu()?;
        g.broadcast_matmul(&self.pointwise2.t()?)
    }
}

#[derive(Debug, Clone)]
struct Layer {
    ffn1: FeedForward,
    attn: RelativeAttention,
    conv: ConvModule,
    ffn2: FeedForward,
    final_norm: LayerNorm,
}

impl Layer {
    fn new(cfg: &W2vBertConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            ffn1: FeedForward::new(cfg, vb.pp("ffn1_layer_norm"), vb.pp("ffn1"))?,
            attn: RelativeAttention::new(cfg, vb.pp("self_attn_layer_norm"), vb.pp("self_attn"))?,
            conv: ConvModule::new(cfg, vb.pp("conv_module"))?,
            ffn2: FeedForward::new(cfg, vb.pp("ffn2_layer_norm"), vb.pp("ffn2"))?,
            final_norm: layer_norm(
                cfg.hidden_size,
                cfg.layer_norm_eps,
                vb.pp("final_layer_norm"),
            )?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = (x + self.ffn1.forward(x)?)?;
        let x = (&x + self.attn.forward(&x)?)?;
        let x = (&x + self.conv.forward(&x)?)?;
        let x = (&x + self.ffn2.forward(&x)?)?;
        self.final_norm.forward(&x)
    }
}

/// The encoder up to [`W2vBertConfig::num_layers`].
#[derive(Debug, Clone)]
pub struct W2vBert {
    projection_norm: LayerNorm,
    projection: Linear,
    layers: Vec<Layer>,
}

impl W2vBert {
    /// Build from `vb` (a `Wav2Vec2BertModel`'s keys); layers past `num_layers` are not read.
    pub fn new(cfg: &W2vBertConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.num_heads == 0
            || !cfg.hidden_size.is_multiple_of(cfg.num_heads)
            || cfg.conv_kernel == 0
        {
            candle_core::bail!(
                "w2v-BERT: hidden size {} must split into {} heads, conv kernel positive",
                cfg.hidden_size,
                cfg.num_heads
            )
        }
        let fp = vb.pp("feature_projection");
        let layers = (0..cfg.num_layers)
            .map(|i| Layer::new(cfg, vb.pp("encoder").pp("layers").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            projection_norm: layer_norm(cfg.feature_dim, cfg.layer_norm_eps, fp.pp("layer_norm"))?,
            projection: crate::nn::linear::linear(
                cfg.feature_dim,
                cfg.hidden_size,
                fp.pp("projection"),
            )?,
            layers,
        })
    }

    /// Features `[batch, steps, feature_dim]` → every hidden state: `[0]` the feature
    /// projection's output, `[k]` layer `k`'s, each `[batch, steps, hidden]`.
    pub fn hidden_states(&self, features: &Tensor) -> Result<Vec<Tensor>> {
        let mut x = self
            .projection
            .forward(&self.projection_norm.forward(features)?)?;
        let mut states = Vec::with_capacity(self.layers.len() + 1);
        states.push(x.clone());
        for layer in &self.layers {
            x = layer.forward(&x)?;
            states.push(x.clone());
        }
        Ok(states)
    }

    /// The last layer's output only.
    pub fn forward(&self, features: &Tensor) -> Result<Tensor> {
        let mut x = self
            .projection
            .forward(&self.projection_norm.forward(features)?)?;
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        Ok(x)
    }
}

//! A causal transformer over a stream, with a KV cache bounded by its attention context
//! (moshi's `ProjectedTransformer` / `StreamingTransformer` as Mimi configures it).
//!
//! Each layer: `x + layer_scale_1 * attn(norm1(x))`, then `x + layer_scale_2 *
//! linear2(gelu(linear1(norm2(x))))`, LayerNorm (eps 1e-5), bias-free projections, rotary
//! embeddings on queries and keys (interleaved pairs, positions counted from the start of the
//! stream), and causal attention over the last `context` steps (the step itself included).
//!
//! Weights (`vb` is the `ProjectedTransformer`): `input_proj.weight` and
//! `output_projs.0.weight` when the model dimension differs from the input / output one;
//! `transformer.layers.{i}.{norm1,norm2}.{weight,bias}`, `…self_attn.in_projs.0.weight`
//! (`[3 * d_model, d_model]`, split as `(q|k|v, head, head_dim)`), `…self_attn.out_projs.0.weight`,
//! `…linear1.weight`, `…linear2.weight`, `…layer_scale_{1,2}.scale`.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

use crate::nn::linear::Linear;

use super::norm::{layer_norm, LayerNorm};
use super::roformer::RotaryEmbedding;
use crate::streaming::StreamingModule;

/// Queries handled at once in the batch form: bounds the score matrix on long inputs.
const QUERY_CHUNK: usize = 512;

/// Hyperparameters of a [`StreamingTransformer`].
#[derive(Debug, Clone, PartialEq)]
pub struct StreamingTransformerConfig {
    /// Width of the residual stream.
    pub d_model: usize,
    /// Attention heads (`d_model / num_heads` even, for RoPE).
    pub num_heads: usize,
    /// Layers.
    pub num_layers: usize,
    /// Hidden width of the MLP.
    pub dim_feedforward: usize,
    /// Steps each query sees, itself included.
    pub context: usize,
    /// RoPE's `max_period`.
    pub max_period: f64,
    /// Whether the layers have `layer_scale_{1,2}` (moshi's `layer_scale` not `None`).
    pub layer_scale: bool,
    /// Channels of the input (`[batch, input_dimension, time]`).
    pub input_dimension: usize,
    /// Channels of the output.
    pub output_dimension: usize,
    /// transformers' RoPE convention instead of moshi's: frequencies `base^(-2i / d)` and
    /// pairs `(x[i], x[i + d / 2])`, for query and key rows in the order transformers'
    /// `MimiModel` checkpoints store them (moshi: `exp(-2i ln(base) / d)`, neighbours).
    pub rope_rotate_half: bool,
}

#[derive(Debug, Clone)]
struct Attention {
    in_proj: Linear,
    out_proj: Linear,
    num_heads: usize,
    head_dim: usize,
    context: usize,
    /// Keys and values of the last `context` steps, `[batch, heads, steps, head_dim]`.
    cache: Option<(Tensor, Tensor)>,
    /// Attend as a ring cache of `context` slots written before attention does (see
    /// [`StreamingTransformer::set_ring_cache`]).
    ring: bool,
}

impl Attention {
    /// `x`: `[batch, time, d_model]` at steps `offset..offset + time` of the batch; row `i`'s
    /// stream began at step `starts[i]` (all at 0 when `starts` is empty): its positions count
    /// from there and it sees no key from before.
    fn forward(
        &mut self,
        x: &Tensor,
        offset: usize,
        starts: &[usize],
        rope: &RotaryEmbedding,
    ) -> Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        let (h, d) = (self.num_heads, self.head_dim);
        let qkv = self.in_proj.forward(x)?.reshape((b, t, 3, h, d))?;
        let part = |i: usize| qkv.narrow(2, i, 1)?.squeeze(2)?.contiguous();
        // RoPE on [b, t, h, d] (time in dimension 1), then [b, h, t, d].
        let q = rope_rows(rope, &part(0)?, offset, starts)?
            .transpose(1, 2)?
            .contiguous()?;
        let k = rope_rows(rope, &part(1)?, offset, starts)?
            .transpose(1, 2)?
            .contiguous()?;
        let v = part(2)?.transpose(1, 2)?.contiguous()?;
        let (k_all, v_all) = match self.cache.take() {
            Some((ck, cv)) => (Tensor::cat(&[&ck, &k], 2)?, Tensor::cat(&[&cv, &v], 2)?),
            None => (k, v),
        };
        let n_keys = k_all.dim(2)?;
        // Key j sits at stream position `first_key + j`.
        let first_key = offset + t - n_keys;
        // A ring of `context` slots filled with this step's keys before attention holds only
        // positions from `offset + t - context` on, for every query of the step.
        let ring_floor = if self.ring {
            (offset + t).saturating_sub(self.context)
        } else {
            0
        };
        let scale = 1.0 / (d as f64).sqrt();
        let mut outs = Vec::with_capacity(t.div_ceil(QUERY_CHUNK));
        for qs in (0..t).step_by(QUERY_CHUNK) {
            let qn = QUERY_CHUNK.min(t - qs);
            // Keys that queries `qs..qs + qn` can see: positions (q - context, q].
            let q_lo = offset + qs;
            let q_hi = q_lo + qn - 1;
            let k_lo = (q_lo + 1)
                .saturating_sub(self.context)
                .max(first_key)
                .max(ring_floor)
                - first_key;
            let k_hi = q_hi - first_key;
            let kn = k_hi + 1 - k_lo;
            let mut mask = Vec::with_capacity(qn * kn);
            for qi in 0..qn {
                let qp = q_lo + qi;
                for kj in 0..kn {
                    let kp = first_key + k_lo + kj;
                    let visible = kp <= qp && qp - kp < self.context && kp >= ring_floor;
                    mask.push(if visible { 0f32 } else { f32::NEG_INFINITY });
                }
            }
            // A row whose stream began after the first of these keys sees none from before.
            let first_seen = first_key + k_lo;
            let mask = if starts.iter().any(|&s| s > first_seen) {
                let rows: Vec<f32> = starts
                    .iter()
                    .flat_map(|&start| {
                        mask.chunks(kn).flat_map(move |row| {
                            row.iter().enumerate().map(move |(kj, &m)| {
                                if first_seen + kj < start {
                                    f32::NEG_INFINITY
                                } else {
                                    m
                                }
                            })
                        })
                    })
                    .collect();
                Tensor::from_vec(rows, (b, 1, qn, kn), x.device())?
            } else {
                Tensor::from_vec(mask, (1, 1, qn, kn), x.device())?
            };
            let qc = q.narrow(2, qs, qn)?;
            let kc = k_all.narrow(2, k_lo, kn)?;
            let vc = v_all.narrow(2, k_lo, kn)?;
            let w = (qc.matmul(&kc.t()?.contiguous()?)? * scale)?.broadcast_add(&mask)?;
            outs.push(candle_nn::ops::softmax_last_dim(&w)?.matmul(&vc)?);
        }
        let y = if outs.len() == 1 {
            outs.remove(0)
        } else {
            Tensor::cat(&outs, 2)?
        };
        // Keep the keys the next steps can still see.
        let keep = self.context.min(n_keys);
        self.cache = Some((
            k_all.narrow(2, n_keys - keep, keep)?,
            v_all.narrow(2, n_keys - keep, keep)?,
        ));
        let y = y.transpose(1, 2)?.reshape((b, t, c))?;
        self.out_proj.forward(&y)
    }
}

/// RoPE on `x` `[batch, time, heads, head_dim]` at batch steps `offset..`, each row at the
/// positions of its own stream (`offset - starts[row]`).
fn rope_rows(
    rope: &RotaryEmbedding,
    x: &Tensor,
    offset: usize,
    starts: &[usize],
) -> Result<Tensor> {
    match starts.first() {
        None => rope.forward_from(x, offset),
        Some(&s) if starts.iter().all(|&o| o == s) => rope.forward_from(x, offset - s),
        Some(_) => {
            let rows = starts
                .iter()
                .enumerate()
                .map(|(i, &s)| rope.forward_from(&x.narrow(0, i, 1)?, offset - s))
                .collect::<Result<Vec<_>>>()?;
            Tensor::cat(&rows, 0)
        }
    }
}

#[derive(Debug, Clone)]
struct Layer {
    norm1: LayerNorm,
    attn: Attention,
    norm2: LayerNorm,
    linear1: Linear,
    linear2: Linear,
    scale1: Option<Tensor>,
    scale2: Option<Tensor>,
}

impl Layer {
    fn new(cfg: &StreamingTransformerConfig, vb: VarBuilder) -> Result<Self> {
        let dm = cfg.d_model;
        let sa = vb.pp("self_attn");
        let attn = Attention {
            in_proj: crate::nn::linear::linear_no_bias(dm, 3 * dm, sa.pp("in_projs").pp(0))?,
            out_proj: crate::nn::linear::linear_no_bias(dm, dm, sa.pp("out_projs").pp(0))?,
            num_heads: cfg.num_heads,
            head_dim: dm / cfg.num_heads,
            context: cfg.context,
            cache: None,
            ring: false,
        };
        let scale = |name: &str| -> Result<Option<Tensor>> {
            if cfg.layer_scale {
                Some(vb.pp(name).get(dm, "scale")).transpose()
            } else {
                Ok(None)
            }
        };
        Ok(Self {
            norm1: layer_norm(dm, 1e-5, vb.pp("norm1"))?,
            attn,
            norm2: layer_norm(dm, 1e-5, vb.pp("norm2"))?,
            linear1: crate::nn::linear::linear_no_bias(dm, cfg.dim_feedforward, vb.pp("linear1"))?,
            linear2: crate::nn::linear::linear_no_bias(cfg.dim_feedforward, dm, vb.pp("linear2"))?,
            scale1: scale("layer_scale_1")?,
            scale2: scale("layer_scale_2")?,
        })
    }

    fn forward(
        &mut self,
        x: &Tensor,
        offset: usize,
        starts: &[usize],
        rope: &RotaryEmbedding,
    ) -> Result<Tensor> {
        let scaled = |y: Tensor, s: &Option<Tensor>| match s {
            Some(s) => y.broadcast_mul(s),
            None => Ok(y),
        };
        let a = self
            .attn
            .forward(&self.norm1.forward(x)?, offset, starts, rope)?;
        let x = (x + scaled(a, &self.scale1)?)?;
        let h = self.linear1.forward(&self.norm2.forward(&x)?)?.gelu_erf()?;
        let m = self.linear2.forward(&h)?;
        &x + scaled(m, &self.scale2)?
    }
}

/// A causal transformer on `[batch, channels, time]` streams (time last, conv layout), with
/// input / output projections when the model dimension differs. Every step attends to the
/// previous `context - 1` steps kept in its KV cache.
#[derive(Debug, Clone)]
pub struct StreamingTransformer {
    input_proj: Option<Linear>,
    output_proj: Option<Linear>,
    layers: Vec<Layer>,
    rope: RotaryEmbedding,
    /// Steps seen since the start of the stream.
    offset: usize,
    /// The step at which each row's stream began, after [`StreamingModule::reset_item`];
    /// empty while every row began at step 0.
    starts: Vec<usize>,
}

impl StreamingTransformer {
    /// Build the transformer; `vb` is the `ProjectedTransformer` (see the module docs).
    pub fn new(cfg: &StreamingTransformerConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.num_heads == 0 || !cfg.d_model.is_multiple_of(cfg.num_heads) || cfg.context == 0 {
            candle_core::bail!(
                "transformer: d_model {} is not a multiple of {} heads, or context {} is 0",
                cfg.d_model,
                cfg.num_heads,
                cfg.context
            )
        }
        let input_proj = if cfg.input_dimension != cfg.d_model {
            Some(crate::nn::linear::linear_no_bias(
                cfg.input_dimension,
                cfg.d_model,
                vb.pp("input_proj"),
            )?)
        } else {
            None
        };
        let output_proj = if cfg.output_dimension != cfg.d_model {
            Some(crate::nn::linear::linear_no_bias(
                cfg.d_model,
                cfg.output_dimension,
                vb.pp("output_projs").pp(0),
            )?)
        } else {
            None
        };
        let lv = vb.pp("transformer").pp("layers");
        let layers = (0..cfg.num_layers)
            .map(|i| Layer::new(cfg, lv.pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let head_dim = cfg.d_model / cfg.num_heads;
        let rope = if cfg.rope_rotate_half {
            RotaryEmbedding::new(head_dim, cfg.max_period)?.rotate_half()
        } else {
            RotaryEmbedding::with_exp_frequencies(head_dim, cfg.max_period)?
        };
        Ok(Self {
            input_proj,
            output_proj,
            layers,
            rope,
            offset: 0,
            starts: Vec::new(),
        })
    }
}

impl StreamingTransformer {
    /// Attend in steps as a ring KV cache of `context` slots that each step writes before it
    /// attends (MOSS-Audio-Tokenizer's `RingKVCache`): a query at position `p` of a step ending
    /// at `e` sees keys `max(p, e) - context + 1 ..= p`, so the first queries of a step see
    /// fewer keys than in one pass. Off (the default), every query sees its last `context`
    /// keys whatever the step size. Steps must then be at most `context` long.
    pub fn set_ring_cache(&mut self, on: bool) {
        for layer in &mut self.layers {
            layer.attn.ring = on;
        }
    }

    fn ring_cache(&self) -> Option<usize> {
        self.layers
            .first()
            .filter(|l| l.attn.ring)
            .map(|l| l.attn.context)
    }
}

impl StreamingModule for StreamingTransformer {
    fn step(&mut self, xs: Option<&Tensor>) -> crate::Result<Option<Tensor>> {
        let Some(x) = xs else {
            return Ok(None);
        };
        let t = x.dim(D::Minus1)?;
        if t == 0 {
            return Ok(None);
        }
        if let Some(context) = self.ring_cache().filter(|&c| t > c) {
            return Err(crate::Error::Unsupported(format!(
                "a step of {t} frames through a ring cache of {context}: steps must fit the \
                 attention context"
            )));
        }
        let mut x = x.transpose(1, 2)?.contiguous()?;
        if let Some(p) = &self.input_proj {
            x = p.forward(&x)?;
        }
        for layer in &mut self.layers {
            x = layer.forward(&x, self.offset, &self.starts, &self.rope)?;
        }
        if let Some(p) = &self.output_proj {
            x = p.forward(&x)?;
        }
        self.offset += t;
        Ok(Some(x.transpose(1, 2)?.contiguous()?))
    }

    fn reset_state(&mut self) {
        self.offset = 0;
        self.starts.clear();
        for layer in &mut self.layers {
            layer.attn.cache = None;
        }
    }

    /// Row `index` starts a new stream at the next step: positions from 0 again, no key of
    /// its old stream visible (the cache keeps them for the other rows; they age out).
    fn reset_item(&mut self, index: usize) -> crate::Result<()> {
        let Some((keys, _)) = self.layers.first().and_then(|l| l.attn.cache.as_ref()) else {
            return Ok(()); // nothing seen yet
        };
        let batch = keys.dim(0)?;
        if index >= batch {
            return Err(crate::Error::Unsupported(format!(
                "stream row {index} of a batch of {batch}"
            )));
        }
        self.starts.resize(batch, 0);
        self.starts[index] = self.offset;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    fn random_transformer(cfg: &StreamingTransformerConfig) -> Result<StreamingTransformer> {
        let dev = Device::Cpu;
        let dm = cfg.d_model;
        let mut w = HashMap::new();
        let mut put = |name: String, shape: &[usize], mean: f32, std: f32| -> Result<()> {
            w.insert(name, Tensor::randn(mean, std, shape, &dev)?);
            Ok(())
        };
        for i in 0..cfg.num_layers {
            let p = format!("transformer.layers.{i}");
            for n in ["norm1", "norm2"] {
                put(format!("{p}.{n}.weight"), &[dm], 1.0, 0.1)?;
                put(format!("{p}.{n}.bias"), &[dm], 0.0, 0.1)?;
            }
            put(
                format!("{p}.self_attn.in_projs.0.weight"),
                &[3 * dm, dm],
                0.0,
                0.3,
            )?;
            put(
                format!("{p}.self_attn.out_projs.0.weight"),
                &[dm, dm],
                0.0,
                0.3,
            )?;
            put(
                format!("{p}.linear1.weight"),
                &[cfg.dim_feedforward, dm],
                0.0,
                0.3,
            )?;
            put(
                format!("{p}.linear2.weight"),
                &[dm, cfg.dim_feedforward],
                0.0,
                0.3,
            )?;
            put(format!("{p}.layer_scale_1.scale"), &[dm], 0.5, 0.1)?;
            put(format!("{p}.layer_scale_2.scale"), &[dm], 0.5, 0.1)?;
        }
        StreamingTransformer::new(cfg, VarBuilder::from_tensors(w, DType::F32, &dev))
    }

    /// Past the context, in query chunks and streamed in pieces: the same outputs, and each
    /// output only depends on the last `context` inputs.
    #[test]
    fn bounded_context_streams_like_the_batch_form() -> crate::Result<()> {
        let cfg = StreamingTransformerConfig {
            d_model: 16,
            num_heads: 2,
            num_layers: 2,
            dim_feedforward: 32,
            context: 7,
            max_period: 10000.0,
            layer_scale: true,
            input_dimension: 16,
            output_dimension: 16,
            rope_rotate_half: false,
        };
        let model = random_transformer(&cfg)?;
        let t = QUERY_CHUNK + 37;
        let x = Tensor::randn(0f32, 1.0, (2, 16, t), &Device::Cpu)?;
        let mut fresh = model.clone();
        let batch = fresh.step(Some(&x))?.unwrap();
        let mut streaming = model.clone();
        let (mut pos, mut out) = (0, None);
        for n in [1usize, 3, 9, 2, 30].iter().cycle() {
            if pos >= t {
                break;
            }
            let n = (*n).min(t - pos);
            let y = streaming.step(Some(&x.narrow(2, pos, n)?))?;
            out = crate::streaming::cat_pieces(out, y)?;
            pos += n;
        }
        let streamed = out.unwrap();
        let diff = (&batch - &streamed)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-4, "streamed vs batch: {diff}");
        // Each layer looks `context - 1` steps back: inputs further back than
        // `layers * (context - 1)` steps leave an output unchanged.
        let last = t - 1;
        let field = cfg.num_layers * (cfg.context - 1) + 1;
        let mut x2 = x.narrow(2, 0, last + 1 - field)?.ones_like()?;
        x2 = Tensor::cat(&[&x2, &x.narrow(2, last + 1 - field, field)?], 2)?;
        let mut fresh = model.clone();
        let y2 = fresh.step(Some(&x2))?.unwrap();
        let d = (batch.narrow(2, last, 1)? - y2.narrow(2, last, 1)?)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        assert!(d < 1e-5, "output depends on inputs past the context: {d}");
        Ok(())
    }

    /// A ring cache streamed a step at a time is the batch form (each step sees its last
    /// `context` keys either way); in steps of several frames the first queries of a step see
    /// fewer keys; steps longer than the ring are refused.
    #[test]
    fn ring_cache_narrows_the_window_inside_a_step() -> crate::Result<()> {
        let cfg = StreamingTransformerConfig {
            d_model: 16,
            num_heads: 2,
            num_layers: 1,
            dim_feedforward: 32,
            context: 4,
            max_period: 10000.0,
            layer_scale: true,
            input_dimension: 16,
            output_dimension: 16,
            rope_rotate_half: false,
        };
        let model = random_transformer(&cfg)?;
        let t = 12;
        let x = Tensor::randn(0f32, 1.0, (1, 16, t), &Device::Cpu)?;
        let batch = model.clone().step(Some(&x))?.unwrap();
        let streamed = |step: usize| -> crate::Result<Tensor> {
            let mut ring = model.clone();
            ring.set_ring_cache(true);
            let mut out = None;
            for pos in (0..t).step_by(step) {
                let y = ring.step(Some(&x.narrow(2, pos, step.min(t - pos))?))?;
                out = crate::streaming::cat_pieces(out, y)?;
            }
            Ok(out.unwrap())
        };
        let max_diff = |a: &Tensor, b: &Tensor| -> crate::Result<f32> {
            Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
        };
        assert!(max_diff(&batch, &streamed(1)?)? < 1e-5);
        let chunked = streamed(4)?;
        // The first step is a whole window; in the second, position 4 sees only itself.
        assert!(max_diff(&batch.narrow(2, 0, 4)?, &chunked.narrow(2, 0, 4)?)? < 1e-5);
        assert!(max_diff(&batch.narrow(2, 4, 1)?, &chunked.narrow(2, 4, 1)?)? > 1e-3);
        // The last query of a step sees its whole window.
        assert!(max_diff(&batch.narrow(2, 7, 1)?, &chunked.narrow(2, 7, 1)?)? < 1e-5);
        let mut ring = model.clone();
        ring.set_ring_cache(true);
        assert!(ring.step(Some(&x.narrow(2, 0, 5)?)).is_err());
        Ok(())
    }
}

//! The two module lists (patches and projected transformers) and the residual LFQ between
//! them, as the reference builds them from the config.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use super::config::{MossAudioTokenizerConfig, StageConfig};
use crate::nn::moshi_transformer::StreamingTransformer;
use crate::nn::torch_conv::{Conv, ConvSpec};
use crate::quant::FactorizedRvq;
use crate::streaming::StreamingModule;
use crate::Result;

/// One module of a list.
#[derive(Debug, Clone)]
enum Stage {
    /// Merge (encoder) or split (decoder) patches of this many frames.
    Patch(usize),
    Transformer(StreamingTransformer),
}

/// `[b, d, t] -> [b, d * h, t / h]`, output channel `c * h + j` = channel `c` at offset `j`
/// of each patch (channel-major).
fn merge_patches(x: &Tensor, h: usize) -> Result<Tensor> {
    let (b, d, t) = x.dims3()?;
    Ok(x.reshape((b, d, t / h, h))?
        .permute((0, 1, 3, 2))?
        .contiguous()?
        .reshape((b, d * h, t / h))?)
}

/// The inverse of [`merge_patches`]: `[b, d * h, l] -> [b, d, l * h]`.
fn split_patches(x: &Tensor, h: usize) -> Result<Tensor> {
    let (b, dh, l) = x.dims3()?;
    Ok(x.reshape((b, dh / h, h, l))?
        .permute((0, 1, 3, 2))?
        .contiguous()?
        .reshape((b, dh / h, l * h))?)
}

/// The encoder or the decoder: its modules in order, stepped over a stream.
#[derive(Debug, Clone)]
pub(super) struct Stack {
    stages: Vec<Stage>,
    /// Merging patches (encoder) or splitting them (decoder).
    encoder: bool,
    /// The checkpoint index of each transformer stage.
    indices: Vec<usize>,
}

impl Stack {
    /// The encoder's (`encoder`) or decoder's list; `vb` is `encoder` / `decoder`.
    pub(super) fn new(
        config: &MossAudioTokenizerConfig,
        encoder: bool,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let modules = if encoder {
            &config.encoder_kwargs
        } else {
            &config.decoder_kwargs
        };
        let mut built = config.stages(encoder).into_iter();
        let mut stages = Vec::with_capacity(modules.len());
        let mut indices = Vec::new();
        for (i, m) in modules.iter().enumerate() {
            stages.push(match m {
                StageConfig::PatchedPretransform { patch_size } => Stage::Patch(*patch_size),
                StageConfig::Transformer(_) => {
                    let s = built
                        .next()
                        .expect("one built stage per transformer module");
                    indices.push(i);
                    Stage::Transformer(StreamingTransformer::new(&s.transformer, vb.pp(i))?)
                }
            });
        }
        Ok(Self {
            stages,
            encoder,
            indices,
        })
    }

    /// Start a new stream; `ring` selects the streaming attention of the reference's
    /// `chunk_duration` mode (see [`StreamingTransformer::set_ring_cache`]).
    pub(super) fn reset(&mut self, ring: bool) {
        for s in &mut self.stages {
            if let Stage::Transformer(t) = s {
                t.reset_state();
                t.set_ring_cache(ring);
            }
        }
    }

    /// Run the next piece of the stream, `[b, c, t]` with `t` a whole number of patches at
    /// every patch module; with `trace`, each transformer's output, by checkpoint index.
    pub(super) fn step(
        &mut self,
        x: &Tensor,
        mut trace: Option<&mut Vec<(usize, Tensor)>>,
    ) -> Result<Tensor> {
        let mut x = x.clone();
        let mut n = 0;
        for stage in &mut self.stages {
            x = match stage {
                Stage::Patch(h) if self.encoder => merge_patches(&x, *h)?,
                Stage::Patch(h) => split_patches(&x, *h)?,
                Stage::Transformer(t) => {
                    let y = t
                        .step(Some(&x))?
                        .expect("a non-empty piece gives a non-empty output");
                    if let Some(trace) = trace.as_deref_mut() {
                        trace.push((self.indices[n], y.clone()));
                    }
                    n += 1;
                    y
                }
            };
        }
        Ok(x)
    }
}

/// The residual LFQ: `input_proj`, the stages (cosine selection, raw-row update), and the
/// `output_proj` that feeds the decoder.
#[derive(Debug, Clone)]
pub(super) struct Quantizer {
    input_proj: Option<Conv>,
    output_proj: Option<Conv>,
    rvq: FactorizedRvq,
}

impl Quantizer {
    /// `vb` is the checkpoint's `quantizer`.
    pub(super) fn new(
        config: &MossAudioTokenizerConfig,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let q = &config.quantizer_kwargs;
        let proj = |i: usize, o: usize, name: &str| -> candle_core::Result<Option<Conv>> {
            (i != o)
                .then(|| Conv::new(ConvSpec::new(i, o, 1), vb.pp(name)))
                .transpose()
        };
        Ok(Self {
            input_proj: proj(q.input_dim, q.rvq_dim, "input_proj")?,
            output_proj: proj(q.rvq_dim, q.output_dim, "output_proj")?,
            rvq: FactorizedRvq::new(
                q.rvq_dim,
                q.codebook_size,
                q.codebook_dim,
                &vec![1; q.num_quantizers],
                vb,
            )?,
        })
    }

    /// The encoder's output `[b, input_dim, frames]` to the stages' input `[b, rvq_dim, frames]`.
    pub(super) fn project_in(&self, e: &Tensor) -> Result<Tensor> {
        Ok(match &self.input_proj {
            Some(p) => p.forward(e)?,
            None => e.clone(),
        })
    }

    /// The encoder's output `[b, input_dim, frames]` to codes `[b, n_q, frames]`; each row
    /// `i`'s frames from `valid[i]` on are padding (masked, see
    /// [`FactorizedRvq::encode_masked`]).
    pub(super) fn encode(&self, e: &Tensor, n_q: usize, valid: &[usize]) -> Result<Tensor> {
        let z = self.project_in(e)?;
        let (b, _, frames) = z.dims3()?;
        let mask: Vec<f32> = (0..b)
            .flat_map(|i| (0..frames).map(move |f| if f < valid[i] { 1.0 } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (b, 1, frames), z.device())?;
        let codes = self.rvq.encode_masked(&z, n_q, &mask)?;
        Ok(Tensor::stack(&codes, 1)?)
    }

    /// Codes `[b, k, frames]` (u32) to the decoder's input `[b, output_dim, frames]`.
    pub(super) fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        let k = codes.dim(1)?;
        let rows = (0..k)
            .map(|i| codes.narrow(1, i, 1)?.squeeze(1)?.contiguous())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let emb = self.rvq.decode(&rows)?;
        Ok(match &self.output_proj {
            Some(p) => p.forward(&emb)?,
            None => emb,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn patches_are_channel_major_and_split_inverts_merge() -> Result<()> {
        // 2 channels x 6 frames, patches of 3: channel c*3 + j is channel c at offset j.
        let x = Tensor::arange(0f32, 12.0, &Device::Cpu)?.reshape((1, 2, 6))?;
        let m = merge_patches(&x, 3)?;
        assert_eq!(m.dims(), &[1, 6, 2]);
        let v = m.squeeze(0)?.to_vec2::<f32>()?;
        assert_eq!(v[0], [0.0, 3.0]); // c 0, j 0
        assert_eq!(v[1], [1.0, 4.0]); // c 0, j 1
        assert_eq!(v[3], [6.0, 9.0]); // c 1, j 0
        let back = split_patches(&m, 3)?;
        assert_eq!(back.to_vec3::<f32>()?, x.to_vec3::<f32>()?);
        Ok(())
    }
}

//! `Conv1d` and `ConvTranspose1d`: candle-nn's layers with the same constructors and
//! arguments, running on this crate's tiled CPU kernels ([`super::kernels`]) for `f32` on the
//! CPU and on candle's kernels on every other device or dtype.

use std::sync::Arc;

use candle_core::{DType, Device, Module, Result, Tensor};
pub use candle_nn::{Conv1dConfig, ConvTranspose1dConfig};

use super::kernels::{
    conv1d_f32_fused, Activation, Conv1dShape, ConvTranspose1dShape, Epilogue, TransposedWeights,
};
use crate::dsp::with_cpu_slice;

/// Whether `x` and `w` take the CPU fast path.
pub fn on_fast_path(x: &Tensor, w: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32 && w.dtype() == DType::F32 && x.rank() == 3
}

/// Adds `bias` (`[channels]`) over `[batch, channels, time]`.
fn add_bias(y: Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1))?),
        None => Ok(y),
    }
}

/// `conv1d(x, weight) + bias` for `x` `[batch, in_c, time]` and `weight`
/// `[out_c, in_c / groups, kernel]`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use codec_core::nn::conv1d::{conv1d, Conv1dConfig};
///
/// let x = Tensor::ones((1, 2, 5), candle_core::DType::F32, &Device::Cpu)?;
/// let w = Tensor::ones((3, 2, 3), candle_core::DType::F32, &Device::Cpu)?;
/// let cfg = Conv1dConfig { padding: 1, ..Default::default() };
/// let y = conv1d(&x, &w, None, &cfg)?;
/// assert_eq!(y.dims(), &[1, 3, 5]);
/// assert_eq!(y.get(0)?.get(0)?.to_vec1::<f32>()?, [4.0, 6.0, 6.0, 6.0, 4.0]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn conv1d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    cfg: &Conv1dConfig,
) -> Result<Tensor> {
    if !on_fast_path(x, weight) {
        let y = x.conv1d(weight, cfg.padding, cfg.stride, cfg.dilation, cfg.groups)?;
        return add_bias(y, bias);
    }
    let (batch, in_c, in_len) = x.dims3()?;
    let (out_c, cig, kernel) = weight.dims3()?;
    if cig * cfg.groups.max(1) != in_c {
        candle_core::bail!(
            "conv1d: weight {:?} does not take {in_c} input channels in {} groups",
            weight.dims(),
            cfg.groups
        )
    }
    let shape = Conv1dShape::torch(
        batch,
        in_c,
        out_c,
        in_len,
        kernel,
        cfg.stride,
        cfg.padding,
        cfg.dilation,
        cfg.groups,
    );
    conv1d_cpu(x, weight, bias, &shape, Epilogue::default())
}

/// [`conv1d`] with any padding (`shape.pad_left` / `pad_right` frames of `shape.pad_mode`
/// around the input) and an epilogue, `activation(conv + bias) + residual`, on the CPU kernel:
/// `x` and `weight` `f32` on the CPU, `x`'s sizes those of `shape`, `residual` (if any) the
/// output's.
///
/// # Errors
/// When the tensors are not on the CPU path or do not match `shape`.
pub fn conv1d_padded(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    shape: &Conv1dShape,
    activation: Activation,
    residual: Option<&Tensor>,
) -> Result<Tensor> {
    if !on_fast_path(x, weight) {
        candle_core::bail!("conv1d_padded: f32 tensors on the CPU only")
    }
    if x.dims3()? != (shape.batch, shape.in_c, shape.in_len) {
        candle_core::bail!("conv1d_padded: input {:?} for {shape:?}", x.dims())
    }
    let want = (shape.batch, shape.out_c, shape.out_len());
    if let Some(r) = residual {
        if r.dims3()? != want {
            candle_core::bail!("conv1d_padded: residual {:?}, output {want:?}", r.dims())
        }
    }
    let run = |res: Option<&[f32]>| {
        let epilogue = Epilogue {
            activation,
            residual: res,
        };
        conv1d_cpu(x, weight, bias, shape, epilogue)
    };
    match residual {
        Some(r) => with_cpu_slice::<f32, _>(r, |rs| run(Some(rs))),
        None => run(None),
    }
}

fn conv1d_cpu(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    shape: &Conv1dShape,
    epilogue: Epilogue,
) -> Result<Tensor> {
    let (batch, out_c) = (shape.batch, shape.out_c);
    let shape = *shape;
    let out = with_cpu_slice::<f32, _>(x, |xs| {
        with_cpu_slice::<f32, _>(weight, |ws| match bias {
            Some(b) => with_cpu_slice::<f32, _>(b, |bs| {
                conv1d_f32_fused(xs, ws, Some(bs), &shape, epilogue)
            }),
            None => conv1d_f32_fused(xs, ws, None, &shape, epilogue),
        })
    })?;
    Tensor::from_vec(out, (batch, out_c, shape.out_len()), &Device::Cpu)
}

/// A 1-d convolution layer: weight `[out_c, in_c / groups, kernel]`, optional bias.
///
/// The drop-in for `candle_nn::Conv1d` (same constructor and accessors) on the fast CPU path.
#[derive(Debug, Clone)]
pub struct Conv1d {
    weight: Tensor,
    bias: Option<Tensor>,
    config: Conv1dConfig,
}

impl Conv1d {
    /// A convolution with these weights and arguments.
    pub fn new(weight: Tensor, bias: Option<Tensor>, config: Conv1dConfig) -> Self {
        Self {
            weight,
            bias,
            config,
        }
    }

    /// Reads `vb.weight` `[out_c, in_c / groups, kernel]` and `vb.bias` `[out_c]` (as
    /// `candle_nn::conv1d` does).
    pub fn load(
        in_c: usize,
        out_c: usize,
        kernel: usize,
        config: Conv1dConfig,
        vb: candle_nn::VarBuilder,
    ) -> Result<Self> {
        let weight = vb.get((out_c, in_c / config.groups.max(1), kernel), "weight")?;
        let bias = vb.get(out_c, "bias")?;
        Ok(Self::new(weight, Some(bias), config))
    }

    /// The weight `[out_c, in_c / groups, kernel]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `[out_c]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Padding, stride, dilation and groups.
    pub fn config(&self) -> &Conv1dConfig {
        &self.config
    }
}

impl Module for Conv1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv1d(x, &self.weight, self.bias.as_ref(), &self.config)
    }
}

/// A transposed 1-d convolution layer: weight `[in_c, out_c / groups, kernel]`, optional bias.
///
/// The drop-in for `candle_nn::ConvTranspose1d`. On the CPU the weight is rearranged once at
/// construction for the phase kernel (dilation 1; other dilations use candle's kernel).
#[derive(Debug, Clone)]
pub struct ConvTranspose1d {
    weight: Tensor,
    bias: Option<Tensor>,
    config: ConvTranspose1dConfig,
    phases: Option<Arc<TransposedWeights>>,
}

impl ConvTranspose1d {
    /// A transposed convolution with these weights and arguments.
    ///
    /// # Errors
    /// When the weight is not 3-d or its channels do not split into `config.groups`.
    pub fn new(
        weight: Tensor,
        bias: Option<Tensor>,
        config: ConvTranspose1dConfig,
    ) -> Result<Self> {
        let (in_c, cog, kernel) = weight.dims3()?;
        let phases =
            if weight.device().is_cpu() && weight.dtype() == DType::F32 && config.dilation == 1 {
                let tw = with_cpu_slice::<f32, _>(&weight, |w| {
                    TransposedWeights::new(
                        w,
                        in_c,
                        cog * config.groups,
                        kernel,
                        config.stride,
                        config.groups,
                    )
                })?;
                Some(Arc::new(tw))
            } else {
                None
            };
        Ok(Self {
            weight,
            bias,
            config,
            phases,
        })
    }

    /// The weight `[in_c, out_c / groups, kernel]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `[out_c]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Padding, output padding, stride, dilation and groups.
    pub fn config(&self) -> &ConvTranspose1dConfig {
        &self.config
    }
}

impl Module for ConvTranspose1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with_bias(x, self.bias.as_ref())
    }
}

impl ConvTranspose1d {
    /// The convolution without its bias (a stream adds the bias once its overlaps are summed).
    pub fn forward_unbiased(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with_bias(x, None)
    }

    fn forward_with_bias(&self, x: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let cfg = &self.config;
        let Some(phases) = self
            .phases
            .as_ref()
            .filter(|_| on_fast_path(x, &self.weight))
        else {
            let y = candle_transpose_batched(x, &self.weight, cfg)?;
            return add_bias(y, bias);
        };
        let (batch, in_c, in_len) = x.dims3()?;
        let (_, cog, kernel) = self.weight.dims3()?;
        let shape = ConvTranspose1dShape {
            batch,
            in_c,
            out_c: cog * cfg.groups,
            in_len,
            kernel,
            stride: cfg.stride,
            padding: cfg.padding,
            output_padding: cfg.output_padding,
            groups: cfg.groups,
        };
        let out = with_cpu_slice::<f32, _>(x, |xs| match bias {
            Some(b) => with_cpu_slice::<f32, _>(b, |bs| phases.apply(xs, Some(bs), &shape)),
            None => phases.apply(xs, None, &shape),
        })?;
        Tensor::from_vec(out, (batch, shape.out_c, shape.out_len()), &Device::Cpu)
    }
}

/// candle's transposed convolution, computed without padding and then cut to the frames
/// PyTorch keeps (`padding` off the front, `output_padding` zeros past the end), one batch item
/// at a time on the CPU: candle 0.11's CPU kernel mixes up batch items (items after the first
/// come out wrong).
fn candle_transpose_batched(x: &Tensor, w: &Tensor, cfg: &ConvTranspose1dConfig) -> Result<Tensor> {
    let run = |x: &Tensor| x.conv_transpose1d(w, 0, 0, cfg.stride, cfg.dilation, cfg.groups);
    let b = x.dim(0)?;
    let full = if b == 1 || !x.device().is_cpu() {
        run(x)?
    } else {
        let items = (0..b)
            .map(|i| run(&x.narrow(0, i, 1)?.contiguous()?))
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&items, 0)?
    };
    let full_len = full.dim(2)?;
    let out_len = (full_len + cfg.output_padding).saturating_sub(2 * cfg.padding);
    let take = out_len.min(full_len.saturating_sub(cfg.padding));
    let y = full.narrow(2, cfg.padding.min(full_len), take)?;
    if take < out_len {
        y.pad_with_zeros(2, 0, out_len - take)
    } else {
        Ok(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn conv1d_agrees_with_candle() -> Result<()> {
        let dev = Device::Cpu;
        for (groups, stride, dilation, padding) in [(1, 1, 1, 3), (2, 2, 1, 0), (1, 1, 3, 3)] {
            let x = Tensor::randn(0f32, 1.0, (2, 8, 77), &dev)?;
            let w = Tensor::randn(0f32, 1.0, (6, 8 / groups, 7), &dev)?;
            let b = Tensor::randn(0f32, 1.0, 6, &dev)?;
            let cfg = Conv1dConfig {
                padding,
                stride,
                dilation,
                groups,
                cudnn_fwd_algo: None,
            };
            let want = candle_nn::Conv1d::new(w.clone(), Some(b.clone()), cfg).forward(&x)?;
            let got = Conv1d::new(w, Some(b), cfg).forward(&x)?;
            assert_eq!(got.dims(), want.dims());
            assert!(max_diff(&got, &want) < 1e-4);
        }
        Ok(())
    }

    #[test]
    fn conv_transpose1d_agrees_with_candle_item_by_item() -> Result<()> {
        let dev = Device::Cpu;
        for (stride, padding, output_padding, kernel) in [(2, 0, 0, 4), (5, 2, 1, 10), (4, 0, 0, 3)]
        {
            let x = Tensor::randn(0f32, 1.0, (3, 8, 13), &dev)?;
            let w = Tensor::randn(0f32, 1.0, (8, 5, kernel), &dev)?;
            let b = Tensor::randn(0f32, 1.0, 5, &dev)?;
            let cfg = ConvTranspose1dConfig {
                padding,
                output_padding,
                stride,
                dilation: 1,
                groups: 1,
            };
            let got = ConvTranspose1d::new(w.clone(), Some(b.clone()), cfg)?.forward(&x)?;
            let want = add_bias(candle_transpose_batched(&x, &w, &cfg)?, Some(&b))?;
            assert_eq!(got.dims(), want.dims());
            assert!(max_diff(&got, &want) < 1e-4);
        }
        Ok(())
    }

    /// Bit for bit: a batch gives each item what it gets alone (the tiles' shapes, and so the
    /// order of every sum, do not depend on the batch), for short inputs (one tile, maybe
    /// split by channels) and long ones (many tiles).
    #[test]
    fn batch_items_get_the_values_they_get_alone() -> Result<()> {
        let dev = Device::Cpu;
        for len in [3, 40, 5000] {
            let x = Tensor::randn(0f32, 1.0, (4, 64, len), &dev)?;
            let w = Tensor::randn(0f32, 0.1, (96, 64, 3), &dev)?;
            let wt = Tensor::randn(0f32, 0.1, (64, 48, 8), &dev)?;
            let conv = Conv1d::new(
                w,
                None,
                Conv1dConfig {
                    padding: 1,
                    ..Default::default()
                },
            );
            let cfg = ConvTranspose1dConfig {
                padding: 0,
                output_padding: 0,
                stride: 4,
                dilation: 1,
                groups: 1,
            };
            let convtr = ConvTranspose1d::new(wt, None, cfg)?;
            for layer in [&conv as &dyn Module, &convtr as &dyn Module] {
                let batch = layer.forward(&x)?;
                for i in 0..4 {
                    let alone = layer.forward(&x.narrow(0, i, 1)?)?;
                    let a = alone.flatten_all()?.to_vec1::<f32>()?;
                    let b = batch.narrow(0, i, 1)?.flatten_all()?.to_vec1::<f32>()?;
                    assert!(
                        a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()),
                        "{len}"
                    );
                }
            }
        }
        Ok(())
    }

    #[test]
    fn non_float32_inputs_take_candles_path() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (1, 4, 20), &dev)?;
        let w = Tensor::randn(0f32, 1.0, (3, 4, 3), &dev)?;
        let cfg = Conv1dConfig::default();
        let want = conv1d(&x, &w, None, &cfg)?;
        let got = conv1d(
            &x.to_dtype(DType::F64)?,
            &w.to_dtype(DType::F64)?,
            None,
            &cfg,
        )?;
        assert_eq!(got.dtype(), DType::F64);
        assert!(max_diff(&got.to_dtype(DType::F32)?, &want) < 1e-4);
        Ok(())
    }
}

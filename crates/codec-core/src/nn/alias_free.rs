//! BigVGAN's anti-aliased activation (`alias_free_torch.Activation1d`), as X-Codec2's acoustic
//! encoder (BigCodec's) uses it around SnakeBeta: the signal is upsampled 2x with a 12-tap
//! low-pass filter, the activation applied at the higher rate, and the result filtered and
//! decimated back, so that the nonlinearity's harmonics above the original Nyquist rate do not
//! fold back.
//!
//! Upsampling (`UpSample1d(2, 12)`): replicate padding of 5 on each side, a transposed
//! convolution with the filter (stride 2, one filter for every channel) times 2, 15 samples cut
//! from each end. Downsampling (`DownSample1d(2, 12)`): replicate padding 5 on the left and 6 on
//! the right, a stride-2 convolution with the filter. Both filters are stored in the checkpoint
//! (`upsample.filter`, `downsample.lowpass.filter`, `[1, 1, 12]`). Computed as shifted,
//! scaled copies of the signal (the filters are shared by all channels), on any device.

use candle_core::{Result, Tensor, D};
use candle_nn::VarBuilder;

use super::conv::pad1d;
use super::{PadMode, Snake1d};

/// Taps of the published filters.
pub const FILTER_TAPS: usize = 12;

/// SnakeBeta between 2x anti-aliased upsampling and downsampling.
#[derive(Debug, Clone)]
pub struct AntiAliasedSnake {
    act: Snake1d,
    up: Vec<f64>,
    down: Vec<f64>,
}

impl AntiAliasedSnake {
    /// `channels` channels; weights at `vb.act.{alpha,beta}` (log scale),
    /// `vb.upsample.filter` and `vb.downsample.lowpass.filter`.
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        let taps = |vb: VarBuilder| -> Result<Vec<f64>> {
            let f = vb.get((1, 1, FILTER_TAPS), "filter")?;
            f.flatten_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_vec1()
        };
        Ok(Self {
            act: Snake1d::beta(channels, vb.pp("act"))?,
            up: taps(vb.pp("upsample"))?,
            down: taps(vb.pp("downsample").pp("lowpass"))?,
        })
    }

    /// `x`: `[batch, channels, time]` → the same shape.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let up = self.upsample(x)?;
        let act = self.act.forward(&up)?;
        self.downsample(&act)
    }

    /// `[.., L]` → `[.., 2L]`: output `2j` is `2 sum_i f[2i + 1] xp[j + 7 - i]`, output
    /// `2j + 1` is `2 sum_i f[2i] xp[j + 8 - i]` (the transposed convolution's two phases,
    /// after the cut of 15), `xp` the input padded by 5.
    fn upsample(&self, x: &Tensor) -> Result<Tensor> {
        let len = x.dim(D::Minus1)?;
        let xp = pad1d(x, 5, 5, PadMode::Replicate)?;
        let phase = |first_tap: usize, start: usize| -> Result<Tensor> {
            let mut acc: Option<Tensor> = None;
            for i in 0..FILTER_TAPS / 2 {
                let term =
                    (xp.narrow(D::Minus1, start - i, len)? * (2.0 * self.up[2 * i + first_tap]))?;
                acc = Some(match acc {
                    Some(a) => (a + term)?,
                    None => term,
                });
            }
            Ok(acc.expect("six taps"))
        };
        let even = phase(1, 7)?;
        let odd = phase(0, 8)?;
        let mut dims = x.dims().to_vec();
        *dims.last_mut().expect("3-d") = 2 * len;
        Tensor::stack(&[even, odd], D::Minus1)?.reshape(dims)
    }

    /// `[.., 2L]` → `[.., L]`: output `j` is `sum_k f[k] zp[2j + k]`, `zp` the input padded by
    /// 5 on the left and 6 on the right.
    fn downsample(&self, z: &Tensor) -> Result<Tensor> {
        let len2 = z.dim(D::Minus1)?;
        let half = len2 / 2;
        let zp = pad1d(z, 5, 6, PadMode::Replicate)?;
        let mut lead = z.dims().to_vec();
        lead.pop();
        let mut pairs = lead.clone();
        pairs.extend([half, 2]);
        let mut acc: Option<Tensor> = None;
        for (k, &f) in self.down.iter().enumerate() {
            let taps = zp
                .narrow(D::Minus1, k, 2 * half)?
                .reshape(pairs.as_slice())?
                .narrow(D::Minus1, 0, 1)?
                .squeeze(D::Minus1)?;
            let term = (taps * f)?;
            acc = Some(match acc {
                Some(a) => (a + term)?,
                None => term,
            });
        }
        Ok(acc.expect("twelve taps"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    /// The direct definition: pad, transposed convolution / strided convolution, as PyTorch's
    /// `conv_transpose1d` and `conv1d` compute them, on one row.
    fn reference(x: &[f64], up: &[f64], down: &[f64], act: impl Fn(f64) -> f64) -> Vec<f64> {
        let n = x.len();
        let rep = |v: &[f64], l: usize, r: usize| -> Vec<f64> {
            let mut o = vec![v[0]; l];
            o.extend_from_slice(v);
            o.extend(std::iter::repeat_n(v[v.len() - 1], r));
            o
        };
        let xp = rep(x, 5, 5);
        let full_len = (xp.len() - 1) * 2 + FILTER_TAPS;
        let mut full = vec![0.0; full_len];
        for (m, &v) in xp.iter().enumerate() {
            for (k, &f) in up.iter().enumerate() {
                full[2 * m + k] += 2.0 * v * f;
            }
        }
        let upsampled: Vec<f64> = full[15..full_len - 15].iter().map(|&v| act(v)).collect();
        assert_eq!(upsampled.len(), 2 * n);
        let zp = rep(&upsampled, 5, 6);
        (0..n)
            .map(|j| (0..FILTER_TAPS).map(|k| down[k] * zp[2 * j + k]).sum())
            .collect()
    }

    #[test]
    fn matches_the_convolutions() -> Result<()> {
        let dev = Device::Cpu;
        let up: Vec<f32> = (0..12).map(|i| ((i as f32) * 0.7).sin() * 0.2).collect();
        let down: Vec<f32> = (0..12).map(|i| ((i as f32) * 0.3).cos() * 0.15).collect();
        let mut w = HashMap::new();
        w.insert("act.alpha".to_string(), Tensor::new(&[0.2f32, -0.3], &dev)?);
        w.insert("act.beta".to_string(), Tensor::new(&[0.1f32, 0.4], &dev)?);
        w.insert(
            "upsample.filter".to_string(),
            Tensor::new(up.as_slice(), &dev)?.reshape((1, 1, 12))?,
        );
        w.insert(
            "downsample.lowpass.filter".to_string(),
            Tensor::new(down.as_slice(), &dev)?.reshape((1, 1, 12))?,
        );
        let act = AntiAliasedSnake::new(2, VarBuilder::from_tensors(w, DType::F32, &dev))?;
        let x = Tensor::randn(0f32, 1.0, (1, 2, 23), &dev)?;
        let got = act.forward(&x)?.squeeze(0)?.to_vec2::<f32>()?;
        let rows = x.squeeze(0)?.to_vec2::<f32>()?;
        let up64: Vec<f64> = up.iter().map(|&v| v as f64).collect();
        let down64: Vec<f64> = down.iter().map(|&v| v as f64).collect();
        for (c, (row, got)) in rows.iter().zip(&got).enumerate() {
            let (alpha, beta) = ([0.2f64, -0.3][c].exp(), [0.1f64, 0.4][c].exp());
            let snake = |v: f64| v + (alpha * v).sin().powi(2) / (beta + 1e-9);
            let x64: Vec<f64> = row.iter().map(|&v| v as f64).collect();
            let want = reference(&x64, &up64, &down64, snake);
            for (j, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g as f64 - w).abs() < 1e-5,
                    "channel {c} sample {j}: {g} vs {w}"
                );
            }
        }
        Ok(())
    }
}

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
//! (`upsample.filter`, `downsample.lowpass.filter`, `[1, 1, 12]`). On the CPU with f32 input
//! the three steps run fused, one row at a time (the tensor form makes some thirty passes over
//! a signal twice the input's length: 30 s of X-Codec2's 47 s per 10 s of audio); elsewhere as
//! shifted, scaled copies of the signal (the filters are shared by all channels).

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor, D};
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
    fused: FusedCpu,
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
        let act = Snake1d::beta(channels, vb.pp("act"))?;
        let up = taps(vb.pp("upsample"))?;
        let down = taps(vb.pp("downsample").pp("lowpass"))?;
        let (alpha, inv) = act.parameters()?;
        let fused = FusedCpu {
            alpha,
            inv,
            up: up.iter().map(|&v| v as f32).collect(),
            down: down.iter().map(|&v| v as f32).collect(),
        };
        Ok(Self {
            act,
            up,
            down,
            fused,
        })
    }

    /// `x`: `[batch, channels, time]` → the same shape.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 && x.rank() == 3 {
            return x.apply_op1_no_bwd(&self.fused);
        }
        self.forward_ops(x)
    }

    /// The same as tensor operations (any device and dtype).
    pub fn forward_ops(&self, x: &Tensor) -> Result<Tensor> {
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

/// The fused CPU form: per row, replicate padding, the two upsampling phases, SnakeBeta, the
/// padded stride-2 filter, in the tensor form's order of operations.
#[derive(Debug, Clone)]
struct FusedCpu {
    alpha: Vec<f32>,
    inv: Vec<f32>,
    up: Vec<f32>,
    down: Vec<f32>,
}

impl FusedCpu {
    /// One channel's row: `src` (`len`) → `dst` (`len`), `buf` scratch of `2 len + 11`.
    fn row(&self, c: usize, src: &[f32], dst: &mut [f32], xp: &mut Vec<f32>, z: &mut Vec<f32>) {
        let len = src.len();
        if len == 0 {
            return;
        }
        xp.clear();
        xp.extend(std::iter::repeat_n(src[0], 5));
        xp.extend_from_slice(src);
        xp.extend(std::iter::repeat_n(src[len - 1], 5));
        let (a, inv) = (self.alpha[c], self.inv[c]);
        let snake = |v: f32| {
            let s = (a * v).sin();
            v + inv * (s * s)
        };
        // z: the activated 2x signal with the downsampler's padding (5 left, 6 right).
        z.clear();
        z.resize(2 * len + 11, 0.0);
        let half = FILTER_TAPS / 2;
        for j in 0..len {
            let (mut even, mut odd) = (0f32, 0f32);
            for i in 0..half {
                even += xp[j + 7 - i] * (2.0 * self.up[2 * i + 1]);
                odd += xp[j + 8 - i] * (2.0 * self.up[2 * i]);
            }
            z[5 + 2 * j] = snake(even);
            z[6 + 2 * j] = snake(odd);
        }
        let (first, last) = (z[5], z[4 + 2 * len]);
        z[..5].iter_mut().for_each(|v| *v = first);
        z[5 + 2 * len..].iter_mut().for_each(|v| *v = last);
        for (j, d) in dst.iter_mut().enumerate() {
            let window = &z[2 * j..2 * j + FILTER_TAPS];
            *d = window.iter().zip(&self.down).map(|(v, f)| v * f).sum();
        }
    }
}

impl CustomOp1 for FusedCpu {
    fn name(&self) -> &'static str {
        "anti-aliased-snake"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, t) = layout.shape().dims3()?;
        if c != self.alpha.len() {
            candle_core::bail!(
                "anti-aliased snake over {} channels got {c}",
                self.alpha.len()
            )
        }
        let data = storage.as_slice::<f32>()?;
        let src: std::borrow::Cow<[f32]> = match layout.contiguous_offsets() {
            Some((start, end)) => std::borrow::Cow::Borrowed(&data[start..end]),
            None => {
                let (strides, off) = (layout.stride(), layout.start_offset());
                let mut v = Vec::with_capacity(b * c * t);
                for bi in 0..b {
                    for ci in 0..c {
                        for ti in 0..t {
                            v.push(data[off + bi * strides[0] + ci * strides[1] + ti * strides[2]]);
                        }
                    }
                }
                std::borrow::Cow::Owned(v)
            }
        };
        let mut out = vec![0f32; b * c * t];
        if t > 0 {
            let rows = b * c;
            let threads = candle_core::utils::get_num_threads().clamp(1, rows.max(1));
            let per = rows.div_ceil(threads);
            std::thread::scope(|scope| {
                for (chunk, (dst, srcs)) in
                    out.chunks_mut(per * t).zip(src.chunks(per * t)).enumerate()
                {
                    scope.spawn(move || {
                        let (mut xp, mut z) = (Vec::new(), Vec::new());
                        for (i, (d, s)) in dst.chunks_mut(t).zip(srcs.chunks(t)).enumerate() {
                            self.row((chunk * per + i) % c, s, d, &mut xp, &mut z);
                        }
                    });
                }
            });
        }
        Ok((CpuStorage::F32(out), Shape::from((b, c, t))))
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
        // The fused CPU kernel and the tensor form agree, strided input included.
        let ops = act.forward_ops(&x)?.squeeze(0)?.to_vec2::<f32>()?;
        let xt = x.transpose(1, 2)?.contiguous()?.transpose(1, 2)?;
        let strided = act.forward(&xt)?.squeeze(0)?.to_vec2::<f32>()?;
        assert_eq!(strided, got);
        for (g, o) in got.iter().flatten().zip(ops.iter().flatten()) {
            assert!((g - o).abs() < 1e-5, "fused {g} vs tensor ops {o}");
        }
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

//! Forward STFT: on the CPU a real FFT in float64; elsewhere framing by reshapes and a matmul
//! with a DFT basis, so that it runs on every device.

use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor, WithDType, D};
use realfft::{RealFftPlanner, RealToComplex};

use super::{par_items, with_cpu_slice};

/// Short-time Fourier transform with a fixed window, `n_fft` a multiple of `hop`.
#[derive(Clone)]
pub struct Stft {
    n_fft: usize,
    hop: usize,
    window: Vec<f32>,
    /// `[n_fft, 2 * bins]`: window folded into cos (real) then -sin (imaginary) columns, for
    /// the matmul path; built at construction for devices other than the CPU, on demand there.
    basis: Option<Tensor>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl std::fmt::Debug for Stft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stft")
            .field("n_fft", &self.n_fft)
            .field("hop", &self.hop)
            .finish_non_exhaustive()
    }
}

impl Stft {
    /// An STFT of `n_fft` points every `hop` samples with `window` (`n_fft` long).
    pub fn new(n_fft: usize, hop: usize, window: &[f32], device: &Device) -> Result<Self> {
        if window.len() != n_fft || hop == 0 || !n_fft.is_multiple_of(hop) {
            candle_core::bail!(
                "stft: window of {} values, n_fft {n_fft} must be a multiple of hop {hop}",
                window.len()
            )
        }
        let basis = if device.is_cpu() {
            None
        } else {
            Some(dft_basis(n_fft, window, device)?)
        };
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
        Ok(Self {
            n_fft,
            hop,
            window: window.to_vec(),
            basis,
            fft,
        })
    }

    /// Frequency bins per frame (`n_fft / 2 + 1`).
    pub fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Frames `F` of a signal padded as [`Stft::forward_same`] pads it.
    pub fn frames_same(&self, len: usize) -> usize {
        len.div_ceil(self.hop)
    }

    /// "Same" framing: the signal `[batch, samples]` is zero-padded on the right to a multiple of
    /// `hop` and by `(n_fft - hop) / 2` on both sides; frame `f` starts at `f * hop` of that.
    /// Returns the real and imaginary parts, each `[batch, frames, bins]`, in the input's dtype.
    ///
    /// On the CPU this is a real FFT in float64; elsewhere [`Stft::forward_same_dft`].
    pub fn forward_same(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        if x.device().is_cpu() {
            self.forward_same_fft(x)
        } else {
            self.forward_same_dft(x)
        }
    }

    /// [`Stft::forward_same`] by FFT (CPU tensors only).
    pub fn forward_same_fft(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let spec = match x.dtype() {
            DType::F64 => self.fft_same::<f64>(x)?,
            dtype => self.fft_same::<f32>(x)?.to_dtype(dtype)?,
        };
        let bins = self.bins();
        Ok((spec.narrow(2, 0, bins)?, spec.narrow(2, bins, bins)?))
    }

    /// `[batch, frames, 2 * bins]`: the real parts of each frame, then its imaginary parts.
    fn fft_same<T: WithDType>(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, len) = x.dims2()?;
        let frames = self.frames_same(len);
        let (n_fft, hop, bins) = (self.n_fft, self.hop, self.bins());
        let side = (n_fft - hop) / 2;
        let mut out = vec![T::zero(); batch * frames * 2 * bins];
        with_cpu_slice::<T, _>(x, |x| {
            par_items(&mut out, 2 * bins, 16, |first, chunk| {
                let mut input = self.fft.make_input_vec();
                let mut spectrum = self.fft.make_output_vec();
                let mut scratch = self.fft.make_scratch_vec();
                for (i, row) in chunk.chunks_exact_mut(2 * bins).enumerate() {
                    let (b, f) = ((first + i) / frames, (first + i) % frames);
                    let signal = &x[b * len..(b + 1) * len];
                    // Sample n of the frame is padded[f * hop + n] = signal[f * hop + n - side].
                    for (n, v) in input.iter_mut().enumerate() {
                        let at = (f * hop + n).wrapping_sub(side);
                        let s = signal.get(at).map_or(0.0, |s| s.to_f64());
                        *v = s * self.window[n] as f64;
                    }
                    self.fft
                        .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                        .expect("buffer sizes come from the plan");
                    let (re, im) = row.split_at_mut(bins);
                    for (k, c) in spectrum.iter().enumerate() {
                        re[k] = T::from_f64(c.re);
                        im[k] = T::from_f64(c.im);
                    }
                }
            });
            Ok(())
        })?;
        Tensor::from_vec(out, (batch, frames, 2 * bins), &Device::Cpu)
    }

    /// [`Stft::forward_same`] by framing and a matmul with a DFT basis, on any device.
    pub fn forward_same_dft(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (batch, len) = x.dims2()?;
        let frames = self.frames_same(len);
        let side = (self.n_fft - self.hop) / 2;
        let right = frames * self.hop - len + (self.n_fft - self.hop - side);
        let padded = x.pad_with_zeros(D::Minus1, side, right)?;
        // padded has (frames + r - 1) * hop samples, r = n_fft / hop; frame f is blocks f..f+r.
        let r = self.n_fft / self.hop;
        let blocks = padded.reshape((batch, frames + r - 1, self.hop))?;
        let parts = (0..r)
            .map(|i| blocks.narrow(1, i, frames))
            .collect::<Result<Vec<_>>>()?;
        let framed = Tensor::cat(&parts, D::Minus1)?; // [b, frames, n_fft]
        let basis = match &self.basis {
            Some(b) if b.device().same_device(x.device()) => b.clone(),
            _ => dft_basis(self.n_fft, &self.window, x.device())?,
        };
        let spec = framed
            .to_dtype(basis.dtype())?
            .broadcast_matmul(&basis)?
            .to_dtype(x.dtype())?; // [b, frames, 2 * bins]
        let bins = self.bins();
        Ok((spec.narrow(2, 0, bins)?, spec.narrow(2, bins, bins)?))
    }
}

/// The `[n_fft, 2 * bins]` DFT basis with the window folded in.
fn dft_basis(n_fft: usize, window: &[f32], device: &Device) -> Result<Tensor> {
    let bins = n_fft / 2 + 1;
    let mut basis = vec![0f64; n_fft * 2 * bins];
    for n in 0..n_fft {
        for k in 0..bins {
            let phase = 2.0 * std::f64::consts::PI * ((k * n) % n_fft) as f64 / n_fft as f64;
            let w = window[n] as f64;
            basis[n * 2 * bins + k] = w * phase.cos();
            basis[n * 2 * bins + bins + k] = -w * phase.sin();
        }
    }
    // The DFT-by-matmul sums n_fft products; in float32 its rounding error is large next to
    // the quiet bins that a log-magnitude front end magnifies, so it runs in float64
    // wherever the device has it (Metal has not).
    let dtype = if device.is_metal() {
        DType::F32
    } else {
        DType::F64
    };
    Tensor::from_vec(basis, (n_fft, 2 * bins), device)?.to_dtype(dtype)
}

/// A periodic Hann window (`torch.hann_window(n)`).
pub fn hann_window(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::{Istft, IstftPadding};

    #[test]
    fn same_framing_round_trips_through_the_istft() -> Result<()> {
        let (n_fft, hop) = (64, 16);
        let win = hann_window(n_fft);
        let stft = Stft::new(n_fft, hop, &win, &Device::Cpu)?;
        let istft = Istft::new(n_fft, hop, IstftPadding::Same, &win, &Device::Cpu)?;
        let x: Vec<f32> = (0..333).map(|i| ((i as f32) * 0.07).sin()).collect();
        let t = Tensor::from_vec(x.clone(), (1, 333), &Device::Cpu)?;
        let (re, im) = stft.forward_same(&t)?;
        assert_eq!(re.dims(), &[1, 21, 33]);
        let y = istft.forward(&re, &im)?.squeeze(0)?.to_vec1::<f32>()?;
        assert_eq!(y.len(), 21 * hop);
        for i in 0..333 {
            assert!(
                (y[i] - x[i]).abs() < 1e-4,
                "sample {i}: {} vs {}",
                y[i],
                x[i]
            );
        }
        Ok(())
    }

    /// A deterministic, speech-like test signal with quiet stretches (where the log-magnitude
    /// front end looks closest).
    fn signal(batch: usize, len: usize) -> Vec<f32> {
        (0..batch * len)
            .map(|i| {
                let (b, t) = ((i / len) as f32, (i % len) as f32);
                let env = if (i % len) % 3000 < 1000 { 1e-3 } else { 0.5 };
                env * ((t * (0.031 + 0.01 * b)).sin()
                    + 0.4 * (t * 0.173).cos()
                    + 0.1 * (t * 1.37).sin())
            })
            .collect()
    }

    #[test]
    fn fft_path_matches_the_dft_matmul() -> Result<()> {
        for (n_fft, hop, batch, len) in [(64, 16, 2, 333), (1920, 480, 2, 24_007), (30, 10, 1, 5)] {
            let stft = Stft::new(n_fft, hop, &hann_window(n_fft), &Device::Cpu)?;
            let x = Tensor::from_vec(signal(batch, len), (batch, len), &Device::Cpu)?;
            for x in [x.clone(), x.to_dtype(DType::F64)?] {
                let (re, im) = stft.forward_same_fft(&x)?;
                let (re_d, im_d) = stft.forward_same_dft(&x)?;
                assert_eq!(re.dims(), re_d.dims());
                assert_eq!(re.dtype(), x.dtype());
                let scale = re_d.abs()?.max_keepdim(2)?.max_keepdim(1)?.flatten_all()?;
                let scale = scale.to_dtype(DType::F64)?.max(0)?.to_scalar::<f64>()?;
                for (a, b) in [(&re, &re_d), (&im, &im_d)] {
                    let diff = (a.to_dtype(DType::F64)? - b.to_dtype(DType::F64)?)?
                        .abs()?
                        .flatten_all()?
                        .max(0)?
                        .to_scalar::<f64>()?;
                    // float32 output: its rounding; float64: the matmul's summation error.
                    let bound = if x.dtype() == DType::F64 { 1e-12 } else { 1e-6 } * scale;
                    assert!(
                        diff <= bound,
                        "n_fft {n_fft}, {:?}: max diff {diff:e} (scale {scale})",
                        x.dtype()
                    );
                }
            }
        }
        Ok(())
    }
}

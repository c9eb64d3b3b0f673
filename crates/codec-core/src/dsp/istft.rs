//! Inverse STFT: on the CPU a real inverse FFT in float64 and an overlap-add; elsewhere built
//! from candle ops (a matmul with an inverse-DFT basis and an overlap-add), so that it runs on
//! every device.

use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor, WithDType, D};
use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner};
use serde::{Deserialize, Serialize};

use super::{par_items, with_cpu_slice};

/// Where the frames sit relative to the signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IstftPadding {
    /// Vocos' "same": trims `(win - hop) / 2` at each end, so `frames * hop` samples come out.
    Same,
    /// `torch.istft(center=True)`: trims `n_fft / 2` at each end.
    Center,
}

/// Inverse STFT with a fixed window, `n_fft == win_length`.
#[derive(Clone)]
pub struct Istft {
    n_fft: usize,
    hop: usize,
    padding: IstftPadding,
    window: Vec<f32>,
    /// `[2 * bins, n_fft]`: rows for the real parts, then for the imaginary parts, with the
    /// synthesis window and the 1/N of `irfft(norm="backward")` folded in. For the matmul path:
    /// built at construction for devices other than the CPU, on demand there.
    basis: Option<Tensor>,
    window_sq: Vec<f64>,
    ifft: Arc<dyn ComplexToReal<f64>>,
}

impl std::fmt::Debug for Istft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Istft")
            .field("n_fft", &self.n_fft)
            .field("hop", &self.hop)
            .field("padding", &self.padding)
            .finish_non_exhaustive()
    }
}

impl Istft {
    /// `window` has `n_fft` values (e.g. the checkpoint's `head.istft.window`).
    pub fn new(
        n_fft: usize,
        hop: usize,
        padding: IstftPadding,
        window: &[f32],
        device: &Device,
    ) -> Result<Self> {
        if window.len() != n_fft || hop == 0 || hop > n_fft {
            candle_core::bail!(
                "istft: window of {} values for n_fft {n_fft}, hop {hop}",
                window.len()
            )
        }
        let basis = if device.is_cpu() {
            None
        } else {
            Some(idft_basis(n_fft, window, device)?)
        };
        let window_sq = window.iter().map(|&w| (w as f64) * (w as f64)).collect();
        let ifft = RealFftPlanner::<f64>::new().plan_fft_inverse(n_fft);
        Ok(Self {
            n_fft,
            hop,
            padding,
            window: window.to_vec(),
            basis,
            window_sq,
            ifft,
        })
    }

    /// FFT size.
    pub fn n_fft(&self) -> usize {
        self.n_fft
    }

    /// Samples between frames.
    pub fn hop_length(&self) -> usize {
        self.hop
    }

    /// Output samples for `frames` STFT frames.
    pub fn output_len(&self, frames: usize) -> usize {
        let full = (frames.max(1) - 1) * self.hop + self.n_fft;
        full.saturating_sub(2 * self.trim())
    }

    fn trim(&self) -> usize {
        match self.padding {
            IstftPadding::Same => (self.n_fft - self.hop) / 2,
            IstftPadding::Center => self.n_fft / 2,
        }
    }

    /// Spectrum given as real and imaginary parts, both `[batch, frames, bins]`, → `[batch, samples]`.
    ///
    /// On the CPU this is an inverse FFT in float64 ([`Istft::forward_fft`]); elsewhere
    /// [`Istft::forward_dft`].
    pub fn forward(&self, re: &Tensor, im: &Tensor) -> Result<Tensor> {
        if re.device().is_cpu() {
            self.forward_fft(re, im)
        } else {
            self.forward_dft(re, im)
        }
    }

    /// [`Istft::forward`] by inverse FFT and overlap-add in float64 (CPU tensors only); the
    /// result has the input's dtype.
    pub fn forward_fft(&self, re: &Tensor, im: &Tensor) -> Result<Tensor> {
        let (batch, frames, bins) = re.dims3()?;
        if im.dims() != re.dims() || bins != self.n_fft / 2 + 1 {
            candle_core::bail!(
                "istft: spectrum {:?} / {:?}, expected [batch, frames, {}]",
                re.dims(),
                im.dims(),
                self.n_fft / 2 + 1
            )
        }
        match re.dtype() {
            DType::F64 => with_cpu_slice::<f64, _>(re, |re| {
                with_cpu_slice::<f64, _>(im, |im| {
                    self.synthesize::<f64>(batch, frames, |t, spec| {
                        let row = t * bins..(t + 1) * bins;
                        for ((c, &r), &i) in spec.iter_mut().zip(&re[row.clone()]).zip(&im[row]) {
                            *c = Complex::new(r, i);
                        }
                    })
                })
            }),
            dtype => with_cpu_slice::<f32, _>(re, |re| {
                with_cpu_slice::<f32, _>(im, |im| {
                    self.synthesize::<f32>(batch, frames, |t, spec| {
                        let row = t * bins..(t + 1) * bins;
                        for ((c, &r), &i) in spec.iter_mut().zip(&re[row.clone()]).zip(&im[row]) {
                            *c = Complex::new(r as f64, i as f64);
                        }
                    })
                })
            })?
            .to_dtype(dtype),
        }
    }

    /// Overlap-add synthesis on the CPU: `spectrum(t, out)` writes frame `t`'s `bins` values
    /// (`t` counts frames over the whole batch, `b * frames + f`), and the windowed inverse FFTs
    /// are summed and divided by the window envelope in float64. → `[batch, samples]` of `T`.
    ///
    /// The output is split into stretches of samples that run in parallel, each summing the
    /// frames that overlap it (those at a stretch's edges are transformed twice).
    pub(crate) fn synthesize<T: WithDType>(
        &self,
        batch: usize,
        frames: usize,
        spectrum: impl Fn(usize, &mut [Complex<f64>]) + Sync,
    ) -> Result<Tensor> {
        let (n_fft, hop) = (self.n_fft, self.hop);
        let trim = self.trim();
        let len = self.output_len(frames);
        let envelope = self.envelope(frames, trim, len)?;
        let scale = 1.0 / n_fft as f64;
        let window: Vec<f64> = self.window.iter().map(|&w| w as f64 * scale).collect();
        let edges = n_fft.is_multiple_of(2);
        let mut out = vec![T::zero(); batch * len];
        par_items(&mut out, 1, 8 * n_fft, |first, chunk| {
            let mut spec = self.ifft.make_input_vec();
            let mut frame = self.ifft.make_output_vec();
            let mut scratch = self.ifft.make_scratch_vec();
            let mut acc = Vec::new();
            let mut pos = first;
            let mut rest = chunk;
            while !rest.is_empty() {
                // One batch item's stretch [lo, hi) of output samples.
                let (b, lo) = (pos / len, pos % len);
                let hi = len.min(lo + rest.len());
                let (here, next) = rest.split_at_mut(hi - lo);
                // Its samples in the untrimmed signal, and the frames that overlap them.
                let (start, end) = (lo + trim, hi + trim);
                let t0 = (start + 1).saturating_sub(n_fft).div_ceil(hop);
                let t1 = frames.min(end.div_ceil(hop));
                acc.clear();
                acc.resize(end - start, 0f64);
                for t in t0..t1 {
                    spectrum(b * frames + t, &mut spec);
                    // irfft ignores the imaginary parts of DC and Nyquist, as pocketfft does.
                    spec[0].im = 0.0;
                    if edges {
                        spec[n_fft / 2].im = 0.0;
                    }
                    self.ifft
                        .process_with_scratch(&mut spec, &mut frame, &mut scratch)
                        .expect("buffer sizes come from the plan");
                    let (a, z) = (start.max(t * hop), end.min(t * hop + n_fft));
                    for n in a..z {
                        let i = n - t * hop;
                        acc[n - start] += frame[i] * window[i];
                    }
                }
                for (i, o) in here.iter_mut().enumerate() {
                    *o = T::from_f64(acc[i] / envelope[lo + i]);
                }
                pos += hi - lo;
                rest = next;
            }
        });
        Tensor::from_vec(out, (batch, len), &Device::Cpu)
    }

    /// [`Istft::forward`] by a matmul with an inverse-DFT basis and an overlap-add, on any
    /// device.
    pub fn forward_dft(&self, re: &Tensor, im: &Tensor) -> Result<Tensor> {
        let (batch, frames, _) = re.dims3()?;
        let spec = Tensor::cat(&[re, im], D::Minus1)?;
        let basis = match &self.basis {
            Some(b) if b.device().same_device(re.device()) => b.clone(),
            _ => idft_basis(self.n_fft, &self.window, re.device())?,
        };
        let windowed = spec.broadcast_matmul(&basis.to_dtype(spec.dtype())?)?; // [b, t, n_fft]
        let y = self.overlap_add(&windowed, batch, frames)?;
        let trim = self.trim();
        let len = self.output_len(frames);
        let y = y.narrow(1, trim, len)?;
        let envelope: Vec<f32> = self
            .envelope(frames, trim, len)?
            .iter()
            .map(|&e| e as f32)
            .collect();
        let envelope = Tensor::from_vec(envelope, (1, len), y.device())?.to_dtype(y.dtype())?;
        y.broadcast_div(&envelope)
    }

    /// Sum frames `[b, t, n_fft]` placed `hop` apart → `[b, (t - 1) * hop + n_fft]` (or longer).
    fn overlap_add(&self, frames_t: &Tensor, batch: usize, frames: usize) -> Result<Tensor> {
        let hop = self.hop;
        let parts = self.n_fft.div_ceil(hop);
        let padded = frames_t.pad_with_zeros(D::Minus1, 0, parts * hop - self.n_fft)?;
        let padded = padded.reshape((batch, frames, parts, hop))?;
        let mut acc: Option<Tensor> = None;
        for r in 0..parts {
            let piece = padded.narrow(2, r, 1)?.squeeze(2)?; // [b, t, hop]
            let piece = piece.pad_with_zeros(1, r, parts - 1 - r)?;
            acc = Some(match acc {
                None => piece,
                Some(a) => (a + piece)?,
            });
        }
        let acc = acc.expect("at least one part");
        acc.reshape((batch, (frames + parts - 1) * hop))
    }

    /// The summed squared window over the output samples.
    fn envelope(&self, frames: usize, trim: usize, len: usize) -> Result<Vec<f64>> {
        let total = (frames.max(1) - 1) * self.hop + self.n_fft;
        let mut env = vec![0f64; total];
        for t in 0..frames {
            for (n, w) in self.window_sq.iter().enumerate() {
                env[t * self.hop + n] += w;
            }
        }
        let env = &env[trim..trim + len];
        if env.iter().any(|&e| e <= 1e-11) {
            candle_core::bail!("istft: window envelope vanishes (window/hop do not satisfy NOLA)")
        }
        Ok(env.to_vec())
    }
}

/// The `[2 * bins, n_fft]` inverse-DFT basis (float32) with the window and 1/N folded in.
fn idft_basis(n_fft: usize, window: &[f32], device: &Device) -> Result<Tensor> {
    let bins = n_fft / 2 + 1;
    let mut basis = vec![0f32; 2 * bins * n_fft];
    for k in 0..bins {
        // irfft keeps the DC and Nyquist bins once and every other bin twice (Hermitian
        // symmetry); the imaginary parts of DC and Nyquist are ignored, as pocketfft does.
        let edge = k == 0 || (n_fft.is_multiple_of(2) && k == n_fft / 2);
        let weight = if edge { 1.0 } else { 2.0 } / n_fft as f64;
        for n in 0..n_fft {
            let phase = 2.0 * std::f64::consts::PI * ((k * n) % n_fft) as f64 / n_fft as f64;
            let w = window[n] as f64 * weight;
            basis[k * n_fft + n] = (w * phase.cos()) as f32;
            if !edge {
                basis[(bins + k) * n_fft + n] = (-w * phase.sin()) as f32;
            }
        }
    }
    Tensor::from_vec(basis, (2 * bins, n_fft), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hann(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()) as f32)
            .collect()
    }

    /// Forward STFT by direct DFT, windowed frames `hop` apart of a zero-padded signal.
    fn stft(
        x: &[f64],
        n_fft: usize,
        hop: usize,
        pad: usize,
        win: &[f32],
    ) -> (Vec<f32>, Vec<f32>, usize) {
        let mut padded = vec![0.0; pad];
        padded.extend_from_slice(x);
        padded.extend(std::iter::repeat_n(0.0, pad));
        let frames = (padded.len() - n_fft) / hop + 1;
        let bins = n_fft / 2 + 1;
        let (mut re, mut im) = (vec![0f32; frames * bins], vec![0f32; frames * bins]);
        for t in 0..frames {
            for k in 0..bins {
                let (mut a, mut b) = (0.0, 0.0);
                for n in 0..n_fft {
                    let ph = -2.0 * std::f64::consts::PI * (k * n) as f64 / n_fft as f64;
                    let v = padded[t * hop + n] * win[n] as f64;
                    a += v * ph.cos();
                    b += v * ph.sin();
                }
                re[t * bins + k] = a as f32;
                im[t * bins + k] = b as f32;
            }
        }
        (re, im, frames)
    }

    #[test]
    fn inverts_a_forward_stft() -> Result<()> {
        let (n_fft, hop) = (64, 16);
        let win = hann(n_fft);
        let x: Vec<f64> = (0..400)
            .map(|i| ((i as f64) * 0.05).sin() + 0.3 * ((i as f64) * 0.31).cos())
            .collect();
        let pad = (n_fft - hop) / 2;
        let (re, im, frames) = stft(&x, n_fft, hop, pad, &win);
        let bins = n_fft / 2 + 1;
        let istft = Istft::new(n_fft, hop, IstftPadding::Same, &win, &Device::Cpu)?;
        let re = Tensor::from_vec(re, (1, frames, bins), &Device::Cpu)?;
        let im = Tensor::from_vec(im, (1, frames, bins), &Device::Cpu)?;
        let y = istft.forward(&re, &im)?.squeeze(0)?.to_vec1::<f32>()?;
        assert_eq!(y.len(), istft.output_len(frames));
        // Away from the edges (where the envelope is incomplete) the signal comes back.
        for i in n_fft..x.len() - n_fft {
            assert!(
                (y[i] as f64 - x[i]).abs() < 1e-4,
                "sample {i}: {} vs {}",
                y[i],
                x[i]
            );
        }
        Ok(())
    }

    /// A random-ish spectrum with a wide dynamic range (as a Vocos head makes).
    fn spectrum(batch: usize, frames: usize, bins: usize) -> (Vec<f32>, Vec<f32>) {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        let n = batch * frames * bins;
        let (mut re, mut im) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            let mag = (8.0 * next() - 6.0).exp();
            let phase = std::f32::consts::TAU * next();
            re.push(mag * phase.cos());
            im.push(mag * phase.sin());
        }
        (re, im)
    }

    #[test]
    fn fft_path_matches_the_dft_matmul() -> Result<()> {
        let cases = [
            (64, 16, IstftPadding::Same, 2, 21),
            (1920, 480, IstftPadding::Same, 2, 53),
            (1280, 320, IstftPadding::Same, 1, 40),
            (64, 16, IstftPadding::Center, 1, 9),
            (30, 10, IstftPadding::Same, 1, 1),
            (33, 11, IstftPadding::Center, 3, 7),
        ];
        for (n_fft, hop, padding, batch, frames) in cases {
            let bins = n_fft / 2 + 1;
            let istft = Istft::new(n_fft, hop, padding, &hann(n_fft), &Device::Cpu)?;
            let (re, im) = spectrum(batch, frames, bins);
            let re = Tensor::from_vec(re, (batch, frames, bins), &Device::Cpu)?;
            let im = Tensor::from_vec(im, (batch, frames, bins), &Device::Cpu)?;
            // float64 in: the two paths differ by the matmul's float32 basis only.
            for dtype in [DType::F32, DType::F64] {
                let (re, im) = (re.to_dtype(dtype)?, im.to_dtype(dtype)?);
                let fft = istft.forward_fft(&re, &im)?;
                let dft = istft.forward_dft(&re, &im)?;
                assert_eq!(fft.dims(), &[batch, istft.output_len(frames)]);
                assert_eq!(fft.dims(), dft.dims());
                assert_eq!(fft.dtype(), dtype);
                let max = |t: &Tensor| -> Result<f64> {
                    t.to_dtype(DType::F64)?
                        .abs()?
                        .flatten_all()?
                        .max(0)?
                        .to_scalar::<f64>()
                };
                let diff = max(&(fft.to_dtype(DType::F64)? - dft.to_dtype(DType::F64)?)?)?;
                let scale = max(&dft)?;
                assert!(
                    diff <= 1e-5 * scale,
                    "n_fft {n_fft} hop {hop} {padding:?} {dtype:?}: max diff {diff:e}, scale {scale:e}"
                );
            }
        }
        Ok(())
    }
}

//! Forward STFT built from candle ops: framing by reshapes and a matmul with a DFT basis, so it
//! runs on every device.

use candle_core::{DType, Device, Result, Tensor, D};

/// Short-time Fourier transform with a fixed window, `n_fft` a multiple of `hop`.
#[derive(Debug, Clone)]
pub struct Stft {
    n_fft: usize,
    hop: usize,
    /// `[n_fft, 2 * bins]`: window folded into cos (real) then -sin (imaginary) columns.
    basis: Tensor,
}

impl Stft {
    pub fn new(n_fft: usize, hop: usize, window: &[f32], device: &Device) -> Result<Self> {
        if window.len() != n_fft || hop == 0 || !n_fft.is_multiple_of(hop) {
            candle_core::bail!(
                "stft: window of {} values, n_fft {n_fft} must be a multiple of hop {hop}",
                window.len()
            )
        }
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
        let basis = Tensor::from_vec(basis, (n_fft, 2 * bins), device)?.to_dtype(dtype)?;
        Ok(Self { n_fft, hop, basis })
    }

    pub fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Frames `F` of a signal padded as [`Stft::forward_same`] pads it.
    pub fn frames_same(&self, len: usize) -> usize {
        len.div_ceil(self.hop)
    }

    /// "Same" framing: the signal `[batch, samples]` is zero-padded on the right to a multiple of
    /// `hop` and by `(n_fft - hop) / 2` on both sides; frame `f` starts at `f * hop` of that.
    /// Returns the real and imaginary parts, each `[batch, frames, bins]`.
    pub fn forward_same(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
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
        let spec = framed
            .to_dtype(self.basis.dtype())?
            .broadcast_matmul(&self.basis)?
            .to_dtype(x.dtype())?; // [b, frames, 2 * bins]
        let bins = self.bins();
        Ok((spec.narrow(2, 0, bins)?, spec.narrow(2, bins, bins)?))
    }
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
}

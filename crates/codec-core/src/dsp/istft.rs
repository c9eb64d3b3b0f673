//! Inverse STFT built from candle ops (a matmul with an inverse-DFT basis and an overlap-add),
//! so it runs unchanged on every device.

use candle_core::{Device, Result, Tensor, D};
use serde::{Deserialize, Serialize};

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
#[derive(Debug, Clone)]
pub struct Istft {
    n_fft: usize,
    hop: usize,
    padding: IstftPadding,
    /// `[2 * bins, n_fft]`: rows for the real parts, then for the imaginary parts, with the
    /// synthesis window and the 1/N of `irfft(norm="backward")` folded in.
    basis: Tensor,
    window_sq: Vec<f64>,
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
        let basis = Tensor::from_vec(basis, (2 * bins, n_fft), device)?;
        let window_sq = window.iter().map(|&w| (w as f64) * (w as f64)).collect();
        Ok(Self {
            n_fft,
            hop,
            padding,
            basis,
            window_sq,
        })
    }

    pub fn n_fft(&self) -> usize {
        self.n_fft
    }

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
    pub fn forward(&self, re: &Tensor, im: &Tensor) -> Result<Tensor> {
        let (batch, frames, _) = re.dims3()?;
        let spec = Tensor::cat(&[re, im], D::Minus1)?;
        let windowed = spec.broadcast_matmul(&self.basis)?; // [b, t, n_fft]
        let y = self.overlap_add(&windowed, batch, frames)?;
        let trim = self.trim();
        let len = self.output_len(frames);
        let y = y.narrow(1, trim, len)?;
        let envelope = self.envelope(frames, trim, len)?;
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

    fn envelope(&self, frames: usize, trim: usize, len: usize) -> Result<Vec<f32>> {
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
        Ok(env.iter().map(|&e| e as f32).collect())
    }
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
}

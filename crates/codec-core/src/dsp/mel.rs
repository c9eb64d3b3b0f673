//! Whisper-style log-mel spectrograms (S3Tokenizer's front end): a centred STFT with a periodic
//! Hann window, power, a Slaney mel filterbank (librosa's default), `log10`, a floor 8 below the
//! utterance's maximum, then `(x + 4) / 4`.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

/// The Slaney mel scale (librosa's default, `htk=False`): linear below 1 kHz, logarithmic above.
fn hz_to_mel(hz: f64) -> f64 {
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// `librosa.filters.mel(sr, n_fft, n_mels)` with its defaults (0 Hz to `sr / 2`, Slaney scale
/// and area normalisation), computed in float64 and rounded to float32 as librosa returns it:
/// `[n_mels][n_fft / 2 + 1]`, row-major.
pub fn slaney_mel_filters(sample_rate: u32, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let bins = n_fft / 2 + 1;
    let sr = sample_rate as f64;
    let fft_freqs: Vec<f64> = (0..bins)
        .map(|k| k as f64 * (sr / 2.0) / (bins - 1) as f64)
        .collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut out = vec![0f32; n_mels * bins];
    for m in 0..n_mels {
        let (left, centre, right) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
        let norm = 2.0 / (right - left);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - left) / (centre - left);
            let upper = (right - f) / (right - centre);
            out[m * bins + k] = (lower.min(upper).max(0.0) * norm) as f32;
        }
    }
    out
}

/// The log-mel front end of one utterance.
#[derive(Clone)]
pub struct LogMel {
    n_fft: usize,
    hop: usize,
    n_mels: usize,
    /// `[n_mels][bins]`.
    filters: Vec<f32>,
    window: Vec<f64>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl std::fmt::Debug for LogMel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMel")
            .field("n_fft", &self.n_fft)
            .field("hop", &self.hop)
            .field("n_mels", &self.n_mels)
            .finish_non_exhaustive()
    }
}

impl LogMel {
    /// `n_fft`-point frames every `hop` samples, `n_mels` Slaney mel bands at `sample_rate`.
    pub fn new(sample_rate: u32, n_fft: usize, hop: usize, n_mels: usize) -> Self {
        let window = (0..n_fft)
            .map(|i| {
                // torch.hann_window(n_fft) (periodic), in float32 as torch makes it.
                let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n_fft as f64).cos();
                w as f32 as f64
            })
            .collect();
        Self {
            n_fft,
            hop,
            n_mels,
            filters: slaney_mel_filters(sample_rate, n_fft, n_mels),
            window,
            fft: RealFftPlanner::<f64>::new().plan_fft_forward(n_fft),
        }
    }

    /// The filterbank, `[n_mels][n_fft / 2 + 1]`.
    pub fn filters(&self) -> &[f32] {
        &self.filters
    }

    /// Mel bands.
    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Frames of `samples` samples: `floor(samples / hop)` (the centred STFT's last frame is
    /// dropped).
    pub fn frames(&self, samples: usize) -> usize {
        samples / self.hop
    }

    /// The power spectrum `|X|^2`, `[frames][bins]`: frame `f` centred on sample `f * hop` of
    /// the signal reflect-padded by `n_fft / 2` on both sides (`torch.stft(center=True)`).
    /// Empty for a signal shorter than `n_fft / 2 + 1` samples (reflect padding needs them).
    pub fn power(&self, samples: &[f32]) -> Vec<Vec<f64>> {
        let half = self.n_fft / 2;
        let len = samples.len();
        if len <= half {
            return Vec::new();
        }
        let at = |i: isize| -> f64 {
            // Reflect without repeating the edge sample.
            let n = len as isize;
            let j = if i < 0 {
                -i
            } else if i >= n {
                2 * (n - 1) - i
            } else {
                i
            };
            samples[j as usize] as f64
        };
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        (0..self.frames(len))
            .map(|f| {
                let start = (f * self.hop) as isize - half as isize;
                for (n, v) in input.iter_mut().enumerate() {
                    *v = at(start + n as isize) * self.window[n];
                }
                self.fft
                    .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                    .expect("buffer sizes come from the plan");
                spectrum.iter().map(|c| c.norm_sqr()).collect()
            })
            .collect()
    }

    /// The normalised log-mel spectrogram of one utterance, `[n_mels][frames]` row-major, and
    /// its frame count.
    pub fn log_mel(&self, samples: &[f32]) -> (Vec<f32>, usize) {
        let power = self.power(samples);
        let frames = power.len();
        let bins = self.n_fft / 2 + 1;
        let mut out = vec![0f32; self.n_mels * frames];
        for (m, filter) in self.filters.chunks_exact(bins).enumerate() {
            for (f, p) in power.iter().enumerate() {
                let e: f64 = filter.iter().zip(p).map(|(&w, &p)| w as f64 * p).sum();
                out[m * frames + f] = e.max(1e-10).log10() as f32;
            }
        }
        let max = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for v in &mut out {
            *v = (v.max(max - 8.0) + 4.0) / 4.0;
        }
        (out, frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaney_filters_have_librosa_shape() {
        let f = slaney_mel_filters(16000, 400, 128);
        assert_eq!(f.len(), 128 * 201);
        // Every band is a triangle with some weight; the DC bin belongs to no band but the
        // first's left edge.
        for band in f.chunks_exact(201) {
            assert!(band.iter().any(|&w| w > 0.0));
            assert!(band.iter().all(|&w| w >= 0.0));
        }
        assert!((hz_to_mel(mel_to_hz(23.7)) - 23.7).abs() < 1e-9);
    }

    #[test]
    fn frames_and_silence() {
        let mel = LogMel::new(16000, 400, 160, 128);
        let (x, frames) = mel.log_mel(&[0.0; 1600]);
        assert_eq!(frames, 10);
        // All -10 (the 1e-10 floor) -> (-10 + 4) / 4.
        assert!(x.iter().all(|&v| (v + 1.5).abs() < 1e-6));
        assert!(mel.power(&[0.1; 200]).is_empty());
    }
}

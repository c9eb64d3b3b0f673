//! The SeamlessM4T / w2v-BERT 2.0 front end (transformers' `SeamlessM4TFeatureExtractor` with
//! facebook/w2v-bert-2.0's settings, as X-Codec2 and NeuCodec call it): Kaldi-style log-mel
//! filterbank features, normalised per utterance, two frames stacked per feature vector.
//!
//! Per 400-sample frame every 160 samples (no centring; `1 + (len - 400) / 160` frames), in
//! float64: the samples times 32768, the frame's mean removed, pre-emphasis 0.97 (the first
//! sample times 0.03), the Povey window (`hanning(400) ^ 0.85`), zero-padded to 512, power
//! spectrum, 80 Kaldi mel filters (20 Hz to 8 kHz, `mel = 1127 ln(1 + f / 700)`, triangles in mel
//! space), natural log of at least `f32::EPSILON`; then per mel bin over the utterance, in
//! float32, `(x - mean) / sqrt(var (n - 1) + 1e-7)`; frames `2t` and `2t + 1` side by side.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

/// Samples per analysis frame (25 ms at 16 kHz).
pub const FRAME_LENGTH: usize = 400;
/// Samples between frames (10 ms).
pub const FRAME_SHIFT: usize = 160;
/// FFT size.
pub const FFT_LENGTH: usize = 512;
/// Mel bands.
pub const NUM_MEL_BINS: usize = 80;
/// Frames stacked into one feature vector.
pub const STRIDE: usize = 2;
const PREEMPHASIS: f64 = 0.97;
const WAVEFORM_SCALE: f64 = 32768.0;
const LOW_FREQ: f64 = 20.0;
const HIGH_FREQ: f64 = 8000.0;
const MEL_FLOOR: f64 = f32::EPSILON as f64;
const VARIANCE_FLOOR: f32 = 1e-7;
/// The padding value of an odd last frame (transformers' `padding_value`).
const PADDING_VALUE: f32 = 1.0;

fn kaldi_mel(hz: f64) -> f64 {
    1127.0 * (1.0 + hz / 700.0).ln()
}

/// Kaldi's mel filterbank as transformers builds it (`mel_filter_bank(..., norm=None,
/// mel_scale="kaldi", triangularize_in_mel_space=True)`): `[bins][NUM_MEL_BINS]` for the
/// `FFT_LENGTH / 2 + 1` bins of a `sample_rate` spectrum, row-major.
pub fn kaldi_mel_filters(sample_rate: u32) -> Vec<f64> {
    let bins = FFT_LENGTH / 2 + 1;
    let (lo, hi) = (kaldi_mel(LOW_FREQ), kaldi_mel(HIGH_FREQ));
    let centres: Vec<f64> = (0..NUM_MEL_BINS + 2)
        .map(|i| lo + (hi - lo) * i as f64 / (NUM_MEL_BINS + 1) as f64)
        .collect();
    // Triangles in mel space: the bins' frequencies on the mel scale.
    let bin_mel: Vec<f64> = (0..bins)
        .map(|k| kaldi_mel(k as f64 * sample_rate as f64 / FFT_LENGTH as f64))
        .collect();
    let mut out = vec![0.0; bins * NUM_MEL_BINS];
    for (k, &m) in bin_mel.iter().enumerate() {
        for j in 0..NUM_MEL_BINS {
            let (left, centre, right) = (centres[j], centres[j + 1], centres[j + 2]);
            let down = (m - left) / (centre - left);
            let up = (right - m) / (right - centre);
            out[k * NUM_MEL_BINS + j] = down.min(up).max(0.0);
        }
    }
    out
}

/// The Povey window: `hanning(FRAME_LENGTH) ^ 0.85` (numpy's symmetric Hann).
pub fn povey_window() -> Vec<f64> {
    let n = FRAME_LENGTH as f64;
    (0..FRAME_LENGTH)
        .map(|i| {
            let hann = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (n - 1.0)).cos();
            hann.powf(0.85)
        })
        .collect()
}

/// The front end for one sample rate (16 kHz for w2v-BERT 2.0).
#[derive(Clone)]
pub struct Fbank {
    filters: Vec<f64>,
    window: Vec<f64>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl std::fmt::Debug for Fbank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fbank").finish_non_exhaustive()
    }
}

impl Fbank {
    /// The front end for audio at `sample_rate` Hz.
    pub fn new(sample_rate: u32) -> Self {
        Self {
            filters: kaldi_mel_filters(sample_rate),
            window: povey_window(),
            fft: RealFftPlanner::<f64>::new().plan_fft_forward(FFT_LENGTH),
        }
    }

    /// Frames of `samples` samples (`1 + (samples - 400) / 160`, 0 below one frame).
    pub fn num_frames(samples: usize) -> usize {
        if samples < FRAME_LENGTH {
            0
        } else {
            1 + (samples - FRAME_LENGTH) / FRAME_SHIFT
        }
    }

    /// Log-mel energies before normalisation: `[frames][NUM_MEL_BINS]` (float32, row-major).
    pub fn log_mel(&self, samples: &[f32]) -> Vec<f32> {
        let frames = Self::num_frames(samples.len());
        let bins = FFT_LENGTH / 2 + 1;
        let mut out = Vec::with_capacity(frames * NUM_MEL_BINS);
        let mut buf = vec![0.0f64; FFT_LENGTH];
        let mut spectrum = self.fft.make_output_vec();
        let mut power = vec![0.0f64; bins];
        for f in 0..frames {
            let frame = &samples[f * FRAME_SHIFT..f * FRAME_SHIFT + FRAME_LENGTH];
            let scaled: Vec<f64> = frame.iter().map(|&x| x as f64 * WAVEFORM_SCALE).collect();
            let mean = scaled.iter().sum::<f64>() / FRAME_LENGTH as f64;
            buf.iter_mut().for_each(|v| *v = 0.0);
            for i in (1..FRAME_LENGTH).rev() {
                let x = scaled[i] - mean;
                let prev = scaled[i - 1] - mean;
                buf[i] = (x - PREEMPHASIS * prev) * self.window[i];
            }
            buf[0] = (scaled[0] - mean) * (1.0 - PREEMPHASIS) * self.window[0];
            self.fft
                .process(&mut buf, &mut spectrum)
                .expect("buffers sized by the planner");
            // The reference keeps the spectrum as complex64 before taking the power.
            for (p, c) in power.iter_mut().zip(&spectrum) {
                let (re, im) = (c.re as f32 as f64, c.im as f32 as f64);
                *p = re * re + im * im;
            }
            for j in 0..NUM_MEL_BINS {
                let energy: f64 = (0..bins)
                    .map(|k| power[k] * self.filters[k * NUM_MEL_BINS + j])
                    .sum();
                out.push(energy.max(MEL_FLOOR).ln() as f32);
            }
        }
        out
    }

    /// The model's input for one utterance: `(features, steps)` with `features`
    /// `[steps][STRIDE * NUM_MEL_BINS]` row-major, normalised per mel bin and stacked.
    pub fn features(&self, samples: &[f32]) -> (Vec<f32>, usize) {
        let mut mel = self.log_mel(samples);
        let frames = mel.len() / NUM_MEL_BINS;
        normalise_per_bin(&mut mel, frames);
        if !frames.is_multiple_of(STRIDE) {
            mel.extend(std::iter::repeat_n(PADDING_VALUE, NUM_MEL_BINS));
        }
        let steps = frames.div_ceil(STRIDE);
        (mel, steps)
    }
}

/// `(x - mean) / sqrt(var(ddof=1) + 1e-7)` per mel bin over the `frames` frames of
/// `[frames][NUM_MEL_BINS]`, in float32 as the reference computes it (the sums in float64: the
/// reference's float32 sums depend on numpy's memory layout; float64 lands within 7e-7).
fn normalise_per_bin(mel: &mut [f32], frames: usize) {
    if frames == 0 {
        return;
    }
    for j in 0..NUM_MEL_BINS {
        let column = || (0..frames).map(|t| mel[t * NUM_MEL_BINS + j] as f64);
        let mean = column().sum::<f64>() / frames as f64;
        let var = if frames > 1 {
            column().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (frames - 1) as f64
        } else {
            f64::NAN
        };
        let (mean, scale) = (mean as f32, (var as f32 + VARIANCE_FLOOR).sqrt());
        for t in 0..frames {
            let v = &mut mel[t * NUM_MEL_BINS + j];
            *v = (*v - mean) / scale;
        }
    }
}

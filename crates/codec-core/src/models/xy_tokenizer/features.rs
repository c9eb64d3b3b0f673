//! XY-Tokenizer's front end (`MelFeatureExtractor`, the torch path): the clip zero-padded to
//! the 30 s window, a centred 400-point STFT every 160 samples (reflect padding at the
//! window's edges, periodic Hann), power, the Slaney filterbank, `log10(max(x, 1e-10))`, a
//! floor 8 below the window's maximum, `(x + 4) / 4`.
//!
//! Only the frames the encoder needs are computed: the valid ones, `ceil(len / hop)`, and the
//! one after them (its window still holds the clip's tail; conv1 reads it when the valid count
//! is even). Every later frame of the padded window sees zeros only, so the maximum over the
//! whole window is the maximum over the frames computed here (log10 of the floor, -10, is
//! the least any frame can give).

use crate::dsp::mel::LogMel;

/// The front end of one window.
#[derive(Debug, Clone)]
pub struct MelFrontEnd {
    mel: LogMel,
    hop: usize,
    n_fft: usize,
    n_mels: usize,
    /// Samples of the padded window (480,000).
    window_samples: usize,
}

/// One window's log-mel frames.
#[derive(Debug, Clone)]
pub struct MelFrames {
    /// `[n_mels][frames]`, row-major: the valid frames and (within the window) the next one.
    pub values: Vec<f32>,
    /// Frames in `values`.
    pub frames: usize,
    /// Valid frames: `ceil(len / hop)`.
    pub valid: usize,
}

impl MelFrontEnd {
    /// `n_mels` bands at `sample_rate`, `n_fft` / `hop`, windows of `window_samples`.
    pub fn new(
        sample_rate: u32,
        n_fft: usize,
        hop: usize,
        n_mels: usize,
        window_samples: usize,
    ) -> Self {
        Self {
            mel: LogMel::new(sample_rate, n_fft, hop, n_mels),
            hop,
            n_fft,
            n_mels,
            window_samples,
        }
    }

    /// The filterbank, `[n_mels][n_fft / 2 + 1]`.
    pub fn filters(&self) -> &[f32] {
        self.mel.filters()
    }

    /// Frames of the whole padded window (3000).
    pub fn window_frames(&self) -> usize {
        self.window_samples / self.hop
    }

    /// The log-mel frames of one clip of at most one window (longer clips are cut to it, as
    /// the reference's feature extractor truncates).
    pub fn frames(&self, samples: &[f32]) -> MelFrames {
        let len = samples.len().min(self.window_samples);
        let window_frames = self.window_frames();
        let valid = len.div_ceil(self.hop).min(window_frames);
        // Frames whose window may touch the clip: up to `valid + 1` (inclusive); the ones after
        // see only zeros.
        let needed = (valid + 2).min(window_frames);
        // Enough zeros after the clip that no computed frame reaches the buffer's end (where
        // `power` reflects), unless the buffer is the whole window, whose end the reference
        // reflects too.
        let buffer_len = (needed * self.hop + self.n_fft + self.hop).min(self.window_samples);
        let mut buffer = vec![0f32; buffer_len.max(len)];
        buffer[..len].copy_from_slice(&samples[..len]);
        let power = self.mel.power(&buffer);
        let frames_out = needed.min(power.len());
        let bins = self.n_fft / 2 + 1;
        let mut log = vec![0f32; self.n_mels * frames_out];
        for (m, filter) in self.mel.filters().chunks_exact(bins).enumerate() {
            for (f, p) in power.iter().take(frames_out).enumerate() {
                let e: f64 = filter.iter().zip(p).map(|(&w, &p)| w as f64 * p).sum();
                log[m * frames_out + f] = (e as f32).max(1e-10).log10();
            }
        }
        let max = log.iter().copied().fold(-10f32, f32::max);
        for v in &mut log {
            *v = (v.max(max - 8.0) + 4.0) / 4.0;
        }
        // Keep the valid frames and the one after (within the window).
        let keep = (valid + 1).min(frames_out);
        let mut values = Vec::with_capacity(self.n_mels * keep);
        for m in 0..self.n_mels {
            values.extend_from_slice(&log[m * frames_out..m * frames_out + keep]);
        }
        MelFrames {
            values,
            frames: keep,
            valid,
        }
    }
}

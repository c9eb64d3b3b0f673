//! Audio front-end: read audio files into planar `f32` clips, write WAV files, resample and mix
//! down to the mono signal a codec model expects.
//!
//! - [`read_audio`] / [`read_audio_from_bytes`]: WAV through `hound` (8/16/24/32-bit integer PCM
//!   and 32-bit float, bit-exact `int / 2^(bits-1)` scaling), everything else (FLAC, MP3,
//!   OGG/Vorbis, AAC/M4A, ALAC, CAF, MKV/WebM, ...) through `symphonia`.
//! - [`write_wav`]: 16-bit PCM or 32-bit float WAV.
//! - [`resample`]: high-quality band-limited (windowed sinc) resampling, time-aligned, with a
//!   predictable output length.
//! - [`prepare_mono`]: mix down + resample to a model's rate, remembering what is needed to restore
//!   the original rate and length after decoding.

#[cfg(feature = "audio-formats")]
mod compressed;
mod mix;
mod read;
mod resample;
pub mod stream;
mod write;

pub use mix::{prepare_mono, PreparedAudio};
pub(crate) use read::read_bounded;
pub use read::{read_audio, read_audio_from_bytes};
pub use resample::{resample, resampled_len};
pub use write::{write_wav, WavSampleFormat};

use crate::error::AudioProblem;
use crate::{Error, Result};

/// The lowest sample rate accepted anywhere (files, streams, token files, resampling), in Hz.
pub const MIN_SAMPLE_RATE: u32 = 1_000;
/// The highest sample rate accepted anywhere, in Hz.
pub const MAX_SAMPLE_RATE: u32 = 768_000;
/// The largest audio input read into memory, in bytes (2 GiB, half a WAV file's limit). A
/// larger file, or a pipe or device that keeps giving bytes (`/dev/zero`), is refused once it
/// passes this size instead of filling the memory.
pub const MAX_INPUT_BYTES: u64 = 2 << 30;

/// Refuse a sample rate outside [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`] before it sizes
/// anything (a resampler's buffers grow with the ratio of the rates); `what` says whose rate it is.
pub fn check_sample_rate(rate: u64, what: &str) -> Result<()> {
    if (u64::from(MIN_SAMPLE_RATE)..=u64::from(MAX_SAMPLE_RATE)).contains(&rate) {
        Ok(())
    } else {
        Err(Error::SampleRate {
            what: what.to_string(),
            rate,
        })
    }
}

/// A piece of audio in memory: planar channels of `f32` samples at one sample rate.
///
/// Samples are nominally in `[-1, 1]` (integer PCM is scaled by `2^(bits-1)`, so full-scale
/// negative is exactly `-1.0`); floating-point sources may exceed that range and are kept as they
/// are. All channels are expected to have the same length (see [`AudioClip::validate`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AudioClip {
    /// Samples per second (per channel).
    pub sample_rate: u32,
    /// One `Vec` of samples per channel (planar layout), all of the same length.
    pub channels: Vec<Vec<f32>>,
}

impl AudioClip {
    /// A single-channel clip.
    pub fn mono(sample_rate: u32, samples: Vec<f32>) -> Self {
        AudioClip {
            sample_rate,
            channels: vec![samples],
        }
    }

    /// Number of channels.
    pub fn num_channels(&self) -> usize {
        self.channels.len()
    }

    /// Number of frames (samples per channel); the length of the first channel, 0 without channels.
    pub fn num_frames(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    /// Duration in seconds (0 when the sample rate is 0).
    pub fn duration_seconds(&self) -> f64 {
        if self.sample_rate == 0 {
            0.0
        } else {
            self.num_frames() as f64 / f64::from(self.sample_rate)
        }
    }

    /// The average of all channels, frame by frame (a copy of the channel for mono clips).
    ///
    /// Each frame is `(c0 + c1 + ... ) / n` summed in `f32` in channel order, which matches
    /// `tensor.mean(dim=0)` of the reference implementations for stereo input bit-exactly.
    /// Channels shorter than [`num_frames`](Self::num_frames) count as silence past their end.
    pub fn to_mono(&self) -> Vec<f32> {
        match self.channels.len() {
            0 => Vec::new(),
            1 => self.channels[0].clone(),
            n => {
                let mut sum = vec![0.0f32; self.num_frames()];
                for channel in &self.channels {
                    for (acc, &x) in sum.iter_mut().zip(channel) {
                        *acc += x;
                    }
                }
                let n = n as f32;
                sum.iter_mut().for_each(|x| *x /= n);
                sum
            }
        }
    }

    /// Check the clip is well-formed: sample rate above 0, at least one channel, all channels of
    /// the same length. Returns [`Error::InvalidAudio`] otherwise.
    pub fn validate(&self) -> Result<()> {
        if self.sample_rate == 0 {
            return Err(Error::InvalidAudio(AudioProblem::ZeroRate));
        }
        if self.channels.is_empty() {
            return Err(Error::InvalidAudio(AudioProblem::NoChannels));
        }
        let frames = self.num_frames();
        if let Some((i, c)) = self
            .channels
            .iter()
            .enumerate()
            .find(|(_, c)| c.len() != frames)
        {
            return Err(Error::InvalidAudio(AudioProblem::ChannelLengths {
                channel: i,
                len: c.len(),
                first: frames,
            }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_clip_basics() {
        let clip = AudioClip {
            sample_rate: 4,
            channels: vec![vec![1.0, 0.5, -1.0, 0.0], vec![0.0, 0.5, 1.0, 0.25]],
        };
        assert_eq!(clip.num_channels(), 2);
        assert_eq!(clip.num_frames(), 4);
        assert_eq!(clip.duration_seconds(), 1.0);
        assert_eq!(clip.to_mono(), vec![0.5, 0.5, 0.0, 0.125]);
        clip.validate().unwrap();

        let mono = AudioClip::mono(16000, vec![0.25; 8000]);
        assert_eq!(mono.num_channels(), 1);
        assert_eq!(mono.duration_seconds(), 0.5);
        assert_eq!(mono.to_mono(), vec![0.25; 8000]);
    }

    #[test]
    fn audio_clip_validate_rejects_bad_clips() {
        assert!(AudioClip::mono(0, vec![0.0]).validate().is_err());
        let no_channels = AudioClip {
            sample_rate: 8000,
            channels: vec![],
        };
        assert!(no_channels.validate().is_err());
        assert_eq!(no_channels.num_frames(), 0);
        assert!(no_channels.to_mono().is_empty());
        let ragged = AudioClip {
            sample_rate: 8000,
            channels: vec![vec![0.0; 3], vec![0.0; 2]],
        };
        assert!(matches!(ragged.validate(), Err(Error::InvalidAudio(_))));
    }
}

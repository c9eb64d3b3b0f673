//! Turning any clip into the mono signal at a model's sample rate.

use super::{resample, AudioClip};
use crate::error::AudioProblem;
use crate::{Error, Result};

/// Mono audio at a model's sample rate, plus what is needed to undo the preparation after
/// decoding (resample back to `original_sample_rate`, cut or pad to `original_length`).
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedAudio {
    /// Mono samples at `sample_rate`.
    pub samples: Vec<f32>,
    /// The rate of `samples` (the target rate given to [`prepare_mono`]).
    pub sample_rate: u32,
    /// The sample rate of the input clip.
    pub original_sample_rate: u32,
    /// The number of frames of the input clip (at `original_sample_rate`).
    pub original_length: usize,
    /// Human-readable notes on what was done, e.g. `"mixed 2 channels down to mono"` or
    /// `"resampled from 16000 Hz to 24000 Hz"`; empty when the clip was used as it was.
    pub notes: Vec<String>,
}

/// Mono at `target_rate`: mixes multi-channel audio down to mono (the average of the channels,
/// see [`AudioClip::to_mono`]) and resamples (see [`resample`]) when the clip's rate differs.
///
/// A mono clip already at `target_rate` comes back with its samples unchanged. Fails with
/// [`Error::InvalidAudio`] for a malformed clip (see [`AudioClip::validate`]), a clip without
/// samples, or a `target_rate` of 0.
pub fn prepare_mono(clip: &AudioClip, target_rate: u32) -> Result<PreparedAudio> {
    clip.validate()?;
    if target_rate == 0 {
        return Err(Error::InvalidAudio(AudioProblem::ZeroRate));
    }
    if clip.num_frames() == 0 {
        return Err(Error::InvalidAudio(AudioProblem::NoSamples));
    }
    let mut notes = Vec::new();
    let mono = if clip.num_channels() > 1 {
        notes.push(format!(
            "mixed {} channels down to mono",
            clip.num_channels()
        ));
        clip.to_mono()
    } else {
        clip.channels[0].clone()
    };
    let samples = if clip.sample_rate != target_rate {
        notes.push(format!(
            "resampled from {} Hz to {} Hz",
            clip.sample_rate, target_rate
        ));
        resample(&mono, clip.sample_rate, target_rate)?
    } else {
        mono
    };
    Ok(PreparedAudio {
        samples,
        sample_rate: target_rate,
        original_sample_rate: clip.sample_rate,
        original_length: clip.num_frames(),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_at_target_rate_is_untouched() {
        let clip = AudioClip::mono(24000, vec![0.1, -0.2, 0.3]);
        let p = prepare_mono(&clip, 24000).unwrap();
        assert_eq!(p.samples, clip.channels[0]);
        assert_eq!(p.sample_rate, 24000);
        assert_eq!(p.original_sample_rate, 24000);
        assert_eq!(p.original_length, 3);
        assert!(p.notes.is_empty());
    }

    #[test]
    fn stereo_is_mixed_and_noted() {
        let clip = AudioClip {
            sample_rate: 24000,
            channels: vec![vec![1.0, 0.0], vec![0.0, -1.0]],
        };
        let p = prepare_mono(&clip, 24000).unwrap();
        assert_eq!(p.samples, vec![0.5, -0.5]);
        assert_eq!(p.notes, vec!["mixed 2 channels down to mono".to_string()]);
    }

    #[test]
    fn resampling_is_noted_and_keeps_original() {
        let clip = AudioClip::mono(16000, vec![0.0; 1600]);
        let p = prepare_mono(&clip, 24000).unwrap();
        assert_eq!(p.samples.len(), 2400);
        assert_eq!(p.original_sample_rate, 16000);
        assert_eq!(p.original_length, 1600);
        assert_eq!(
            p.notes,
            vec!["resampled from 16000 Hz to 24000 Hz".to_string()]
        );
    }

    #[test]
    fn bad_input_is_rejected() {
        assert!(prepare_mono(&AudioClip::mono(16000, vec![]), 24000).is_err());
        assert!(prepare_mono(&AudioClip::mono(16000, vec![0.0]), 0).is_err());
        assert!(prepare_mono(&AudioClip::mono(0, vec![0.0]), 24000).is_err());
    }
}

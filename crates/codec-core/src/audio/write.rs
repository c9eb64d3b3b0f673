//! Writing clips to WAV files.

use std::io::{self, BufWriter, Seek, Write};
use std::path::Path;

use super::AudioClip;
use crate::error::AudioProblem;
use crate::output::OutputFile;
use crate::{Error, Result};

/// Sample encoding of a written WAV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WavSampleFormat {
    /// 16-bit signed integer PCM: each sample is clamped to `[-1, 1]`, multiplied by 32767 and
    /// rounded to the nearest integer (halves away from zero), so `1.0 -> 32767`,
    /// `-1.0 -> -32767` and `0.0 -> 0` (symmetric; -32768 is never written).
    #[default]
    Pcm16,
    /// 32-bit IEEE float, samples written as they are (no clamping).
    Float32,
}

/// Write `clip` to a WAV file at `path` (created or replaced), interleaving its channels.
///
/// The file is written through [`OutputFile`]: it replaces an existing file only once it is
/// complete, so a failure leaves the old file as it was; a FIFO or device is written in place.
///
/// The parent folder must exist (it is not created): a missing one is an [`Error::Io`] naming
/// the path. The clip must be well-formed (see [`AudioClip::validate`]) and hold only finite
/// samples, else [`Error::InvalidAudio`]. An empty clip writes a valid WAV file with no samples.
///
/// ```
/// use codec_core::audio::{read_audio, write_wav, AudioClip, WavSampleFormat};
/// # fn main() -> codec_core::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("tone.wav");
/// let samples: Vec<f32> = (0..2400).map(|i| (i as f32 * 0.05).sin() * 0.5).collect();
/// write_wav(&path, &AudioClip::mono(24000, samples), WavSampleFormat::Float32)?;
/// assert_eq!(read_audio(&path)?.num_frames(), 2400);
/// # Ok(()) }
/// ```
pub fn write_wav(path: impl AsRef<Path>, clip: &AudioClip, format: WavSampleFormat) -> Result<()> {
    let path = path.as_ref();
    clip.validate()?;
    if clip.num_channels() > usize::from(u16::MAX) {
        return Err(Error::InvalidAudio(AudioProblem::TooManyChannels {
            max: u16::MAX.into(),
            channels: clip.num_channels(),
        }));
    }
    let bytes_per_sample = match format {
        WavSampleFormat::Pcm16 => 2,
        WavSampleFormat::Float32 => 4,
    };
    if (clip.num_frames() as u64) * (clip.num_channels() as u64) * bytes_per_sample
        > u64::from(u32::MAX - 64)
    {
        return Err(Error::InvalidAudio(AudioProblem::TooLongForWav {
            frames: clip.num_frames(),
            channels: clip.num_channels(),
        }));
    }
    if let Some((c, i)) = clip
        .channels
        .iter()
        .enumerate()
        .find_map(|(c, ch)| ch.iter().position(|x| !x.is_finite()).map(|i| (c, i)))
    {
        return Err(Error::InvalidAudio(AudioProblem::NotFinite {
            channel: c,
            sample: i,
        }));
    }

    let (bits_per_sample, sample_format) = match format {
        WavSampleFormat::Pcm16 => (16, hound::SampleFormat::Int),
        WavSampleFormat::Float32 => (32, hound::SampleFormat::Float),
    };
    let spec = hound::WavSpec {
        channels: clip.num_channels() as u16,
        sample_rate: clip.sample_rate,
        bits_per_sample,
        sample_format,
    };

    let hound_err = |e: hound::Error| match e {
        hound::Error::IoError(e) => Error::io(path, e),
        other => Error::io(path, io::Error::other(other.to_string())),
    };
    let write_samples = |out: &mut dyn WriteSeek| -> Result<()> {
        let mut writer = hound::WavWriter::new(BufWriter::new(out), spec).map_err(hound_err)?;
        for i in 0..clip.num_frames() {
            for ch in &clip.channels {
                match format {
                    WavSampleFormat::Pcm16 => writer.write_sample(f32_to_i16(ch[i])),
                    WavSampleFormat::Float32 => writer.write_sample(ch[i]),
                }
                .map_err(hound_err)?;
            }
        }
        writer.finalize().map_err(hound_err)
    };
    let mut out = OutputFile::create(path)?;
    if out.is_in_place() {
        // A FIFO or device cannot seek back to fill in the header's sizes: build it in memory.
        let mut bytes = io::Cursor::new(Vec::new());
        write_samples(&mut bytes)?;
        out.write_all(bytes.get_ref())
            .map_err(|e| Error::io(path, e))?;
    } else {
        write_samples(&mut out)?;
    }
    out.commit()
}

/// What hound's writer needs, as one object-safe trait.
trait WriteSeek: Write + Seek {}
impl<T: Write + Seek> WriteSeek for T {}

/// `x` clamped to `[-1, 1]`, times 32767, rounded half away from zero.
pub(crate) fn f32_to_i16(x: f32) -> i16 {
    (x.clamp(-1.0, 1.0) * 32767.0).round() as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm16_conversion_clamps_and_rounds() {
        assert_eq!(f32_to_i16(0.0), 0);
        assert_eq!(f32_to_i16(1.0), 32767);
        assert_eq!(f32_to_i16(-1.0), -32767);
        assert_eq!(f32_to_i16(3.0), 32767);
        assert_eq!(f32_to_i16(-3.0), -32767);
        assert_eq!(f32_to_i16(0.5 / 32767.0), 1);
        assert_eq!(f32_to_i16(0.49 / 32767.0), 0);
        assert_eq!(f32_to_i16(-0.5 / 32767.0), -1);
    }
}

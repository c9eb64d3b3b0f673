//! Reading audio files: WAV through `hound`, everything else through `symphonia` (the
//! `audio-formats` feature, `compressed.rs`).

use std::io::Cursor;
use std::path::Path;

#[cfg(feature = "audio-formats")]
use super::compressed::decode_symphonia;
use super::AudioClip;
use crate::{Error, Result};

/// Read an audio file into memory as planar `f32` channels at the file's own sample rate.
///
/// WAV files (RIFF/WAVE) are read with `hound`: 8, 16, 24 and 32-bit integer PCM are scaled by
/// `2^(bits-1)` (so a 16-bit sample `s` becomes exactly `s / 32768`, like the reference
/// implementations), 32-bit float is taken as it is; `WAVE_FORMAT_EXTENSIBLE` headers work. A
/// WAV header that `hound` rejects (64-bit float, A-law, unusual chunk layouts, ...) is retried
/// with `symphonia`. All other formats — FLAC, MP3, OGG/Vorbis, AAC/M4A, ALAC, CAF, MKV/WebM,
/// ... — are decoded with `symphonia`, using the file extension as a hint and the file's
/// contents to decide. The first audio track is decoded completely.
///
/// Errors:
/// - [`Error::Io`] when the file cannot be read (missing, permissions, ...);
/// - [`Error::AudioRead`] when it is not audio in a supported format, or is corrupt or
///   truncated. Damage is an error rather than silently shorter audio: a WAV file whose data
///   chunk is cut short, an Ogg file whose last page is incomplete or missing its end-of-stream
///   flag, a stream that fails to decode part-way, or one that decodes to fewer frames than it
///   announces where that number is exact (FLAC, Ogg, MP3 with a Xing/Info/VBRI header, PCM).
///   Formats without an exact announced length (MP3 without such a header, MP4/M4A, MKV) can
///   only be checked as far as the decoder notices damage;
/// - [`Error::EmptyAudio`] when it decodes to zero samples.
///
/// ```no_run
/// use codec_core::audio::read_audio;
/// # fn main() -> codec_core::Result<()> {
/// let clip = read_audio("speech.flac")?;
/// println!(
///     "{} channels at {} Hz, {:.2} s",
///     clip.num_channels(),
///     clip.sample_rate,
///     clip.duration_seconds()
/// );
/// # Ok(()) }
/// ```
pub fn read_audio(path: impl AsRef<Path>) -> Result<AudioClip> {
    let path = path.as_ref();
    let bytes = read_bounded(path, super::MAX_INPUT_BYTES)?;
    let extension = path.extension().and_then(|e| e.to_str());
    read_audio_from_bytes(bytes, extension, path)
}

/// Decode an audio file held in memory; see [`read_audio`] for the formats and errors.
///
/// `hint_extension` (e.g. `Some("mp3")`, without the dot) helps pick the format when the
/// contents are ambiguous; `name_for_errors` is the path reported in errors.
pub fn read_audio_from_bytes(
    bytes: Vec<u8>,
    hint_extension: Option<&str>,
    name_for_errors: &Path,
) -> Result<AudioClip> {
    let path = name_for_errors;
    let fail = |reason: String| Error::AudioRead {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.is_empty() {
        return Err(fail("the file is empty (0 bytes)".into()));
    }

    let clip = if is_riff_wave(&bytes) {
        match read_wav_hound(&bytes, path)? {
            WavOutcome::Clip(clip) => clip,
            WavOutcome::HeaderRejected(hound_reason) => {
                // hound is strict about headers; symphonia knows more WAV variants.
                match decode_symphonia(bytes, Some("wav"), path, LengthTrust::default()) {
                    Ok(clip) => clip,
                    Err(Decode::Fatal(e)) => return Err(e),
                    Err(Decode::Unrecognised(sym_reason)) => {
                        return Err(fail(format!(
                            "unsupported or malformed WAV file ({hound_reason}; {sym_reason})"
                        )))
                    }
                }
            }
        }
    } else {
        let head = bytes[..bytes.len().min(512)].to_vec();
        let ogg_problem = ogg_truncation(&bytes);
        let trust = LengthTrust {
            mpeg_info_tag: has_mpeg_info_tag(&bytes),
            ogg: bytes.starts_with(b"OggS"),
        };
        let clip = match decode_symphonia(bytes, hint_extension, path, trust) {
            Ok(clip) => clip,
            Err(Decode::Fatal(e)) => return Err(e),
            Err(Decode::Unrecognised(reason)) => {
                return Err(fail(not_audio_reason(&head, hint_extension, &reason)))
            }
        };
        if let Some(problem) = ogg_problem {
            return Err(fail(problem));
        }
        clip
    };

    if clip.num_frames() == 0 {
        return Err(Error::EmptyAudio {
            path: path.to_path_buf(),
        });
    }
    super::check_sample_rate(u64::from(clip.sample_rate), &path.display().to_string())?;
    if let Some(i) = clip
        .channels
        .iter()
        .flat_map(|c| c.iter())
        .position(|x| !x.is_finite())
    {
        return Err(fail(format!(
            "sample {} is not a finite number (NaN or infinity)",
            i % clip.num_frames()
        )));
    }
    Ok(clip)
}

/// The whole file at `path`, refusing more than `limit` bytes (checked before reading for a
/// regular file, while reading for a pipe or device).
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let too_large = || Error::InputTooLarge {
        path: path.to_path_buf(),
        limit,
    };
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    #[cfg(unix)]
    {
        // A device (`/dev/zero`, `/dev/urandom`) gives bytes forever: refuse it outright.
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_char_device() || t.is_block_device() {
            return Err(Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "is a device, not a file (a pipe or a regular file is read)",
                ),
            ));
        }
    }
    if meta.is_file() && meta.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(if meta.is_file() {
        meta.len() as usize
    } else {
        0
    });
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

fn is_riff_wave(bytes: &[u8]) -> bool {
    bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WAVE"
}

/// Whether an Ogg file (starting with an Ogg page) is cut short: its last page incomplete, or a
/// logical stream without its end-of-stream page. Ogg readers otherwise stop quietly at the cut.
/// Junk after the last complete page is ignored.
fn ogg_truncation(bytes: &[u8]) -> Option<String> {
    const HEADER: usize = 27;
    if !bytes.starts_with(b"OggS") {
        return None;
    }
    let mut offset = 0;
    // (serial, saw end-of-stream) per logical stream, in order of appearance.
    let mut streams: Vec<(u32, bool)> = Vec::new();
    while bytes.len() >= offset + 4 && &bytes[offset..offset + 4] == b"OggS" {
        let page = &bytes[offset..];
        let complete = page.len() >= HEADER && page.len() >= HEADER + usize::from(page[26]) && {
            let segments = usize::from(page[26]);
            let body: usize = page[HEADER..HEADER + segments]
                .iter()
                .map(|&l| usize::from(l))
                .sum();
            offset += HEADER + segments + body;
            offset <= bytes.len()
        };
        if !complete {
            return Some(format!(
                "truncated Ogg file: the last page is cut short ({} bytes in all)",
                bytes.len()
            ));
        }
        let serial = u32::from_le_bytes([page[14], page[15], page[16], page[17]]);
        let end_of_stream = page[5] & 0x04 != 0;
        match streams.iter_mut().find(|(s, _)| *s == serial) {
            Some(entry) => entry.1 |= end_of_stream,
            None => streams.push((serial, end_of_stream)),
        }
    }
    streams
        .iter()
        .any(|(_, eos)| !eos)
        .then(|| "truncated Ogg file: a stream ends without its end-of-stream page".to_string())
}

/// A reason for a file nobody could decode, saying what it looks like (from its first bytes).
fn not_audio_reason(head: &[u8], hint_extension: Option<&str>, detail: &str) -> String {
    let looks_like_text = std::str::from_utf8(head)
        .map(|s| {
            s.chars()
                .all(|c| !c.is_control() || c.is_ascii_whitespace())
        })
        .unwrap_or(false);
    let mut reason = String::from("not a recognised audio file");
    if let Some(ext) = hint_extension {
        reason.push_str(&format!(" (despite the .{ext} extension)"));
    }
    if looks_like_text {
        reason.push_str("; it looks like a text file");
    }
    reason.push_str(&format!(
        "; supported: WAV, FLAC, MP3, OGG/Vorbis, AAC/M4A, ALAC, CAF, MKV/WebM ({detail})"
    ));
    reason
}

enum WavOutcome {
    Clip(AudioClip),
    /// hound could not parse the header; the reason is worth trying symphonia for.
    HeaderRejected(String),
}

/// Read a RIFF/WAVE file with hound. Errors after a good header (truncated data) are final.
fn read_wav_hound(bytes: &[u8], path: &Path) -> Result<WavOutcome> {
    let mut reader = match hound::WavReader::new(Cursor::new(bytes)) {
        Ok(r) => r,
        Err(e) => return Ok(WavOutcome::HeaderRejected(format!("WAV header: {e}"))),
    };
    let spec = reader.spec();
    let num_channels = usize::from(spec.channels);
    let frames = reader.duration() as usize;
    if num_channels == 0 {
        return Ok(WavOutcome::HeaderRejected("WAV header: 0 channels".into()));
    }
    // Reserve no more than the bytes present can hold (the header may promise more).
    let bytes_per_frame = num_channels * usize::from(spec.bits_per_sample).div_ceil(8).max(1);
    let capacity = frames.min(bytes.len() / bytes_per_frame);
    let mut channels = vec![Vec::with_capacity(capacity); num_channels];

    let truncated = |read: usize| Error::AudioRead {
        path: path.to_path_buf(),
        reason: format!(
            "truncated WAV file: the header announces {frames} frames but the data ends after {}",
            read / num_channels
        ),
    };
    let other = |e: hound::Error| Error::AudioRead {
        path: path.to_path_buf(),
        reason: format!("WAV data: {e}"),
    };
    match spec.sample_format {
        hound::SampleFormat::Int => {
            if !(1..=32).contains(&spec.bits_per_sample) {
                return Ok(WavOutcome::HeaderRejected(format!(
                    "WAV header: {}-bit integer samples",
                    spec.bits_per_sample
                )));
            }
            let scale = 1.0 / f64::from(1u32 << (spec.bits_per_sample - 1));
            for (i, s) in reader.samples::<i32>().enumerate() {
                let s = s.map_err(|e| match e {
                    hound::Error::IoError(_) => truncated(i),
                    e => other(e),
                })?;
                // Exact for up to 24 bits (i16 / 32768 etc.); rounded once for 32-bit.
                channels[i % num_channels].push((f64::from(s) * scale) as f32);
            }
        }
        hound::SampleFormat::Float => {
            for (i, s) in reader.samples::<f32>().enumerate() {
                let s = s.map_err(|e| match e {
                    hound::Error::IoError(_) => truncated(i),
                    e => other(e),
                })?;
                channels[i % num_channels].push(s);
            }
        }
    }
    Ok(WavOutcome::Clip(AudioClip {
        sample_rate: spec.sample_rate,
        channels,
    }))
}

pub(super) enum Decode {
    /// No format reader or decoder accepted the data: probably not audio.
    Unrecognised(String),
    /// The data is audio but could not be decoded completely.
    Fatal(Error),
}

/// What is known about a file that makes its announced length exact (see [`exact_length`]).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct LengthTrust {
    /// The bytes hold a Xing/Info/VBRI tag: an MPEG audio stream's length is not an estimate.
    pub(super) mpeg_info_tag: bool,
    /// An Ogg file: the length comes from the last page's granule position.
    pub(super) ogg: bool,
}

/// Whether an MPEG audio file carries a Xing, Info or VBRI tag (in its first frame, after any
/// ID3v2 tag), which gives symphonia the exact number of frames.
fn has_mpeg_info_tag(bytes: &[u8]) -> bool {
    let mut start = 0;
    if bytes.len() >= 10 && &bytes[..3] == b"ID3" {
        let size = bytes[6..10]
            .iter()
            .fold(0usize, |acc, &b| (acc << 7) | usize::from(b & 0x7f));
        let footer = if bytes[5] & 0x10 != 0 { 10 } else { 0 };
        start = 10 + size + footer;
    }
    let Some(window) = bytes.get(start..bytes.len().min(start + 4096)) else {
        return false;
    };
    window
        .windows(4)
        .any(|w| w == b"Xing" || w == b"Info" || w == b"VBRI")
}

/// Without the `audio-formats` feature only WAV is read.
#[cfg(not(feature = "audio-formats"))]
fn decode_symphonia(
    _bytes: Vec<u8>,
    _hint_extension: Option<&str>,
    _path: &Path,
    _trust: LengthTrust,
) -> std::result::Result<AudioClip, Decode> {
    Err(Decode::Unrecognised(
        "this build reads WAV files only (it was built without the `audio-formats` feature)".into(),
    ))
}

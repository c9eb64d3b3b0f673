//! Decoding compressed and non-PCM audio (FLAC, MP3, OGG/Vorbis, AAC/M4A, ALAC, ...) with
//! `symphonia`: the `audio-formats` feature.

use std::io::{self, Cursor};
use std::path::Path;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{
    CodecParameters, DecoderOptions, CODEC_TYPE_FLAC, CODEC_TYPE_MP1, CODEC_TYPE_MP2,
    CODEC_TYPE_MP3, CODEC_TYPE_NULL,
};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::read::{Decode, LengthTrust};
use super::AudioClip;
use crate::Error;

/// Decode the first audio track with symphonia; a stream that decodes to fewer frames than it
/// announces (where that number is exact) is an error.
/// [`decode_symphonia_unguarded`], with a panic of symphonia on damaged data (fuzzing found
/// some in its RIFF reader) turned into an error.
pub(super) fn decode_symphonia(
    bytes: Vec<u8>,
    hint_extension: Option<&str>,
    path: &Path,
    trust: LengthTrust,
) -> std::result::Result<AudioClip, Decode> {
    crate::guard::contain(|| decode_symphonia_unguarded(bytes, hint_extension, path, trust))
        .unwrap_or_else(|panic| {
            Err(Decode::Fatal(Error::AudioRead {
                path: path.to_path_buf(),
                reason: format!("the file is damaged (the decoder failed: {panic})"),
            }))
        })
}

fn decode_symphonia_unguarded(
    bytes: Vec<u8>,
    hint_extension: Option<&str>,
    path: &Path,
    trust: LengthTrust,
) -> std::result::Result<AudioClip, Decode> {
    let fatal = |reason: String| {
        Decode::Fatal(Error::AudioRead {
            path: path.to_path_buf(),
            reason,
        })
    };
    let mss = MediaSourceStream::new(
        Box::new(Cursor::new(bytes)),
        MediaSourceStreamOptions::default(),
    );
    let mut hint = Hint::new();
    if let Some(ext) = hint_extension {
        hint.with_extension(ext);
    }
    let format_options = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&hint, mss, &format_options, &MetadataOptions::default())
        .map_err(|e| Decode::Unrecognised(format!("no format reader accepts it: {e}")))?;
    let mut format = probed.format;

    let track = format
        .default_track()
        .filter(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .or_else(|| {
            format
                .tracks()
                .iter()
                .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        })
        .ok_or_else(|| fatal("the file contains no audio track".into()))?;
    let track_id = track.id;
    let expected_frames = exact_length(&track.codec_params, trust);
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| {
            let name = symphonia::default::get_codecs()
                .get_codec(track.codec_params.codec)
                .map(|d| d.short_name.to_string())
                .unwrap_or_else(|| codec_name(track.codec_params.codec).to_string());
            fatal(format!(
                "its audio is {name}, which this build cannot decode ({e}); convert it to WAV or \
                 FLAC first (e.g. ffmpeg -i IN OUT.wav)"
            ))
        })?;

    let mut channels: Vec<Vec<f32>> = Vec::new();
    let mut sample_rate = 0u32;
    let mut sample_buffer: Option<SampleBuffer<f32>> = None;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymphoniaError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(SymphoniaError::ResetRequired) => {
                return Err(fatal(
                    "the stream changes its track layout part-way (chained streams are not \
                     supported)"
                        .into(),
                ))
            }
            Err(e) => {
                return Err(fatal(format!(
                    "cannot read the stream after {}: {e}",
                    position(&channels, sample_rate)
                )))
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(e) => {
                return Err(fatal(format!(
                    "corrupt or truncated audio data after {}: {e}",
                    position(&channels, sample_rate)
                )))
            }
        };
        let spec = *decoded.spec();
        let n = spec.channels.count();
        if n == 0 || spec.rate == 0 {
            return Err(fatal(format!(
                "the stream declares {n} channels at {} Hz",
                spec.rate
            )));
        }
        if channels.is_empty() && sample_rate == 0 {
            sample_rate = spec.rate;
            channels = vec![Vec::new(); n];
        } else if spec.rate != sample_rate || n != channels.len() {
            return Err(fatal(format!(
                "the stream changes from {} channels at {} Hz to {n} channels at {} Hz part-way",
                channels.len(),
                sample_rate,
                spec.rate
            )));
        }
        let frames = decoded.frames();
        if frames == 0 {
            continue;
        }
        let buf = match &mut sample_buffer {
            Some(b) if b.capacity() >= decoded.capacity() * n => b,
            slot => slot.insert(SampleBuffer::new(decoded.capacity() as u64, spec)),
        };
        buf.copy_planar_ref(decoded);
        let planar = buf.samples();
        for (c, channel) in channels.iter_mut().enumerate() {
            channel.extend_from_slice(&planar[c * frames..(c + 1) * frames]);
        }
    }

    let decoded_frames = channels.first().map_or(0, Vec::len) as u64;
    if let Some(expected) = expected_frames {
        if decoded_frames < expected && decoded_frames > 0 {
            return Err(fatal(format!(
                "truncated or corrupt: the file announces {expected} frames but only \
                 {decoded_frames} could be decoded"
            )));
        }
    }
    Ok(AudioClip {
        sample_rate,
        channels,
    })
}

/// The number of frames a track announces, where that number is exact: Ogg (last granule
/// position), FLAC (STREAMINFO), MPEG audio with a Xing/Info/VBRI tag, and PCM (data chunk size,
/// unless it is the `0xFFFFFFFF` placeholder of a streamed WAV). Other announced lengths are
/// estimates or in other units (MPEG audio without a tag: from the bitrate; MP4/MKV: container
/// time units), so they are not used to detect truncation.
fn exact_length(params: &CodecParameters, trust: LengthTrust) -> Option<u64> {
    let n_frames = params.n_frames?;
    let codec = params.codec;
    if trust.ogg || codec == CODEC_TYPE_FLAC {
        return Some(n_frames);
    }
    if [CODEC_TYPE_MP1, CODEC_TYPE_MP2, CODEC_TYPE_MP3].contains(&codec) {
        return trust.mpeg_info_tag.then_some(n_frames);
    }
    let is_pcm = symphonia::default::get_codecs()
        .get_codec(codec)
        .is_some_and(|d| d.short_name.starts_with("pcm_"));
    if is_pcm {
        let bytes_per_frame = u64::from(params.bits_per_coded_sample?.div_ceil(8))
            * params.channels.map_or(0, |c| c.count()) as u64;
        let data_len = n_frames.checked_mul(bytes_per_frame)?;
        return (bytes_per_frame > 0 && data_len + bytes_per_frame < 0xFFFF_FFFF)
            .then_some(n_frames);
    }
    None
}

/// A name for a codec symphonia knows of but has no decoder for.
fn codec_name(codec: symphonia::core::codecs::CodecType) -> &'static str {
    use symphonia::core::codecs as c;
    [
        (c::CODEC_TYPE_OPUS, "Opus"),
        (c::CODEC_TYPE_SPEEX, "Speex"),
        (c::CODEC_TYPE_EAC3, "E-AC-3"),
        (c::CODEC_TYPE_AC4, "AC-4"),
        (c::CODEC_TYPE_DCA, "DTS"),
        (c::CODEC_TYPE_WAVPACK, "WavPack"),
        (c::CODEC_TYPE_MONKEYS_AUDIO, "Monkey's Audio"),
        (c::CODEC_TYPE_TTA, "TTA"),
        (c::CODEC_TYPE_MUSEPACK, "Musepack"),
        (c::CODEC_TYPE_WMA, "WMA"),
        (c::CODEC_TYPE_ATRAC3, "ATRAC3"),
        (c::CODEC_TYPE_ATRAC3PLUS, "ATRAC3plus"),
    ]
    .into_iter()
    .find(|(t, _)| *t == codec)
    .map_or("a codec", |(_, name)| name)
}

/// RIFF (little-endian) WAVE container magic.
/// "12345 frames (0.51 s)": how far decoding got, for error messages.
fn position(channels: &[Vec<f32>], sample_rate: u32) -> String {
    let frames = channels.first().map_or(0, Vec::len);
    if sample_rate == 0 {
        format!("{frames} frames")
    } else {
        format!(
            "{frames} frames ({:.2} s)",
            frames as f64 / f64::from(sample_rate)
        )
    }
}

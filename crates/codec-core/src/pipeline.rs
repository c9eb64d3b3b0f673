//! The convenience layer: any audio file in, a token file out, and back.
//!
//! ```no_run
//! use codec_core::{audio, load_model, pipeline, ModelSpec, Device};
//! # fn main() -> codec_core::Result<()> {
//! let model = load_model(&ModelSpec::parse("wavtokenizer-small-speech-75")?, &Device::Cpu)?;
//! let clip = audio::read_audio("speech.mp3")?;
//! let encoded = pipeline::encode_audio(model.as_ref(), &clip)?;
//! encoded.tokens.write("speech.tok".as_ref())?;
//! let decoded = pipeline::decode_tokens(model.as_ref(), &encoded.tokens, &Default::default())?;
//! audio::write_wav("speech.rec.wav", &decoded, audio::WavSampleFormat::Pcm16)?;
//! # Ok(()) }
//! ```

use candle_core::Tensor;

use crate::audio::{self, AudioClip};
use crate::codec::{CodeStreams, Codec, CodecInfo, EncodeOptions};
use crate::error::{AudioProblem, CodesProblem};
use crate::tokfile::{CodebookCodes, TokenFile, TokenHeader};
use crate::{Error, Result};

/// The result of encoding: the token file and what was done to the input on the way.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The token file.
    pub tokens: TokenFile,
    /// Human-readable notes, e.g. "mixed 2 channels down to mono", "resampled 44100 Hz to 24000 Hz".
    pub notes: Vec<String>,
}

impl Encoded {
    /// Code frames (of the first stream).
    pub fn num_frames(&self) -> usize {
        self.tokens.num_frames()
    }
}

/// The most samples (all channels) [`decode_tokens`] produces: what a 16-bit WAV file of 4 GiB
/// holds. A token file that would decode to more is refused before decoding.
pub const MAX_DECODED_SAMPLES: u64 = 2 << 30;

/// Which rate decoded audio comes out at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutputRate {
    /// The model's own sample rate (no resampling).
    #[default]
    Model,
    /// The rate of the audio that was encoded.
    Original,
}

/// Options of [`decode_tokens`].
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Which rate the decoded audio comes out at.
    pub output_rate: OutputRate,
    /// Decode even if the token file was made by another model.
    pub force: bool,
    /// Codes of more than this many seconds decode in windows of it, in bounded memory (see
    /// [`crate::long_form`]); `None`: one pass however long.
    pub window_seconds: Option<f64>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            output_rate: OutputRate::Model,
            force: false,
            window_seconds: Some(crate::long_form::DEFAULT_WINDOW_SECONDS),
        }
    }
}

impl DecodeOptions {
    /// At the original rate (or the model's), decoding even another model's codes if `force`.
    pub fn new(original_rate: bool, force: bool) -> Self {
        Self {
            output_rate: if original_rate {
                OutputRate::Original
            } else {
                OutputRate::Model
            },
            force,
            ..Self::default()
        }
    }

    /// The same options with windows of `seconds` on long inputs (`None`: one pass).
    pub fn with_window_seconds(mut self, seconds: Option<f64>) -> Self {
        self.window_seconds = seconds;
        self
    }
}

/// Encode a clip of any rate and channel count: mixed down to the model's channels, resampled
/// to its rate, encoded, and wrapped in a token file that remembers the original rate and length.
pub fn encode_audio(model: &dyn Codec, clip: &AudioClip) -> Result<Encoded> {
    encode_audio_with(model, clip, &EncodeOptions::default())
}

/// [`encode_audio`] with options (e.g. how many codebooks of a residual codec to use).
pub fn encode_audio_with(
    model: &dyn Codec,
    clip: &AudioClip,
    options: &EncodeOptions,
) -> Result<Encoded> {
    encode_prepared(model, PreparedInput::new(model.info(), clip)?, options)
}

/// [`encode_audio_with`] on a clip already prepared (e.g. on another thread, so that decoding
/// and resampling the next file overlaps with the model).
pub fn encode_prepared(
    model: &dyn Codec,
    input: PreparedInput,
    options: &EncodeOptions,
) -> Result<Encoded> {
    let codes = crate::long_form::encode_channels(model, &input.channels, options)?;
    input.encoded(model.info(), &codes, 0)
}

/// A clip made ready for a model (its channels at its rate), with the record of what was done.
#[derive(Debug, Clone)]
pub struct PreparedInput {
    /// The model's channels, each at the model's rate.
    pub channels: Vec<Vec<f32>>,
    /// The input's sample rate in Hz.
    pub original_sample_rate: u32,
    /// The input's length in samples (per channel).
    pub original_length: usize,
    /// What was done to the input to fit the model (mixdown, resampling), for the user.
    pub notes: Vec<String>,
}

impl PreparedInput {
    /// Mix and resample `clip` for the model `info` describes.
    pub fn new(info: &CodecInfo, clip: &AudioClip) -> Result<Self> {
        let (channels, prepared) = prepare_channels(clip, info)?;
        Ok(Self {
            channels,
            original_sample_rate: prepared.original_sample_rate,
            original_length: prepared.original_length,
            notes: prepared.notes,
        })
    }

    /// Samples per channel.
    pub fn len(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    /// Whether it holds no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// As a batch of one, `[1, channels, samples]`.
    pub(crate) fn to_tensor(&self, device: &candle_core::Device) -> Result<Tensor> {
        Ok(Tensor::from_vec(
            self.channels.concat(),
            (1, self.channels.len(), self.len()),
            device,
        )?)
    }

    /// The token file of item `item` of a batch's codes, for this input.
    pub(crate) fn encoded(
        self,
        info: &CodecInfo,
        codes: &CodeStreams,
        item: usize,
    ) -> Result<Encoded> {
        let streams = item_streams(codes, info, item)?;
        let scales = match &codes.scales {
            Some(s) => s
                .get(item)?
                .flatten_all()?
                .to_dtype(candle_core::DType::F32)?
                .to_vec1::<f32>()?,
            None => Vec::new(),
        };
        let tokens = TokenFile {
            header: TokenHeader {
                model: info.name.clone(),
                fingerprint: info.fingerprint,
                sample_rate: info.sample_rate,
                frame_rate: info.frame_rate,
                original_sample_rate: self.original_sample_rate,
                original_length: self.original_length as u64,
                channels: info.channels,
            },
            streams,
            scales,
        };
        Ok(Encoded {
            tokens,
            notes: self.notes,
        })
    }
}

/// The clip as the model's channels at the model's rate, and the preparation's record (its
/// `samples` are the first channel). Mono models get the mixdown; stereo models get a stereo
/// clip as it is, a mono clip on both channels, and a clip of more channels mixed down to mono
/// on both channels (each with a note).
fn prepare_channels(
    clip: &AudioClip,
    info: &CodecInfo,
) -> Result<(Vec<Vec<f32>>, audio::PreparedAudio)> {
    let rate = info.sample_rate;
    match (info.channels, clip.num_channels()) {
        (1, _) => {
            let p = audio::prepare_mono(clip, rate)?;
            Ok((vec![p.samples.clone()], p))
        }
        (2, 2) => {
            clip.validate()?;
            let one = |c: &Vec<f32>| {
                audio::prepare_mono(&AudioClip::mono(clip.sample_rate, c.clone()), rate)
            };
            let (left, right) = (one(&clip.channels[0])?, one(&clip.channels[1])?);
            Ok((vec![left.samples.clone(), right.samples], left))
        }
        (2, n) => {
            let mut p = audio::prepare_mono(clip, rate)?;
            p.notes.push(if n == 1 {
                "mono input on both channels of the stereo model".to_string()
            } else {
                "the mono mixdown on both channels of the stereo model".to_string()
            });
            Ok((vec![p.samples.clone(), p.samples.clone()], p))
        }
        (m, _) => Err(Error::InvalidAudio(AudioProblem::Channels {
            model: info.name.clone(),
            channels: m.into(),
        })),
    }
}

/// The first item of a batch of code streams, as token-file streams.
pub fn code_streams_to_file(codes: &CodeStreams, info: &CodecInfo) -> Result<Vec<CodebookCodes>> {
    item_streams(codes, info, 0)
}

/// Item `item` of a batch of code streams, as token-file streams.
fn item_streams(codes: &CodeStreams, info: &CodecInfo, item: usize) -> Result<Vec<CodebookCodes>> {
    codes
        .streams
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Ok(CodebookCodes {
                codebook_size: info.codebook_sizes[i],
                frame_rate: info.codebook_frame_rates[i],
                codes: s
                    .get(item)?
                    .to_dtype(candle_core::DType::U32)?
                    .to_vec1::<u32>()?,
            })
        })
        .collect()
}

/// Token-file streams (and scales) as a batch of one, on `device`.
pub fn file_to_code_streams(
    tokens: &TokenFile,
    device: &candle_core::Device,
) -> Result<CodeStreams> {
    let streams = tokens
        .streams
        .iter()
        .map(|s| Tensor::from_vec(s.codes.clone(), (1, s.codes.len()), device))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let scales = if tokens.scales.is_empty() {
        None
    } else {
        Some(Tensor::from_vec(
            tokens.scales.clone(),
            (1, tokens.scales.len()),
            device,
        )?)
    };
    Ok(CodeStreams { streams, scales })
}

/// Check that a token file can be decoded by `model`.
pub fn check_compatible(model: &dyn Codec, tokens: &TokenFile, force: bool) -> Result<()> {
    let h = &tokens.header;
    let sizes: Vec<u32> = tokens.streams.iter().map(|s| s.codebook_size).collect();
    check_codes_fit(
        model.info(),
        &CodesOrigin {
            container: "token file",
            model: &h.model,
            fingerprint: h.fingerprint,
            sample_rate: h.sample_rate,
            codebook_sizes: &sizes,
        },
        force,
    )
}

/// Where codes come from, as a token file or token stream header says.
#[derive(Debug, Clone, Copy)]
pub struct CodesOrigin<'a> {
    /// What carries the codes, for messages: `token file` or `token stream`.
    pub container: &'static str,
    /// The model that made the codes.
    pub model: &'a str,
    /// Its weights' fingerprint.
    pub fingerprint: u64,
    /// The rate the codes were made at, in Hz.
    pub sample_rate: u32,
    /// The codebook sizes, in stream order.
    pub codebook_sizes: &'a [u32],
}

/// Check that codes made as `origin` says can be decoded by the model `info` describes: same
/// weights (unless `force`), and always codebooks that fit the model's.
pub fn check_codes_fit(info: &CodecInfo, origin: &CodesOrigin<'_>, force: bool) -> Result<()> {
    if origin.fingerprint != info.fingerprint && !force {
        return Err(Error::ModelMismatch {
            container: origin.container,
            file_model: origin.model.to_string(),
            file_fingerprint: origin.fingerprint,
            model: info.name.clone(),
            model_fingerprint: info.fingerprint,
        });
    }
    // Even when forced, the codes must fit the model's shape.
    let n = origin.codebook_sizes.len();
    if n == 0 || n > info.codebook_sizes.len() {
        return Err(Error::InvalidCodes(CodesProblem::Codebooks {
            model: info.name.clone(),
            given: n,
            available: info.codebook_sizes.len(),
        }));
    }
    for (i, (&theirs, &size)) in origin
        .codebook_sizes
        .iter()
        .zip(&info.codebook_sizes)
        .enumerate()
    {
        // Equal, not merely smaller: the sizes set how the codes are packed, and a file that
        // claims tiny codebooks could otherwise pack millions of frames into a few bytes.
        if theirs != size {
            return Err(Error::InvalidCodes(CodesProblem::CodebookSize {
                codebook: i,
                theirs,
                model: info.name.clone(),
                size,
            }));
        }
    }
    if origin.sample_rate != info.sample_rate && !force {
        return Err(Error::InvalidCodes(CodesProblem::SampleRate {
            theirs: origin.sample_rate,
            model: info.name.clone(),
            rate: info.sample_rate,
        }));
    }
    Ok(())
}

/// Decode a token file back to audio of the original length (at the model's rate or the
/// original rate, as `options` says).
pub fn decode_tokens(
    model: &dyn Codec,
    tokens: &TokenFile,
    options: &DecodeOptions,
) -> Result<AudioClip> {
    check_decodable(model, tokens, options)?;
    let codes = file_to_code_streams(tokens, model.device())?;
    let (_, _, channels) = crate::long_form::decode_rows(model, &codes, options.window_seconds)?;
    finish_decoded(model.info(), tokens, channels, options)
}

/// Everything [`decode_tokens`] checks before decoding: the file fits the model, and what it
/// decodes to is bounded.
pub(crate) fn check_decodable(
    model: &dyn Codec,
    tokens: &TokenFile,
    options: &DecodeOptions,
) -> Result<()> {
    check_compatible(model, tokens, options.force)?;
    let info = model.info();
    if tokens.streams.iter().any(|s| s.codes.is_empty()) {
        return Err(Error::InvalidCodes(CodesProblem::NoFrames));
    }
    let h = &tokens.header;
    if options.output_rate == OutputRate::Original {
        audio::check_sample_rate(
            u64::from(h.original_sample_rate),
            "the token file's original audio",
        )?;
    }
    if h.original_length == 0 {
        return Err(Error::InvalidCodes(CodesProblem::LengthMismatch {
            stated: 0,
            decodable: format!("{} frames", tokens.num_frames()),
        }));
    }
    // Bound the work by what the codes can give before decoding anything.
    let seconds = tokens.num_frames() as f64 / tokens.streams[0].frame_rate;
    // A float-to-int cast saturates: no overflow whatever the header says.
    let samples = (seconds * f64::from(info.sample_rate) * f64::from(info.channels)).ceil() as u64;
    if samples > MAX_DECODED_SAMPLES {
        return Err(Error::InvalidCodes(CodesProblem::TooLong {
            frames: tokens.num_frames(),
            samples,
            limit: MAX_DECODED_SAMPLES,
        }));
    }
    Ok(())
}

/// Decoded channels (at the model's rate) back to the original length, at the rate `options`
/// asks for.
pub(crate) fn finish_decoded(
    info: &CodecInfo,
    tokens: &TokenFile,
    channels: Vec<Vec<f32>>,
    options: &DecodeOptions,
) -> Result<AudioClip> {
    let h = &tokens.header;
    // Back to the original length: at the model's rate, or resampled to the original rate.
    let original_rate = h.original_sample_rate;
    let decoded_len = channels.first().map_or(0, Vec::len);
    // The encoder padded the clip to whole frames; an original length past the decoded audio
    // (and one frame of slack) cannot be true, and would size a huge buffer of silence.
    let hop = info.hop_length();
    let longest = audio::resampled_len(decoded_len + hop, info.sample_rate, original_rate.max(1));
    if h.original_length > longest as u64 {
        return Err(Error::InvalidCodes(CodesProblem::LengthMismatch {
            stated: h.original_length,
            decodable: format!(
                "at most {longest} samples at {original_rate} Hz ({} frames)",
                tokens.num_frames()
            ),
        }));
    }
    let (rate, len) = match options.output_rate {
        OutputRate::Model => (
            info.sample_rate,
            audio::resampled_len(h.original_length as usize, original_rate, info.sample_rate),
        ),
        OutputRate::Original => (original_rate, h.original_length as usize),
    };
    let channels = channels
        .into_iter()
        .map(|mut samples| {
            if rate != info.sample_rate {
                samples = audio::resample(&samples, info.sample_rate, rate)?;
            }
            samples.resize(len, 0.0);
            Ok(samples)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(AudioClip {
        sample_rate: rate,
        channels,
    })
}

/// A token file for `model`'s codes made elsewhere (e.g. by the reference implementation),
/// read from a `.npy` array shaped `[codebooks, frames]`, `[1, codebooks, frames]`,
/// `[codebooks, 1, frames]` (EnCodec's and SpeechTokenizer's own `[n_q, batch, frames]`, for a
/// model of several codebooks), or `[frames]` for a single-codebook model. A prefix of a residual model's codebooks is fine, also written
/// the way Lyra's runtime writes it: all codebooks, the unused trailing ones filled with -1.
///
/// The header is the model's (name, weights fingerprint, rates); the original audio is taken to
/// be `frames * hop` samples at the model's rate. Every code is checked against its codebook;
/// errors name `source`, the codebook, the frame and the value.
pub fn import_codes(
    info: &CodecInfo,
    codes: &crate::npy::NpyArray,
    source: &str,
) -> Result<TokenFile> {
    let bad = |problem: String| Error::CodesFile {
        source_name: source.to_string(),
        problem,
    };
    let available = info.codebook_sizes.len();
    if info
        .codebook_frame_rates
        .iter()
        .any(|&r| r != info.frame_rate)
    {
        return Err(bad(format!(
            "model {} has codebooks at different frame rates (multi-scale); its codes cannot \
             come from one array",
            info.name
        )));
    }
    let (n, frames) = match codes.shape.as_slice() {
        [frames] if available == 1 => (1, *frames),
        [_] => {
            return Err(bad(format!(
                "a 1-D array holds a single codebook, model {} has {available}; give an array \
                 shaped [codebooks, frames]",
                info.name
            )))
        }
        [n, frames] => (*n, *frames),
        [1, n, frames] => (*n, *frames),
        // The residual-VQ packages' own layout (EnCodec's and SpeechTokenizer's `encode`
        // return `[n_q, batch, frames]`), for one clip of a model with that many codebooks.
        [n, 1, frames] if available > 1 && *n <= available => (*n, *frames),
        [b, _, _] => {
            return Err(bad(format!(
                "a batch of {b} clips; import one clip ([1, codebooks, frames]) at a time"
            )))
        }
        other => {
            return Err(bad(format!(
                "array of shape {other:?}; expected [codebooks, frames], [1, codebooks, frames] \
                 or [frames]"
            )))
        }
    };
    // Trailing rows of -1 are unused stages (Lyra's runtime marks them so); keep the others.
    let unused = (0..n)
        .rev()
        .take_while(|&i| {
            frames > 0
                && codes.values[i * frames..(i + 1) * frames]
                    .iter()
                    .all(|&v| v == -1.0)
        })
        .count();
    let n = if unused < n { n - unused } else { n };
    if n == 0 || n > available {
        return Err(bad(format!(
            "{n} codebooks, model {} takes 1 to {available} (shape {:?})",
            info.name, codes.shape
        )));
    }
    if frames == 0 {
        return Err(bad("the array holds no frames".into()));
    }
    let rows = (0..n)
        .map(|i| {
            codes.values[i * frames..(i + 1) * frames]
                .iter()
                .enumerate()
                .map(|(t, &v)| {
                    if v.fract() != 0.0 || !v.is_finite() {
                        Err(bad(format!(
                            "codebook {i}, frame {t}: {v} is not an integer"
                        )))
                    } else {
                        // Saturating: out-of-range values stay out of range.
                        Ok(v as i64)
                    }
                })
                .collect::<Result<Vec<i64>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    tokens_from_codes(info, &rows, source)
}

/// A token file for `model`'s codes made elsewhere, one row of codes per codebook stream (a
/// prefix of the codebooks; multi-scale models' streams at their own rates). The original audio
/// is taken to be what the first stream's frames span at the model's rate. Every code is
/// checked against its codebook; errors name `source`, the codebook, the frame and the value.
pub fn tokens_from_codes(info: &CodecInfo, rows: &[Vec<i64>], source: &str) -> Result<TokenFile> {
    let bad = |problem: String| Error::CodesFile {
        source_name: source.to_string(),
        problem,
    };
    let available = info.codebook_sizes.len();
    if rows.is_empty() || rows.len() > available {
        return Err(bad(format!(
            "{} codebooks, model {} takes 1 to {available}",
            rows.len(),
            info.name
        )));
    }
    if rows.iter().any(Vec::is_empty) {
        return Err(bad("the codes hold no frames".into()));
    }
    let streams = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let size = info.codebook_sizes[i];
            let codes = row
                .iter()
                .enumerate()
                .map(|(t, &v)| {
                    u32::try_from(v).ok().filter(|&c| c < size).ok_or_else(|| {
                        bad(format!(
                            "codebook {i}, frame {t}: code {v} is out of range for model {}'s \
                             codebook of {size} entries (0 to {})",
                            info.name,
                            size - 1
                        ))
                    })
                })
                .collect::<Result<Vec<u32>>>()?;
            Ok(CodebookCodes {
                codebook_size: size,
                frame_rate: info.codebook_frame_rates[i],
                codes,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let seconds = rows[0].len() as f64 / info.codebook_frame_rates[0];
    Ok(TokenFile {
        header: TokenHeader {
            model: info.name.clone(),
            fingerprint: info.fingerprint,
            sample_rate: info.sample_rate,
            frame_rate: info.frame_rate,
            original_sample_rate: info.sample_rate,
            original_length: (seconds * f64::from(info.sample_rate)).round() as u64,
            channels: info.channels,
        },
        streams,
        scales: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npy::NpyArray;

    fn info(sizes: Vec<u32>) -> CodecInfo {
        let n = sizes.len();
        CodecInfo {
            name: "m".into(),
            family: "f".into(),
            sample_rate: 16_000,
            channels: 1,
            frame_rate: 50.0,
            codebook_sizes: sizes,
            codebook_frame_rates: vec![50.0; n],
            bandwidths_kbps: Vec::new(),
            fingerprint: 7,
        }
    }

    fn array(shape: &[usize], values: &[f64]) -> NpyArray {
        NpyArray {
            shape: shape.to_vec(),
            values: values.to_vec(),
        }
    }

    #[test]
    fn imports_every_accepted_shape() {
        let one = info(vec![65_536]);
        for shape in [vec![3], vec![1, 3], vec![1, 1, 3]] {
            let t = import_codes(&one, &array(&shape, &[0.0, 65_535.0, 7.0]), "x.npy").unwrap();
            assert_eq!(t.streams.len(), 1);
            assert_eq!(t.streams[0].codes, vec![0, 65_535, 7]);
            assert_eq!(t.header.original_length, 3 * 320);
            assert_eq!(
                (
                    t.header.fingerprint,
                    t.header.sample_rate,
                    t.header.original_sample_rate
                ),
                (7, 16_000, 16_000)
            );
            t.to_bytes().unwrap();
        }
        // A prefix of a residual model's codebooks.
        let four = info(vec![1024; 4]);
        let t = import_codes(&four, &array(&[2, 2], &[1.0, 2.0, 3.0, 4.0]), "x").unwrap();
        assert_eq!(t.streams[1].codes, vec![3, 4]);
    }

    #[test]
    fn refuses_bad_codes_with_the_reason() {
        let err =
            |i: &CodecInfo, a: NpyArray| import_codes(i, &a, "x.npy").unwrap_err().to_string();
        let one = info(vec![65_536]);
        let e = err(&one, array(&[1, 2], &[5.0, 65_536.0]));
        assert!(
            e.contains("x.npy") && e.contains("frame 1") && e.contains("65536"),
            "{e}"
        );
        let e = err(&one, array(&[2], &[-1.0, 0.0]));
        assert!(e.contains("frame 0") && e.contains("out of range"), "{e}");
        let e = err(&one, array(&[2], &[0.5, 0.0]));
        assert!(e.contains("not an integer"), "{e}");
        let e = err(&one, array(&[2, 1], &[0.0, 0.0]));
        assert!(e.contains("2 codebooks") && e.contains("1 to 1"), "{e}");
        let e = err(&one, array(&[2, 1, 1], &[0.0, 0.0]));
        assert!(e.contains("batch of 2"), "{e}");
        let e = err(&one, array(&[1, 0], &[]));
        assert!(e.contains("no frames"), "{e}");
        let e = err(&info(vec![1024; 4]), array(&[3], &[0.0; 3]));
        assert!(e.contains("1-D"), "{e}");
        let mut multi = info(vec![4096; 2]);
        multi.codebook_frame_rates = vec![25.0, 50.0];
        let e = err(&multi, array(&[2, 1], &[0.0, 0.0]));
        assert!(e.contains("multi-scale"), "{e}");
    }
}

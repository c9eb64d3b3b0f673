//! Audio through pipes: read PCM as it arrives (a WAV stream as `arecord` writes it, or raw
//! 16-bit PCM), and write it out as it is made (a WAV stream that `aplay` plays, or raw).
//!
//! Files work through [`read_audio`](super::read_audio) / [`write_wav`](super::write_wav); these
//! are for `codec encode --stream` / `codec decode --stream`, where the length is unknown and
//! the input never seeks. (`hound` needs `Seek` to finish a WAV file, hence the small header
//! writer here.)
//!
//! ```
//! use codec_core::audio::stream::{PcmStreamReader, RawPcm, StreamSampleFormat, WavStreamWriter};
//! # fn main() -> codec_core::Result<()> {
//! let mut pipe = Vec::new();
//! let mut writer = WavStreamWriter::new(&mut pipe, 24000, 1, StreamSampleFormat::Pcm16, true)?;
//! writer.write_mono(&[0.0, 0.5, -0.5])?;
//! let mut reader = PcmStreamReader::new(pipe.as_slice(), RawPcm { sample_rate: 24000, channels: 1 })?;
//! assert_eq!(reader.sample_rate(), 24000);
//! let samples = reader.read_mono()?.unwrap();
//! assert_eq!(samples, vec![0.0, 0.5, -0.5]);
//! # Ok(()) }
//! ```

use std::io::{ErrorKind, Read, Write};

use crate::error::AudioProblem;
use crate::{Error, Result};

/// How to read input that has no WAV header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPcm {
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
}

/// Sample encodings a stream can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamSampleFormat {
    /// Signed 16-bit little-endian integers.
    Pcm16,
    /// Signed 24-bit little-endian integers (reading only).
    Pcm24,
    /// Signed 32-bit little-endian integers (reading only).
    Pcm32,
    /// 32-bit little-endian IEEE floats.
    Float32,
}

impl StreamSampleFormat {
    fn bytes(self) -> usize {
        match self {
            Self::Pcm16 => 2,
            Self::Pcm24 => 3,
            Self::Pcm32 | Self::Float32 => 4,
        }
    }

    fn decode(self, b: &[u8]) -> f32 {
        match self {
            Self::Pcm16 => i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0,
            Self::Pcm24 => (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 / 8_388_608.0,
            Self::Pcm32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0,
            Self::Float32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        }
    }
}

const STREAM_NAME: &str = "<audio stream>";

fn bad(reason: impl Into<String>) -> Error {
    Error::AudioRead {
        path: STREAM_NAME.into(),
        reason: reason.into(),
    }
}

/// Reads interleaved PCM from a pipe as it arrives: a WAV header is recognised and followed,
/// anything else is raw PCM in the [`RawPcm`] layout, 16-bit little-endian.
pub struct PcmStreamReader<R: Read> {
    input: R,
    sample_rate: u32,
    channels: u16,
    format: StreamSampleFormat,
    is_wav: bool,
    /// Bytes read but not yet returned (an incomplete sample frame).
    pending: Vec<u8>,
    /// Data bytes still to read when a WAV header gave a real data size (a file); `None` when
    /// it gave a streaming placeholder (0 or near 4 GiB: read to the end).
    data_left: Option<u64>,
    buffer: Vec<u8>,
    ended: bool,
    /// Sample frames returned so far (for error messages).
    samples_read: u64,
}

impl<R: Read> PcmStreamReader<R> {
    /// Look at the start of `input`: a `RIFF`/`WAVE` header sets the format, otherwise the
    /// input is raw 16-bit PCM in the `raw` layout.
    pub fn new(mut input: R, raw: RawPcm) -> Result<Self> {
        let mut head = [0u8; 12];
        let got = read_up_to(&mut input, &mut head)?;
        let mut reader = Self {
            input,
            sample_rate: raw.sample_rate,
            channels: raw.channels,
            format: StreamSampleFormat::Pcm16,
            is_wav: false,
            pending: Vec::new(),
            data_left: None,
            buffer: vec![0; 16384],
            ended: false,
            samples_read: 0,
        };
        if got == 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WAVE" {
            reader.is_wav = true;
            reader.read_wav_header()?;
        } else {
            if raw.channels == 0 {
                return Err(bad("raw PCM needs a channel count"));
            }
            super::check_sample_rate(u64::from(raw.sample_rate), "raw PCM input")?;
            reader.pending.extend_from_slice(&head[..got]);
            reader.ended = got < head.len();
        }
        Ok(reader)
    }

    fn read_wav_header(&mut self) -> Result<()> {
        let mut have_fmt = false;
        loop {
            let mut chunk = [0u8; 8];
            if read_up_to(&mut self.input, &mut chunk)? < 8 {
                return Err(bad("the WAV stream ends before its data chunk"));
            }
            let size = u32::from_le_bytes(chunk[4..8].try_into().unwrap());
            match &chunk[..4] {
                b"fmt " => {
                    if !(16..=1024).contains(&size) {
                        return Err(bad(format!("WAV fmt chunk of {size} bytes")));
                    }
                    let mut fmt = vec![0u8; size as usize + (size as usize & 1)];
                    if read_up_to(&mut self.input, &mut fmt)? < fmt.len() {
                        return Err(bad("the WAV stream ends inside its fmt chunk"));
                    }
                    let mut tag = u16::from_le_bytes([fmt[0], fmt[1]]);
                    self.channels = u16::from_le_bytes([fmt[2], fmt[3]]);
                    self.sample_rate = u32::from_le_bytes(fmt[4..8].try_into().unwrap());
                    let bits = u16::from_le_bytes([fmt[14], fmt[15]]);
                    if tag == 0xFFFE && fmt.len() >= 26 {
                        tag = u16::from_le_bytes([fmt[24], fmt[25]]); // extensible: sub-format
                    }
                    self.format = match (tag, bits) {
                        (1, 16) => StreamSampleFormat::Pcm16,
                        (1, 24) => StreamSampleFormat::Pcm24,
                        (1, 32) => StreamSampleFormat::Pcm32,
                        (3, 32) => StreamSampleFormat::Float32,
                        _ => {
                            return Err(bad(format!(
                                "WAV sample format {tag} with {bits} bits is not supported in a \
                                 stream (use 16/24/32-bit PCM or 32-bit float, e.g. arecord -f S16_LE)"
                            )))
                        }
                    };
                    if self.channels == 0 {
                        return Err(bad("WAV header with 0 channels"));
                    }
                    super::check_sample_rate(u64::from(self.sample_rate), "the WAV stream")?;
                    have_fmt = true;
                }
                b"data" if have_fmt => {
                    // Streaming writers put a placeholder size (0, or about 2 or 4 GiB) here.
                    if size != 0 && size < 0x7FFF_0000 {
                        self.data_left = Some(size as u64);
                    }
                    return Ok(());
                }
                b"data" => return Err(bad("WAV data chunk before its fmt chunk")),
                _ => {
                    // LIST and other metadata: skip.
                    let mut left = size as u64 + (size as u64 & 1);
                    while left > 0 {
                        let n = left.min(self.buffer.len() as u64) as usize;
                        let got = read_up_to(&mut self.input, &mut self.buffer[..n])?;
                        if got == 0 {
                            return Err(bad("the WAV stream ends before its data chunk"));
                        }
                        left -= got as u64;
                    }
                }
            }
        }
    }

    /// Samples per second.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Interleaved channels.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// The sample encoding.
    pub fn format(&self) -> StreamSampleFormat {
        self.format
    }

    /// Whether the input had a WAV header.
    pub fn is_wav(&self) -> bool {
        self.is_wav
    }

    /// The next samples that have arrived (blocking until at least one whole sample frame has,
    /// or the input ends), mixed down to mono (the mean of the channels). `None` at the end.
    pub fn read_mono(&mut self) -> Result<Option<Vec<f32>>> {
        let width = self.format.bytes();
        let frame = width * self.channels as usize;
        while self.pending.len() < frame {
            if self.ended {
                if !self.pending.is_empty() {
                    let n = self.pending.len();
                    self.pending.clear();
                    return Err(bad(format!(
                        "the stream ends inside a sample frame ({n} stray bytes)"
                    )));
                }
                return Ok(None);
            }
            let want = match self.data_left {
                Some(0) => {
                    self.ended = true; // chunks after the data (e.g. LIST) are not samples
                    continue;
                }
                Some(left) => left.min(self.buffer.len() as u64) as usize,
                None => self.buffer.len(),
            };
            match self.input.read(&mut self.buffer[..want]) {
                Ok(0) => {
                    if let Some(left) = self.data_left.filter(|&l| l > 0) {
                        // As a batch read refuses a cut file: the header announced more.
                        return Err(bad(format!(
                            "the WAV stream is truncated: it ends {left} bytes before the end \
                             of the data its header announces"
                        )));
                    }
                    self.ended = true
                }
                Ok(n) => {
                    self.pending.extend_from_slice(&self.buffer[..n]);
                    if let Some(left) = &mut self.data_left {
                        *left -= n as u64;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(STREAM_NAME, e)),
            }
        }
        let whole = self.pending.len() / frame * frame;
        let channels = self.channels as usize;
        let scale = 1.0 / channels as f32;
        let out: Vec<f32> = self.pending[..whole]
            .chunks_exact(frame)
            .map(|f| {
                let sum: f32 = f.chunks_exact(width).map(|s| self.format.decode(s)).sum();
                if channels == 1 {
                    sum
                } else {
                    sum * scale
                }
            })
            .collect();
        self.pending.drain(..whole);
        // The same rule as a batch read: NaN or infinity is not audio.
        if let Some(i) = out.iter().position(|x| !x.is_finite()) {
            return Err(bad(format!(
                "sample {} is not a finite number (NaN or infinity)",
                self.samples_read + i as u64
            )));
        }
        self.samples_read += out.len() as u64;
        Ok(Some(out))
    }
}

/// Read until `buf` is full or the input ends; returns the bytes read.
fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(STREAM_NAME, e)),
        }
    }
    Ok(filled)
}

/// Writes audio as it is made: a WAV header whose sizes say "until the end" (players such as
/// `aplay`, `ffplay` and `sox` read such streams), or raw interleaved samples.
pub struct WavStreamWriter<W: Write> {
    out: W,
    format: StreamSampleFormat,
    bytes: Vec<u8>,
}

impl<W: Write> WavStreamWriter<W> {
    /// Start a stream of `channels` at `sample_rate`, in 16-bit PCM or 32-bit float; with
    /// `wav_header` false the output is raw samples.
    pub fn new(
        mut out: W,
        sample_rate: u32,
        channels: u16,
        format: StreamSampleFormat,
        wav_header: bool,
    ) -> Result<Self> {
        let (tag, bits): (u16, u16) = match format {
            StreamSampleFormat::Pcm16 => (1, 16),
            StreamSampleFormat::Float32 => (3, 32),
            other => {
                return Err(Error::InvalidAudio(AudioProblem::SampleFormat {
                    format: format!("{other:?}"),
                }))
            }
        };
        if wav_header {
            let block = channels * bits / 8;
            let mut h = Vec::with_capacity(44);
            h.extend_from_slice(b"RIFF");
            h.extend_from_slice(&u32::MAX.to_le_bytes()); // unknown length
            h.extend_from_slice(b"WAVEfmt ");
            h.extend_from_slice(&16u32.to_le_bytes());
            h.extend_from_slice(&tag.to_le_bytes());
            h.extend_from_slice(&channels.to_le_bytes());
            h.extend_from_slice(&sample_rate.to_le_bytes());
            h.extend_from_slice(&(sample_rate * block as u32).to_le_bytes());
            h.extend_from_slice(&block.to_le_bytes());
            h.extend_from_slice(&bits.to_le_bytes());
            h.extend_from_slice(b"data");
            h.extend_from_slice(&u32::MAX.to_le_bytes());
            out.write_all(&h).map_err(|e| Error::io(STREAM_NAME, e))?;
            out.flush().map_err(|e| Error::io(STREAM_NAME, e))?;
        }
        Ok(Self {
            out,
            format,
            bytes: Vec::new(),
        })
    }

    /// Write mono samples (clipped to [-1, 1] for 16-bit PCM) and flush them.
    pub fn write_mono(&mut self, samples: &[f32]) -> Result<()> {
        self.bytes.clear();
        for &s in samples {
            match self.format {
                StreamSampleFormat::Float32 => self.bytes.extend_from_slice(&s.to_le_bytes()),
                _ => self
                    .bytes
                    .extend_from_slice(&super::write::f32_to_i16(s).to_le_bytes()),
            }
        }
        self.out
            .write_all(&self.bytes)
            .and_then(|_| self.out.flush())
            .map_err(|e| Error::io(STREAM_NAME, e))
    }

    /// The output, e.g. to commit an [`OutputFile`](crate::output::OutputFile) once the stream
    /// ended well.
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: RawPcm = RawPcm {
        sample_rate: 24000,
        channels: 1,
    };

    /// A reader that hands out at most `n` bytes per read, like a pipe.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn read_all(r: &mut PcmStreamReader<impl Read>) -> Result<Vec<f32>> {
        let mut all = Vec::new();
        while let Some(s) = r.read_mono()? {
            assert!(!s.is_empty());
            all.extend(s);
        }
        Ok(all)
    }

    #[test]
    fn raw_pcm16_in_trickles() {
        let samples: Vec<i16> = vec![0, 1000, -32768, 32767, 5, -5, 7];
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        for step in [1, 3, 7, 100] {
            let mut r = PcmStreamReader::new(Trickle(&bytes, step), RAW).unwrap();
            assert!(!r.is_wav());
            let got = read_all(&mut r).unwrap();
            let want: Vec<f32> = samples.iter().map(|&s| s as f32 / 32768.0).collect();
            assert_eq!(got, want, "step {step}");
        }
    }

    #[test]
    fn wav_stream_round_trip_float_and_stereo_mixdown() {
        let mut pipe = Vec::new();
        let mut w =
            WavStreamWriter::new(&mut pipe, 16000, 1, StreamSampleFormat::Float32, true).unwrap();
        w.write_mono(&[0.25, -0.125]).unwrap();
        w.write_mono(&[1.5]).unwrap();
        let mut r = PcmStreamReader::new(Trickle(&pipe, 5), RAW).unwrap();
        assert_eq!((r.sample_rate(), r.channels()), (16000, 1));
        assert_eq!(read_all(&mut r).unwrap(), vec![0.25, -0.125, 1.5]);

        // A stereo 16-bit WAV as arecord writes it (placeholder sizes, a LIST chunk first).
        let mut wav = Vec::new();
        wav.extend_from_slice(b"RIFF\xff\xff\xff\x7fWAVE");
        wav.extend_from_slice(b"LIST\x03\x00\x00\x00abc\x00");
        wav.extend_from_slice(b"fmt \x10\x00\x00\x00");
        wav.extend_from_slice(&1u16.to_le_bytes());
        wav.extend_from_slice(&2u16.to_le_bytes());
        wav.extend_from_slice(&48000u32.to_le_bytes());
        wav.extend_from_slice(&(48000u32 * 4).to_le_bytes());
        wav.extend_from_slice(&4u16.to_le_bytes());
        wav.extend_from_slice(&16u16.to_le_bytes());
        wav.extend_from_slice(b"data\xff\xff\xff\x7f");
        for (l, r) in [(16384i16, 0i16), (-16384, -16384)] {
            wav.extend_from_slice(&l.to_le_bytes());
            wav.extend_from_slice(&r.to_le_bytes());
        }
        let mut r = PcmStreamReader::new(wav.as_slice(), RAW).unwrap();
        assert_eq!((r.sample_rate(), r.channels()), (48000, 2));
        assert_eq!(read_all(&mut r).unwrap(), vec![0.25, -0.5]);
    }

    #[test]
    fn stray_bytes_and_bad_headers_are_errors() {
        let mut r = PcmStreamReader::new(&[1u8, 2, 3][..], RAW).unwrap();
        assert_eq!(r.read_mono().unwrap().unwrap().len(), 1);
        assert!(r.read_mono().unwrap_err().to_string().contains("stray"));

        let truncated = b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00";
        assert!(PcmStreamReader::new(&truncated[..], RAW).is_err());

        let mut alaw = Vec::new();
        alaw.extend_from_slice(b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00");
        alaw.extend_from_slice(&[6, 0, 1, 0, 0x40, 0x1f, 0, 0, 0x40, 0x1f, 0, 0, 1, 0, 8, 0]);
        alaw.extend_from_slice(b"data\x00\x00\x00\x00");
        let err = PcmStreamReader::new(alaw.as_slice(), RAW)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not supported"), "{err}");
    }

    #[test]
    fn a_wav_file_stops_at_its_data_size() {
        let mut wav = Vec::new();
        wav.extend_from_slice(b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00");
        wav.extend_from_slice(&[1, 0, 1, 0, 0xc0, 0x5d, 0, 0, 0x80, 0xbb, 0, 0, 2, 0, 16, 0]);
        wav.extend_from_slice(b"data\x04\x00\x00\x00");
        wav.extend_from_slice(&[0, 0x40, 0, 0xc0]);
        wav.extend_from_slice(b"LIST\x04\x00\x00\x00abcd");
        let mut r = PcmStreamReader::new(Trickle(&wav, 3), RAW).unwrap();
        assert_eq!(r.sample_rate(), 24000);
        assert_eq!(read_all(&mut r).unwrap(), vec![0.5, -0.5]);
    }

    #[test]
    fn empty_input_is_an_empty_stream() {
        let mut r = PcmStreamReader::new(&[][..], RAW).unwrap();
        assert!(r.read_mono().unwrap().is_none());
    }
}

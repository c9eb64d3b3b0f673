//! Token streams: codes frame by frame through a pipe (`codec encode --stream | codec decode
//! --stream`), where a [token file](crate::tokfile) cannot work because its length and checksum
//! come first and last.
//!
//! Layout (little-endian; `docs/token-format.md` has the table):
//! - header: magic `CTKS`, version `u16`, model name (`u16` length + UTF-8), weight fingerprint
//!   `u64`, sample rate `u32`, frame rate `f64`, channels `u16`, codebook count `u16`, each
//!   codebook's size `u32`, then the CRC-32 of all of the above;
//! - then frames until the end of the stream, each: one code per codebook (`u16`, or `u32` when
//!   a codebook has more than 65536 entries), then the CRC-32 of those bytes.
//!
//! A stream that stops inside a frame, a flipped bit, or a code out of its codebook's range is an
//! error, never a silently wrong frame.
//!
//! ```
//! use codec_core::tokstream::{StreamHeader, TokenStreamReader, TokenStreamWriter};
//! # fn main() -> codec_core::Result<()> {
//! let header = StreamHeader {
//!     model: "mimi".into(),
//!     fingerprint: 42,
//!     sample_rate: 24000,
//!     frame_rate: 12.5,
//!     channels: 1,
//!     codebook_sizes: vec![2048; 8],
//! };
//! let mut pipe = Vec::new();
//! let mut writer = TokenStreamWriter::new(&mut pipe, header.clone())?;
//! writer.write_frame(&[1, 2, 3, 4, 5, 6, 7, 8])?;
//! let mut reader = TokenStreamReader::new(pipe.as_slice())?;
//! assert_eq!(reader.header(), &header);
//! assert_eq!(reader.next_frame()?, Some(vec![1, 2, 3, 4, 5, 6, 7, 8]));
//! assert_eq!(reader.next_frame()?, None);
//! # Ok(()) }
//! ```

use std::io::{ErrorKind, Read, Write};

use crate::{Error, Result, TokenFileError};

/// Magic bytes at the start of a token stream.
pub const STREAM_MAGIC: &[u8; 4] = b"CTKS";
/// The stream format version this build writes and reads.
pub const STREAM_VERSION: u16 = 1;

/// What a token stream says about the codes that follow.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamHeader {
    /// The model that made the codes.
    pub model: String,
    /// Its weight fingerprint (see [`crate::CodecInfo::fingerprint`]).
    pub fingerprint: u64,
    /// Audio sample rate, Hz.
    pub sample_rate: u32,
    /// Code frames per second.
    pub frame_rate: f64,
    /// Audio channels.
    pub channels: u16,
    /// Entries of each codebook; a frame holds one code per codebook.
    pub codebook_sizes: Vec<u32>,
}

impl StreamHeader {
    /// Bytes per code: 2 when every codebook fits in 16 bits, else 4.
    pub fn code_width(&self) -> usize {
        if self.codebook_sizes.iter().all(|&n| n <= 1 << 16) {
            2
        } else {
            4
        }
    }

    /// Bytes per frame record, checksum included.
    pub fn frame_bytes(&self) -> usize {
        self.codebook_sizes.len() * self.code_width() + 4
    }

    fn to_bytes(&self) -> Result<Vec<u8>> {
        let invalid = |m: String| stream_error(TokenFileError::Invalid(m));
        let name = self.model.as_bytes();
        if name.len() > u16::MAX as usize {
            return Err(invalid("model name longer than 65535 bytes".into()));
        }
        if self.codebook_sizes.is_empty() || self.codebook_sizes.len() > u16::MAX as usize {
            return Err(invalid(format!(
                "{} codebooks (1 to 65535 allowed)",
                self.codebook_sizes.len()
            )));
        }
        if let Some(n) = self.codebook_sizes.iter().find(|&&n| n == 0) {
            return Err(invalid(format!("codebook of {n} entries")));
        }
        if !(self.frame_rate > 0.0 && self.frame_rate.is_finite()) || self.sample_rate == 0 {
            return Err(invalid(format!(
                "rates {} Hz / {} frames/s",
                self.sample_rate, self.frame_rate
            )));
        }
        let mut out = Vec::with_capacity(40 + name.len() + 4 * self.codebook_sizes.len());
        out.extend_from_slice(STREAM_MAGIC);
        out.extend_from_slice(&STREAM_VERSION.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&self.fingerprint.to_le_bytes());
        out.extend_from_slice(&self.sample_rate.to_le_bytes());
        out.extend_from_slice(&self.frame_rate.to_le_bytes());
        out.extend_from_slice(&self.channels.to_le_bytes());
        out.extend_from_slice(&(self.codebook_sizes.len() as u16).to_le_bytes());
        for &n in &self.codebook_sizes {
            out.extend_from_slice(&n.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }
}

fn stream_error(kind: TokenFileError) -> Error {
    Error::TokenStream(kind)
}

/// Writes a token stream: the header at once, then frames, each flushed as it is written.
pub struct TokenStreamWriter<W: Write> {
    out: W,
    header: StreamHeader,
    frame: Vec<u8>,
}

impl<W: Write> TokenStreamWriter<W> {
    /// Write the header (and flush it, so a reader can load its model while audio comes in).
    pub fn new(mut out: W, header: StreamHeader) -> Result<Self> {
        let bytes = header.to_bytes()?;
        out.write_all(&bytes).map_err(io_error)?;
        out.flush().map_err(io_error)?;
        Ok(Self {
            out,
            frame: Vec::with_capacity(header.frame_bytes()),
            header,
        })
    }

    /// The header written.
    pub fn header(&self) -> &StreamHeader {
        &self.header
    }

    /// Write one frame (one code per codebook) and flush it.
    pub fn write_frame(&mut self, codes: &[u32]) -> Result<()> {
        self.encode_frame(codes)?;
        self.out.write_all(&self.frame).map_err(io_error)?;
        self.out.flush().map_err(io_error)
    }

    fn encode_frame(&mut self, codes: &[u32]) -> Result<()> {
        let h = &self.header;
        if codes.len() != h.codebook_sizes.len() {
            return Err(stream_error(TokenFileError::Invalid(format!(
                "frame of {} codes, the stream has {} codebooks",
                codes.len(),
                h.codebook_sizes.len()
            ))));
        }
        let width = h.code_width();
        self.frame.clear();
        for (i, (&code, &size)) in codes.iter().zip(&h.codebook_sizes).enumerate() {
            if code >= size {
                return Err(stream_error(TokenFileError::Invalid(format!(
                    "code {code} out of range for codebook {i} ({size} entries)"
                ))));
            }
            match width {
                2 => self.frame.extend_from_slice(&(code as u16).to_le_bytes()),
                _ => self.frame.extend_from_slice(&code.to_le_bytes()),
            }
        }
        let crc = crc32fast::hash(&self.frame);
        self.frame.extend_from_slice(&crc.to_le_bytes());
        Ok(())
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Reads a token stream frame by frame, blocking until each whole frame has arrived.
pub struct TokenStreamReader<R: Read> {
    input: R,
    header: StreamHeader,
    frame: Vec<u8>,
    frames_read: u64,
}

impl<R: Read> TokenStreamReader<R> {
    /// Read and check the header.
    pub fn new(mut input: R) -> Result<Self> {
        let mut prelude = Vec::new();
        let mut take = |n: usize, prelude: &mut Vec<u8>| -> Result<()> {
            let start = prelude.len();
            prelude.resize(start + n, 0);
            read_exact_or_truncated(&mut input, &mut prelude[start..], start as u64)
        };
        take(4, &mut prelude)?;
        if &prelude[..4] != STREAM_MAGIC {
            let hint = if prelude.starts_with(&crate::tokfile::MAGIC[..4])
                || prelude.starts_with(b"RIFF")
            {
                " (this is a token file or audio, not a token stream)"
            } else {
                ""
            };
            return Err(stream_error(TokenFileError::NotAStream { hint }));
        }
        take(4, &mut prelude)?;
        let version = u16::from_le_bytes([prelude[4], prelude[5]]);
        if version != STREAM_VERSION {
            return Err(stream_error(TokenFileError::UnsupportedVersion {
                found: version,
                supported: STREAM_VERSION,
            }));
        }
        let name_len = u16::from_le_bytes([prelude[6], prelude[7]]) as usize;
        take(name_len + 8 + 4 + 8 + 2 + 2, &mut prelude)?;
        let mut at = 8;
        let model = String::from_utf8(prelude[at..at + name_len].to_vec())
            .map_err(|_| stream_error(TokenFileError::Corrupt("model name is not UTF-8".into())))?;
        at += name_len;
        let fingerprint = u64::from_le_bytes(prelude[at..at + 8].try_into().unwrap());
        at += 8;
        let sample_rate = u32::from_le_bytes(prelude[at..at + 4].try_into().unwrap());
        at += 4;
        let frame_rate = f64::from_le_bytes(prelude[at..at + 8].try_into().unwrap());
        at += 8;
        let channels = u16::from_le_bytes(prelude[at..at + 2].try_into().unwrap());
        at += 2;
        let books = u16::from_le_bytes(prelude[at..at + 2].try_into().unwrap()) as usize;
        at += 2;
        take(4 * books + 4, &mut prelude)?;
        let codebook_sizes: Vec<u32> = (0..books)
            .map(|i| u32::from_le_bytes(prelude[at + 4 * i..at + 4 * i + 4].try_into().unwrap()))
            .collect();
        at += 4 * books;
        let stored = u32::from_le_bytes(prelude[at..at + 4].try_into().unwrap());
        let computed = crc32fast::hash(&prelude[..at]);
        if stored != computed {
            return Err(stream_error(TokenFileError::ChecksumMismatch {
                stored,
                computed,
            }));
        }
        let header = StreamHeader {
            model,
            fingerprint,
            sample_rate,
            frame_rate,
            channels,
            codebook_sizes,
        };
        // The writer refuses these, so finding them means corruption the CRC did not catch.
        if books == 0
            || header.codebook_sizes.contains(&0)
            || sample_rate == 0
            || !(frame_rate > 0.0 && frame_rate.is_finite())
        {
            return Err(stream_error(TokenFileError::Corrupt(
                "impossible header values".into(),
            )));
        }
        Ok(Self {
            input,
            frame: vec![0; header.frame_bytes()],
            header,
            frames_read: 0,
        })
    }

    /// The stream's header.
    pub fn header(&self) -> &StreamHeader {
        &self.header
    }

    /// Frames read so far.
    pub fn frames_read(&self) -> u64 {
        self.frames_read
    }

    /// The next frame's codes, or `None` at the end of the stream (which must fall between
    /// frames).
    pub fn next_frame(&mut self) -> Result<Option<Vec<u32>>> {
        let mut filled = 0;
        while filled < self.frame.len() {
            match self.input.read(&mut self.frame[filled..]) {
                Ok(0) if filled == 0 => return Ok(None),
                Ok(0) => {
                    return Err(stream_error(TokenFileError::Frame {
                        frame: self.frames_read,
                        problem: format!(
                            "the stream ends inside it ({filled} of {} bytes)",
                            self.frame.len()
                        ),
                    }))
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e)),
            }
        }
        let body = self.frame.len() - 4;
        let stored = u32::from_le_bytes(self.frame[body..].try_into().unwrap());
        let computed = crc32fast::hash(&self.frame[..body]);
        if stored != computed {
            return Err(stream_error(TokenFileError::Frame {
                frame: self.frames_read,
                problem: format!(
                    "checksum mismatch (stored {stored:08x}, computed {computed:08x}): the \
                     stream is corrupted"
                ),
            }));
        }
        let width = self.header.code_width();
        let codes: Vec<u32> = self.frame[..body]
            .chunks_exact(width)
            .map(|c| match width {
                2 => u16::from_le_bytes([c[0], c[1]]) as u32,
                _ => u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            })
            .collect();
        for (i, (&code, &size)) in codes.iter().zip(&self.header.codebook_sizes).enumerate() {
            if code >= size {
                return Err(stream_error(TokenFileError::Frame {
                    frame: self.frames_read,
                    problem: format!("code {code} out of range for codebook {i} ({size} entries)"),
                }));
            }
        }
        self.frames_read += 1;
        Ok(Some(codes))
    }
}

fn read_exact_or_truncated(input: &mut impl Read, buf: &mut [u8], offset: u64) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(stream_error(TokenFileError::Truncated {
                    needed: offset + buf.len() as u64,
                    actual: offset + filled as u64,
                }))
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(e)),
        }
    }
    Ok(())
}

fn io_error(e: std::io::Error) -> Error {
    Error::io("<token stream>", e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(sizes: Vec<u32>) -> StreamHeader {
        StreamHeader {
            model: "mimi".into(),
            fingerprint: 0x0123_4567_89ab_cdef,
            sample_rate: 24000,
            frame_rate: 12.5,
            channels: 1,
            codebook_sizes: sizes,
        }
    }

    fn stream(h: &StreamHeader, frames: &[Vec<u32>]) -> Vec<u8> {
        let mut w = TokenStreamWriter::new(Vec::new(), h.clone()).unwrap();
        for f in frames {
            w.write_frame(f).unwrap();
        }
        w.into_inner()
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Vec<u32>>> {
        let mut r = TokenStreamReader::new(bytes)?;
        let mut out = Vec::new();
        while let Some(f) = r.next_frame()? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn round_trip_16_and_32_bit_codes() {
        for sizes in [vec![2048; 4], vec![70000, 3]] {
            let h = header(sizes.clone());
            let frames: Vec<Vec<u32>> = (0..5)
                .map(|t| sizes.iter().map(|&n| (t * 977 + 13) % n).collect())
                .collect();
            let bytes = stream(&h, &frames);
            let r = TokenStreamReader::new(bytes.as_slice()).unwrap();
            assert_eq!(r.header(), &h);
            assert_eq!(read_all(&bytes).unwrap(), frames);
        }
    }

    #[test]
    fn header_only_stream_has_no_frames() {
        let bytes = stream(&header(vec![2048; 8]), &[]);
        assert!(read_all(&bytes).unwrap().is_empty());
    }

    #[test]
    fn every_truncation_is_an_error_or_a_frame_boundary() {
        let h = header(vec![2048; 3]);
        let frames = vec![vec![1, 2, 3], vec![4, 5, 6]];
        let bytes = stream(&h, &frames);
        let header_len = bytes.len() - 2 * h.frame_bytes();
        for cut in 0..bytes.len() {
            let result = read_all(&bytes[..cut]);
            let at_boundary =
                cut >= header_len && (cut - header_len).is_multiple_of(h.frame_bytes());
            if at_boundary {
                let n = (cut - header_len) / h.frame_bytes();
                assert_eq!(result.unwrap(), frames[..n].to_vec(), "cut at {cut}");
            } else {
                assert!(result.is_err(), "cut at {cut} read as {result:?}");
            }
        }
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let h = header(vec![2048; 2]);
        let bytes = stream(&h, &[vec![7, 9], vec![100, 2047]]);
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                let result = read_all(&b);
                assert!(
                    result.is_err(),
                    "flip byte {i} bit {bit} read as {result:?}"
                );
            }
        }
    }

    #[test]
    fn writer_refuses_codes_out_of_range_and_wrong_counts() {
        let mut w = TokenStreamWriter::new(Vec::new(), header(vec![2048; 2])).unwrap();
        assert!(w.write_frame(&[2048, 0]).is_err());
        assert!(w.write_frame(&[1]).is_err());
        assert!(w.write_frame(&[1, 2]).is_ok());
    }

    #[test]
    fn a_token_file_is_named_as_such() {
        let err = TokenStreamReader::new(&b"\x89TOK\r\n\x1a\nrest of a file"[..])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("token file or audio"), "{err}");
    }
}

//! The `.tok` token file: discrete codes of an encoded clip plus what is needed to decode them.
//!
//! A token file stores, for one clip, the codes of every codebook ("stream") together with the
//! name and weight fingerprint of the model that produced them, the model's sample and frame
//! rates, and the original clip's sample rate, length and channel count, so that decoding can
//! check it uses the right model and restore the original rate and length.
//!
//! The format is little-endian and versioned; codes are bit-packed at
//! [`TokenFile::bits_per_code`] bits each. Two CRC-32 checksums protect it: one over the fixed
//! 24-byte prelude (so the recorded total length can be trusted) and one over the whole file.
//! Reading never panics and tells apart a file that is not a token file
//! ([`TokenFileError::BadMagic`]), one from another format version
//! ([`TokenFileError::UnsupportedVersion`]), a cut-off file ([`TokenFileError::Truncated`]), a
//! corrupted one ([`TokenFileError::ChecksumMismatch`]), one with inconsistent contents
//! ([`TokenFileError::Corrupt`]) and one with junk appended ([`TokenFileError::TrailingBytes`]).
//!
//! The exact byte layout is documented in `docs/token-format.md`:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 8 | magic `89 54 4F 4B 0D 0A 1A 0A` (`\x89TOK\r\n\x1a\n`) |
//! | 8  | 2 | format version (u16) |
//! | 10 | 2 | flags (u16), must be 0 |
//! | 12 | 8 | total file length in bytes (u64) |
//! | 20 | 4 | CRC-32 of bytes 0..20 |
//! | 24 | … | header, stream table, scales, packed codes |
//! | end-4 | 4 | CRC-32 of every preceding byte |

use std::path::Path;

use crate::error::{Error, TokenFileError};

/// The largest token file read (1 GiB: days of audio at any bitrate the models have).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// The 8 magic bytes a token file starts with.
///
/// Built like PNG's signature: the high-bit first byte catches 7-bit transfers, `\r\n`, `\x1a` and
/// the final `\n` catch newline conversion and DOS end-of-file handling of files opened in text
/// mode.
pub const MAGIC: [u8; 8] = *b"\x89TOK\r\n\x1a\n";

/// The format version this build writes and the only one it reads.
pub const FORMAT_VERSION: u16 = 1;

/// Length of the fixed prelude (magic, version, flags, total length, prelude CRC).
pub const PRELUDE_LEN: usize = 24;

/// Longest model name the format can hold, in UTF-8 bytes.
pub const MAX_MODEL_NAME_LEN: usize = u16::MAX as usize;

/// Bytes of the trailing whole-file CRC-32.
const CRC_LEN: usize = 4;
/// Offset of the version field.
const VERSION_OFFSET: usize = 8;
/// Offset of the total-length field.
const TOTAL_LEN_OFFSET: usize = 12;
/// Offset of the prelude CRC (which covers bytes `0..PRELUDE_CRC_OFFSET`).
const PRELUDE_CRC_OFFSET: usize = 20;
/// Bytes of one entry of the stream table: codebook size u32, frame rate f64, frame count u64.
const STREAM_ENTRY_LEN: usize = 4 + 8 + 8;

/// Everything about a clip except its codes.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenHeader {
    /// Name of the model (its card name) that produced the codes; at most 65535 UTF-8 bytes.
    pub model: String,
    /// Fingerprint of the model weights, to refuse decoding with different weights.
    pub fingerprint: u64,
    /// Sample rate of the model, in Hz (> 0).
    pub sample_rate: u32,
    /// Frames per second of the base stream (finite, > 0).
    pub frame_rate: f64,
    /// Sample rate of the input audio before resampling, in Hz (> 0).
    pub original_sample_rate: u32,
    /// Samples per channel of the input audio before resampling.
    pub original_length: u64,
    /// Channels of the audio the codes decode to: the model's (1 for a mono model, whatever
    /// the input had), >= 1.
    pub channels: u16,
}

/// The codes of one codebook.
#[derive(Debug, Clone, PartialEq)]
pub struct CodebookCodes {
    /// Number of entries of the codebook (>= 1); every code is `< codebook_size`.
    pub codebook_size: u32,
    /// Frames per second of this stream (finite, > 0). Multi-scale codecs such as SNAC have
    /// streams at different rates.
    pub frame_rate: f64,
    /// One code per frame.
    pub codes: Vec<u32>,
}

/// A whole token file: header, code streams and optional per-segment scales.
///
/// ```
/// use codec_core::tokfile::{CodebookCodes, TokenFile, TokenHeader};
///
/// let file = TokenFile {
///     header: TokenHeader {
///         model: "wavtokenizer-small-75".into(),
///         fingerprint: 0x0123_4567_89ab_cdef,
///         sample_rate: 24_000,
///         frame_rate: 75.0,
///         original_sample_rate: 44_100,
///         original_length: 88_200,
///         channels: 1,
///     },
///     streams: vec![CodebookCodes { codebook_size: 4096, frame_rate: 75.0, codes: vec![7; 150] }],
///     scales: vec![],
/// };
/// let bytes = file.to_bytes()?;
/// assert_eq!(TokenFile::from_bytes(&bytes)?, file);
/// assert_eq!(file.num_frames(), 150);
/// assert_eq!(file.bitrate(), 900.0); // 75 frames/s * 12 bits
/// assert_eq!(file.duration_seconds(), 2.0);
/// # Ok::<(), codec_core::TokenFileError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TokenFile {
    /// Model and clip description.
    pub header: TokenHeader,
    /// One entry per codebook, in the model's order.
    pub streams: Vec<CodebookCodes>,
    /// Optional per-segment scales (EnCodec 48 kHz); usually empty. Must be finite.
    pub scales: Vec<f32>,
}

impl TokenFile {
    /// Serialize to the `.tok` byte layout, after checking the contents are valid (every code
    /// below its codebook size, positive finite rates, ...).
    ///
    /// Fails with [`TokenFileError::Invalid`] when they are not.
    pub fn to_bytes(&self) -> Result<Vec<u8>, TokenFileError> {
        self.validate().map_err(TokenFileError::Invalid)?;
        self.encode()
    }

    /// Parse and check a whole `.tok` file.
    ///
    /// Never panics and never allocates more than a small multiple of `bytes.len()`, whatever
    /// the input. The checks run in this order: magic ([`TokenFileError::BadMagic`]), version
    /// ([`TokenFileError::UnsupportedVersion`]), length ([`TokenFileError::Truncated`]),
    /// checksums ([`TokenFileError::ChecksumMismatch`]), extra bytes
    /// ([`TokenFileError::TrailingBytes`]), then the contents ([`TokenFileError::Corrupt`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TokenFileError> {
        let actual = bytes.len() as u64;
        let truncated = |needed: u64| TokenFileError::Truncated { needed, actual };

        // Magic: a short file that is a prefix of the magic is a truncated token file.
        let n = bytes.len().min(MAGIC.len());
        if bytes[..n] != MAGIC[..n] {
            return Err(TokenFileError::BadMagic);
        }
        // Version, before any checksum, so that a newer file says so.
        let Some(version) = read_u16_at(bytes, VERSION_OFFSET) else {
            return Err(truncated(PRELUDE_LEN as u64));
        };
        if version != FORMAT_VERSION {
            return Err(TokenFileError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        // Prelude and its checksum, which makes the total length trustworthy.
        let Some(prelude) = bytes.get(..PRELUDE_LEN) else {
            return Err(truncated(PRELUDE_LEN as u64));
        };
        let stored = read_u32_at(prelude, PRELUDE_CRC_OFFSET).unwrap_or_default();
        let computed = crc32fast::hash(&prelude[..PRELUDE_CRC_OFFSET]);
        if stored != computed {
            return Err(TokenFileError::ChecksumMismatch { stored, computed });
        }
        let total_len = read_u64_at(prelude, TOTAL_LEN_OFFSET).unwrap_or_default();
        if total_len < (PRELUDE_LEN + CRC_LEN) as u64 {
            return Err(TokenFileError::Corrupt(format!(
                "recorded file length {total_len} is shorter than the fixed parts"
            )));
        }
        if actual < total_len {
            return Err(truncated(total_len));
        }
        // total_len <= actual = bytes.len(), so it fits in usize.
        let total = total_len as usize;
        let Some(file) = bytes.get(..total) else {
            return Err(truncated(total_len));
        };
        let (data, crc) = file.split_at(total - CRC_LEN);
        let stored = read_u32_at(crc, 0).unwrap_or_default();
        let computed = crc32fast::hash(data);
        if stored != computed {
            return Err(TokenFileError::ChecksumMismatch { stored, computed });
        }
        if actual > total_len {
            return Err(TokenFileError::TrailingBytes(actual - total_len));
        }

        let flags = read_u16_at(prelude, VERSION_OFFSET + 2).unwrap_or_default();
        if flags != 0 {
            return Err(TokenFileError::Corrupt(format!(
                "flags are {flags:#06x}, version {FORMAT_VERSION} defines none"
            )));
        }
        let file = decode_body(data.get(PRELUDE_LEN..).unwrap_or_default())?;
        file.validate().map_err(TokenFileError::Corrupt)?;
        Ok(file)
    }

    /// Write the file to `path` through [`crate::output::OutputFile`]: the bytes go to a
    /// temporary file in the same directory, which is then renamed over `path`, so that readers
    /// never see a half-written file and a failed write leaves an existing file as it was.
    pub fn write(&self, path: &Path) -> crate::Result<()> {
        let bytes = self.to_bytes().map_err(|kind| Error::TokenFile {
            path: Some(path.to_path_buf()),
            kind,
        })?;
        crate::output::write_file(path, &bytes)
    }

    /// Read and check the token file at `path` (see [`TokenFile::from_bytes`]).
    pub fn read(path: &Path) -> crate::Result<Self> {
        let bytes = crate::audio::read_bounded(path, MAX_FILE_BYTES)?;
        Self::from_bytes(&bytes).map_err(|kind| Error::TokenFile {
            path: Some(path.to_path_buf()),
            kind,
        })
    }

    /// Frames of the first stream (0 when there is none).
    pub fn num_frames(&self) -> usize {
        self.streams.first().map_or(0, |s| s.codes.len())
    }

    /// Bits one code of a codebook with `size` entries takes in the file: `ceil(log2(size))`,
    /// at least 1.
    ///
    /// ```
    /// use codec_core::tokfile::TokenFile;
    /// assert_eq!(TokenFile::bits_per_code(1), 1);
    /// assert_eq!(TokenFile::bits_per_code(1024), 10);
    /// assert_eq!(TokenFile::bits_per_code(1025), 11);
    /// ```
    pub fn bits_per_code(size: u32) -> u32 {
        (u32::BITS - size.saturating_sub(1).leading_zeros()).max(1)
    }

    /// Information rate of the codes in bits per second: the sum over streams of
    /// `frame_rate * log2(codebook_size)` (not rounded up to whole bits).
    pub fn bitrate(&self) -> f64 {
        self.streams
            .iter()
            .map(|s| s.frame_rate * f64::from(s.codebook_size).log2())
            .sum()
    }

    /// Duration of the original clip in seconds (`original_length / original_sample_rate`, or 0
    /// when the rate is 0).
    pub fn duration_seconds(&self) -> f64 {
        let h = &self.header;
        if h.original_sample_rate == 0 {
            return 0.0;
        }
        h.original_length as f64 / f64::from(h.original_sample_rate)
    }

    /// Check the invariants of the format; the message says what is wrong.
    fn validate(&self) -> Result<(), String> {
        let h = &self.header;
        if h.model.len() > MAX_MODEL_NAME_LEN {
            return Err(format!(
                "model name is {} bytes, at most {MAX_MODEL_NAME_LEN} fit",
                h.model.len()
            ));
        }
        if h.sample_rate == 0 {
            return Err("model sample rate is 0".into());
        }
        check_rate(h.frame_rate).map_err(|e| format!("frame rate {e}"))?;
        if h.original_sample_rate == 0 {
            return Err("original sample rate is 0".into());
        }
        if h.channels == 0 {
            return Err("channel count is 0".into());
        }
        if u32::try_from(self.streams.len()).is_err() {
            return Err(format!("{} streams is too many", self.streams.len()));
        }
        for (i, s) in self.streams.iter().enumerate() {
            if s.codebook_size == 0 {
                return Err(format!("stream {i} has codebook size 0"));
            }
            check_rate(s.frame_rate).map_err(|e| format!("stream {i} frame rate {e}"))?;
            if let Some((t, &c)) = s
                .codes
                .iter()
                .enumerate()
                .find(|&(_, &c)| c >= s.codebook_size)
            {
                return Err(format!(
                    "stream {i} frame {t}: code {c} is out of range for codebook size {}",
                    s.codebook_size
                ));
            }
        }
        if u32::try_from(self.scales.len()).is_err() {
            return Err(format!("{} scales is too many", self.scales.len()));
        }
        if let Some((i, x)) = self.scales.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(format!("scale {i} is {x}, not a finite number"));
        }
        Ok(())
    }

    /// Serialize without validating contents (only lengths that do not fit their fields fail).
    fn encode(&self) -> Result<Vec<u8>, TokenFileError> {
        let too_long =
            |what: &str, n: usize| TokenFileError::Invalid(format!("{what} {n} is too large"));
        let h = &self.header;
        let model_len = u16::try_from(h.model.len())
            .map_err(|_| too_long("model name length", h.model.len()))?;
        let n_streams = u32::try_from(self.streams.len())
            .map_err(|_| too_long("stream count", self.streams.len()))?;
        let n_scales = u32::try_from(self.scales.len())
            .map_err(|_| too_long("scale count", self.scales.len()))?;

        let mut out = Vec::with_capacity(self.encoded_len_hint());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // flags
        out.extend_from_slice(&0u64.to_le_bytes()); // total length, filled in below
        out.extend_from_slice(&0u32.to_le_bytes()); // prelude CRC, filled in below

        out.extend_from_slice(&model_len.to_le_bytes());
        out.extend_from_slice(h.model.as_bytes());
        out.extend_from_slice(&h.fingerprint.to_le_bytes());
        out.extend_from_slice(&h.sample_rate.to_le_bytes());
        out.extend_from_slice(&h.frame_rate.to_le_bytes());
        out.extend_from_slice(&h.original_sample_rate.to_le_bytes());
        out.extend_from_slice(&h.original_length.to_le_bytes());
        out.extend_from_slice(&h.channels.to_le_bytes());

        out.extend_from_slice(&n_streams.to_le_bytes());
        for s in &self.streams {
            out.extend_from_slice(&s.codebook_size.to_le_bytes());
            out.extend_from_slice(&s.frame_rate.to_le_bytes());
            out.extend_from_slice(&(s.codes.len() as u64).to_le_bytes());
        }
        out.extend_from_slice(&n_scales.to_le_bytes());
        for x in &self.scales {
            out.extend_from_slice(&x.to_le_bytes());
        }
        for s in &self.streams {
            pack_codes(&s.codes, Self::bits_per_code(s.codebook_size), &mut out);
        }

        let total = (out.len() + CRC_LEN) as u64;
        out[TOTAL_LEN_OFFSET..TOTAL_LEN_OFFSET + 8].copy_from_slice(&total.to_le_bytes());
        let prelude_crc = crc32fast::hash(&out[..PRELUDE_CRC_OFFSET]);
        out[PRELUDE_CRC_OFFSET..PRELUDE_LEN].copy_from_slice(&prelude_crc.to_le_bytes());
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Size of the serialized file (exact for valid contents).
    fn encoded_len_hint(&self) -> usize {
        let codes: usize = self
            .streams
            .iter()
            .map(|s| (s.codes.len() * Self::bits_per_code(s.codebook_size) as usize).div_ceil(8))
            .sum();
        PRELUDE_LEN
            + 2
            + self.header.model.len()
            + 8
            + 4
            + 8
            + 4
            + 8
            + 2
            + 4
            + STREAM_ENTRY_LEN * self.streams.len()
            + 4
            + 4 * self.scales.len()
            + codes
            + CRC_LEN
    }
}

/// `Ok` when `rate` is finite and positive, else what is wrong with it.
fn check_rate(rate: f64) -> Result<(), String> {
    if rate.is_finite() && rate > 0.0 {
        Ok(())
    } else {
        Err(format!("{rate} is not a positive finite number"))
    }
}

/// Decode everything between the prelude and the trailing CRC. The checksums have passed, so a
/// field that runs past the end means the writer was inconsistent: [`TokenFileError::Corrupt`].
fn decode_body(body: &[u8]) -> Result<TokenFile, TokenFileError> {
    let mut r = ByteReader { buf: body, pos: 0 };
    let model_len = r.u16("model name length")?;
    let model = std::str::from_utf8(r.take(model_len.into(), "model name")?)
        .map_err(|e| TokenFileError::Corrupt(format!("model name is not UTF-8: {e}")))?
        .to_owned();
    let header = TokenHeader {
        model,
        fingerprint: r.u64("fingerprint")?,
        sample_rate: r.u32("sample rate")?,
        frame_rate: r.f64("frame rate")?,
        original_sample_rate: r.u32("original sample rate")?,
        original_length: r.u64("original length")?,
        channels: r.u16("channel count")?,
    };

    let n_streams = r.u32("stream count")? as usize;
    if n_streams > r.remaining() / STREAM_ENTRY_LEN {
        return Err(TokenFileError::Corrupt(format!(
            "{n_streams} streams do not fit in the remaining {} bytes",
            r.remaining()
        )));
    }
    let mut table = Vec::with_capacity(n_streams);
    for _ in 0..n_streams {
        let size = r.u32("codebook size")?;
        let rate = r.f64("stream frame rate")?;
        let frames = r.u64("frame count")?;
        table.push((size, rate, frames));
    }

    let n_scales = r.u32("scale count")? as usize;
    if n_scales > r.remaining() / 4 {
        return Err(TokenFileError::Corrupt(format!(
            "{n_scales} scales do not fit in the remaining {} bytes",
            r.remaining()
        )));
    }
    let mut scales = Vec::with_capacity(n_scales);
    for _ in 0..n_scales {
        scales.push(r.f32("scale")?);
    }

    let mut streams = Vec::with_capacity(n_streams);
    for (i, (codebook_size, frame_rate, frames)) in table.into_iter().enumerate() {
        if codebook_size == 0 {
            return Err(TokenFileError::Corrupt(format!(
                "stream {i} has codebook size 0"
            )));
        }
        let bits = TokenFile::bits_per_code(codebook_size);
        let packed_len = frames
            .checked_mul(bits.into())
            .map(|b| b.div_ceil(8))
            .filter(|&n| n <= r.remaining() as u64)
            .ok_or_else(|| {
                TokenFileError::Corrupt(format!(
                    "stream {i}: {frames} codes of {bits} bits do not fit in the remaining {} bytes",
                    r.remaining()
                ))
            })?;
        // packed_len <= remaining, and frames <= 8 * packed_len, so both fit in usize.
        let packed = r.take(packed_len as usize, "codes")?;
        let codes = unpack_codes(packed, bits, frames as usize).ok_or_else(|| {
            TokenFileError::Corrupt(format!(
                "stream {i}: padding bits after the last code are not zero"
            ))
        })?;
        streams.push(CodebookCodes {
            codebook_size,
            frame_rate,
            codes,
        });
    }
    if r.remaining() != 0 {
        return Err(TokenFileError::Corrupt(format!(
            "{} bytes between the last codes and the checksum belong to nothing",
            r.remaining()
        )));
    }
    Ok(TokenFile {
        header,
        streams,
        scales,
    })
}

/// Append `codes` packed LSB-first at `bits` bits each, zero-padded to a whole byte.
fn pack_codes(codes: &[u32], bits: u32, out: &mut Vec<u8>) {
    let mut acc = 0u64;
    let mut n_acc = 0u32; // always < 8 between codes
    for &c in codes {
        acc |= u64::from(c) << n_acc;
        n_acc += bits;
        while n_acc >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            n_acc -= 8;
        }
    }
    if n_acc > 0 {
        out.push(acc as u8);
    }
}

/// Unpack `n` codes of `bits` bits (1..=32) from `packed`, which holds exactly
/// `ceil(n * bits / 8)` bytes. `None` when the padding bits are not zero (or, defensively, when
/// `packed` is too short).
fn unpack_codes(packed: &[u8], bits: u32, n: usize) -> Option<Vec<u32>> {
    let mask = if bits >= 32 {
        u64::from(u32::MAX)
    } else {
        (1u64 << bits) - 1
    };
    let mut out = Vec::with_capacity(n.min(packed.len().saturating_mul(8)));
    let mut bytes = packed.iter();
    let mut acc = 0u64;
    let mut n_acc = 0u32; // at most 39 bits are ever held
    for _ in 0..n {
        while n_acc < bits {
            acc |= u64::from(*bytes.next()?) << n_acc;
            n_acc += 8;
        }
        out.push((acc & mask) as u32);
        acc >>= bits;
        n_acc -= bits;
    }
    (acc == 0 && bytes.next().is_none()).then_some(out)
}

/// Bounds-checked little-endian reader over the body of a token file.
struct ByteReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], TokenFileError> {
        let slice = self
            .pos
            .checked_add(n)
            .and_then(|end| self.buf.get(self.pos..end))
            .ok_or_else(|| {
                TokenFileError::Corrupt(format!("{what} runs past the end of the data"))
            })?;
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], TokenFileError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u16(&mut self, what: &str) -> Result<u16, TokenFileError> {
        self.array(what).map(u16::from_le_bytes)
    }

    fn u32(&mut self, what: &str) -> Result<u32, TokenFileError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, TokenFileError> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn f32(&mut self, what: &str) -> Result<f32, TokenFileError> {
        self.array(what).map(f32::from_le_bytes)
    }

    fn f64(&mut self, what: &str) -> Result<f64, TokenFileError> {
        self.array(what).map(f64::from_le_bytes)
    }
}

fn read_u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    bytes
        .get(at..at.checked_add(2)?)?
        .try_into()
        .ok()
        .map(u16::from_le_bytes)
}

fn read_u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at.checked_add(4)?)?
        .try_into()
        .ok()
        .map(u32::from_le_bytes)
}

fn read_u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    bytes
        .get(at..at.checked_add(8)?)?
        .try_into()
        .ok()
        .map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> TokenHeader {
        TokenHeader {
            model: "snac-24khz".into(),
            fingerprint: 0xdead_beef_0bad_f00d,
            sample_rate: 24_000,
            frame_rate: 11.71875,
            original_sample_rate: 44_100,
            original_length: 123_457,
            channels: 2,
        }
    }

    /// Deterministic pseudo-random codes below `size`.
    fn codes(size: u32, n: usize, seed: u64) -> Vec<u32> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Hit the extremes too.
                match i % 7 {
                    0 => size - 1,
                    1 => 0,
                    _ => (x % u64::from(size)) as u32,
                }
            })
            .collect()
    }

    /// A realistic multi-scale file (SNAC-like: three streams at 1x, 2x, 4x the base rate).
    fn snac_like(frames: usize) -> TokenFile {
        TokenFile {
            header: header(),
            streams: vec![
                CodebookCodes {
                    codebook_size: 4096,
                    frame_rate: 11.71875,
                    codes: codes(4096, frames, 1),
                },
                CodebookCodes {
                    codebook_size: 4096,
                    frame_rate: 23.4375,
                    codes: codes(4096, 2 * frames, 2),
                },
                CodebookCodes {
                    codebook_size: 4096,
                    frame_rate: 46.875,
                    codes: codes(4096, 4 * frames, 3),
                },
            ],
            scales: vec![],
        }
    }

    /// Recompute both checksums after editing bytes in place.
    fn fix_crcs(bytes: &mut [u8]) {
        let pc = crc32fast::hash(&bytes[..PRELUDE_CRC_OFFSET]);
        bytes[PRELUDE_CRC_OFFSET..PRELUDE_LEN].copy_from_slice(&pc.to_le_bytes());
        let end = bytes.len() - CRC_LEN;
        let c = crc32fast::hash(&bytes[..end]);
        bytes[end..].copy_from_slice(&c.to_le_bytes());
    }

    fn assert_corrupt(bytes: &[u8]) {
        match TokenFile::from_bytes(bytes) {
            Err(TokenFileError::Corrupt(_)) => {}
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn magic_and_bits_per_code() {
        assert_eq!(MAGIC.len(), 8);
        assert_eq!(&MAGIC, b"\x89TOK\r\n\x1a\n");
        let cases = [
            (0, 1),
            (1, 1),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 3),
            (1000, 10),
            (1024, 10),
            (1025, 11),
            (4096, 12),
            (4097, 13),
            (65536, 16),
            (1 << 20, 20),
            ((1 << 20) + 1, 21),
            (u32::MAX, 32),
        ];
        for (size, bits) in cases {
            assert_eq!(TokenFile::bits_per_code(size), bits, "size {size}");
        }
    }

    #[test]
    fn round_trip_codebook_sizes() {
        for size in [1, 2, 3, 1000, 1024, 4096, 4097, 65536, 1 << 20, u32::MAX] {
            for n in [0, 1, 7, 8, 9, 333] {
                let file = TokenFile {
                    header: header(),
                    streams: vec![CodebookCodes {
                        codebook_size: size,
                        frame_rate: 75.0,
                        codes: codes(size, n, u64::from(size) + n as u64),
                    }],
                    scales: vec![],
                };
                let bytes = file.to_bytes().unwrap();
                assert_eq!(bytes.len(), file.encoded_len_hint(), "size {size} n {n}");
                let packed = (n * TokenFile::bits_per_code(size) as usize).div_ceil(8);
                assert_eq!(bytes.len(), 24 + 2 + 10 + 34 + 4 + 20 + 4 + packed + 4);
                assert_eq!(
                    TokenFile::from_bytes(&bytes).unwrap(),
                    file,
                    "size {size} n {n}"
                );
            }
        }
    }

    #[test]
    fn round_trip_multi_scale_streams_and_scales() {
        let sizes = [2u32, 1000, 1024, 4096, 4097, 65536, 1 << 20];
        let file = TokenFile {
            header: header(),
            streams: sizes
                .iter()
                .enumerate()
                .map(|(i, &size)| CodebookCodes {
                    codebook_size: size,
                    frame_rate: 12.5 * (1 << (i % 3)) as f64,
                    codes: codes(size, 37 * (1 << (i % 3)) + i, i as u64),
                })
                .collect(),
            scales: vec![0.5, 1.25, 3.0e-7, -2.0, 0.0],
        };
        let bytes = file.to_bytes().unwrap();
        let back = TokenFile::from_bytes(&bytes).unwrap();
        assert_eq!(back, file);
        assert_eq!(back.num_frames(), 37);
        // Writing again gives the same bytes.
        assert_eq!(back.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn every_header_field_survives() {
        let header = TokenHeader {
            model: "wåvtokenizer/medium-speech-75 ✓".into(),
            fingerprint: u64::MAX - 12345,
            sample_rate: 48_000,
            frame_rate: 1.0 / 3.0,
            original_sample_rate: 7,
            original_length: u64::MAX,
            channels: u16::MAX,
        };
        let file = TokenFile {
            header: header.clone(),
            streams: vec![],
            scales: vec![f32::MIN_POSITIVE, f32::MAX],
        };
        let back = TokenFile::from_bytes(&file.to_bytes().unwrap()).unwrap();
        assert_eq!(back.header, header);
        assert_eq!(back.header.frame_rate.to_bits(), (1.0f64 / 3.0).to_bits());
        assert_eq!(back.scales, file.scales);
        assert_eq!(back.num_frames(), 0);

        // Longest model name that fits.
        let mut long = file.clone();
        long.header.model = "x".repeat(MAX_MODEL_NAME_LEN);
        assert_eq!(
            TokenFile::from_bytes(&long.to_bytes().unwrap()).unwrap(),
            long
        );
        long.header.model.push('x');
        assert!(matches!(long.to_bytes(), Err(TokenFileError::Invalid(_))));
    }

    #[test]
    fn empty_streams_allowed() {
        let mut file = snac_like(0);
        file.scales = vec![];
        let bytes = file.to_bytes().unwrap();
        let back = TokenFile::from_bytes(&bytes).unwrap();
        assert_eq!(back, file);
        assert_eq!(back.num_frames(), 0);
        assert_eq!(back.streams.len(), 3);
        // Also a file with no stream at all.
        file.streams.clear();
        assert_eq!(
            TokenFile::from_bytes(&file.to_bytes().unwrap()).unwrap(),
            file
        );
    }

    #[test]
    fn packing_is_lsb_first_and_padded() {
        // Three 3-bit codes (size 5): 5 = 101, 3 = 011, 6 = 110.
        // Bit stream (each code LSB first): 1 0 1 | 1 1 0 | 0 1 1 | padding 0 0 0 0 0 0 0
        // byte 0 holds bits 0..8 with bit 0 in its LSB: 0b10_011_101 = 0x9d;
        // byte 1 holds the last bit of code 2 and seven padding zeros: 0x01.
        let mut out = vec![];
        pack_codes(&[5, 3, 6], 3, &mut out);
        assert_eq!(out, [0x9d, 0x01]);
        assert_eq!(unpack_codes(&out, 3, 3), Some(vec![5, 3, 6]));
        // Non-zero padding is rejected.
        assert_eq!(unpack_codes(&[0x9d, 0x03], 3, 3), None);
        // 12-bit codes: 0xabc, 0x123 -> bc 3a 12
        let mut out = vec![];
        pack_codes(&[0xabc, 0x123], 12, &mut out);
        assert_eq!(out, [0xbc, 0x3a, 0x12]);
        // 32-bit codes.
        let mut out = vec![];
        pack_codes(&[u32::MAX, 1], 32, &mut out);
        assert_eq!(out, [0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0]);
        assert_eq!(unpack_codes(&out, 32, 2), Some(vec![u32::MAX, 1]));
    }

    #[test]
    fn layout_of_the_prelude() {
        let bytes = snac_like(5).to_bytes().unwrap();
        assert_eq!(bytes[..8], MAGIC);
        assert_eq!(bytes[8..10], FORMAT_VERSION.to_le_bytes());
        assert_eq!(bytes[10..12], [0, 0]);
        assert_eq!(bytes[12..20], (bytes.len() as u64).to_le_bytes());
        assert_eq!(bytes[20..24], crc32fast::hash(&bytes[..20]).to_le_bytes());
        let n = bytes.len();
        assert_eq!(
            bytes[n - 4..],
            crc32fast::hash(&bytes[..n - 4]).to_le_bytes()
        );
        // The model name follows the prelude.
        assert_eq!(bytes[24..26], 10u16.to_le_bytes());
        assert_eq!(&bytes[26..36], b"snac-24khz");
    }

    #[test]
    fn truncation_at_every_offset_is_reported() {
        let file = snac_like(20);
        let bytes = file.to_bytes().unwrap();
        let full = bytes.len() as u64;
        for len in 0..bytes.len() {
            match TokenFile::from_bytes(&bytes[..len]) {
                Err(TokenFileError::Truncated { needed, actual }) => {
                    assert_eq!(actual, len as u64);
                    assert!(needed > actual);
                    if len >= PRELUDE_LEN {
                        assert_eq!(needed, full, "len {len}");
                    }
                }
                Err(TokenFileError::BadMagic) if len < MAGIC.len() => {}
                other => panic!("truncated to {len} bytes: got {other:?}"),
            }
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut file = snac_like(24);
        file.scales = vec![1.0, 2.5];
        let bytes = file.to_bytes().unwrap();
        assert!(bytes.len() > 200);
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            match TokenFile::from_bytes(&b) {
                Err(
                    TokenFileError::ChecksumMismatch { .. }
                    | TokenFileError::BadMagic
                    | TokenFileError::UnsupportedVersion { .. }
                    | TokenFileError::Corrupt(_),
                ) => {}
                other => panic!("bit {i} flipped: got {other:?}"),
            }
        }
    }

    #[test]
    fn wrong_magic() {
        let bytes = snac_like(3).to_bytes().unwrap();
        for i in 0..8 {
            let mut b = bytes.clone();
            b[i] = b'X';
            assert_eq!(TokenFile::from_bytes(&b), Err(TokenFileError::BadMagic));
        }
        assert_eq!(
            TokenFile::from_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt "),
            Err(TokenFileError::BadMagic)
        );
        assert_eq!(
            TokenFile::from_bytes(b"\x89T"),
            Err(TokenFileError::Truncated {
                needed: 24,
                actual: 2
            })
        );
        // Text-mode mangling (LF -> CRLF) breaks the magic.
        let mangled: Vec<u8> = bytes
            .iter()
            .flat_map(|&c| {
                if c == b'\n' {
                    vec![b'\r', b'\n']
                } else {
                    vec![c]
                }
            })
            .collect();
        assert_eq!(
            TokenFile::from_bytes(&mangled),
            Err(TokenFileError::BadMagic)
        );
    }

    #[test]
    fn wrong_version() {
        let bytes = snac_like(3).to_bytes().unwrap();
        for version in [0u16, 2, 0x0100, u16::MAX] {
            // With valid checksums, so only the version check can fire.
            let mut b = bytes.clone();
            b[8..10].copy_from_slice(&version.to_le_bytes());
            fix_crcs(&mut b);
            let expected = TokenFileError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            };
            assert_eq!(TokenFile::from_bytes(&b), Err(expected.clone()));
            // Checksums broken too (a newer layout): still reported as a version problem.
            let mut b = bytes.clone();
            b[8..10].copy_from_slice(&version.to_le_bytes());
            assert_eq!(TokenFile::from_bytes(&b), Err(expected.clone()));
            // Even a short newer file.
            assert_eq!(TokenFile::from_bytes(&b[..12]), Err(expected));
        }
    }

    #[test]
    fn trailing_bytes() {
        let bytes = snac_like(3).to_bytes().unwrap();
        for extra in [&[0u8][..], b"\n", b"junk junk junk"] {
            let mut b = bytes.clone();
            b.extend_from_slice(extra);
            assert_eq!(
                TokenFile::from_bytes(&b),
                Err(TokenFileError::TrailingBytes(extra.len() as u64))
            );
        }
        // Two files concatenated.
        let mut b = bytes.clone();
        b.extend_from_slice(&bytes);
        assert_eq!(
            TokenFile::from_bytes(&b),
            Err(TokenFileError::TrailingBytes(bytes.len() as u64))
        );
    }

    #[test]
    fn checksum_mismatch_reports_values() {
        let mut bytes = snac_like(3).to_bytes().unwrap();
        let n = bytes.len();
        bytes[n - 10] ^= 0xff;
        match TokenFile::from_bytes(&bytes) {
            Err(TokenFileError::ChecksumMismatch { stored, computed }) => {
                assert_ne!(stored, computed);
                assert_eq!(stored.to_le_bytes(), bytes[n - 4..]);
            }
            other => panic!("got {other:?}"),
        }
    }

    #[test]
    fn invalid_contents_rejected_at_write() {
        let good = snac_like(4);
        let mut f = good.clone();
        f.streams[1].codes[3] = 4096;
        let err = f.to_bytes().unwrap_err();
        assert!(
            matches!(&err, TokenFileError::Invalid(m) if m.contains("out of range")),
            "{err}"
        );

        let mut f = good.clone();
        f.streams[0].codebook_size = 0;
        f.streams[0].codes.clear();
        assert!(matches!(f.to_bytes(), Err(TokenFileError::Invalid(_))));

        for rate in [0.0, -75.0, f64::NAN, f64::INFINITY] {
            let mut f = good.clone();
            f.header.frame_rate = rate;
            assert!(
                matches!(f.to_bytes(), Err(TokenFileError::Invalid(_))),
                "{rate}"
            );
            let mut f = good.clone();
            f.streams[2].frame_rate = rate;
            assert!(
                matches!(f.to_bytes(), Err(TokenFileError::Invalid(_))),
                "{rate}"
            );
        }
        let mut f = good.clone();
        f.header.sample_rate = 0;
        assert!(matches!(f.to_bytes(), Err(TokenFileError::Invalid(_))));
        let mut f = good.clone();
        f.header.original_sample_rate = 0;
        assert!(matches!(f.to_bytes(), Err(TokenFileError::Invalid(_))));
        let mut f = good.clone();
        f.header.channels = 0;
        assert!(matches!(f.to_bytes(), Err(TokenFileError::Invalid(_))));
        let mut f = good;
        f.scales = vec![1.0, f32::NAN];
        assert!(matches!(f.to_bytes(), Err(TokenFileError::Invalid(_))));
    }

    /// Files with valid checksums but inconsistent contents (a buggy writer) are `Corrupt`.
    #[test]
    fn inconsistent_contents_rejected_at_read() {
        let good = snac_like(4);

        let mut f = good.clone();
        f.streams[0].codebook_size = 4000; // still 12 bits, but 4095 is out of range
        assert_corrupt(&f.encode().unwrap());

        let mut f = good.clone();
        f.streams[1].codebook_size = 0;
        assert_corrupt(&f.encode().unwrap());

        let mut f = good.clone();
        f.header.frame_rate = f64::NAN;
        assert_corrupt(&f.encode().unwrap());
        let mut f = good.clone();
        f.streams[0].frame_rate = -1.0;
        assert_corrupt(&f.encode().unwrap());
        let mut f = good.clone();
        f.header.channels = 0;
        assert_corrupt(&f.encode().unwrap());

        // Bad UTF-8 in the model name.
        let mut b = good.encode().unwrap();
        b[26] = 0xff;
        fix_crcs(&mut b);
        assert_corrupt(&b);

        // Non-zero flags.
        let mut b = good.encode().unwrap();
        b[10] = 1;
        fix_crcs(&mut b);
        assert_corrupt(&b);

        // Non-zero padding bits after a stream's last code (size 5: 3 bits, 3 codes).
        let f = TokenFile {
            header: header(),
            streams: vec![CodebookCodes {
                codebook_size: 5,
                frame_rate: 1.0,
                codes: vec![4, 4, 4],
            }],
            scales: vec![],
        };
        let mut b = f.encode().unwrap();
        let n = b.len();
        b[n - 5] |= 0x80;
        fix_crcs(&mut b);
        assert_corrupt(&b);
    }

    /// Counts and lengths that do not fit the file are rejected without allocating.
    #[test]
    fn huge_counts_rejected_without_allocating() {
        let good = snac_like(4);
        let bytes = good.encode().unwrap();
        let streams_at = 24 + 2 + 10 + 34;
        let first_frames_at = streams_at + 4 + 12;
        let scales_at = streams_at + 4 + 3 * 20;
        for (at, value) in [
            (streams_at, &u32::MAX.to_le_bytes()[..]),
            (streams_at, &4u32.to_le_bytes()[..]),
            (first_frames_at, &u64::MAX.to_le_bytes()[..]),
            (first_frames_at, &(u64::MAX / 12 + 1).to_le_bytes()[..]),
            (first_frames_at, &(1u64 << 40).to_le_bytes()[..]),
            (first_frames_at, &5u64.to_le_bytes()[..]),
            (scales_at, &u32::MAX.to_le_bytes()[..]),
            (scales_at, &1u32.to_le_bytes()[..]),
            (24, &u16::MAX.to_le_bytes()[..]),
        ] {
            let mut b = bytes.clone();
            b[at..at + value.len()].copy_from_slice(value);
            fix_crcs(&mut b);
            assert_corrupt(&b);
        }
        // A recorded length shorter than the fixed parts.
        for total in [0u64, 27] {
            let mut b = bytes.clone();
            b[12..20].copy_from_slice(&total.to_le_bytes());
            fix_crcs(&mut b);
            assert_corrupt(&b);
        }
        // A recorded length beyond the data is a truncated file.
        let mut b = bytes.clone();
        b[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
        fix_crcs(&mut b);
        assert!(matches!(
            TokenFile::from_bytes(&b),
            Err(TokenFileError::Truncated {
                needed: u64::MAX,
                ..
            })
        ));
    }

    /// Random edits with the checksums repaired (an adversarial file) must never panic.
    #[test]
    fn adversarial_edits_never_panic() {
        let mut file = snac_like(6);
        file.scales = vec![1.0; 3];
        let bytes = file.encode().unwrap();
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut b = bytes.clone();
            for _ in 0..1 + next() % 4 {
                let i = PRELUDE_LEN + (next() as usize) % (b.len() - PRELUDE_LEN - CRC_LEN);
                b[i] = next() as u8;
            }
            fix_crcs(&mut b);
            let _ = TokenFile::from_bytes(&b);
        }
        // And arbitrary short garbage behind a valid magic.
        for len in 0..64 {
            let mut b = MAGIC.to_vec();
            b.extend((0..len).map(|_| next() as u8));
            let _ = TokenFile::from_bytes(&b);
        }
    }

    #[test]
    fn derived_quantities() {
        let file = snac_like(10);
        assert_eq!(file.num_frames(), 10);
        let expected = (11.71875 + 23.4375 + 46.875) * 12.0;
        assert!((file.bitrate() - expected).abs() < 1e-9);
        assert!((file.duration_seconds() - 123_457.0 / 44_100.0).abs() < 1e-12);
        let mut f = file.clone();
        f.streams[0].codebook_size = 1000;
        assert!((f.bitrate() - (expected - 11.71875 * (12.0 - 1000f64.log2()))).abs() < 1e-9);
        f.header.original_sample_rate = 0;
        assert_eq!(f.duration_seconds(), 0.0);
        f.streams.clear();
        assert_eq!(f.num_frames(), 0);
        assert_eq!(f.bitrate(), 0.0);
    }

    #[test]
    fn write_then_read_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.tok");
        let mut file = snac_like(50);
        file.scales = vec![0.25, 4.0];
        file.write(&path).unwrap();
        assert_eq!(TokenFile::read(&path).unwrap(), file);
        // Overwriting works and leaves no temporary file behind.
        let smaller = snac_like(2);
        smaller.write(&path).unwrap();
        assert_eq!(TokenFile::read(&path).unwrap(), smaller);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("clip.tok")]);

        // A file with bad contents names the path.
        std::fs::write(&path, b"hello").unwrap();
        match TokenFile::read(&path) {
            Err(Error::TokenFile {
                path: Some(p),
                kind: TokenFileError::BadMagic,
            }) => {
                assert_eq!(p, path)
            }
            other => panic!("got {other:?}"),
        }
        // Invalid contents are refused before touching the file system.
        let mut bad = smaller.clone();
        bad.streams[0].codes[0] = 5000;
        let other = dir.path().join("bad.tok");
        assert!(matches!(
            bad.write(&other),
            Err(Error::TokenFile {
                kind: TokenFileError::Invalid(_),
                ..
            })
        ));
        assert!(!other.exists());
        // Writing into a missing directory is an I/O error naming the target.
        let nowhere = dir.path().join("no/such/dir/x.tok");
        match smaller.write(&nowhere) {
            Err(Error::Io { path, .. }) => assert_eq!(path, nowhere),
            other => panic!("got {other:?}"),
        }
    }

    #[test]
    fn read_missing_path_is_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.tok");
        let err = TokenFile::read(&path).unwrap_err();
        match &err {
            Error::Io { path: p, cause } => {
                assert_eq!(p, &path);
                assert_eq!(cause.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("got {other:?}"),
        }
        assert!(err.to_string().contains("missing.tok"), "{err}");
    }
}

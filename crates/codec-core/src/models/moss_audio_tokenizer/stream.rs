//! The reference's `chunk_duration` streaming: fixed chunks of code frames through the
//! stacks with ring KV caches (see [`StreamingTransformer::set_ring_cache`]).
//!
//! [`StreamingTransformer::set_ring_cache`]:
//! crate::nn::moshi_transformer::StreamingTransformer::set_ring_cache

use candle_core::{DType, Tensor};

use super::{pad_to_frames, Parts, Stack};
use crate::codec::{check_mono_audio, check_stacked_codes};
use crate::error::{AudioProblem, CodesProblem};
use crate::streaming::{cat_pieces, StreamingDecoder, StreamingEncoder};
use crate::{Error, Result};

/// Audio in chunks of `chunk_frames` code frames; codes out per chunk.
pub(super) struct ChunkEncoder {
    parts: Parts,
    stack: Stack,
    name: String,
    batch: usize,
    n_q: usize,
    chunk_frames: usize,
    mask_partial_frame: bool,
    /// Samples of the chunk under way, `[batch, 1, < chunk]`.
    buffer: Option<Tensor>,
    /// Whether a chunk went through the stack (else the end is a whole-file encode).
    started: bool,
}

impl ChunkEncoder {
    pub(super) fn new(
        parts: Parts,
        name: String,
        batch: usize,
        n_q: usize,
        chunk_frames: usize,
        mask_partial_frame: bool,
    ) -> Result<Self> {
        if batch == 0 {
            return Err(Error::Unsupported("a stream of batch 0".into()));
        }
        let mut stack = parts.encoder.clone();
        stack.reset(true);
        Ok(Self {
            parts,
            stack,
            name,
            batch,
            n_q,
            chunk_frames,
            mask_partial_frame,
            buffer: None,
            started: false,
        })
    }

    fn chunk_samples(&self) -> usize {
        self.chunk_frames * self.parts.hop
    }

    /// Codes of `frames` valid frames of one stepped piece (padded to whole frames).
    fn step(&mut self, piece: &Tensor, keep: usize) -> Result<Option<Tensor>> {
        let latent = self
            .stack
            .step(&pad_to_frames(piece, self.parts.hop)?, None)?;
        if keep == 0 {
            return Ok(None);
        }
        let codes = self
            .parts
            .quantizer
            .encode(&latent, self.n_q, &vec![keep; self.batch])?;
        self.started = true;
        Ok(Some(codes.narrow(2, 0, keep)?))
    }
}

impl StreamingEncoder for ChunkEncoder {
    fn frame_size(&self) -> usize {
        self.parts.hop
    }

    fn push_audio(&mut self, audio: &Tensor) -> Result<Option<Tensor>> {
        if audio.rank() == 3 && audio.dim(2)? == 0 && audio.dim(0)? == self.batch {
            return Ok(None);
        }
        check_mono_audio(audio, &self.name)?;
        if audio.dim(0)? != self.batch {
            return Err(Error::InvalidAudio(AudioProblem::Batch {
                stream: self.batch,
                got: audio.dim(0)?,
            }));
        }
        let audio = audio.to_device(&self.parts.device)?.to_dtype(DType::F32)?;
        let mut buffer = match self.buffer.take() {
            Some(b) => Tensor::cat(&[&b, &audio], 2)?,
            None => audio,
        };
        let chunk = self.chunk_samples();
        let mut out = None;
        while buffer.dim(2)? >= chunk {
            let piece = buffer.narrow(2, 0, chunk)?;
            out = cat_pieces(out, self.step(&piece, self.chunk_frames)?)?;
            buffer = buffer.narrow(2, chunk, buffer.dim(2)? - chunk)?;
        }
        self.buffer = (buffer.dim(2)? > 0).then_some(buffer);
        Ok(out)
    }

    /// The last chunk: its whole frames when chunks went before (a partial frame is dropped,
    /// as the reference's streaming drops it); a stream shorter than one chunk is encoded as
    /// a whole file, partial frame included, as the reference does.
    fn finish(&mut self) -> Result<Option<Tensor>> {
        let out = match self.buffer.take() {
            None => None,
            Some(rest) if self.started => {
                let keep = rest.dim(2)? / self.parts.hop;
                self.step(&rest, keep)?
            }
            Some(rest) => {
                let samples = rest.dim(2)?;
                let latent = self.parts.encode_latent(&rest, None)?;
                let frames = latent.dim(2)?;
                let valid = if self.mask_partial_frame {
                    samples / self.parts.hop
                } else {
                    frames
                };
                Some(
                    self.parts
                        .quantizer
                        .encode(&latent, self.n_q, &vec![valid; self.batch])?,
                )
            }
        };
        self.reset();
        Ok(out)
    }

    fn reset(&mut self) {
        self.buffer = None;
        self.started = false;
        self.stack.reset(true);
    }
}

/// Codes in chunks of `chunk_frames` frames; audio out per chunk.
pub(super) struct ChunkDecoder {
    parts: Parts,
    stack: Stack,
    name: String,
    batch: usize,
    /// Codebooks and entries per codebook.
    books: (usize, usize),
    chunk_frames: usize,
    /// Codes of the chunk under way, `[batch, k, < chunk]` (u32).
    buffer: Option<Tensor>,
}

impl ChunkDecoder {
    pub(super) fn new(
        parts: Parts,
        name: String,
        batch: usize,
        books: (usize, usize),
        chunk_frames: usize,
    ) -> Result<Self> {
        if batch == 0 {
            return Err(Error::Unsupported("a stream of batch 0".into()));
        }
        let mut stack = parts.decoder.clone();
        stack.reset(true);
        Ok(Self {
            parts,
            stack,
            name,
            batch,
            books,
            chunk_frames,
            buffer: None,
        })
    }

    fn step(&mut self, codes: &Tensor) -> Result<Tensor> {
        let latent = self.parts.quantizer.decode(codes)?;
        self.stack.step(&latent, None)
    }
}

impl StreamingDecoder for ChunkDecoder {
    fn frame_size(&self) -> usize {
        self.parts.hop
    }

    fn push_codes(&mut self, codes: &Tensor) -> Result<Option<Tensor>> {
        if codes.rank() == 3 && codes.dim(2)? == 0 && codes.dim(0)? == self.batch {
            return Ok(None);
        }
        check_stacked_codes(codes, self.books.0, self.books.1, &self.name)?;
        if codes.dim(0)? != self.batch {
            return Err(Error::InvalidCodes(CodesProblem::Batch {
                stream: self.batch,
                got: codes.dim(0)?,
            }));
        }
        let codes = codes.to_device(&self.parts.device)?.to_dtype(DType::U32)?;
        let mut buffer = match self.buffer.take() {
            Some(b) if b.dim(1)? != codes.dim(1)? => {
                return Err(Error::codes_shape(
                    &self.name,
                    format!("[batch, {}, frames] as before in this stream", b.dim(1)?),
                    codes.dims(),
                ))
            }
            Some(b) => Tensor::cat(&[&b, &codes], 2)?,
            None => codes,
        };
        let mut out = None;
        while buffer.dim(2)? >= self.chunk_frames {
            let piece = buffer.narrow(2, 0, self.chunk_frames)?;
            out = cat_pieces(out, Some(self.step(&piece)?))?;
            buffer = buffer.narrow(2, self.chunk_frames, buffer.dim(2)? - self.chunk_frames)?;
        }
        self.buffer = (buffer.dim(2)? > 0).then_some(buffer);
        Ok(out)
    }

    /// The last, shorter chunk's audio.
    fn finish(&mut self) -> Result<Option<Tensor>> {
        let out = match self.buffer.take() {
            Some(rest) => Some(self.step(&rest)?),
            None => None,
        };
        self.reset();
        Ok(out)
    }

    fn reset(&mut self) {
        self.buffer = None;
        self.stack.reset(true);
    }
}

//! Streaming: feed audio (or codes) in pieces of any size and get out everything that is
//! complete, with state carried between calls.
//!
//! Two levels, as in moshi:
//! - [`StreamingModule`]: one small trait that every streaming *layer* implements (causal
//!   convolution, transposed convolution, transformer with a bounded KV cache, ...). A layer
//!   takes the next piece of its input stream and returns the output that the input seen so far
//!   fully determines; the rest waits in its state.
//! - [`StreamingEncoder`] / [`StreamingDecoder`]: what a causal *model* hands out through
//!   [`Codec::streaming_encoder`](crate::Codec::streaming_encoder) and
//!   [`Codec::streaming_decoder`](crate::Codec::streaming_decoder). They accept any number of
//!   samples (or code frames), for a batch of independent streams, and their output,
//!   concatenated, equals the batch `encode` / `decode` of the same input (over whole frames).
//!   A model whose convolutions reflect-pad their left context (EnCodec 24 kHz) needs a few
//!   frames beyond the first before anything comes out (7 for EnCodec, see
//!   [`Encodec`](crate::models::encodec::Encodec)); from then on, one frame out per frame in.
//!
//! ```no_run
//! use codec_core::{load_model, Codec, ModelSpec, Tensor};
//! # fn main() -> codec_core::Result<()> {
//! let device = codec_core::Device::Cpu;
//! let model = load_model(&ModelSpec::parse("mimi")?, &device)?;
//! let mut encoder = model.streaming_encoder(1, &Default::default())?;
//! let mut decoder = model.streaming_decoder(1)?;
//! // 10 ms pieces, as a sound card delivers them: codes come out every 80 ms.
//! for _ in 0..100 {
//!     let piece = Tensor::zeros((1, 1, 240), codec_core::DType::F32, &device)?;
//!     if let Some(codes) = encoder.push_audio(&piece)? {
//!         let audio = decoder.push_codes(&codes)?; // [1, 1, frames * 1920]
//!         # let _ = audio;
//!     }
//! }
//! # Ok(()) }
//! ```

use candle_core::{DType, Device, Tensor};

use crate::error::{AudioProblem, CodesProblem};
use crate::{Error, Result};

/// A layer that processes a stream piece by piece (time is the last dimension).
///
/// `None` stands for an empty piece, so that layers with a stride can say "nothing yet" without
/// zero-length tensors.
pub trait StreamingModule {
    /// Take the next piece of the input stream; return the output it completes (or `None`).
    fn step(&mut self, xs: Option<&Tensor>) -> Result<Option<Tensor>>;

    /// Forget the stream: the next [`step`](Self::step) starts a new one.
    fn reset_state(&mut self);

    /// Start a new stream in row `index` of the batch only, the other rows going on, as if
    /// that row's next [`step`](Self::step) were its first. Called between whole frames (the
    /// stream wrappers check that first), where a layer holds no half-consumed input; a layer
    /// whose state cannot be restarted row by row (reflect padding, which waits for input to
    /// mirror) says so. On an error the batch is to be [`reset`](Self::reset_state) whole.
    fn reset_item(&mut self, index: usize) -> Result<()> {
        let _ = index;
        Err(Error::Unsupported(
            "this layer's stream state restarts for the whole batch only".into(),
        ))
    }
}

/// `t` with row `index` of its first (batch) dimension set to zeros: a fresh causal state for
/// that row of a buffer whose fresh content is zeros.
pub(crate) fn zero_batch_row(t: &Tensor, index: usize) -> Result<Tensor> {
    let batch = t.dim(0)?;
    if index >= batch {
        return Err(Error::Unsupported(format!(
            "stream row {index} of a batch of {batch}"
        )));
    }
    let mut parts = Vec::with_capacity(3);
    if index > 0 {
        parts.push(t.narrow(0, 0, index)?);
    }
    parts.push(t.narrow(0, index, 1)?.zeros_like()?);
    if index + 1 < batch {
        parts.push(t.narrow(0, index + 1, batch - index - 1)?);
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// Audio in, codes out, for a batch of independent streams.
pub trait StreamingEncoder: Send {
    /// Samples per code frame: codes for a frame come out once its last sample is pushed.
    fn frame_size(&self) -> usize;

    /// Push audio `[batch, channels, samples]` (any number of samples, also fewer than a
    /// frame). Returns codes `[batch, codebooks, frames]` for every frame this call completed,
    /// or `None` when it completed none (a model with a start-up look-ahead completes none
    /// until it has its first few frames, then all of them at once).
    fn push_audio(&mut self, audio: &Tensor) -> Result<Option<Tensor>>;

    /// Frames held back at the start of a stream only: the first codes come out once
    /// `startup_frames() + 1` frames are in (0 for Mimi; EnCodec's reflect padding needs 6).
    /// Latency is one frame plus this at the start, one frame afterwards.
    fn startup_frames(&self) -> usize {
        0
    }

    /// End the streams: complete the last partial frame with silence (as batch encoding pads
    /// a clip to whole frames) and return the codes still to come, then start new streams.
    /// Codes of everything pushed, with those of `finish`, equal the batch encode's.
    fn finish(&mut self) -> Result<Option<Tensor>>;

    /// Start new streams: drop buffered samples and every layer's state.
    fn reset(&mut self);

    /// Start a new stream in slot `index` of the batch only, between frames; the others go on
    /// (moshi's `reset_batch_idx`). Lyra v2 and Mimi do; models whose layers keep one state
    /// for the whole batch (EnCodec's reflect padding) say so.
    fn reset_item(&mut self, index: usize) -> Result<()> {
        let _ = index;
        Err(Error::Unsupported(
            "this model's streams reset as a whole batch only (reset)".into(),
        ))
    }
}

/// Codes in, audio out, for a batch of independent streams.
pub trait StreamingDecoder: Send {
    /// Samples produced per code frame.
    fn frame_size(&self) -> usize;

    /// Push codes `[batch, codebooks, frames]` (any number of frames). Returns audio
    /// `[batch, channels, frames * frame_size]` for them, or `None` for zero frames (a model
    /// with a start-up look-ahead returns `None` until it has its first few frames, then the
    /// audio of all of them).
    fn push_codes(&mut self, codes: &Tensor) -> Result<Option<Tensor>>;

    /// Code frames held back at the start of a stream only (see
    /// [`StreamingEncoder::startup_frames`]).
    fn startup_frames(&self) -> usize {
        0
    }

    /// End the streams: return any audio still held, then start new streams. (Decoders turn
    /// each whole code frame into audio as it comes, so ours hold none.)
    fn finish(&mut self) -> Result<Option<Tensor>> {
        self.reset();
        Ok(None)
    }

    /// Start new streams.
    fn reset(&mut self);

    /// Start a new stream in slot `index` of the batch only (see
    /// [`StreamingEncoder::reset_item`]).
    fn reset_item(&mut self, index: usize) -> Result<()> {
        let _ = index;
        Err(Error::Unsupported(
            "this model's streams reset as a whole batch only (reset)".into(),
        ))
    }
}

/// Concatenate optional pieces along time (the last dimension).
pub fn cat_pieces(a: Option<Tensor>, b: Option<Tensor>) -> Result<Option<Tensor>> {
    Ok(match (a, b) {
        (None, x) | (x, None) => x,
        (Some(a), Some(b)) => Some(Tensor::cat(&[&a, &b], a.rank() - 1)?),
    })
}

/// What a model gives the shared stream wrappers [`StackEncoder`] and [`StackDecoder`]: the
/// checks and the (stateless, per-frame) quantizer around its streaming layer stacks. The
/// wrappers own a clone of the model (cheap: its tensors are shared, not copied), so a stream
/// can outlive the model value it came from and move to another thread.
pub(crate) trait StackCodec: Send + 'static {
    /// Samples per code frame.
    fn stream_frame_size(&self) -> usize;
    /// Where the model's weights are.
    fn stream_device(&self) -> &Device;
    /// Check the shape of audio `[batch, channels, samples > 0]`.
    fn check_stream_audio(&self, audio: &Tensor) -> Result<()>;
    /// Encoder latent `[batch, dim, frames]` → codes `[batch, n_q, frames]`.
    fn latent_to_codes(&self, latent: &Tensor, n_q: usize) -> Result<Tensor>;
    /// Check codes `[batch, k, frames > 0]` and turn them into the decoder stack's input.
    fn codes_to_latent(&self, codes: &Tensor) -> Result<Tensor>;
    /// Frames the encoder and decoder stacks hold back at the start of a stream.
    fn stream_startup_frames(&self) -> (usize, usize) {
        (0, 0)
    }
    /// Whether every layer of the stacks restarts row by row ([`StreamingModule::reset_item`]):
    /// causal, zero-padded stacks do; reflect padding (EnCodec) does not.
    fn stream_resets_items(&self) -> bool {
        false
    }
}

/// Whether slot `index` of a batch of `batch` streams may restart alone: the model's layers
/// must allow it. The error names what stands in the way.
fn check_item_reset(resets_items: bool, index: usize, batch: usize) -> Result<()> {
    if !resets_items {
        return Err(Error::Unsupported(
            "this model's streams reset as a whole batch only (reset): its convolutions pad \
             with the stream's own first samples"
                .into(),
        ));
    }
    if index >= batch {
        return Err(Error::Unsupported(format!(
            "stream item {index} of a batch of {batch}"
        )));
    }
    Ok(())
}

/// The end of a stream of `batch x channels` items of which `partial` samples of the last
/// frame are in: that frame completed with silence (as batch encoding pads), its codes
/// returned, and the encoder reset for new streams. The one end-of-stream rule of every
/// streaming encoder here.
pub(crate) fn finish_with_silence(
    encoder: &mut (impl StreamingEncoder + ?Sized),
    (batch, channels, partial): (usize, usize, usize),
    device: &Device,
) -> Result<Option<Tensor>> {
    let codes = if partial > 0 {
        let silence = Tensor::zeros(
            (batch, channels, encoder.frame_size() - partial),
            DType::F32,
            device,
        )?;
        encoder.push_audio(&silence)?
    } else {
        None
    };
    encoder.reset();
    Ok(codes)
}

/// A [`StreamingEncoder`] from a model's encoder stack (audio → latent) and its quantizer.
pub(crate) struct StackEncoder<M, S> {
    model: M,
    stack: S,
    batch: usize,
    n_q: usize,
    /// Samples pushed since the last whole frame, for [`StreamingEncoder::finish`].
    partial: usize,
    channels: usize,
}

impl<M: StackCodec, S: StreamingModule + Send> StackEncoder<M, S> {
    /// `stack` is reset here: the encoder starts new streams.
    pub(crate) fn new(model: M, mut stack: S, batch: usize, n_q: usize) -> Self {
        stack.reset_state();
        Self {
            model,
            stack,
            batch,
            n_q,
            partial: 0,
            channels: 1,
        }
    }
}

impl<M: StackCodec, S: StreamingModule + Send> StreamingEncoder for StackEncoder<M, S> {
    fn frame_size(&self) -> usize {
        self.model.stream_frame_size()
    }

    fn push_audio(&mut self, audio: &Tensor) -> Result<Option<Tensor>> {
        if audio.rank() == 3 && audio.dim(2)? == 0 && audio.dim(0)? == self.batch {
            return Ok(None);
        }
        self.model.check_stream_audio(audio)?;
        if audio.dim(0)? != self.batch {
            return Err(Error::InvalidAudio(AudioProblem::Batch {
                stream: self.batch,
                got: audio.dim(0)?,
            }));
        }
        let audio = audio
            .to_device(self.model.stream_device())?
            .to_dtype(DType::F32)?;
        self.channels = audio.dim(1)?;
        self.partial = (self.partial + audio.dim(2)?) % self.model.stream_frame_size();
        match self.stack.step(Some(&audio))? {
            Some(latent) => Ok(Some(self.model.latent_to_codes(&latent, self.n_q)?)),
            None => Ok(None),
        }
    }

    fn startup_frames(&self) -> usize {
        self.model.stream_startup_frames().0
    }

    fn finish(&mut self) -> Result<Option<Tensor>> {
        let shape = (self.batch, self.channels, self.partial);
        let device = self.model.stream_device().clone();
        finish_with_silence(self, shape, &device)
    }

    fn reset(&mut self) {
        self.stack.reset_state();
        self.partial = 0;
    }

    fn reset_item(&mut self, index: usize) -> Result<()> {
        check_item_reset(self.model.stream_resets_items(), index, self.batch)?;
        // The batch advances a frame at a time for every item at once: a new stream starts on
        // a frame boundary, or the items' frames would no longer line up.
        if self.partial > 0 {
            return Err(Error::Unsupported(format!(
                "a stream item resets on a frame boundary only: {} samples of a {}-sample frame \
                 are waiting; push the rest of the frame first",
                self.partial,
                self.model.stream_frame_size()
            )));
        }
        self.stack.reset_item(index)
    }
}

/// A [`StreamingDecoder`] from a model's dequantizer and its decoder stack (latent → audio).
pub(crate) struct StackDecoder<M, S> {
    model: M,
    stack: S,
    batch: usize,
}

impl<M: StackCodec, S: StreamingModule + Send> StackDecoder<M, S> {
    /// `stack` is reset here: the decoder starts new streams.
    pub(crate) fn new(model: M, mut stack: S, batch: usize) -> Self {
        stack.reset_state();
        Self {
            model,
            stack,
            batch,
        }
    }
}

impl<M: StackCodec, S: StreamingModule + Send> StreamingDecoder for StackDecoder<M, S> {
    fn frame_size(&self) -> usize {
        self.model.stream_frame_size()
    }

    fn push_codes(&mut self, codes: &Tensor) -> Result<Option<Tensor>> {
        if codes.rank() == 3 && codes.dim(2)? == 0 && codes.dim(0)? == self.batch {
            return Ok(None);
        }
        let latent = self.model.codes_to_latent(codes)?;
        if codes.dim(0)? != self.batch {
            return Err(Error::InvalidCodes(CodesProblem::Batch {
                stream: self.batch,
                got: codes.dim(0)?,
            }));
        }
        self.stack.step(Some(&latent))
    }

    fn startup_frames(&self) -> usize {
        self.model.stream_startup_frames().1
    }

    fn reset(&mut self) {
        self.stack.reset_state();
    }

    fn reset_item(&mut self, index: usize) -> Result<()> {
        check_item_reset(self.model.stream_resets_items(), index, self.batch)?;
        self.stack.reset_item(index)
    }
}

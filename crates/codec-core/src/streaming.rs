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

use candle_core::Tensor;

use crate::Result;

/// A layer that processes a stream piece by piece (time is the last dimension).
///
/// `None` stands for an empty piece, so that layers with a stride can say "nothing yet" without
/// zero-length tensors.
pub trait StreamingModule {
    /// Take the next piece of the input stream; return the output it completes (or `None`).
    fn step(&mut self, xs: Option<&Tensor>) -> Result<Option<Tensor>>;

    /// Forget the stream: the next [`step`](Self::step) starts a new one.
    fn reset_state(&mut self);
}

/// Audio in, codes out, for a batch of independent streams.
pub trait StreamingEncoder: Send {
    /// Samples per code frame: codes for a frame come out once its last sample is pushed.
    fn frame_size(&self) -> usize;

    /// Push audio `[batch, channels, samples]` (any number of samples, also fewer than a
    /// frame). Returns codes `[batch, codebooks, frames]` for every frame this call completed,
    /// or `None` when it completed none.
    fn push_audio(&mut self, audio: &Tensor) -> Result<Option<Tensor>>;

    /// Start new streams: drop buffered samples and every layer's state.
    fn reset(&mut self);
}

/// Codes in, audio out, for a batch of independent streams.
pub trait StreamingDecoder: Send {
    /// Samples produced per code frame.
    fn frame_size(&self) -> usize;

    /// Push codes `[batch, codebooks, frames]` (any number of frames). Returns audio
    /// `[batch, channels, frames * frame_size]` for them, or `None` for zero frames.
    fn push_codes(&mut self, codes: &Tensor) -> Result<Option<Tensor>>;

    /// Start new streams.
    fn reset(&mut self);
}

/// Concatenate optional pieces along time (the last dimension).
pub fn cat_pieces(a: Option<Tensor>, b: Option<Tensor>) -> Result<Option<Tensor>> {
    Ok(match (a, b) {
        (None, x) | (x, None) => x,
        (Some(a), Some(b)) => Some(Tensor::cat(&[&a, &b], a.rank() - 1)?),
    })
}

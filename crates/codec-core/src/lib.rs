//! # codec-core
//!
//! Neural audio codecs on [candle](https://github.com/huggingface/candle) tensors: turn audio into
//! discrete tokens and back, with the published checkpoints of the reference implementations.
//!
//! ```no_run
//! use codec_core::{load_model, Codec, ModelSpec, audio};
//! # fn main() -> codec_core::Result<()> {
//! let device = codec_core::Device::Cpu;
//! // The default model (the `embedded` feature compiles it in); any card, folder or file works.
//! let model = load_model(&ModelSpec::parse("lyra-v2")?, &device)?;
//! let clip = audio::read_audio("speech.wav")?;
//! let encoded = codec_core::pipeline::encode_audio(model.as_ref(), &clip)?;
//! println!("{} frames", encoded.num_frames());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod audio;
pub mod batch;
pub mod card;
pub mod codec;
pub mod dsp;
pub mod error;
mod guard;
pub mod long_form;
pub mod models;
pub mod nn;
pub mod npy;
pub mod output;
pub mod pipeline;
pub mod quant;
pub mod streaming;
pub mod tokfile;
pub mod tokstream;
pub mod weights;

pub use candle_core::{DType, Device, Tensor};
pub use card::{load_model, load_model_with_report, ModelCard, ModelSpec};
pub use codec::{CodeStreams, Codec, CodecInfo, EncodeOptions, ModelOption};
pub use error::{AudioProblem, CodesProblem, Error, Result, TokenFileError};
pub use streaming::{StreamingDecoder, StreamingEncoder, StreamingModule};
/// The tensor crates the models are built on, for `VarBuilder` construction without a
/// separate dependency.
pub use {candle_core, candle_nn};

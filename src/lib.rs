//! Facade crate: everything in [`codec_core`], under a short name.
//!
//! ```no_run
//! use codec::{Codec, Device};
//! # fn main() -> codec::Result<()> {
//! let model = codec::load_model(&codec::ModelSpec::parse("lyra-v2")?, &Device::Cpu)?;
//! println!("{} Hz, {} frames/s", model.info().sample_rate, model.info().frame_rate);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub use codec_core::*;

/// The README's Rust examples, compiled as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

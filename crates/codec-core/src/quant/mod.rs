//! Quantizers: nearest-neighbour vector quantization and its residual stack.

pub mod vq;

pub use vq::{EuclideanCodebook, ResidualVq};

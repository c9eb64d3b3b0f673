//! Quantizers: nearest-neighbour vector quantization and its residual stack.

pub mod factorized;
pub mod fsq;
pub mod split;
pub mod vq;

pub use factorized::{FactorizedRvq, FactorizedVq};
pub use fsq::{Fsq, ResidualFsq};
pub use split::{ProjectedRvq, SplitRvq};
pub use vq::{EuclideanCodebook, ResidualVq};

//! Signal processing on tensors.

pub mod istft;

pub use istft::{Istft, IstftPadding};

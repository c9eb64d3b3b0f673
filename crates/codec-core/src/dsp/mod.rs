//! Signal processing on tensors.

pub mod istft;
pub mod stft;

pub use istft::{Istft, IstftPadding};
pub use stft::{hann_window, Stft};

//! Neural building blocks shared by the model families.
//!
//! Each block is built from a [`candle_nn::VarBuilder`] whose prefixes mirror the reference
//! checkpoint's key paths, so `vb.pp("model").pp(3)` reads `model.3.*`.

pub mod alias_free;
pub mod conv;
pub mod conv1d;
pub mod kernels;
pub mod linear;
pub mod local_attention;
pub mod lstm;
pub mod moshi_transformer;
pub mod norm;
pub mod roformer;
pub mod seanet;
pub mod snake;
pub mod torch_conv;
pub mod vocos;
pub mod w2v_bert;

pub use conv::{pad1d, ConvNorm, DepthwiseConv1d, PadMode, SConv1d, SConvTranspose1d};
pub use conv1d::{Conv1d, ConvTranspose1d};
pub use lstm::Lstm;
pub use norm::AdaLayerNorm;
pub use snake::Snake1d;

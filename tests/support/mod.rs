//! Helpers shared by the integration tests (and, through `#[path]`, the benches).

pub mod codec_keys;
pub mod manifest;
pub mod random_weights;
pub mod wavtokenizer_keys;

//! A `VarBuilder` backend that names missing or misshaped tensors and records what was used.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;

/// The set of keys a model read while it was built.
pub type UsedKeys = Arc<Mutex<BTreeSet<String>>>;

/// Serves tensors from a map, checks shapes, and records every key that was read.
pub struct TrackingBackend {
    tensors: HashMap<String, Tensor>,
    used: UsedKeys,
}

impl TrackingBackend {
    /// Errors name the tensor; the caller adds which file it came from.
    pub fn new(tensors: HashMap<String, Tensor>) -> (Self, UsedKeys) {
        let used = UsedKeys::default();
        (
            Self {
                tensors,
                used: used.clone(),
            },
            used,
        )
    }
}

impl SimpleBackend for TrackingBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let tensor = self.get_unchecked(name, dtype, dev)?;
        if tensor.shape() != &s {
            // A plain message: `bail!` would attach a backtrace to a user-facing error.
            return Err(candle_core::Error::Msg(format!(
                "tensor {name} has shape {:?}, the model expects {:?}",
                tensor.dims(),
                s.dims()
            )));
        }
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let Some(tensor) = self.tensors.get(name) else {
            return Err(candle_core::Error::Msg(format!("tensor {name} is missing")));
        };
        self.used
            .lock()
            .expect("poisoned key set")
            .insert(name.to_string());
        tensor.to_device(dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

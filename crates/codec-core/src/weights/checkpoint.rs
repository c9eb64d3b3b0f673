//! Reading PyTorch (`.ckpt`, `.pth`, `.th`, `.bin`) and safetensors weight files.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::{Error, Result};

/// A flat map from parameter names to tensors, as in a PyTorch `state_dict`.
#[derive(Debug, Clone, Default)]
pub struct StateDict {
    /// Where the tensors came from, for error messages.
    pub source: String,
    /// Tensors by key.
    pub tensors: HashMap<String, Tensor>,
}

impl StateDict {
    /// Load every tensor of a weight file onto the CPU.
    ///
    /// PyTorch zip checkpoints are read without Python: for a Lightning `.ckpt` the tensors
    /// under `state_dict` are taken (optimizer state and the rest are ignored), for
    /// XY-Tokenizer's `{"generator": state_dict}` those under `generator`; for a plain
    /// `torch.save(state_dict)` the top-level dict. Anything else is read as safetensors.
    pub fn load(path: &Path) -> Result<Self> {
        let source = path.display().to_string();
        let mut magic = [0u8; 4];
        {
            use std::io::Read;
            let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            let n = f.read(&mut magic).map_err(|e| Error::io(path, e))?;
            if n < 4 {
                return Err(Error::weights(
                    &source,
                    "file is too short to be a weight file",
                ));
            }
        }
        let tensors = if &magic == b"PK\x03\x04" {
            // candle's pickle reader panics on some damaged files (found by fuzzing).
            crate::guard::contain(|| read_pytorch_zip(path)).unwrap_or_else(|panic| {
                Err(Error::weights(
                    &source,
                    format!("damaged PyTorch checkpoint (the reader failed: {panic})"),
                ))
            })?
        } else {
            candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| {
                Error::weights(
                    &source,
                    format!("neither a PyTorch zip checkpoint nor safetensors: {e}"),
                )
            })?
        };
        if tensors.is_empty() {
            return Err(Error::weights(&source, "no tensors found"));
        }
        Ok(Self { source, tensors })
    }

    /// Read safetensors from memory (e.g. weights compiled into the binary).
    pub fn from_safetensors_bytes(bytes: &[u8], source: &str) -> Result<Self> {
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
            .map_err(|e| Error::weights(source, format!("not valid safetensors: {e}")))?;
        Ok(Self {
            source: source.to_string(),
            tensors,
        })
    }

    /// Keep the entries whose key starts with `prefix`, with the prefix removed.
    pub fn strip_prefix(&self, prefix: &str) -> Self {
        let tensors = self
            .tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
            .collect();
        Self {
            source: self.source.clone(),
            tensors,
        }
    }

    /// How many of `key(0)`, `key(1)`, ... are present, counting from 0 until the first absent
    /// one: the number of layers, stages or codebooks a checkpoint holds, for reading a config
    /// off its keys.
    pub fn count_indexed(&self, key: impl Fn(usize) -> String) -> usize {
        (0..)
            .take_while(|&i| self.tensors.contains_key(&key(i)))
            .count()
    }

    /// Remove the entries for which `drop` is true (training-only buffers and modules).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.tensors.retain(|k, _| keep(k));
    }

    /// Replace weight-norm pairs by the folded weight, once, at load.
    ///
    /// Handles both spellings: `X.weight_g` / `X.weight_v` (old `torch.nn.utils.weight_norm`)
    /// and `X.parametrizations.weight.original0` / `original1` (the parametrization API).
    /// The norm is taken over every dimension but the first, as `weight_norm(dim=0)` does.
    pub fn fold_weight_norm(&mut self) -> Result<()> {
        let spellings = [
            (".weight_g", ".weight_v"),
            (
                ".parametrizations.weight.original0",
                ".parametrizations.weight.original1",
            ),
        ];
        for (g_suffix, v_suffix) in spellings {
            let stems: Vec<String> = self
                .tensors
                .keys()
                .filter_map(|k| k.strip_suffix(g_suffix).map(str::to_string))
                .collect();
            for stem in stems {
                let g_key = format!("{stem}{g_suffix}");
                let v_key = format!("{stem}{v_suffix}");
                let Some(v) = self.tensors.remove(&v_key) else {
                    return Err(Error::weights(
                        &self.source,
                        format!("{g_key} has no matching {v_key}"),
                    ));
                };
                let g = self.tensors.remove(&g_key).expect("key listed above");
                let weight = fold(&g, &v).map_err(|e| {
                    Error::weights(&self.source, format!("folding weight norm of {stem}: {e}"))
                })?;
                self.tensors.insert(format!("{stem}.weight"), weight);
            }
        }
        Ok(())
    }

    /// Convert every floating-point tensor to `dtype`.
    pub fn to_dtype(&mut self, dtype: DType) -> Result<()> {
        for t in self.tensors.values_mut() {
            if t.dtype().is_float() && t.dtype() != dtype {
                *t = t.to_dtype(dtype)?;
            }
        }
        Ok(())
    }
}

/// `g * v / ||v||`, the norm over all dims but 0.
fn fold(g: &Tensor, v: &Tensor) -> candle_core::Result<Tensor> {
    let v = v.to_dtype(DType::F32)?;
    let g = g.to_dtype(DType::F32)?;
    let out = v.dim(0)?;
    let flat = v.reshape((out, ()))?;
    let norm = flat.sqr()?.sum_keepdim(1)?.sqrt()?;
    let g = g.reshape((out, 1))?;
    flat.broadcast_mul(&g.broadcast_div(&norm)?)?
        .reshape(v.shape())
}

fn read_pytorch_zip(path: &Path) -> Result<HashMap<String, Tensor>> {
    let source = path.display().to_string();
    // A Lightning checkpoint keeps the weights under `state_dict`, XY-Tokenizer's under
    // `generator`; plain saves keep them at the top level. Try the nested forms first.
    let mut pth = candle_core::pickle::PthTensors::new(path, Some("state_dict"));
    for key in [Some("generator"), None] {
        if pth
            .as_ref()
            .map(|p| !p.tensor_infos().is_empty())
            .unwrap_or(false)
        {
            break;
        }
        pth = candle_core::pickle::PthTensors::new(path, key);
    }
    let pth =
        pth.map_err(|e| Error::weights(&source, format!("unreadable PyTorch checkpoint: {e}")))?;
    let mut tensors = HashMap::with_capacity(pth.tensor_infos().len());
    let names: Vec<String> = pth.tensor_infos().keys().cloned().collect();
    for name in names {
        let tensor = pth
            .get(&name)
            .map_err(|e| Error::weights(&source, format!("tensor {name}: {e}")))?;
        if let Some(t) = tensor {
            tensors.insert(name, t);
        }
    }
    Ok(tensors)
}

/// Write the given tensors to a safetensors file (contiguous, as stored).
pub fn convert_to_safetensors(tensors: &HashMap<String, Tensor>, out: &Path) -> Result<()> {
    let tensors: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.contiguous()?)))
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(&tensors, None)
        .map_err(|e| Error::weights(out.display().to_string(), format!("cannot write: {e}")))?;
    crate::output::write_file(out, &bytes)
}

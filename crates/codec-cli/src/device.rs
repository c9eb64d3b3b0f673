//! `--device` parsing.

use anyhow::{bail, Result};
use codec_core::Device;

pub fn parse_device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => {
            if !cfg!(feature = "cuda") {
                bail!("this build has no CUDA support; rebuild with `--features cuda`")
            }
            Device::new_cuda(0).map_err(|e| {
                anyhow::anyhow!(
                    "no CUDA device could be opened ({e}); is an NVIDIA GPU present, with its \
                     driver (R580 or newer) loaded?"
                )
            })
        }
        "metal" => {
            if !cfg!(feature = "metal") {
                bail!("this build has no Metal support; rebuild with `--features metal`")
            }
            Ok(Device::new_metal(0)?)
        }
        other => bail!("unknown device '{other}' (expected cpu, cuda or metal)"),
    }
}

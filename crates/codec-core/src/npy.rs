//! `.npy` export and import of codes, for Python pipelines (`numpy.load`).

use std::path::Path;

use npyz::WriterBuilder;

use crate::{Error, Result};

/// Write codes `[codebooks][frames]` as an int64 array shaped `[codebooks, frames]`.
pub fn write_codes_npy(path: &Path, codes: &[Vec<u32>]) -> Result<()> {
    let frames = codes.first().map_or(0, Vec::len);
    if codes.iter().any(|c| c.len() != frames) {
        return Err(Error::InvalidCodes(
            "codebooks of different lengths (multi-scale codes) cannot be one .npy array; \
             use the .tok format"
                .into(),
        ));
    }
    let mut out = Vec::new();
    {
        let mut writer = npyz::WriteOptions::<i64>::new()
            .default_dtype()
            .shape(&[codes.len() as u64, frames as u64])
            .writer(&mut out)
            .begin_nd()
            .map_err(|e| Error::io(path, e))?;
        for row in codes {
            for &c in row {
                writer.push(&(c as i64)).map_err(|e| Error::io(path, e))?;
            }
        }
        writer.finish().map_err(|e| Error::io(path, e))?;
    }
    crate::output::write_file(path, &out)
}

/// A numeric array read from a `.npy` file, as f64 values with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

/// Read an integer or float `.npy` array (C order).
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |m: String| Error::InvalidCodes(format!("{}: {m}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| bad(format!("not a .npy file: {e}")))?;
    if npy.order() != npyz::Order::C {
        return Err(bad("Fortran-ordered arrays are not supported".into()));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let npyz::DType::Plain(ty) = npy.dtype() else {
        return Err(bad("structured arrays are not supported".into()));
    };
    let values: Vec<f64> = match (ty.type_char(), ty.size_field()) {
        (npyz::TypeChar::Int, 8) => conv(npy.into_vec::<i64>(), &bad)?,
        (npyz::TypeChar::Int, 4) => conv(npy.into_vec::<i32>(), &bad)?,
        (npyz::TypeChar::Int, 2) => conv(npy.into_vec::<i16>(), &bad)?,
        (npyz::TypeChar::Uint, 8) => conv(npy.into_vec::<u64>(), &bad)?,
        (npyz::TypeChar::Uint, 4) => conv(npy.into_vec::<u32>(), &bad)?,
        (npyz::TypeChar::Uint, 2) => conv(npy.into_vec::<u16>(), &bad)?,
        (npyz::TypeChar::Float, 4) => conv(npy.into_vec::<f32>(), &bad)?,
        (npyz::TypeChar::Float, 8) => conv(npy.into_vec::<f64>(), &bad)?,
        (c, s) => return Err(bad(format!("unsupported dtype {c:?}{s}"))),
    };
    Ok(NpyArray { shape, values })
}

fn conv<T: Copy + Into<NumF64>>(
    v: std::io::Result<Vec<T>>,
    bad: &dyn Fn(String) -> Error,
) -> Result<Vec<f64>> {
    let v = v.map_err(|e| bad(format!("unreadable data: {e}")))?;
    Ok(v.into_iter().map(|x| x.into().0).collect())
}

/// Lossless-enough widening to f64 for every element type we read.
struct NumF64(f64);
macro_rules! num_from {
    ($($t:ty),*) => {$(impl From<$t> for NumF64 { fn from(x: $t) -> Self { NumF64(x as f64) } })*};
}
num_from!(i64, i32, i16, u64, u32, u16, f32, f64);

//! `.npy` export and import of codes, for Python pipelines (`numpy.load`).

use std::path::Path;

use npyz::WriterBuilder;

use crate::error::CodesProblem;
use crate::{Error, Result};

/// Write codes `[codebooks][frames]` as an int64 array shaped `[codebooks, frames]`.
pub fn write_codes_npy(path: &Path, codes: &[Vec<u32>]) -> Result<()> {
    let out = codes_npy_bytes(codes).map_err(|e| match e {
        Error::Io { cause, .. } => Error::io(path, cause),
        other => other,
    })?;
    crate::output::write_file(path, &out)
}

/// The bytes of the `.npy` file [`write_codes_npy`] writes (for archives, e.g. tar shards).
pub fn codes_npy_bytes(codes: &[Vec<u32>]) -> Result<Vec<u8>> {
    let path = Path::new("<memory>");
    let frames = codes.first().map_or(0, Vec::len);
    if codes.iter().any(|c| c.len() != frames) {
        return Err(Error::InvalidCodes(CodesProblem::Ragged {
            into: "one .npy array (the .tok format holds them)",
        }));
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
    Ok(out)
}

/// A numeric array read from a `.npy` file, as f64 values with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// The values in C order, as f64.
    pub values: Vec<f64>,
}

/// The largest `.npy` file read (256 MiB: far more codes than any clip has).
pub const MAX_NPY_BYTES: u64 = 256 << 20;

/// Read an integer or float `.npy` array (C or Fortran order; the values come back in C order).
///
/// Every size in the file is checked against the file before it sizes anything: the header
/// length, and the shape's element count (without overflow) against the data that follows.
/// Integers beyond 2^53 (which f64 cannot hold exactly) are refused with their exact value.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let bytes = crate::audio::read_bounded(path, MAX_NPY_BYTES)?;
    read_npy_bytes(&bytes, &path.display().to_string())
}

/// [`read_npy`] of bytes in memory; `name` is used in errors.
pub fn read_npy_bytes(bytes: &[u8], name: &str) -> Result<NpyArray> {
    let bad = |problem: String| Error::CodesFile {
        source_name: name.to_string(),
        problem,
    };
    let data_start = check_npy_header(bytes).map_err(|m| bad(format!("not a .npy file: {m}")))?;
    let npy = npyz::NpyFile::new(bytes).map_err(|e| bad(format!("not a .npy file: {e}")))?;
    // numpy writes a transposed array (`np.save(f, a.T)`) in Fortran order: read as laid out,
    // then put in C order below.
    let fortran = npy.order() == npyz::Order::Fortran;
    let npyz::DType::Plain(ty) = npy.dtype() else {
        return Err(bad("structured arrays are not supported".into()));
    };
    // The header check bounded the element count; this one also counts the element size.
    let fits = npy
        .shape()
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .and_then(|n| n.checked_mul(ty.num_bytes().unwrap_or(1) as u64))
        .is_some_and(|b| b <= (bytes.len() - data_start) as u64);
    if !fits {
        return Err(bad(format!(
            "its shape {:?} needs more data than the file's {} bytes",
            npy.shape(),
            bytes.len()
        )));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
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
    let values = if fortran {
        fortran_to_c_order(&shape, values)
    } else {
        values
    };
    Ok(NpyArray { shape, values })
}

/// Values laid out in Fortran order (first index fastest) for `shape`, in C order (last fastest).
fn fortran_to_c_order(shape: &[usize], values: Vec<f64>) -> Vec<f64> {
    if shape.len() < 2 {
        return values;
    }
    // Fortran strides: dimension k steps over the product of the dimensions before it.
    let mut strides = vec![1usize; shape.len()];
    for k in 1..shape.len() {
        strides[k] = strides[k - 1] * shape[k - 1];
    }
    let mut index = vec![0usize; shape.len()];
    let mut out = Vec::with_capacity(values.len());
    for _ in 0..values.len() {
        out.push(
            values[index
                .iter()
                .zip(&strides)
                .map(|(i, s)| i * s)
                .sum::<usize>()],
        );
        // Next C-order index: the last dimension counts fastest.
        for k in (0..shape.len()).rev() {
            index[k] += 1;
            if index[k] < shape[k] {
                break;
            }
            index[k] = 0;
        }
    }
    out
}

/// Where the data of a `.npy` file starts, once its header length is known to fit the file.
fn check_npy_header(bytes: &[u8]) -> std::result::Result<usize, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("bad magic bytes".into());
    }
    let (len, at) = match bytes[6] {
        1 => (u64::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u64::from(u32::from_le_bytes([
                bytes[8], bytes[9], bytes[10], bytes[11],
            ])),
            12,
        ),
        v => return Err(format!("unsupported format version {v}")),
    };
    if at as u64 + len > bytes.len() as u64 {
        return Err(format!(
            "its header claims {len} bytes, the file has {}",
            bytes.len()
        ));
    }
    let end = at + len as usize;
    // The element count, without overflow, before the npy reader multiplies the shape out.
    let header = String::from_utf8_lossy(&bytes[at..end]);
    if let Some(dims) = header
        .split_once("'shape'")
        .and_then(|(_, rest)| rest.split_once('('))
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(dims, _)| dims)
    {
        let mut count: u64 = 1;
        for d in dims.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let d: u64 = d.parse().map_err(|_| format!("bad shape ({dims})"))?;
            count = count
                .checked_mul(d)
                .filter(|&n| n <= (bytes.len() - end) as u64)
                .ok_or_else(|| {
                    format!(
                        "its shape ({dims}) needs more data than the file's {} bytes",
                        bytes.len()
                    )
                })?;
        }
    }
    Ok(end)
}

fn conv<T: Copy + Into<NumF64> + std::fmt::Display>(
    v: std::io::Result<Vec<T>>,
    bad: &dyn Fn(String) -> Error,
) -> Result<Vec<f64>> {
    let v = v.map_err(|e| bad(format!("unreadable data: {e}")))?;
    v.into_iter()
        .enumerate()
        .map(|(i, x)| {
            let f = x.into().0;
            // 64-bit integers past 2^53 would print and compare rounded.
            if f.abs() > 9_007_199_254_740_992.0 && f.fract() == 0.0 {
                return Err(bad(format!(
                    "element {i} is {x}, beyond any codebook (and beyond exact float64)"
                )));
            }
            Ok(f)
        })
        .collect()
}

/// Lossless-enough widening to f64 for every element type we read.
struct NumF64(f64);
macro_rules! num_from {
    ($($t:ty),*) => {$(impl From<$t> for NumF64 { fn from(x: $t) -> Self { NumF64(x as f64) } })*};
}
num_from!(i64, i32, i16, u64, u32, u16, f32, f64);

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-1 `.npy` of little-endian int64 `data` with the given header flags.
    fn npy_bytes(shape: &str, fortran: bool, data: &[i64]) -> Vec<u8> {
        let order = if fortran { "True" } else { "False" };
        let mut header =
            format!("{{'descr': '<i8', 'fortran_order': {order}, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        for v in data {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    #[test]
    fn fortran_ordered_arrays_read_in_c_order() {
        // [[0, 1, 2], [3, 4, 5]] in C order; in Fortran order the columns come first.
        let c = npy_bytes("(2, 3)", false, &[0, 1, 2, 3, 4, 5]);
        let f = npy_bytes("(2, 3)", true, &[0, 3, 1, 4, 2, 5]);
        let want = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        for bytes in [c, f] {
            let a = read_npy_bytes(&bytes, "test").unwrap();
            assert_eq!(a.shape, [2, 3]);
            assert_eq!(a.values, want);
        }
        // Three dimensions: element [i, j, k] = 100 i + 10 j + k.
        let (d0, d1, d2) = (2, 3, 4);
        let mut fdata = Vec::new();
        for k in 0..d2 {
            for j in 0..d1 {
                for i in 0..d0 {
                    fdata.push((100 * i + 10 * j + k) as i64);
                }
            }
        }
        let a = read_npy_bytes(&npy_bytes("(2, 3, 4)", true, &fdata), "test").unwrap();
        let mut want = Vec::new();
        for i in 0..d0 {
            for j in 0..d1 {
                for k in 0..d2 {
                    want.push((100 * i + 10 * j + k) as f64);
                }
            }
        }
        assert_eq!(a.values, want);
    }
}

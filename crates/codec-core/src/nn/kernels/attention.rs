//! Multi-head attention without a mask, `softmax(q·kᵀ·scale)·v`, blocked over the queries.
//!
//! With candle ops the scores of every head and query were one `[batch, heads, time, time]`
//! tensor (memory growing with the square of the length: 1.3 GB for 30 s of X-Codec2's decoder
//! at 16 heads), multiplied by GEMMs split over the threads inside each small per-head product,
//! and scaled, exponentiated and normalised in separate passes. Here a task is one head and one
//! block of queries: its scores go into a per-thread buffer of `block × time` floats, are
//! scaled and softmax-normalised while in cache, and multiplied by `v` straight into the
//! output; the tasks run side by side on the threads.
//!
//! The numbers are candle's: the same products (`gemm`, whose sums do not depend on the
//! operands' layout or the block), the scale as a separate multiply, and candle-nn's
//! `softmax_last_dim` (max, `exp(x - max)`, candle's vectorised sum, a division).

use candle_core::cpu::kernels::VecOps;
use rayon::prelude::*;

use super::tiles::{gemm_into, with_gather_buffer, MatRef, SharedOut};

/// Queries per task.
const QUERY_BLOCK: usize = 64;

/// The sizes of an attention call: `items` independent (batch × head) attentions of `queries`
/// queries over `keys` keys, `head_dim` features each.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    /// Batch items times heads.
    pub items: usize,
    /// Queries per item.
    pub queries: usize,
    /// Keys (and values) per item.
    pub keys: usize,
    /// Features per query, key and value.
    pub head_dim: usize,
}

/// `softmax(q·kᵀ·scale)·v` for `q` `[items, queries, head_dim]`, `k` and `v`
/// `[items, keys, head_dim]` (contiguous, row-major), into `[items, queries, head_dim]`.
///
/// # Panics
/// When a slice is shorter than `shape` says.
pub fn attention_f32(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: AttentionShape,
    scale: f32,
) -> Vec<f32> {
    let AttentionShape {
        items,
        queries,
        keys,
        head_dim: d,
    } = shape;
    assert!(
        q.len() >= items * queries * d,
        "q is shorter than its shape"
    );
    assert!(k.len() >= items * keys * d && v.len() >= items * keys * d);
    super::allocator::keep_large_buffers();
    let mut out = vec![0f32; items * queries * d];
    if keys == 0 || d == 0 {
        return out;
    }
    let blocks = queries.div_ceil(QUERY_BLOCK);
    let dst = SharedOut(out.as_mut_ptr());
    let task = |t: usize| {
        let (item, block) = (t / blocks, t % blocks);
        let q0 = block * QUERY_BLOCK;
        let rows = QUERY_BLOCK.min(queries - q0);
        with_gather_buffer(rows * keys, |scores| {
            let q_at = &q[(item * queries + q0) * d..];
            let k_at = &k[item * keys * d..];
            let v_at = &v[item * keys * d..];
            // SAFETY: every stride stays inside `q`, `k`, `v`, `scores` and this task's rows of
            // `out`, which no other task writes.
            unsafe {
                // scores = q_block · kᵀ
                gemm_into(
                    rows,
                    keys,
                    d,
                    scores.as_mut_ptr(),
                    keys as isize,
                    1,
                    false,
                    MatRef {
                        ptr: q_at.as_ptr(),
                        row_stride: d as isize,
                        col_stride: 1,
                    },
                    MatRef {
                        ptr: k_at.as_ptr(),
                        row_stride: 1,
                        col_stride: d as isize,
                    },
                );
            }
            for row in scores.chunks_exact_mut(keys) {
                softmax_row(row, scale);
            }
            unsafe {
                // out_block = softmax(scores) · v
                gemm_into(
                    rows,
                    d,
                    keys,
                    dst.at((item * queries + q0) * d),
                    d as isize,
                    1,
                    false,
                    MatRef {
                        ptr: scores.as_ptr(),
                        row_stride: keys as isize,
                        col_stride: 1,
                    },
                    MatRef {
                        ptr: v_at.as_ptr(),
                        row_stride: d as isize,
                        col_stride: 1,
                    },
                );
            }
        })
    };
    let tasks = items * blocks;
    if tasks == 1 {
        task(0);
    } else {
        (0..tasks).into_par_iter().for_each(task);
    }
    out
}

/// `row · scale`, then candle-nn's softmax of it, in place.
fn softmax_row(row: &mut [f32], scale: f32) {
    for x in row.iter_mut() {
        *x *= scale;
    }
    let mut max = f32::NEG_INFINITY;
    // SAFETY: the pointer and length are the slice's.
    unsafe { f32::vec_reduce_max(row.as_ptr(), &mut max, row.len()) };
    for x in row.iter_mut() {
        *x = (*x - max).exp();
    }
    let mut sum = 0f32;
    // SAFETY: as above.
    unsafe { f32::vec_reduce_sum(row.as_ptr(), &mut sum, row.len()) };
    for x in row.iter_mut() {
        *x /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_values as values;
    use super::*;
    use candle_core::{Device, Tensor};

    /// Bit for bit the candle ops it replaces, on block-sized and ragged query counts.
    #[test]
    fn equals_the_candle_ops() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        for (items, queries, keys, d) in [(3, 70, 50, 16), (2, 64, 129, 8), (1, 1, 5, 4)] {
            let shape = AttentionShape {
                items,
                queries,
                keys,
                head_dim: d,
            };
            let q = values(items * queries * d, 1);
            let k = values(items * keys * d, 2);
            let v = values(items * keys * d, 3);
            let scale = 1.0 / (d as f32).sqrt();
            let got = attention_f32(&q, &k, &v, shape, scale);
            let qt = Tensor::from_vec(q, (items, queries, d), &dev)?;
            let kt = Tensor::from_vec(k, (items, keys, d), &dev)?
                .transpose(1, 2)?
                .contiguous()?;
            let vt = Tensor::from_vec(v, (items, keys, d), &dev)?;
            let w = (qt.matmul(&kt)? * scale as f64)?;
            let want = candle_nn::ops::softmax_last_dim(&w)?
                .matmul(&vt)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            assert_eq!(got.len(), want.len());
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-6, "{items}x{queries}x{keys}x{d}: {worst}");
        }
        Ok(())
    }
}

//! `x · wᵀ` through candle's matmul with `wᵀ` as the transposed view of `w` (what candle-nn's
//! `Linear` and ours pass `gemm`) against a contiguous `wᵀ`, on the shapes of the transformer
//! layers in X-Codec2, Mimi and WavTokenizer, and whether the two give the same bits (they do:
//! the same sums in the same order). Measured on 2 threads: the view runs at 133-284 GFLOP/s,
//! the contiguous layout at 297-306. Not adopted yet: keeping a transposed copy at load raised
//! X-Codec2's peak from 3.1 to 4.5 GB (the state dict holds the originals while the model is
//! built) for 11 % on its encoder; doing the transpose in the state dict would avoid that.
//!
//!     RAYON_NUM_THREADS=2 cargo bench --bench gemm_layouts
use std::time::Instant;

use codec_core::{Device, Tensor};

/// GFLOP/s of `f`, best of 5 after a warm-up.
fn rate(
    m: usize,
    k: usize,
    n: usize,
    f: &dyn Fn() -> codec_core::Result<()>,
) -> codec_core::Result<f64> {
    f()?;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(2.0 * (m * k * n) as f64 / best / 1e9)
}

fn main() -> codec_core::Result<()> {
    let dev = Device::Cpu;
    println!("| m x k x n | wT as a view (GFLOP/s) | wT contiguous (GFLOP/s) | same bits |");
    println!("|---|---:|---:|---|");
    for (m, k, n) in [
        (500, 1024, 1024),
        (500, 1024, 4096),
        (500, 4096, 1024),
        (1500, 1024, 4096),
    ] {
        let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev)?;
        let view = w.t()?;
        let contiguous = view.contiguous()?;
        let r_view = rate(m, k, n, &|| Ok(x.matmul(&view).map(drop)?))?;
        let r_contiguous = rate(m, k, n, &|| Ok(x.matmul(&contiguous).map(drop)?))?;
        let a = x.matmul(&view)?.flatten_all()?.to_vec1::<f32>()?;
        let b = x.matmul(&contiguous)?.flatten_all()?.to_vec1::<f32>()?;
        let same = a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits());
        println!("| {m} x {k} x {n} | {r_view:.0} | {r_contiguous:.0} | {same} |");
    }
    Ok(())
}

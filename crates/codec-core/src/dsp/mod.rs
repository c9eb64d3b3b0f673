//! Signal processing on tensors.
//!
//! The STFT and inverse STFT have two paths with the same numbers (to float32 rounding): on the
//! CPU a real FFT in float64 (`realfft`), on other devices DFT-by-matmul built from candle ops.

pub mod fbank;
pub mod istft;
pub mod mel;
pub mod stft;

pub use istft::{Istft, IstftPadding};
pub use stft::{hann_window, Stft};

use candle_core::{Result, Storage, Tensor, WithDType};

/// Calls `f` with the values of a CPU tensor as a slice in row-major order, without a copy
/// when the tensor is already contiguous and of dtype `T`.
pub(crate) fn with_cpu_slice<T: WithDType, R>(
    t: &Tensor,
    f: impl FnOnce(&[T]) -> Result<R>,
) -> Result<R> {
    let t = t.to_dtype(T::DTYPE)?.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("with_cpu_slice: the tensor is not on the CPU")
    };
    let (start, end) = layout
        .contiguous_offsets()
        .expect("contiguous() gives a contiguous layout");
    f(&cpu.as_slice::<T>()?[start..end])
}

/// Threads for the CPU paths: candle's (`RAYON_NUM_THREADS`, else the cores).
fn num_threads() -> usize {
    candle_core::utils::get_num_threads().max(1)
}

/// Runs `f(first_item, chunk)` over `out` split into chunks of whole items (`item_len` values
/// each), on up to [`num_threads`] scoped threads when there are at least `min_items` items.
pub(crate) fn par_items<T: Send>(
    out: &mut [T],
    item_len: usize,
    min_items: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let items = out.len() / item_len.max(1);
    let threads = num_threads().min(items / min_items.max(1)).max(1);
    if threads == 1 {
        f(0, out);
        return;
    }
    let per = items.div_ceil(threads);
    std::thread::scope(|s| {
        let f = &f;
        for (i, chunk) in out.chunks_mut(per * item_len).enumerate() {
            s.spawn(move || f(i * per, chunk));
        }
    });
}

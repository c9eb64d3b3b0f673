//! How the kernels cut their output into tiles for the threads, and the GEMM call they share.

use std::cell::RefCell;

use rayon::prelude::*;

/// Floats of gathered input one tile may hold (2 MiB): with the tile's output and its slice of
/// the weight it stays in the cache levels a core owns.
const TILE_INPUT_FLOATS: usize = 1 << 19;

/// Below this many multiply-adds a call runs on the calling thread: handing out tiles would
/// cost more than it saves (streaming steps of small layers).
const PARALLEL_MIN_MACS: usize = 1 << 20;

/// The partition of an output of `units` independent matrices (batch items × groups), each
/// `rows` channels by `cols` frames, into tiles.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TilePlan {
    pub units: usize,
    pub rows: usize,
    pub cols: usize,
    /// Frames per tile (the last tile of a unit may be shorter).
    pub tile_cols: usize,
    /// Channels per tile (the last may be shorter).
    pub tile_rows: usize,
    parallel: bool,
}

impl TilePlan {
    /// Tiles for an output whose every frame costs `depth` multiply-adds per channel, with
    /// `depth` floats of gathered input per frame.
    ///
    /// A tile's shape depends on one unit's sizes only, never on how many units (batch items)
    /// there are: `gemm`'s blocking, and with it the order of each sum, follows the shape, and
    /// a batch must give every item the values it gets alone.
    pub fn new(units: usize, rows: usize, cols: usize, depth: usize) -> Self {
        let unit_macs = rows * cols * depth.max(1);
        let pool = rayon::current_num_threads().max(1);
        let threads = if unit_macs < PARALLEL_MIN_MACS {
            1
        } else {
            pool
        };
        // Frames per tile: as many as the input budget allows, at most 1024 ...
        let mut tile_cols = (TILE_INPUT_FLOATS / depth.max(1))
            .clamp(256, 1024)
            .min(cols.max(1));
        // ... but enough tiles that every thread has a couple to take.
        let want = 2 * threads;
        if cols.div_ceil(tile_cols) < want {
            tile_cols = cols.div_ceil(want).max(16).min(cols.max(1));
        }
        // Short outputs (streaming steps): split the channels instead.
        let col_tiles = cols.div_ceil(tile_cols);
        let mut tile_rows = rows.max(1);
        if col_tiles < threads && rows >= 32 {
            let splits = threads.div_ceil(col_tiles).min(rows / 16);
            tile_rows = rows.div_ceil(splits.max(1)).next_multiple_of(16).min(rows);
        }
        // Whether to hand tiles to the pool: the whole call's work decides (values do not
        // depend on which thread computes a tile).
        let parallel = pool > 1 && units * unit_macs >= PARALLEL_MIN_MACS;
        Self {
            units,
            rows,
            cols,
            tile_cols,
            tile_rows,
            parallel,
        }
    }

    fn col_tiles(&self) -> usize {
        self.cols.div_ceil(self.tile_cols)
    }

    fn row_tiles(&self) -> usize {
        self.rows.div_ceil(self.tile_rows)
    }

    /// Number of tiles.
    pub fn len(&self) -> usize {
        self.units * self.col_tiles() * self.row_tiles()
    }

    /// Tile `i`: (unit, first channel, channels, first frame, frames).
    pub fn tile(&self, i: usize) -> Tile {
        let row_tiles = self.row_tiles();
        let col_tiles = self.col_tiles();
        let unit = i / (row_tiles * col_tiles);
        let rest = i % (row_tiles * col_tiles);
        let (ct, rt) = (rest / row_tiles, rest % row_tiles);
        let row0 = rt * self.tile_rows;
        let col0 = ct * self.tile_cols;
        Tile {
            unit,
            row0,
            rows: self.tile_rows.min(self.rows - row0),
            col0,
            cols: self.tile_cols.min(self.cols - col0),
        }
    }

    /// Runs `f` on every tile, on the rayon pool when the work is worth it.
    pub fn run(&self, f: impl Fn(Tile) + Sync + Send) {
        super::allocator::keep_large_buffers();
        let n = self.len();
        if !self.parallel || n == 1 {
            (0..n).for_each(|i| f(self.tile(i)));
        } else {
            (0..n).into_par_iter().for_each(|i| f(self.tile(i)));
        }
    }
}

/// One tile of a [`TilePlan`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tile {
    pub unit: usize,
    pub row0: usize,
    pub rows: usize,
    pub col0: usize,
    pub cols: usize,
}

/// A pointer the tiles write through: each tile writes only its own disjoint part.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut(pub *mut f32);
// SAFETY: the tiles of one plan cover disjoint output elements, and the buffer outlives `run`.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The element `offset` values in (a method, so that closures capture the whole `Sync`
    /// wrapper rather than its raw pointer).
    ///
    /// # Safety
    /// `offset` must be inside the buffer.
    pub unsafe fn at(self, offset: usize) -> *mut f32 {
        self.0.add(offset)
    }
}

thread_local! {
    /// Each thread's gather buffer, kept between calls so that it is not page-faulted in anew.
    static GATHER: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Each thread's contiguous copy of the columns in [`gemm_into`]'s few-column path.
    static FEW_COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Below this many columns `gemm_into` computes dot products rather than calling `gemm`.
const FEW_COLUMNS_MAX: usize = 16;

/// Calls `f` with this thread's gather buffer, at least `len` floats long.
pub(crate) fn with_gather_buffer<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    GATHER.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        f(&mut buf[..len])
    })
}

/// A strided matrix: element `(r, c)` at `ptr + r * row_stride + c * col_stride`.
#[derive(Clone, Copy)]
pub(crate) struct MatRef {
    pub ptr: *const f32,
    pub row_stride: isize,
    pub col_stride: isize,
}

/// `dst += lhs · rhs` (`read_dst`) or `dst = lhs · rhs`, `m × k` by `k × n`, on this thread.
///
/// With a handful of columns (a streaming step's one or two frames) `gemm` spends its time
/// packing `lhs`, the whole weight, for a few multiply-adds per weight (65 % of a streaming
/// Mimi encode): such products run as dot products of the weight's rows instead, which read
/// each weight once.
///
/// # Safety
/// Every element the strides reach must be inside live buffers, and `dst` must not overlap
/// `lhs` or `rhs` nor be written by another thread meanwhile.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_into(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_row_stride: isize,
    dst_col_stride: isize,
    read_dst: bool,
    lhs: MatRef,
    rhs: MatRef,
) {
    if n >= FEW_COLUMNS_MAX || lhs.col_stride != 1 || k == 0 {
        return gemm_raw(
            m,
            n,
            k,
            dst,
            dst_row_stride,
            dst_col_stride,
            read_dst,
            lhs,
            rhs,
        );
    }
    FEW_COLUMNS.with(|cell| {
        let mut columns = cell.borrow_mut();
        if columns.len() < n * k {
            columns.resize(n * k, 0.0);
        }
        // rhs's columns, each contiguous.
        for j in 0..n {
            for (i, v) in columns[j * k..(j + 1) * k].iter_mut().enumerate() {
                *v = *rhs
                    .ptr
                    .offset(i as isize * rhs.row_stride + j as isize * rhs.col_stride);
            }
        }
        for r in 0..m {
            let row = std::slice::from_raw_parts(lhs.ptr.offset(r as isize * lhs.row_stride), k);
            for j in 0..n {
                let v = dot(row, &columns[j * k..(j + 1) * k]);
                let d = dst.offset(r as isize * dst_row_stride + j as isize * dst_col_stride);
                *d = if read_dst { *d + v } else { v };
            }
        }
    })
}

/// `Σ a[i]·b[i]`, with the AVX-512 units when the CPU has them.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { dot_avx512(a, b) };
        }
    }
    dot_lanes(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b)
}

/// 64 partial sums, a multiple of every vector width, so that the compiler vectorises it.
#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 64;
    let mut acc = [0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0f32;
    for (x, y) in ar.iter().zip(br) {
        tail += x * y;
    }
    acc.iter().sum::<f32>() + tail
}

/// `gemm::gemm` with `dst := read_dst·dst + lhs·rhs`, single-threaded.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_row_stride: isize,
    dst_col_stride: isize,
    read_dst: bool,
    lhs: MatRef,
    rhs: MatRef,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        dst_col_stride,
        dst_row_stride,
        read_dst,
        lhs.ptr,
        lhs.col_stride,
        lhs.row_stride,
        rhs.ptr,
        rhs.col_stride,
        rhs.row_stride,
        1.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    )
}

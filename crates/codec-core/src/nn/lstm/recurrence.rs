//! The LSTM recurrence on the CPU for f32: each step's `h @ w_hhᵀ`, gates and state update in
//! one pass over plain slices, the hidden units split across the threads.
//!
//! Done with candle ops, a step was some fifteen small tensors (a matrix-vector product, four
//! gate slices, three sigmoids, two tanh, the products and sums), each allocated anew, with the
//! product's weight read through `gemm`'s general path: for EnCodec's 512-unit LSTMs that was
//! most of a step's time. Here a thread owns a block of hidden units and the rows of `w_hh`
//! that feed them (all four gates), regrouped at load so that a step reads its block's weights
//! front to back once; it then updates its units' `c` and `h` in place.
//!
//! Each gate sums `h[k] · w[k]` over `k` in order, then adds the input projection: the same
//! order for any number of threads, batch size or piece length (streaming pieces, windows and
//! one pass agree bit for bit).

use rayon::prelude::*;

/// Gate columns one tile holds: four AVX-512 registers of accumulators.
const TILE: usize = 64;

/// Hidden units below which a thread's block is not worth the hand-off each step.
const MIN_UNITS_PER_BLOCK: usize = 64;

/// `w_hh` (`[4·hidden, hidden]`, gates in PyTorch order) regrouped by blocks of hidden units.
#[derive(Debug, Clone)]
pub(super) struct RecurrentWeights {
    hidden: usize,
    /// Hidden units per block (the last block may have fewer).
    units: usize,
    blocks: Vec<Block>,
}

/// The weights feeding `units` hidden units from `start`: its `4 · units` gate columns (gate
/// by gate, padded with zeros to whole tiles), stored tile by tile as `[tile][k][TILE]` so a
/// tile's accumulators stay in registers while its weights stream in order.
#[derive(Debug, Clone)]
struct Block {
    start: usize,
    units: usize,
    tiles: usize,
    w: Vec<f32>,
}

impl RecurrentWeights {
    /// Regroups `w_hh` (`[4·hidden, hidden]`, row-major) for up to `threads` blocks.
    pub(super) fn new(w_hh: &[f32], hidden: usize, threads: usize) -> Self {
        assert_eq!(
            w_hh.len(),
            4 * hidden * hidden,
            "w_hh is [4·hidden, hidden]"
        );
        let parts = threads.min(hidden / MIN_UNITS_PER_BLOCK).max(1);
        let units = hidden.div_ceil(parts).max(1);
        let blocks = (0..hidden)
            .step_by(units)
            .map(|start| {
                let units = units.min(hidden - start);
                let columns = 4 * units;
                let tiles = columns.div_ceil(TILE);
                let mut w = vec![0f32; tiles * hidden * TILE];
                for j in 0..columns {
                    let (gate, unit) = (j / units, j % units);
                    let row = &w_hh[(gate * hidden + start + unit) * hidden..][..hidden];
                    let (tile, lane) = (j / TILE, j % TILE);
                    for (k, &v) in row.iter().enumerate() {
                        w[(tile * hidden + k) * TILE + lane] = v;
                    }
                }
                Block {
                    start,
                    units,
                    tiles,
                    w,
                }
            })
            .collect();
        Self {
            hidden,
            units,
            blocks,
        }
    }

    /// Runs one sequence: `gates_x` `[time, 4·hidden]` (the input projection plus both
    /// biases), from the state `h`, `c` (`[hidden]` each, updated to the state after the last
    /// step), writing each step's `h` to `out` `[time, hidden]`; from the last step to the
    /// first when `backward` (outputs still in time order).
    pub(super) fn run(
        &self,
        gates_x: &[f32],
        h: &mut [f32],
        c: &mut [f32],
        out: &mut [f32],
        backward: bool,
    ) {
        let hidden = self.hidden;
        let time = out.len() / hidden;
        debug_assert_eq!(gates_x.len(), time * 4 * hidden);
        let mut h_next = vec![0f32; hidden];
        for step in 0..time {
            let t = if backward { time - 1 - step } else { step };
            let gx = &gates_x[t * 4 * hidden..][..4 * hidden];
            let h_prev: &[f32] = h;
            let update = |(block, (c, h_out)): (&Block, (&mut [f32], &mut [f32]))| {
                block.step(h_prev, gx, hidden, c, h_out)
            };
            if self.blocks.len() == 1 {
                update((&self.blocks[0], (&mut *c, &mut h_next[..])));
            } else {
                self.blocks
                    .par_iter()
                    .zip(
                        c.par_chunks_mut(self.units)
                            .zip(h_next.par_chunks_mut(self.units)),
                    )
                    .for_each(update);
            }
            h.copy_from_slice(&h_next);
            out[t * hidden..][..hidden].copy_from_slice(&h_next);
        }
    }
}

impl Block {
    /// One step for this block's units: `c` and `h_out` are the block's slices.
    fn step(&self, h: &[f32], gx: &[f32], hidden: usize, c: &mut [f32], h_out: &mut [f32]) {
        let mut acc = vec![0f32; self.tiles * TILE];
        for (tile, acc) in acc.chunks_exact_mut(TILE).enumerate() {
            let w = &self.w[tile * hidden * TILE..][..hidden * TILE];
            accumulate_tile(h, w, acc.try_into().expect("a whole tile"));
        }
        let u = self.units;
        for j in 0..u {
            let unit = self.start + j;
            let gate = |g: usize| gx[g * hidden + unit] + acc[g * u + j];
            let i = sigmoid(gate(0));
            let f = sigmoid(gate(1));
            let g = gate(2).tanh();
            let o = sigmoid(gate(3));
            c[j] = f * c[j] + i * g;
            h_out[j] = o * c[j].tanh();
        }
    }
}

/// `acc[lane] = Σₖ h[k] · w[k·TILE + lane]`, `k` in order, with the AVX-512 units when the CPU
/// has them (the same sums either way: one multiply and one add per term, no fused rounding).
fn accumulate_tile(h: &[f32], w: &[f32], acc: &mut [f32; TILE]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { accumulate_tile_avx512(h, w, acc) };
        }
    }
    accumulate_tile_lanes(h, w, acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn accumulate_tile_avx512(h: &[f32], w: &[f32], acc: &mut [f32; TILE]) {
    accumulate_tile_lanes(h, w, acc)
}

#[inline(always)]
fn accumulate_tile_lanes(h: &[f32], w: &[f32], acc: &mut [f32; TILE]) {
    let mut sum = [0f32; TILE];
    for (&hk, row) in h.iter().zip(w.chunks_exact(TILE)) {
        for (s, &wv) in sum.iter_mut().zip(row) {
            *s += hk * wv;
        }
    }
    *acc = sum;
}

/// candle's sigmoid: `1 / (1 + e⁻ˣ)`.
fn sigmoid(x: f32) -> f32 {
    ((-x).exp() + 1.0).recip()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The regrouped weights give the plain product and update, for one and several blocks.
    #[test]
    fn blocks_compute_the_plain_recurrence() {
        let hidden = 130;
        let w_hh: Vec<f32> = (0..4 * hidden * hidden)
            .map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.2)
            .collect();
        let time = 5;
        let gates_x: Vec<f32> = (0..time * 4 * hidden)
            .map(|i| (i % 17) as f32 / 17.0 - 0.5)
            .collect();
        // The plain recurrence in f64.
        let (mut h, mut c) = (vec![0f64; hidden], vec![0f64; hidden]);
        let mut want = vec![0f64; time * hidden];
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        for t in 0..time {
            let gate = |row: usize, h: &[f64]| {
                let dot: f64 = (0..hidden)
                    .map(|k| h[k] * w_hh[row * hidden + k] as f64)
                    .sum();
                dot + gates_x[t * 4 * hidden + row] as f64
            };
            let h_prev = h.clone();
            for u in 0..hidden {
                let i = sig(gate(u, &h_prev));
                let f = sig(gate(hidden + u, &h_prev));
                let g = gate(2 * hidden + u, &h_prev).tanh();
                let o = sig(gate(3 * hidden + u, &h_prev));
                c[u] = f * c[u] + i * g;
                h[u] = o * c[u].tanh();
            }
            want[t * hidden..][..hidden].copy_from_slice(&h);
        }
        let mut outs = Vec::new();
        for threads in [1, 2, 3] {
            let weights = RecurrentWeights::new(&w_hh, hidden, threads);
            assert_eq!(weights.blocks.len(), threads.min(2));
            let (mut h, mut c) = (vec![0f32; hidden], vec![0f32; hidden]);
            let mut out = vec![0f32; time * hidden];
            weights.run(&gates_x, &mut h, &mut c, &mut out, false);
            let worst = out
                .iter()
                .zip(&want)
                .map(|(&a, &b)| (a as f64 - b).abs())
                .fold(0f64, f64::max);
            assert!(worst < 1e-5, "{threads} threads: {worst}");
            outs.push(out);
        }
        // Blocks change which thread computes a unit, never its sums.
        assert_eq!(outs[0], outs[1]);
        assert_eq!(outs[0], outs[2]);
    }
}

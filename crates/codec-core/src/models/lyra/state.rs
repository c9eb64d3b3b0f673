//! The streaming state of a Lyra graph, in place of its resource variables.
//!
//! Each causal convolution keeps its last input rows (the graph's `READ_VARIABLE` →
//! `CONCATENATION` → `STRIDED_SLICE` → `ASSIGN_VARIABLE`), and each transposed convolution
//! keeps the tail of its last block (the graph's `ADD` / `SUB` overlap). Runs of any number of
//! frames go through the same layers with the same state, so one frame at a time (streaming)
//! and a whole clip in windows (batch) compute the same numbers.

use super::kernels::Rows;

/// The state of one stream; slots are taken in call order, which the network fixes.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamState {
    slots: Vec<Rows>,
    /// How many frames back each slot's contents reach.
    reach: Vec<usize>,
}

impl StreamState {
    /// Start walking the network over the next run of `frames` frames.
    pub fn walk(&mut self, frames: usize) -> Walk<'_> {
        Walk {
            state: self,
            next: 0,
            frames: frames.max(1),
        }
    }

    pub fn reset(&mut self) {
        self.slots.clear();
        self.reach.clear();
    }

    /// The network's receptive field in frames, once a run has gone through it: the frames
    /// before a frame that its output can depend on (each causal layer adds its context,
    /// each overlap-add one frame). The state holds nothing older, so a stream started that
    /// many frames early computes the same outputs from then on.
    pub fn receptive_frames(&self) -> usize {
        self.reach.iter().sum()
    }
}

/// A pass over the network: hands out the state slots in order.
pub(crate) struct Walk<'a> {
    state: &'a mut StreamState,
    next: usize,
    frames: usize,
}

impl Walk<'_> {
    fn slot(&mut self, rows: usize, cols: usize, reach: usize) -> &mut Rows {
        if self.next == self.state.slots.len() {
            // Zero-initialised, as the graph's CALL_ONCE init does (for int8 tensors the
            // state holds dequantised values, so 0.0 quantises to the zero point).
            self.state.slots.push(Rows::filled(rows, cols, 0.0));
            self.state.reach.push(reach);
        }
        self.next += 1;
        &mut self.state.slots[self.next - 1]
    }

    /// The past `context` rows, then `x`; keeps the last `context` rows for the next run.
    pub fn causal(&mut self, x: Rows, context: usize) -> Rows {
        if context == 0 {
            return x;
        }
        let cols = x.cols;
        let rows_per_frame = (x.rows / self.frames).max(1);
        let past = self.slot(context, cols, context.div_ceil(rows_per_frame));
        let mut data = Vec::with_capacity((context + x.rows) * cols);
        data.extend_from_slice(&past.data);
        data.extend_from_slice(&x.data);
        let joined = Rows::new(context + x.rows, cols, data);
        past.data
            .copy_from_slice(&joined.data[(joined.rows - context) * cols..]);
        joined
    }

    /// Overlap-add of per-frame blocks (`frames` blocks of `block_rows`): frame `n` emits the
    /// first `emit` rows of its block, plus on its first rows the previous block's tail
    /// (its rows from `emit` on) less `bias`, as the graph carries it from frame to frame.
    pub fn overlap_add(&mut self, blocks: Rows, frames: usize, emit: usize, bias: &[f32]) -> Rows {
        let cols = blocks.cols;
        let block_rows = blocks.rows / frames.max(1);
        let tail_rows = block_rows - emit;
        let mut out = Vec::with_capacity(frames * emit * cols);
        let tail = self.slot(tail_rows, cols, 1);
        for f in 0..frames {
            let block = &blocks.data[f * block_rows * cols..][..block_rows * cols];
            let start = out.len();
            out.extend_from_slice(&block[..emit * cols]);
            for (o, t) in out[start..start + tail_rows * cols]
                .iter_mut()
                .zip(&tail.data)
            {
                *o += *t;
            }
            for (r, row) in block[emit * cols..].chunks_exact(cols).enumerate() {
                for (c, v) in row.iter().enumerate() {
                    tail.data[r * cols + c] = *v - bias[c];
                }
            }
        }
        Rows::new(frames * emit, cols, out)
    }
}

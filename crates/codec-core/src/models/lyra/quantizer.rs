//! Lyra's residual vector quantizer (`quantizer.tflite`), a float32 graph: 46 codebooks of 16
//! entries × 64. The arithmetic is the graph's, step for step (SPEC.md section 4): sequential
//! float32 squared distances, the first minimum on ties, and the residual update
//! `r − (r + (q − r))`, which is not bit-identical to `r − q`.

use codec_tflite::DType;

use super::graph::Graph;
use super::FEATURES;
use crate::Result;

pub(crate) struct Quantizer {
    /// `[stage][entry][dim]`, flattened.
    codebooks: Vec<f32>,
    /// The same, `[stage][dim][entry]`: the distance loop runs over entries in SIMD lanes.
    transposed: Vec<f32>,
    pub stages: usize,
    pub entries: usize,
}

impl Quantizer {
    /// Read the codebooks off the `encode` signature's distance ops, in stage order, and check
    /// that the `decode` signature gathers from the same tables.
    pub fn build(g: &Graph) -> Result<Self> {
        let sig = |key: &str| {
            g.model
                .signature(key)
                .ok_or_else(|| g.error(format!("no `{key}` signature: is this the quantizer?")))
        };
        let (enc, dec) = (sig("encode")?.subgraph, sig("decode")?.subgraph);
        let subgraph = |i: usize| {
            g.model
                .subgraphs
                .get(i)
                .ok_or_else(|| g.error(format!("signature names subgraph {i}")))
        };
        let (enc, dec) = (subgraph(enc)?, subgraph(dec)?);
        let mut codebooks = Vec::new();
        let mut entries = 0;
        for (i, op) in enc.ops.iter().enumerate() {
            if op.code != "SQUARED_DIFFERENCE" {
                continue;
            }
            let table = op
                .inputs
                .iter()
                .filter_map(|&t| enc.tensor(t))
                .find(|t| t.data.is_some())
                .ok_or_else(|| g.error(format!("encode op {i}: a distance without a codebook")))?;
            let n = match table.shape.as_slice() {
                [1, n, d] if *d as usize == FEATURES && *n > 0 && table.dtype == DType::F32 => {
                    *n as usize
                }
                other => {
                    return Err(g.error(format!(
                        "encode op {i}: codebook shape {other:?}, expected [1, entries, {FEATURES}]"
                    )))
                }
            };
            if entries != 0 && n != entries {
                return Err(g.error("codebooks of different sizes"));
            }
            entries = n;
            codebooks.extend(
                table
                    .f32_data()
                    .ok_or_else(|| g.error("unreadable codebook"))?,
            );
        }
        let stages = codebooks.len() / (entries * FEATURES).max(1);
        if stages == 0 || !entries.is_power_of_two() || entries > 64 {
            return Err(g.error(format!(
                "{stages} codebooks of {entries} entries: is this the quantizer?"
            )));
        }
        // The decode tables: the same vectors (in its own order).
        let mut gathered = 0;
        for op in dec.ops.iter().filter(|op| op.code == "GATHER") {
            let Some(table) = op
                .inputs
                .first()
                .and_then(|&t| dec.tensor(t))
                .and_then(|t| t.f32_data())
            else {
                continue;
            };
            let stage_len = entries * FEATURES;
            if table.len() != stage_len
                || !codebooks
                    .chunks_exact(stage_len)
                    .any(|c| c == table.as_slice())
            {
                return Err(
                    g.error("the decode signature gathers from a table the encoder does not use")
                );
            }
            gathered += 1;
        }
        if gathered != stages {
            return Err(g.error(format!(
                "decode gathers from {gathered} tables, encode has {stages}"
            )));
        }
        let mut transposed = vec![0f32; codebooks.len()];
        for stage in 0..stages {
            for i in 0..entries {
                for d in 0..FEATURES {
                    transposed[(stage * FEATURES + d) * entries + i] =
                        codebooks[(stage * entries + i) * FEATURES + d];
                }
            }
        }
        Ok(Quantizer {
            codebooks,
            transposed,
            stages,
            entries,
        })
    }

    fn entry(&self, stage: usize, i: usize) -> &[f32] {
        &self.codebooks[(stage * self.entries + i) * FEATURES..][..FEATURES]
    }

    /// Codes of the first `n` stages for one feature vector (the residual runs through every
    /// stage as the graph does; only the first `n` are kept).
    pub fn encode(&self, feature: &[f32], n: usize, codes: &mut Vec<u32>) {
        let mut r = [0f32; FEATURES];
        r.copy_from_slice(feature);
        for stage in 0..n.min(self.stages) {
            // Each entry's distance sums its 64 squared differences in order, as the graph's
            // SUM does; entries sit side by side so the sums run in parallel lanes.
            let mut dist = [0f32; 64];
            let dist = &mut dist[..self.entries.min(64)];
            let table =
                &self.transposed[stage * FEATURES * self.entries..][..FEATURES * self.entries];
            for (x, column) in r.iter().zip(table.chunks_exact(self.entries)) {
                for (acc, c) in dist.iter_mut().zip(column) {
                    let d = x - c;
                    *acc += d * d;
                }
            }
            let mut best = (f32::INFINITY, 0usize);
            for (i, &d) in dist.iter().enumerate() {
                if d < best.0 {
                    best = (d, i);
                }
            }
            codes.push(best.1 as u32);
            let q = self.entry(stage, best.1);
            for (x, c) in r.iter_mut().zip(q) {
                let t = *x + (c - *x);
                *x -= t;
            }
        }
    }

    /// The feature vector of codes for the first `codes.len()` stages, summed in stage order.
    pub fn decode(&self, codes: &[u32], out: &mut [f32]) {
        out.iter_mut().for_each(|v| *v = 0.0);
        for (stage, &code) in codes.iter().enumerate() {
            for (o, c) in out.iter_mut().zip(self.entry(stage, code as usize)) {
                *o += c;
            }
        }
    }
}

//! Random state dicts for tests and benches: a list of keys with shapes in, a [`StateDict`]
//! out, filled by a fast deterministic generator so that full-size models (tens of millions
//! of parameters) build in well under a second even in the debug profile.
//!
//! Shared by `tests/` (as `mod support;`) and `benches/` (through `#[path = ...]`), so it must
//! not depend on anything but the `codec` crate and std.
#![allow(dead_code)]

use std::collections::HashMap;

use codec::weights::StateDict;
use codec::{Device, Tensor};

/// xorshift64* — tiny, fast and good enough for test weights and noise.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // Zero is a fixed point of xorshift; splitmix the seed so that every seed works.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in `[lo, hi)`.
    #[inline]
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.next_f32()
    }

    /// Uniform integer in `0..n`.
    #[inline]
    pub fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * n as u64) >> 32) as u32
    }
}

/// How to fill one tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Init {
    /// Uniform in `[lo, hi)`.
    Uniform(f32, f32),
    /// Every value the same.
    Constant(f32),
    /// A periodic Hann window (`torch.hann_window(n)`) over the tensor's values.
    HannPeriodic,
}

/// Periodic Hann window of `n` values, as `torch.hann_window(n, periodic=True)`.
pub fn hann_periodic(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let s = (std::f64::consts::PI * i as f64 / n as f64).sin();
            (s * s) as f32
        })
        .collect()
}

/// A sensible default for PyTorch-style parameter names:
/// - `*.weight_g` (weight-norm magnitudes) positive, in `[0.5, 1.0)`;
/// - `*.window` a periodic Hann window (valid iSTFT envelope);
/// - 1-D `*.weight` (LayerNorm/GroupNorm affine) and `*.scale.weight` (AdaLayerNorm) near 1;
/// - everything else small, uniform in `[-0.05, 0.05)`.
pub fn default_init(name: &str, shape: &[usize]) -> Init {
    if name.ends_with(".weight_g") || name.ends_with(".parametrizations.weight.original0") {
        Init::Uniform(0.5, 1.0)
    } else if name.ends_with(".window") {
        Init::HannPeriodic
    } else if (name.ends_with(".weight") && shape.len() == 1) || name.ends_with(".scale.weight") {
        Init::Uniform(0.95, 1.05)
    } else {
        Init::Uniform(-0.05, 0.05)
    }
}

/// Values of one tensor of `numel` elements.
pub fn fill(init: &Init, numel: usize, rng: &mut XorShift) -> Vec<f32> {
    match *init {
        Init::Uniform(lo, hi) => {
            let mut v = Vec::with_capacity(numel);
            v.extend((0..numel).map(|_| rng.uniform(lo, hi)));
            v
        }
        Init::Constant(c) => vec![c; numel],
        Init::HannPeriodic => hann_periodic(numel),
    }
}

/// Build a state dict holding every `(name, shape)` as an f32 CPU tensor, filled per
/// `init(name, shape)` from one generator seeded with `seed` (same inputs, same values).
pub fn random_state_dict_with<F>(
    keys: &[(String, Vec<usize>)],
    seed: u64,
    source: &str,
    init: F,
) -> codec::Result<StateDict>
where
    F: Fn(&str, &[usize]) -> Init,
{
    let mut rng = XorShift::new(seed);
    let mut tensors = HashMap::with_capacity(keys.len());
    for (name, shape) in keys {
        let numel = shape.iter().product();
        let values = fill(&init(name, shape), numel, &mut rng);
        let tensor = Tensor::from_vec(values, shape.as_slice(), &Device::Cpu)?;
        tensors.insert(name.clone(), tensor);
    }
    Ok(StateDict {
        source: source.to_string(),
        tensors,
    })
}

/// [`random_state_dict_with`] using [`default_init`].
pub fn random_state_dict(
    keys: &[(String, Vec<usize>)],
    seed: u64,
    source: &str,
) -> codec::Result<StateDict> {
    random_state_dict_with(keys, seed, source, default_init)
}

/// Total number of values over a key list.
pub fn num_params(keys: &[(String, Vec<usize>)]) -> usize {
    keys.iter().map(|(_, s)| s.iter().product::<usize>()).sum()
}

/// `n` samples of white noise, uniform in `[-amp, amp)`.
pub fn noise(n: usize, amp: f32, seed: u64) -> Vec<f32> {
    let mut rng = XorShift::new(seed);
    (0..n).map(|_| rng.uniform(-amp, amp)).collect()
}

/// A speech-like test signal: a few harmonic chirps whose pitch wanders between 90 and
/// 260 Hz, amplitude-modulated at a syllable rate, with some noise. Deterministic.
pub fn speech_like(samples: usize, sample_rate: u32, seed: u64) -> Vec<f32> {
    let mut rng = XorShift::new(seed);
    let sr = sample_rate as f64;
    let two_pi = 2.0 * std::f64::consts::PI;
    let mut phase = 0.0f64;
    (0..samples)
        .map(|i| {
            let t = i as f64 / sr;
            // Pitch contour: slow sweep plus vibrato, 90..260 Hz.
            let f0 = 175.0 + 70.0 * (two_pi * 0.37 * t).sin() + 15.0 * (two_pi * 5.5 * t).sin();
            phase += two_pi * f0 / sr;
            let voiced: f64 = (1..=6).map(|h| (phase * h as f64).sin() / h as f64).sum();
            // Syllables: ~4 Hz envelope, never fully silent.
            let env = 0.15 + 0.85 * (0.5 + 0.5 * (two_pi * 4.1 * t).sin()).powi(2);
            let hiss = rng.uniform(-1.0, 1.0) as f64 * 0.03;
            (0.25 * env * voiced + hiss) as f32
        })
        .collect()
}

//! TFLite's integer arithmetic for int8 tensors, as its reference kernels do it: the
//! gemmlowp-style fixed-point multiplier (`QuantizeMultiplier`, `MultiplyByQuantizedMultiplier`
//! without single rounding) and the float32 `QUANTIZE` rounding. Bit-exactness with LiteRT's
//! reference kernels depends on every detail here (see `tools/lyra-study/SPEC.md`, section 6).

/// A real multiplier `m ≈ significand · 2^(shift − 31)`, as `QuantizeMultiplier(double)` makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Multiplier {
    pub significand: i32,
    pub shift: i32,
}

/// `frexp` for finite positive doubles: `m = q · 2^e` with `q` in [0.5, 1).
fn frexp(m: f64) -> (f64, i32) {
    if m == 0.0 || !m.is_finite() {
        return (m, 0);
    }
    let (m, bias) = if m.abs() < f64::MIN_POSITIVE {
        (m * 2f64.powi(64), -64) // subnormal: scale into the normal range first
    } else {
        (m, 0)
    };
    let bits = m.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let q = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    (q, exp - 1022 + bias)
}

impl Multiplier {
    /// `tflite::QuantizeMultiplier`: `round(q · 2^31)` with `std::round` (half away from zero).
    pub fn new(m: f64) -> Self {
        if m == 0.0 {
            return Multiplier {
                significand: 0,
                shift: 0,
            };
        }
        let (q, mut shift) = frexp(m);
        let mut fixed = (q * (1u64 << 31) as f64).round() as i64;
        if fixed == 1 << 31 {
            fixed /= 2;
            shift += 1;
        }
        if shift < -31 {
            return Multiplier {
                significand: 0,
                shift: 0,
            };
        }
        if shift > 30 {
            return Multiplier {
                significand: i32::MAX,
                shift: 30,
            };
        }
        Multiplier {
            significand: fixed as i32,
            shift,
        }
    }

    /// `MultiplyByQuantizedMultiplier(x, significand, shift)`: a left shift, the saturating
    /// rounding doubling high multiply, then a rounding right shift.
    #[inline]
    pub fn apply(self, x: i32) -> i32 {
        let left = self.shift.max(0);
        let right = (-self.shift).max(0);
        let high = rounding_doubling_high_mul(x.wrapping_shl(left as u32), self.significand);
        rounding_divide_by_pot(high, right)
    }
}

/// `SaturatingRoundingDoublingHighMul`: `(a·b + nudge) / 2^31`, truncated toward zero.
#[inline]
fn rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge = if ab >= 0 {
        1i64 << 30
    } else {
        1 - (1i64 << 30)
    };
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// `RoundingDivideByPOT`: arithmetic shift right by `exponent`, rounding half away from zero.
#[inline]
fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    if exponent == 0 {
        return x;
    }
    let mask = (1i32 << exponent) - 1;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exponent) + i32::from(remainder > threshold)
}

/// `std::round` (half away from zero) written so that it vectorises on any x86-64 (SSE2's
/// truncating conversion; floats of magnitude 2^23 and up are integers already, NaN stays NaN):
/// `x − trunc(x)` is exact.
#[inline(always)]
fn round_half_away(x: f32) -> f32 {
    // NaN fails the comparison too, and comes back unchanged.
    if x.is_nan() || x.abs() >= 8_388_608.0 {
        return x;
    }
    let t = (x as i32) as f32;
    if (x - t).abs() >= 0.5 {
        t + 1f32.copysign(x)
    } else {
        t
    }
}

/// `QUANTIZE` float32 → int8: `round(x / scale) + zero_point` with a float32 division (a
/// float64 one rounds some exact halves the other way) and rounding half away from zero.
#[inline(always)]
pub(crate) fn quantize(x: f32, scale: f32, zero_point: i32) -> f32 {
    let q = round_half_away(x / scale);
    (q + zero_point as f32).clamp(-128.0, 127.0)
}

/// Per-channel requantisation of int32 accumulators (held exactly in f32) to int8 values:
/// `clamp(MultiplyByQuantizedMultiplier(acc + bias[c], m[c]) + zero_out)`, as arrays so the
/// loop vectorises.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChannelRequant {
    significand: Vec<i64>,
    left: Vec<u32>,
    right: Vec<u32>,
    bias: Vec<i32>,
    zero_out: i32,
}

impl ChannelRequant {
    pub fn new(multipliers: &[Multiplier], bias: &[i32], zero_out: i32) -> Self {
        ChannelRequant {
            significand: multipliers.iter().map(|m| m.significand as i64).collect(),
            left: multipliers.iter().map(|m| m.shift.max(0) as u32).collect(),
            right: multipliers
                .iter()
                .map(|m| (-m.shift).max(0) as u32)
                .collect(),
            bias: bias.to_vec(),
            zero_out,
        }
    }

    /// Requantise `data` (rows of `bias.len()` channels) in place.
    pub fn apply(&self, data: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512dq") {
                // SAFETY: the CPU has AVX-512F/DQ (checked just above).
                return unsafe { self.apply_avx512(data) };
            }
        }
        self.apply_plain(data)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq")]
    unsafe fn apply_avx512(&self, data: &mut [f32]) {
        self.apply_plain(data)
    }

    #[inline(always)]
    fn apply_plain(&self, data: &mut [f32]) {
        let c = self.bias.len();
        for row in data.chunks_exact_mut(c) {
            for (o, v) in row.iter_mut().enumerate() {
                let x = (*v as i32).wrapping_add(self.bias[o]);
                let h = high_mul_branchless((x as i64) << self.left[o], self.significand[o]);
                let q = divide_by_pot_branchless(h, self.right[o]);
                *v = (q + self.zero_out).clamp(-128, 127) as f32;
            }
        }
    }
}

/// [`rounding_doubling_high_mul`] without branches (the multiplier is positive, so the
/// saturating case cannot occur); `a` is the (shifted) int32 value widened.
#[inline(always)]
fn high_mul_branchless(a: i64, b: i64) -> i32 {
    let ab = (a as i32 as i64) * b;
    let nudge = if ab >= 0 {
        1i64 << 30
    } else {
        1 - (1i64 << 30)
    };
    let v = ab + nudge;
    // Division by 2^31 truncating toward zero.
    ((v + ((v >> 63) & ((1i64 << 31) - 1))) >> 31) as i32
}

#[inline(always)]
fn divide_by_pot_branchless(x: i32, exponent: u32) -> i32 {
    let mask = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exponent) + i32::from(remainder > threshold)
}

/// `DEQUANTIZE` int8 → float32: `scale · (q − zero_point)` rounded once from float64.
#[inline]
pub(crate) fn dequantize(q: f32, scale: f32, zero_point: i32) -> f32 {
    (scale as f64 * (q as f64 - zero_point as f64)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_multiplier_matches_tflite() {
        // 0.5 -> (2^30, 0); 1.0 -> (2^30, 1); 0.75 -> (0.75·2^31, 0).
        assert_eq!(
            Multiplier::new(0.5),
            Multiplier {
                significand: 1 << 30,
                shift: 0
            }
        );
        assert_eq!(
            Multiplier::new(1.0),
            Multiplier {
                significand: 1 << 30,
                shift: 1
            }
        );
        assert_eq!(
            Multiplier::new(0.75),
            Multiplier {
                significand: 1610612736,
                shift: 0
            }
        );
        // Just below a power of two rounds up to 2^31 and renormalises.
        let m = Multiplier::new(1.0 - 1e-12);
        assert_eq!(
            m,
            Multiplier {
                significand: 1 << 30,
                shift: 1
            }
        );
    }

    #[test]
    fn multiply_rounds_like_gemmlowp() {
        // The high multiply's nudge is 1 - 2^30 for negative products, so an exact -1.5 rounds
        // toward zero while 1.5 rounds up.
        let half = Multiplier::new(0.5);
        assert_eq!(half.apply(3), 2);
        assert_eq!(half.apply(-3), -1);
        let quarter = Multiplier::new(0.25);
        assert_eq!(quarter.apply(6), 2);
        assert_eq!(quarter.apply(-6), -2);
        // Two roundings (without TFLITE_SINGLE_ROUNDING): 5 * 0.5 = 2.5 -> 3, then 3 / 2 -> 2,
        // where one rounding of 1.25 would give 1. LiteRT's reference kernels do this.
        assert_eq!(quarter.apply(5), 2);
        assert_eq!(Multiplier::new(3.0).apply(7), 21);
    }

    #[test]
    fn vectorised_requantisation_equals_the_scalar_one() {
        let ms: Vec<Multiplier> = [0.0123, 0.5, 0.75, 1.7, 0.000931, 3.0]
            .iter()
            .map(|&m| Multiplier::new(m))
            .collect();
        let bias = [5, -7, 0, 1000, -3, 2];
        let rq = ChannelRequant::new(&ms, &bias, -9);
        let mut values: Vec<f32> = (0..600)
            .map(|i| ((i * 7919) % 20001 - 10000) as f32)
            .collect();
        let want: Vec<f32> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let o = i % 6;
                (ms[o].apply(v as i32 + bias[o]) - 9).clamp(-128, 127) as f32
            })
            .collect();
        rq.apply(&mut values);
        assert_eq!(values, want);
    }

    #[test]
    fn round_half_away_is_std_round() {
        for x in [
            0.5f32, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 8388607.5, -8388608.0, 1e9, 0.0, -0.0,
            3.2, -7.7,
        ] {
            assert_eq!(round_half_away(x), x.round(), "{x}");
        }
    }

    #[test]
    fn quantize_uses_float32_division_and_rounds_half_away() {
        assert_eq!(quantize(2.5, 1.0, 0), 3.0);
        assert_eq!(quantize(-2.5, 1.0, 0), -3.0);
        assert_eq!(quantize(1000.0, 1.0, 0), 127.0);
        assert_eq!(quantize(-1000.0, 1.0, 3), -128.0);
        assert_eq!(dequantize(25.0, 0.5, 20), 2.5);
    }
}

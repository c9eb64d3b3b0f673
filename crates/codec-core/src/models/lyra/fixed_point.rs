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

/// `QUANTIZE` float32 → int8: `round(x / scale) + zero_point` with a float32 division (a
/// float64 one rounds some exact halves the other way) and rounding half away from zero.
#[inline]
pub(crate) fn quantize(x: f32, scale: f32, zero_point: i32) -> f32 {
    let q = (x / scale).round();
    (q + zero_point as f32).clamp(-128.0, 127.0)
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
    fn quantize_uses_float32_division_and_rounds_half_away() {
        assert_eq!(quantize(2.5, 1.0, 0), 3.0);
        assert_eq!(quantize(-2.5, 1.0, 0), -3.0);
        assert_eq!(quantize(1000.0, 1.0, 0), 127.0);
        assert_eq!(quantize(-1000.0, 1.0, 3), -128.0);
        assert_eq!(dequantize(25.0, 0.5, 20), 2.5);
    }
}

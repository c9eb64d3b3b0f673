//! Band-limited resampling of mono signals (rubato's windowed-sinc resampler).

use rubato::{
    Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction,
};

use crate::{Error, Result};

/// Input frames per call into the resampler.
const CHUNK: usize = 4096;
/// Length of the windowed sinc filter, in input samples (output samples when upsampling).
const SINC_LEN: usize = 256;

/// The output length of [`resample`]: `len * to / from` rounded to the nearest integer
/// (halves up). `len` when `from == to`; 0 when either rate is 0.
pub fn resampled_len(len: usize, from: u32, to: u32) -> usize {
    if from == to {
        return len;
    }
    if from == 0 || to == 0 {
        return 0;
    }
    let (from, to) = (u128::from(from), u128::from(to));
    ((len as u128 * to + from / 2) / from) as usize
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Resample a mono signal from `from` Hz to `to` Hz.
///
/// Uses rubato's high-quality windowed-sinc resampler (256 taps, Blackman-Harris² window,
/// 256× oversampled filter table with cubic interpolation between table entries, cutoff at 0.95
/// of the lower Nyquist frequency): content below that cutoff passes, content above it is
/// suppressed instead of aliasing. The signal is processed in chunks of 4096 input frames.
///
/// The output is time-aligned with the input: output sample `k` is the signal at `k / to`
/// seconds, i.e. at input position `k * from / to` (to within 1/256 of an input frame, a fixed
/// offset of rubato's filter table). It has exactly [`resampled_len`]`(samples.len(), from, to)`
/// samples; the signal beyond either end counts as silence.
///
/// When `from == to` the input is returned unchanged (bit for bit). A rate of 0 is an
/// [`Error::Resample`].
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    super::check_sample_rate(u64::from(from), "resampling input")?;
    super::check_sample_rate(u64::from(to), "resampling output")?;
    let err = |reason: String| Error::Resample { from, to, reason };
    if from == to {
        return Ok(samples.to_vec());
    }
    let out_len = resampled_len(samples.len(), from, to);
    if samples.is_empty() {
        return Ok(Vec::new());
    }

    let ratio = f64::from(to) / f64::from(from);
    let params = SincInterpolationParameters {
        sinc_len: SINC_LEN,
        f_cutoff: 0.95,
        interpolation: SincInterpolationType::Cubic,
        oversampling_factor: 256,
        window: WindowFunction::BlackmanHarris2,
    };
    let mut resampler =
        SincFixedIn::<f32>::new(ratio, 1.0, params, CHUNK, 1).map_err(|e| err(e.to_string()))?;
    // Alignment. rubato computes output frame `k` from the input around position
    // `(k + 1) * from / to - 1 + 1/256` (in input frames, counted from the first input frame;
    // measured, and read off rubato's source: its `output_delay()` does not describe this
    // resampler). With the rates reduced to `a = from / g`, `b = to / g`, prepending `a - 1`
    // silent frames and dropping the first `b - 1` output frames makes output frame `k` fall on
    // input position `k * from / to` exactly, but for the 1/256-frame offset of the filter table.
    let g = gcd(from, to);
    let (pad, skip) = ((from / g) as usize - 1, (to / g) as usize - 1);
    let needed = skip + out_len;
    let padded: Vec<f32>;
    let samples = if pad > 0 {
        let mut v = vec![0.0; pad];
        v.extend_from_slice(samples);
        padded = v;
        &padded[..]
    } else {
        samples
    };

    let mut out = Vec::with_capacity(needed + resampler.output_frames_max());
    let mut buffer = resampler.output_buffer_allocate(true);
    let mut pos = 0;
    while out.len() < needed {
        let (_, written) = if pos + CHUNK <= samples.len() {
            let input = [&samples[pos..pos + CHUNK]];
            pos += CHUNK;
            resampler.process_into_buffer(&input, &mut buffer, None)
        } else if pos < samples.len() {
            // The last, short chunk: rubato pads it with silence.
            let input = [&samples[pos..]];
            pos = samples.len();
            resampler.process_partial_into_buffer(Some(&input), &mut buffer, None)
        } else {
            // Flush the filter's delay line with silence.
            resampler.process_partial_into_buffer(None::<&[&[f32]]>, &mut buffer, None)
        }
        .map_err(|e| err(e.to_string()))?;
        out.extend_from_slice(&buffer[0][..written]);
    }
    out.drain(..skip);
    out.truncate(out_len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_to_nearest() {
        assert_eq!(resampled_len(44100, 44100, 24000), 24000);
        assert_eq!(resampled_len(3, 16000, 24000), 5); // 4.5 rounds up
        assert_eq!(resampled_len(1, 44100, 24000), 1); // 0.544
        assert_eq!(resampled_len(1, 48000, 16000), 0); // 0.333
        assert_eq!(resampled_len(7, 8000, 8000), 7);
        assert_eq!(resampled_len(usize::MAX / 2, 1, 2), usize::MAX - 1);
    }

    #[test]
    fn identity_and_empty() {
        let x = vec![0.1, f32::MIN_POSITIVE, -0.7];
        assert_eq!(resample(&x, 22050, 22050).unwrap(), x);
        assert!(resample(&[], 16000, 24000).unwrap().is_empty());
        assert!(matches!(
            resample(&x, 0, 24000),
            Err(Error::SampleRate { rate: 0, .. })
        ));
        assert!(resample(&x, 24000, 0).is_err());
    }

    #[test]
    fn short_inputs_have_the_right_length() {
        for (len, from, to) in [(1, 16000, 24000), (5, 44100, 24000), (300, 24000, 16000)] {
            let x = vec![0.5; len];
            let y = resample(&x, from, to).unwrap();
            assert_eq!(y.len(), resampled_len(len, from, to));
            assert!(y.iter().all(|v| v.is_finite()));
        }
    }

    /// Phase of a resampled sine against the ideal one, in output samples: the delay
    /// compensation leaves only rubato's 1/256-input-frame table offset.
    #[test]
    fn output_is_time_aligned() {
        use std::f64::consts::PI;
        let pairs = [
            (44100, 24000),
            (16000, 24000),
            (48000, 24000),
            (22050, 24000),
            (24000, 44100),
            (24000, 16000),
            (8000, 24000),
            (44100, 48000),
        ];
        for (from, to) in pairs {
            let f = 50.0;
            let x: Vec<f32> = (0..from as usize)
                .map(|i| (2.0 * PI * f * i as f64 / f64::from(from)).sin() as f32)
                .collect();
            let y = resample(&x, from, to).unwrap();
            assert_eq!(y.len(), to as usize);
            // Whole periods only, away from the edges.
            let period = to as usize / 50;
            let (start, end) = (period, to as usize - period);
            let (mut a, mut b) = (0.0, 0.0);
            for (k, &v) in y.iter().enumerate().take(end).skip(start) {
                let w = 2.0 * PI * f * k as f64 / f64::from(to);
                a += f64::from(v) * w.sin();
                b += f64::from(v) * w.cos();
            }
            let shift = b.atan2(a) / (2.0 * PI * f) * f64::from(to);
            let expected = (1.0 / 256.0) * f64::from(to) / f64::from(from);
            assert!(
                (shift - expected).abs() < 1e-3,
                "{from} -> {to}: output is shifted by {shift} samples"
            );
        }
    }
}

//! Inputs of any length in bounded memory, at a cost linear in their length.
//!
//! A model's activations grow with its input: a 30-minute clip through one call takes
//! gigabytes. Every model says through [`Codec::long_form`] how it takes an input longer than
//! one window ([`EncodeOptions::window_seconds`], [`DEFAULT_WINDOW_SECONDS`] unless set):
//! - [`LongForm::Streamed`]: causal models run their streaming encoder and decoder over the clip
//!   ([`STREAM_PIECE_SECONDS`] per push). Their streams give the whole clip's codes (their
//!   tests hold them to it).
//! - [`LongForm::Windowed`]: the clip is cut into windows whose cores tile it, each run with
//!   context on both sides that is dropped afterwards. Where the context covers the model's
//!   receptive field ([`Windowing::exact`]) every kept frame sees exactly the samples it sees
//!   in one pass, so the codes and audio are the whole clip's; where the model looks at its
//!   whole input (global attention, a recurrence), the window is what it sees, and the model's
//!   documentation states how far the result moves from one pass.
//! - [`LongForm::Whole`]: one call, however long (the default for a model that says nothing).
//!
//! [`crate::pipeline`], [`crate::batch`] and the CLI go through here, so a long file never
//! needs more memory than one window of it.
//!
//! ```no_run
//! use codec_core::{load_model, long_form, Codec, EncodeOptions, ModelSpec, Tensor};
//! # fn main() -> codec_core::Result<()> {
//! let model = load_model(&ModelSpec::parse("dac-44khz")?, &codec_core::Device::Cpu)?;
//! let hour = Tensor::zeros((1, 1, 3600 * 44_100), codec_core::DType::F32, model.device())?;
//! // 30 s windows (the default): the codes of one pass, in the memory of 30 s.
//! let codes = long_form::encode(model.as_ref(), &hour, &EncodeOptions::default())?;
//! let audio = long_form::decode(model.as_ref(), &codes, Some(30.0))?;
//! # let _ = audio;
//! # Ok(()) }
//! ```

use std::ops::Range;

use candle_core::{DType, Device, Tensor};

use crate::codec::{CodeStreams, Codec, CodecInfo, EncodeOptions};
use crate::{Error, Result};

/// Seconds of audio per window unless the options say otherwise.
pub const DEFAULT_WINDOW_SECONDS: f64 = 30.0;

/// Seconds per push into a streamed model's encoder or decoder (or the window, if shorter).
/// Measured on EnCodec 24 kHz and Mimi over 60 s (`codec_bench --window-seconds`): pushes of
/// 5 s run at 0.8-0.95x one pass's speed in 450-930 MiB; 30 s pushes at 0.6-0.8x in 1.6-2.2 GiB
/// (the streaming stacks copy their input into their state buffers each step); 2.5 s halves
/// the memory again but slows Mimi by a further 15 %.
pub const STREAM_PIECE_SECONDS: f64 = 5.0;

/// How a model takes an input longer than one window (see the [module](self) documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum LongForm {
    /// One call over the whole input.
    Whole,
    /// Through the model's streaming encoder and decoder, a window at a time.
    Streamed,
    /// In overlapping windows.
    Windowed(Windowing),
}

/// Where a windowed model's windows fall and how much context each needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windowing {
    /// Samples per unit: windows start on multiples of it. A whole number of frames of every
    /// code stream, and of any block the model aligns to the start of its input (SNAC's local
    /// attention windows), so that a window's frames are the clip's frames.
    pub unit: usize,
    /// Units of context on each side of a window's core when encoding.
    pub encoder_context: usize,
    /// Units of context on each side of a window's core when decoding; `None`: decoding takes
    /// its input whole (a model that bounds its decoder's memory itself).
    pub decoder_context: Option<usize>,
    /// Whether the contexts cover the encoder's and decoder's receptive fields, so that the
    /// results equal one pass over the clip; otherwise windows approximate it.
    pub exact: bool,
    /// Whether the model is causal: context on the left only.
    pub causal: bool,
    /// The longest window the model takes, in samples, whatever the options ask: a cap for
    /// models whose activations are large, set only where windows are exact (so that it
    /// changes the memory and not the results).
    pub max_window: Option<usize>,
}

impl Windowing {
    /// Windows whose contexts cover the receptive fields: the results of one pass.
    pub const fn exact(unit: usize, encoder_context: usize, decoder_context: usize) -> Self {
        Self {
            unit,
            encoder_context,
            decoder_context: Some(decoder_context),
            exact: true,
            causal: false,
            max_window: None,
        }
    }

    /// Windows over a model that sees its whole input: an approximation of one pass.
    pub const fn approximate(unit: usize, encoder_context: usize, decoder_context: usize) -> Self {
        Self {
            unit,
            encoder_context,
            decoder_context: Some(decoder_context),
            exact: false,
            causal: false,
            max_window: None,
        }
    }

    /// [`approximate`](Self::approximate) windows of whole frames (`info`'s hop) with
    /// `encoder_seconds` and `decoder_seconds` of context, each second rounded up to whole
    /// frames.
    pub fn approximate_seconds(
        info: &CodecInfo,
        encoder_seconds: usize,
        decoder_seconds: usize,
    ) -> Self {
        let hop = info.hop_length().max(1);
        let second = (info.sample_rate as usize).div_ceil(hop);
        Self::approximate(hop, encoder_seconds * second, decoder_seconds * second)
    }

    /// The same for a causal model: its context on the left only (nothing on the right
    /// reaches back into a window's core).
    pub const fn causal(mut self) -> Self {
        self.causal = true;
        self
    }

    /// The same with decoding in one call (the model's decoder bounds its memory itself).
    pub const fn decodes_whole(mut self) -> Self {
        self.decoder_context = None;
        self
    }

    /// The same with windows of at most `samples` samples.
    pub const fn max_window(mut self, samples: usize) -> Self {
        self.max_window = Some(samples);
        self
    }

    /// Samples per window when `window` are asked for: the cap, if lower.
    fn capped(&self, window: usize) -> usize {
        self.max_window.map_or(window, |cap| cap.min(window))
    }

    /// Whether `samples` need more than one window of `window` samples with `context` units.
    fn needs_windows(&self, samples: usize, window: usize, context: usize) -> bool {
        let sides = if self.causal { 1 } else { 2 };
        samples > self.capped(window) + sides * context * self.unit
    }

    /// The plan over `units` in windows of `window` samples (or the cap) with `context` units
    /// on the left and (unless causal) on the right.
    fn plan(&self, units: usize, window: usize, context: usize) -> WindowPlan {
        WindowPlan {
            units,
            window: (self.capped(window) / self.unit).max(1),
            context,
            right_context: if self.causal { 0 } else { context },
        }
    }
}

/// Cores of `window` units tiling `units`, each run with `context` units on the left and
/// `right_context` on the right (fewer at the ends of the clip) whose outputs are dropped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowPlan {
    pub units: usize,
    pub window: usize,
    pub context: usize,
    pub right_context: usize,
}

/// One window of a [`WindowPlan`], in units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Window {
    /// What the model runs on.
    pub run: Range<usize>,
    /// What is kept of its output.
    pub core: Range<usize>,
}

impl Window {
    /// Where the core starts in the run's output, in units.
    pub fn core_offset(&self) -> usize {
        self.core.start - self.run.start
    }
}

impl WindowPlan {
    /// The windows in order.
    pub fn windows(self) -> impl Iterator<Item = Window> {
        (0..self.units)
            .step_by(self.window.max(1))
            .map(move |core| {
                let core_end = (core + self.window).min(self.units);
                Window {
                    run: core.saturating_sub(self.context)
                        ..(core_end + self.right_context).min(self.units),
                    core: core..core_end,
                }
            })
    }
}

/// Encode `audio` `[batch, channels, samples]` as [`Codec::long_form`] says for its length
/// and `options.window_seconds`: the same codes as [`Codec::encode_with`] for a model whose
/// windows are exact or that streams.
pub fn encode(model: &dyn Codec, audio: &Tensor, options: &EncodeOptions) -> Result<CodeStreams> {
    let (batch, _, samples) = audio.dims3()?;
    encode_from(model, batch, samples, options, |range| {
        Ok(audio.narrow(2, range.start, range.len())?)
    })
}

/// [`encode`] over one clip's channels (each the same length, at the model's rate), taking
/// each window's samples straight from them so that the clip is never copied whole.
pub(crate) fn encode_channels(
    model: &dyn Codec,
    channels: &[Vec<f32>],
    options: &EncodeOptions,
) -> Result<CodeStreams> {
    let samples = channels.first().map_or(0, Vec::len);
    encode_from(model, 1, samples, options, |range| {
        let mut data = Vec::with_capacity(range.len() * channels.len());
        for c in channels {
            data.extend_from_slice(&c[range.clone()]);
        }
        Ok(Tensor::from_vec(
            data,
            (1, channels.len(), range.len()),
            model.device(),
        )?)
    })
}

/// Decode `codes` as [`Codec::long_form`] says for their length and `window_seconds` (`None`:
/// one call): the audio of [`Codec::decode_streams`] for a model whose windows are exact (a
/// streaming decoder's to within its stated tolerance).
pub fn decode(
    model: &dyn Codec,
    codes: &CodeStreams,
    window_seconds: Option<f64>,
) -> Result<Tensor> {
    let (batch, channels, mut rows) = decode_rows(model, codes, window_seconds)?;
    let len = rows.first().map_or(0, Vec::len);
    // One row (a mono clip) moves into the tensor as it is: no second copy of a long output.
    let samples = if rows.len() == 1 {
        rows.pop().unwrap_or_default()
    } else {
        rows.concat()
    };
    Ok(Tensor::from_vec(
        samples,
        (batch, channels, len),
        &Device::Cpu,
    )?)
}

/// About how many samples `frames` frames of the first code stream decode to (its frames are
/// the coarsest of a multi-scale model's).
pub fn decoded_samples(model: &dyn Codec, frames: usize) -> usize {
    let info = model.info();
    let rate = info
        .codebook_frame_rates
        .first()
        .copied()
        .unwrap_or(info.frame_rate);
    // A float-to-int cast saturates.
    (frames as f64 * f64::from(info.sample_rate) / rate.max(1e-9)).ceil() as usize
}

/// Whether an input of `samples` samples encodes in more than one window.
pub fn is_long(model: &dyn Codec, samples: usize, window_seconds: Option<f64>) -> bool {
    runs_windowed(model, samples, window_seconds, |w| Some(w.encoder_context))
}

/// Whether codes of `samples` samples' worth decode in more than one window.
pub fn is_long_to_decode(model: &dyn Codec, samples: usize, window_seconds: Option<f64>) -> bool {
    runs_windowed(model, samples, window_seconds, |w| w.decoder_context)
}

fn runs_windowed(
    model: &dyn Codec,
    samples: usize,
    window_seconds: Option<f64>,
    context: impl Fn(&Windowing) -> Option<usize>,
) -> bool {
    let Some(window) = window_samples(model, window_seconds) else {
        return false;
    };
    match model.long_form() {
        LongForm::Whole => false,
        LongForm::Streamed => samples > window,
        LongForm::Windowed(w) => context(&w).is_some_and(|c| w.needs_windows(samples, window, c)),
    }
}

/// Samples per window, or `None` for one call.
fn window_samples(model: &dyn Codec, window_seconds: Option<f64>) -> Option<usize> {
    let seconds = window_seconds.filter(|s| s.is_finite() && *s > 0.0)?;
    // At least one frame; a float-to-int cast saturates.
    let samples = (seconds * f64::from(model.info().sample_rate)).ceil() as usize;
    Some(samples.max(model.info().hop_length().max(1)))
}

/// Samples per push into a streamed model: [`STREAM_PIECE_SECONDS`], or the window if shorter.
fn stream_piece(model: &dyn Codec, window: usize) -> usize {
    window_samples(model, Some(STREAM_PIECE_SECONDS)).map_or(window, |piece| piece.min(window))
}

fn encode_from(
    model: &dyn Codec,
    batch: usize,
    samples: usize,
    options: &EncodeOptions,
    slice: impl Fn(Range<usize>) -> Result<Tensor>,
) -> Result<CodeStreams> {
    let window = window_samples(model, options.window_seconds);
    match (model.long_form(), window) {
        (LongForm::Streamed, Some(window)) if samples > window => {
            let window = stream_piece(model, window);
            let mut encoder = model.streaming_encoder(batch, options)?;
            let mut pieces = Vec::new();
            for start in (0..samples).step_by(window) {
                let end = (start + window).min(samples);
                pieces.extend(encoder.push_audio(&slice(start..end)?)?);
            }
            pieces.extend(encoder.finish()?);
            if pieces.is_empty() {
                return Err(Error::Unsupported(format!(
                    "{}'s streaming encoder gave no codes for {samples} samples",
                    model.info().name
                )));
            }
            CodeStreams::from_stacked(&Tensor::cat(&pieces, 2)?)
        }
        (LongForm::Windowed(w), Some(window))
            if w.needs_windows(samples, window, w.encoder_context) =>
        {
            encode_windowed(model, w, samples, window, options, slice)
        }
        _ => model.encode_with(&slice(0..samples)?, options),
    }
}

fn encode_windowed(
    model: &dyn Codec,
    w: Windowing,
    samples: usize,
    window: usize,
    options: &EncodeOptions,
    slice: impl Fn(Range<usize>) -> Result<Tensor>,
) -> Result<CodeStreams> {
    let per_unit = frames_per_unit(model, w.unit)?;
    let plan = w.plan(samples.div_ceil(w.unit), window, w.encoder_context);
    let mut kept: Vec<Vec<Tensor>> = Vec::new();
    for win in plan.windows() {
        let last = win.core.end == plan.units;
        // Unpadded samples: the model pads the last window to whole units as it pads the clip.
        let run = win.run.start * w.unit..(win.run.end * w.unit).min(samples);
        let codes = model.encode_with(&slice(run)?, options)?;
        if codes.scales.is_some() {
            return Err(misdeclared(model, "gives per-segment scales"));
        }
        kept.resize_with(codes.streams.len(), Vec::new);
        for (i, stream) in codes.streams.iter().enumerate() {
            let p = *per_unit
                .get(i)
                .ok_or_else(|| misdeclared(model, "has more streams"))?;
            let frames = stream.dim(1)?;
            let start = win.core_offset() * p;
            // The last window keeps whatever the model gives past the clip's last unit.
            let end = if last {
                frames
            } else {
                start + win.core.len() * p
            };
            if end > frames || start > end {
                return Err(misdeclared(
                    model,
                    "gave fewer frames than its windows hold",
                ));
            }
            kept[i].push(stream.narrow(1, start, end - start)?);
        }
    }
    let streams = kept
        .iter()
        .map(|pieces| Tensor::cat(pieces, 1))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(CodeStreams {
        streams,
        scales: None,
    })
}

/// `(batch, channels, rows)`: the decoded audio as `batch * channels` rows of samples.
pub(crate) fn decode_rows(
    model: &dyn Codec,
    codes: &CodeStreams,
    window_seconds: Option<f64>,
) -> Result<(usize, usize, Vec<Vec<f32>>)> {
    let frames = codes.streams.first().map_or(Ok(0), |s| s.dim(1))?;
    let hop = model.info().hop_length();
    let samples = decoded_samples(model, frames);
    let window = window_samples(model, window_seconds);
    let long = is_long_to_decode(model, samples, window_seconds) && codes.scales.is_none();
    match (model.long_form(), window) {
        (LongForm::Streamed, Some(window)) if long => {
            let codes = codes.stacked()?;
            let batch = codes.dim(0)?;
            let mut decoder = model.streaming_decoder(batch)?;
            let step = (stream_piece(model, window) / hop.max(1)).max(1);
            let mut out = Rows::expecting(samples);
            for start in (0..frames).step_by(step) {
                let n = step.min(frames - start);
                if let Some(audio) = decoder.push_codes(&codes.narrow(2, start, n)?)? {
                    out.append(&audio, 0..usize::MAX)?;
                }
            }
            if let Some(audio) = decoder.finish()? {
                out.append(&audio, 0..usize::MAX)?;
            }
            out.into_parts(model)
        }
        (LongForm::Windowed(w), Some(window)) if long => {
            let context = w.decoder_context.unwrap_or(0);
            decode_windowed(model, w, codes, window, context, samples)
        }
        _ => decode_whole(model, codes),
    }
}

/// One call over all of `codes`, as rows.
fn decode_whole(model: &dyn Codec, codes: &CodeStreams) -> Result<(usize, usize, Vec<Vec<f32>>)> {
    let mut out = Rows::default();
    out.append(&model.decode_streams(codes)?, 0..usize::MAX)?;
    out.into_parts(model)
}

fn decode_windowed(
    model: &dyn Codec,
    w: Windowing,
    codes: &CodeStreams,
    window: usize,
    context: usize,
    samples: usize,
) -> Result<(usize, usize, Vec<Vec<f32>>)> {
    let per_unit = frames_per_unit(model, w.unit)?;
    let mut units = None;
    for (i, stream) in codes.streams.iter().enumerate() {
        let p = *per_unit
            .get(i)
            .ok_or_else(|| misdeclared(model, "has more streams"))?;
        let frames = stream.dim(1)?;
        // Streams that do not tile into whole units: one call, whose checks say what is wrong.
        if frames % p != 0 || units.is_some_and(|u| u != frames / p) {
            return decode_whole(model, codes);
        }
        units = Some(frames / p);
    }
    let plan = w.plan(units.unwrap_or(0), window, context);
    let mut out = Rows::expecting(samples);
    for win in plan.windows() {
        let part = CodeStreams {
            streams: codes
                .streams
                .iter()
                .zip(&per_unit)
                .map(|(s, &p)| s.narrow(1, win.run.start * p, win.run.len() * p))
                .collect::<candle_core::Result<Vec<_>>>()?,
            scales: None,
        };
        let audio = model.decode_streams(&part)?;
        let start = win.core_offset() * w.unit;
        // The last window keeps all the model gives (a decoder may end a few samples short).
        let end = if win.core.end == plan.units {
            usize::MAX
        } else {
            start + win.core.len() * w.unit
        };
        if end != usize::MAX && audio.dim(2)? < end {
            return Err(misdeclared(
                model,
                "decoded fewer samples than its windows hold",
            ));
        }
        out.append(&audio, start..end)?;
    }
    out.into_parts(model)
}

/// Decoded audio gathered window by window, one row of samples per item and channel.
#[derive(Default)]
struct Rows {
    shape: Option<(usize, usize)>,
    rows: Vec<Vec<f32>>,
    /// Samples each row is expected to reach: reserved at the first piece, so that a long
    /// output does not grow by doubling (which held old and new buffers at once: DAC's 180 s
    /// decode grew by 0.34 MiB per second of audio, twice its output).
    expected: usize,
}

impl Rows {
    /// Rows about `samples` long each (a little more reserved: a model's count may be a few
    /// samples off).
    fn expecting(samples: usize) -> Self {
        Self {
            expected: samples + samples / 256 + 4096,
            ..Self::default()
        }
    }

    /// Append samples `range` (clipped to its length) of `audio` `[batch, channels, samples]`.
    fn append(&mut self, audio: &Tensor, range: Range<usize>) -> Result<()> {
        let (batch, channels, len) = audio.dims3()?;
        if *self.shape.get_or_insert((batch, channels)) != (batch, channels) {
            return Err(Error::Unsupported(format!(
                "a window decoded to [{batch}, {channels}, ..] after {:?}",
                self.shape
            )));
        }
        let (start, end) = (range.start.min(len), range.end.min(len));
        let audio = audio
            .narrow(2, start, end - start)?
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?
            .flatten_to(1)?
            .to_vec2::<f32>()?;
        let expected = self.expected;
        self.rows
            .resize_with(audio.len(), || Vec::with_capacity(expected));
        for (row, piece) in self.rows.iter_mut().zip(audio) {
            row.extend_from_slice(&piece);
        }
        Ok(())
    }

    fn into_parts(self, model: &dyn Codec) -> Result<(usize, usize, Vec<Vec<f32>>)> {
        let (batch, channels) = self
            .shape
            .ok_or_else(|| misdeclared(model, "decoded nothing"))?;
        Ok((batch, channels, self.rows))
    }
}

/// Frames of each codebook stream per unit of `unit` samples.
fn frames_per_unit(model: &dyn Codec, unit: usize) -> Result<Vec<usize>> {
    let info = model.info();
    info.codebook_frame_rates
        .iter()
        .map(|&rate| {
            let p = unit as f64 * rate / f64::from(info.sample_rate);
            if p >= 1.0 && (p - p.round()).abs() < 1e-6 {
                Ok(p.round() as usize)
            } else {
                Err(misdeclared(
                    model,
                    "has windows of no whole number of frames",
                ))
            }
        })
        .collect()
}

/// A model whose windowing does not fit what it does: a bug in the model, said as such.
fn misdeclared(model: &dyn Codec, what: &str) -> Error {
    Error::Unsupported(format!(
        "model {} {what}: its long-input windowing does not fit it (a bug; set \
         window_seconds to none to run it in one pass)",
        model.info().name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_tile_the_clip_with_context_inside_it() {
        let plan = WindowPlan {
            units: 10,
            window: 4,
            context: 2,
            right_context: 2,
        };
        let got: Vec<Window> = plan.windows().collect();
        assert_eq!(
            got,
            vec![
                Window {
                    run: 0..6,
                    core: 0..4
                },
                Window {
                    run: 2..10,
                    core: 4..8
                },
                Window {
                    run: 6..10,
                    core: 8..10
                },
            ]
        );
        assert_eq!(got[1].core_offset(), 2);
        let causal = Windowing::exact(1, 2, 2).causal().plan(10, 4, 2);
        let runs: Vec<_> = causal.windows().map(|w| w.run).collect();
        assert_eq!(runs, vec![0..4, 2..8, 6..10]);
    }
}

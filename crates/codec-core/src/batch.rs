//! Many clips through one model in few calls, with exactly the codes and audio of one at a time.
//!
//! Padding a short clip to the length of a long one changes its codes in every model whose
//! convolutions look ahead or whose attention sees the whole clip (the complaint users have of
//! most codec libraries). So a batch here never pads: items are grouped by their length at the
//! model's rate (token files by their frame counts), each group runs as one `[batch, ...]`
//! tensor, and every item comes back in its input position. Lengths that occur once run alone,
//! and so does every item of a model that is not [`Codec::batch_invariant`] (where stacking
//! items would change the last bits of the arithmetic, and so possibly a code).
//! `tests/batch_identity.rs` holds every family to codes equal to a lone encode and audio equal
//! to a lone decode, bit for bit.
//!
//! ```no_run
//! use codec_core::{audio::AudioClip, batch, load_model, Device, EncodeOptions, ModelSpec};
//! # fn main() -> codec_core::Result<()> {
//! let model = load_model(&ModelSpec::parse("lyra-v2")?, &Device::Cpu)?;
//! let clips = vec![
//!     AudioClip::mono(16_000, vec![0.0; 16_000]),
//!     AudioClip::mono(44_100, vec![0.0; 20_000]),
//! ];
//! let encoded = batch::encode_batch(model.as_ref(), &clips, &EncodeOptions::default())?;
//! let tokens: Vec<_> = encoded.into_iter().map(|e| e.tokens).collect();
//! let audio = batch::decode_batch(model.as_ref(), &tokens, &Default::default())?;
//! assert_eq!(audio.len(), 2);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use candle_core::Tensor;

use crate::audio::AudioClip;
use crate::codec::{CodeStreams, Codec, EncodeOptions};
use crate::long_form;
use crate::pipeline::{self, DecodeOptions, Encoded, PreparedInput};
use crate::tokfile::TokenFile;
use crate::{Error, Result};

/// The most items one model call takes.
pub const MAX_BATCH_ITEMS: usize = 16;

/// The most samples (all items and channels) one model call takes: about 5 minutes of 24 kHz
/// audio, so that a batch costs no more memory than one long clip would.
pub const MAX_BATCH_SAMPLES: usize = 8 << 20;

/// Encode clips of any lengths, rates and channel counts. Item `i` of the result equals
/// [`pipeline::encode_audio_with`] on `clips[i]`. An error names the item it came from.
pub fn encode_batch(
    model: &dyn Codec,
    clips: &[AudioClip],
    options: &EncodeOptions,
) -> Result<Vec<Encoded>> {
    let info = model.info();
    let prepared = clips
        .iter()
        .enumerate()
        .map(|(i, clip)| PreparedInput::new(info, clip).map_err(|e| item_error(i, e)))
        .collect::<Result<Vec<_>>>()?;
    let lengths: Vec<usize> = prepared.iter().map(PreparedInput::len).collect();
    // Each input is taken out once its group has run.
    let mut inputs: Vec<Option<PreparedInput>> = prepared.into_iter().map(Some).collect();
    let mut out: Vec<Option<Encoded>> = (0..clips.len()).map(|_| None).collect();
    // A long item runs alone, in windows, as it would through the pipeline.
    let stacks =
        |n: usize| model.batch_invariant() && !long_form::is_long(model, n, options.window_seconds);
    for group in groups(&lengths, info.channels as usize, stacks) {
        let run = || -> Result<CodeStreams> {
            if let [i] = group[..] {
                let input = inputs[i].as_ref().expect("each item runs once");
                return long_form::encode_channels(model, &input.channels, options);
            }
            let parts = group
                .iter()
                .map(|&i| {
                    inputs[i]
                        .as_ref()
                        .expect("each item runs once")
                        .to_tensor(model.device())
                })
                .collect::<Result<Vec<_>>>()?;
            model.encode_with(&Tensor::cat(&parts, 0)?, options)
        };
        let codes = run().map_err(|e| item_error(group[0], e))?;
        for (row, &i) in group.iter().enumerate() {
            let input = inputs[i].take().expect("each item runs once");
            out[i] = Some(
                input
                    .encoded(info, &codes, row)
                    .map_err(|e| item_error(i, e))?,
            );
        }
    }
    Ok(out
        .into_iter()
        .map(|e| e.expect("every item encoded"))
        .collect())
}

/// Decode token files (each as [`pipeline::decode_tokens`] would, same checks, same audio),
/// grouping those of equal frame counts into one model call.
pub fn decode_batch(
    model: &dyn Codec,
    tokens: &[TokenFile],
    options: &DecodeOptions,
) -> Result<Vec<AudioClip>> {
    for (i, t) in tokens.iter().enumerate() {
        pipeline::check_decodable(model, t, options).map_err(|e| item_error(i, e))?;
    }
    // Items share a call only when every stream and the scales have the same shape.
    let shape = |t: &TokenFile| {
        let mut s: Vec<usize> = t.streams.iter().map(|s| s.codes.len()).collect();
        s.push(t.scales.len());
        s
    };
    let mut by_shape: BTreeMap<Vec<usize>, Vec<usize>> = BTreeMap::new();
    for (i, t) in tokens.iter().enumerate() {
        by_shape.entry(shape(t)).or_default().push(i);
    }
    let info = model.info();
    let mut out: Vec<Option<AudioClip>> = (0..tokens.len()).map(|_| None).collect();
    for same in by_shape.values() {
        let t0 = &tokens[same[0]];
        let frames = t0.num_frames().max(1);
        let samples = long_form::decoded_samples(model, frames);
        let stack = model.batch_invariant()
            && !long_form::is_long_to_decode(model, samples, options.window_seconds);
        for group in chunks(same, samples * info.channels as usize, stack) {
            let run = || -> Result<Vec<Vec<Vec<f32>>>> {
                let parts = group
                    .iter()
                    .map(|&i| pipeline::file_to_code_streams(&tokens[i], model.device()))
                    .collect::<Result<Vec<_>>>()?;
                if let [one] = &parts[..] {
                    // Alone, in windows where it is long, as the pipeline decodes it.
                    let (_, _, rows) = long_form::decode_rows(model, one, options.window_seconds)?;
                    return Ok(vec![rows]);
                }
                let audio = model.decode_streams(&stack_items(&parts)?)?;
                Ok(audio.to_dtype(candle_core::DType::F32)?.to_vec3()?)
            };
            let audio = run().map_err(|e| item_error(group[0], e))?;
            for (channels, &i) in audio.into_iter().zip(&group) {
                out[i] = Some(
                    pipeline::finish_decoded(info, &tokens[i], channels, options)
                        .map_err(|e| item_error(i, e))?,
                );
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|a| a.expect("every item decoded"))
        .collect())
}

/// Items of equal length, in groups that fit one call; items keep their input order. Items of
/// a length `n` share calls only where `stack(n)`.
fn groups(lengths: &[usize], channels: usize, stack: impl Fn(usize) -> bool) -> Vec<Vec<usize>> {
    let mut by_length: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &n) in lengths.iter().enumerate() {
        by_length.entry(n).or_default().push(i);
    }
    by_length
        .iter()
        .flat_map(|(&n, same)| chunks(same, n * channels, stack(n)))
        .collect()
}

/// `items` (all `item_samples` long) in calls of at most [`MAX_BATCH_ITEMS`] and
/// [`MAX_BATCH_SAMPLES`]; an item longer than that runs alone, and so does every item unless
/// `stack`.
fn chunks(items: &[usize], item_samples: usize, stack: bool) -> Vec<Vec<usize>> {
    let per_call = if stack {
        (MAX_BATCH_SAMPLES / item_samples.max(1)).clamp(1, MAX_BATCH_ITEMS)
    } else {
        1
    };
    items.chunks(per_call).map(<[usize]>::to_vec).collect()
}

/// Batches of one with equal shapes, as one batch.
fn stack_items(parts: &[CodeStreams]) -> Result<CodeStreams> {
    let streams = (0..parts[0].streams.len())
        .map(|s| {
            let rows: Vec<&Tensor> = parts.iter().map(|p| &p.streams[s]).collect();
            Tensor::cat(&rows, 0)
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    let scales = match parts[0].scales {
        Some(_) => {
            let rows = parts
                .iter()
                .map(|p| p.scales.clone().expect("same shape: all have scales"))
                .collect::<Vec<_>>();
            Some(Tensor::cat(&rows, 0)?)
        }
        None => None,
    };
    Ok(CodeStreams { streams, scales })
}

fn item_error(index: usize, source: Error) -> Error {
    Error::BatchItem {
        index,
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_lengths_share_calls_in_input_order() {
        let lengths = [5, 3, 5, 5, 9, 3];
        assert_eq!(
            groups(&lengths, 1, |_| true),
            vec![vec![1, 5], vec![0, 2, 3], vec![4]]
        );
        // A model that is not batch-invariant runs every item alone.
        assert_eq!(groups(&lengths, 1, |_| false).len(), lengths.len());
    }

    #[test]
    fn calls_are_bounded_in_items_and_samples() {
        let many: Vec<usize> = (0..40).collect();
        let sizes = |v: Vec<Vec<usize>>| v.iter().map(Vec::len).collect::<Vec<_>>();
        assert_eq!(sizes(chunks(&many, 1000, true)), vec![16, 16, 8]);
        assert_eq!(
            sizes(chunks(&many[..4], MAX_BATCH_SAMPLES / 2, true)),
            vec![2, 2]
        );
        assert_eq!(
            sizes(chunks(&many[..2], MAX_BATCH_SAMPLES * 3, true)),
            vec![1, 1]
        );
    }
}

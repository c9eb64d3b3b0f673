//! Lyra v2 (SoundStream), Google's 16 kHz speech codec, run from its published TFLite files.
//!
//! Three graphs (google/lyra v1.3.2, `lyra/model_coeffs/`, Apache-2.0):
//! `soundstream_encoder.tflite` (320 samples → 64 features per 20 ms frame),
//! `quantizer.tflite` (residual VQ, 46 stages of 16 entries: 4 bits each) and `lyragan.tflite`
//! (64 features → 320 samples). The port reads each graph with [`codec_tflite`], checks it op by op
//! (`graph.rs`), and runs it as the graph says, the int8 blocks included: `QUANTIZE` /
//! `DEQUANTIZE` at the int8 tensors with their scales and zero points, int8 convolutions with
//! per-channel requantisation, int8 activations and adds, all with TFLite's reference-kernel
//! arithmetic (`fixed_point.rs`). The float convolutions keep the reference summation order, so
//! the port computes what LiteRT's reference kernels compute.
//!
//! There is no look-ahead: each frame's codes depend on that frame and the past only, so the
//! model streams with 20 ms of algorithmic latency. Batch (a whole clip, in windows of
//! [`WINDOW_FRAMES`]) and streaming (frame by frame) go through the same layers and the same
//! state, and give the same codes and samples.
//!
//! Bitrates: 16 stages = 3.2 kbit/s (the default), 30 = 6 kbit/s, 46 = 9.2 kbit/s.
//!
//! The graphs run on the CPU whatever the device (their int8 blocks are integer arithmetic,
//! and a 20 ms frame is far too little work to pay for a GPU round trip); codes and audio come
//! back as tensors on the model's device.
//!
//! ```no_run
//! use codec_core::{load_model, Codec, ModelSpec};
//! # fn main() -> codec_core::Result<()> {
//! let model = load_model(&ModelSpec::parse("lyra-v2")?, &codec_core::Device::Cpu)?;
//! assert_eq!(model.info().sample_rate, 16_000);
//! # Ok(()) }
//! ```

mod encoder;
mod fixed_point;
mod generator;
mod graph;
mod kernels;
mod layers;
mod quantizer;
mod state;

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{architecture, CardFacts, Family, Loaded};
use crate::card::ModelCard;
use crate::codec::{check_stacked_codes, CodeStreams, Codec, CodecInfo, EncodeOptions};
use crate::error::{AudioProblem, CodesProblem};
use crate::streaming::{StreamingDecoder, StreamingEncoder};
use crate::{Error, Result};

use encoder::Encoder;
use generator::Generator;
use graph::Graph;
use kernels::Rows;
use quantizer::Quantizer;
use state::StreamState;

/// Samples per frame (20 ms at 16 kHz).
pub const FRAME: usize = 320;
/// Feature dimensions per frame.
pub const FEATURES: usize = 64;
/// Frames a batch encode or decode computes at once (about 5 s of audio): memory stays bounded
/// on long inputs, and the result is the same for any window size.
pub const WINDOW_FRAMES: usize = 256;

/// The three published files, by the names google/lyra gives them.
pub const FILES: [&str; 3] = [
    "soundstream_encoder.tflite",
    "quantizer.tflite",
    "lyragan.tflite",
];

/// The `[architecture]` of a Lyra card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LyraConfig {
    /// Sample rate in Hz (16000: the graphs' rate).
    pub sample_rate: u32,
    /// Quantizer stages used when no bandwidth or codebook count is asked for.
    pub default_quantizers: usize,
    /// Bitrates (kbit/s) the model is published for; each selects a number of stages.
    pub bandwidths_kbps: Vec<f64>,
}

impl LyraConfig {
    /// Lyra v2 as published: 16 kHz, 3.2 kbit/s by default, 3.2 / 6 / 9.2 kbit/s.
    pub fn lyra_v2() -> Self {
        LyraConfig {
            sample_rate: 16_000,
            default_quantizers: 16,
            bandwidths_kbps: vec![3.2, 6.0, 9.2],
        }
    }
}

/// Lyra v2 loaded from its three graphs. Cloning shares the networks.
#[derive(Clone)]
pub struct Lyra {
    info: CodecInfo,
    config: LyraConfig,
    device: Device,
    encoder: Arc<Encoder>,
    quantizer: Arc<Quantizer>,
    generator: Arc<Generator>,
    /// Receptive fields in frames (see [`StreamState::receptive_frames`]).
    encoder_reach: usize,
    generator_reach: usize,
}

impl Lyra {
    /// Build from the bytes of the three files (in [`FILES`] order).
    pub fn from_bytes(
        config: &LyraConfig,
        [encoder, quantizer, generator]: [&[u8]; 3],
        name: &str,
        device: &Device,
    ) -> Result<Self> {
        if config.sample_rate != 16_000 {
            return Err(Error::config(name, "Lyra v2's graphs run at 16000 Hz"));
        }
        let enc = Encoder::build(&Graph::parse(encoder, FILES[0])?)?;
        let quant = Quantizer::build(&Graph::parse(quantizer, FILES[1])?)?;
        let gen = Generator::build(&Graph::parse(generator, FILES[2])?)?;
        if config.default_quantizers == 0 || config.default_quantizers > quant.stages {
            return Err(Error::config(
                name,
                format!(
                    "default_quantizers {} of {} stages",
                    config.default_quantizers, quant.stages
                ),
            ));
        }
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for bytes in [encoder, quantizer, generator] {
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        }
        let frame_rate = config.sample_rate as f64 / FRAME as f64;
        let info = CodecInfo {
            name: name.to_string(),
            family: "lyra".into(),
            sample_rate: config.sample_rate,
            channels: 1,
            frame_rate,
            codebook_sizes: vec![quant.entries as u32; quant.stages],
            codebook_frame_rates: vec![frame_rate; quant.stages],
            bandwidths_kbps: config.bandwidths_kbps.clone(),
            fingerprint: hasher.digest(),
        };
        for &kbps in &config.bandwidths_kbps {
            if info.codebooks_for_bandwidth(kbps).is_none() {
                return Err(Error::config(
                    name,
                    format!("{kbps} kbit/s is no whole number of stages"),
                ));
            }
        }
        // One silent frame through each network sizes their state and receptive fields, and
        // proves that the layers fit together (every op was checked on its own; a file whose
        // ops are each well formed but do not chain is refused here, not while encoding).
        let probe = |file: &str, run: &dyn Fn(&mut StreamState)| {
            let mut state = StreamState::default();
            crate::guard::contain(|| run(&mut state)).map_err(|reason| Error::Graph {
                file: file.to_string(),
                problem: format!("its layers do not fit together: {reason}"),
            })?;
            Ok::<usize, Error>(state.receptive_frames())
        };
        let encoder_reach = probe(FILES[0], &|st| {
            enc.forward(&[0.0; FRAME], &mut st.walk(1));
        })?;
        let generator_reach = probe(FILES[2], &|st| {
            gen.forward(Rows::filled(1, FEATURES, 0.0), &mut st.walk(1));
        })?;
        Ok(Lyra {
            info,
            config: config.clone(),
            device: device.clone(),
            encoder: Arc::new(enc),
            quantizer: Arc::new(quant),
            generator: Arc::new(gen),
            encoder_reach,
            generator_reach,
        })
    }

    /// How many past frames an encoder output and a generator output depend on (their
    /// receptive fields, measured from the graphs' state when the model loads).
    pub fn receptive_frames(&self) -> (usize, usize) {
        (self.encoder_reach, self.generator_reach)
    }

    /// Split `frames` into runs for the threads: each run restarts the stream `reach` frames
    /// before its first frame (those outputs are thrown away), which gives exactly the outputs
    /// of one pass, since nothing older reaches a frame. `(warm-up start, first kept, end)`.
    fn segments(frames: usize, reach: usize, threads: usize) -> Vec<(usize, usize, usize)> {
        // Worth it when the warm-up costs at most a quarter of each run.
        let n = threads.min(frames / (4 * reach.max(1))).max(1);
        (0..n)
            .map(|i| {
                let (start, end) = (i * frames / n, (i + 1) * frames / n);
                (start.saturating_sub(reach), start, end)
            })
            .collect()
    }

    /// Threads for each of `items` clips: a batch of at least as many clips as threads runs
    /// one clip per thread, with no warm-up spent; fewer clips split each over the threads.
    fn threads_per_item(items: usize) -> usize {
        let threads = rayon::current_num_threads();
        if items >= threads {
            1
        } else {
            threads
        }
    }

    /// Codes of a whole clip (whole frames), its runs on up to `threads` parallel threads.
    fn encode_clip(&self, samples: &[f32], stages: usize, threads: usize) -> Vec<Vec<u32>> {
        use rayon::prelude::*;
        let frames = samples.len() / FRAME;
        let parts: Vec<Vec<Vec<u32>>> = Self::segments(frames, self.encoder_reach, threads)
            .into_par_iter()
            .map(|(warm, start, end)| {
                let run = &samples[warm * FRAME..end * FRAME];
                let codes = self.encode_frames(run, stages, &mut StreamState::default());
                codes
                    .into_iter()
                    .map(|row| row[start - warm..].to_vec())
                    .collect()
            })
            .collect();
        let mut codes = vec![Vec::with_capacity(frames); stages];
        for part in parts {
            for (row, p) in codes.iter_mut().zip(part) {
                row.extend(p);
            }
        }
        codes
    }

    /// Samples of a whole clip's codes, its runs on up to `threads` parallel threads.
    fn decode_clip(&self, codes: &[Vec<u32>], threads: usize) -> Vec<f32> {
        use rayon::prelude::*;
        let frames = codes.first().map_or(0, Vec::len);
        let parts: Vec<Vec<f32>> = Self::segments(frames, self.generator_reach, threads)
            .into_par_iter()
            .map(|(warm, start, end)| {
                let run: Vec<Vec<u32>> = codes.iter().map(|row| row[warm..end].to_vec()).collect();
                let audio = self.decode_frames(&run, &mut StreamState::default());
                audio[(start - warm) * FRAME..].to_vec()
            })
            .collect();
        parts.concat()
    }

    /// Load the three files from a folder.
    pub fn from_dir(config: &LyraConfig, dir: &Path, name: &str, device: &Device) -> Result<Self> {
        let mut bytes = Vec::new();
        for file in FILES {
            let path = dir.join(file);
            bytes.push(crate::audio::read_bounded(&path, MAX_FILE_BYTES)?);
        }
        Self::from_bytes(config, [&bytes[0], &bytes[1], &bytes[2]], name, device)
    }

    /// Whether `dir` holds the three files.
    pub fn is_model_dir(dir: &Path) -> bool {
        FILES.iter().all(|f| dir.join(f).is_file())
    }

    fn stages_for(&self, options: &EncodeOptions) -> Result<usize> {
        options.codebooks_for(&self.info, self.config.default_quantizers)
    }

    /// Codes `[stages][frames]` of whole frames, continuing the stream in `state`.
    fn encode_frames(
        &self,
        samples: &[f32],
        stages: usize,
        state: &mut StreamState,
    ) -> Vec<Vec<u32>> {
        let frames = samples.len() / FRAME;
        let mut codes = vec![Vec::with_capacity(frames); stages];
        let mut frame_codes = Vec::with_capacity(stages);
        for window in samples.chunks(WINDOW_FRAMES * FRAME) {
            let features = self
                .encoder
                .forward(window, &mut state.walk(window.len() / FRAME));
            for f in features.data.chunks_exact(FEATURES) {
                frame_codes.clear();
                self.quantizer.encode(f, stages, &mut frame_codes);
                for (s, &c) in frame_codes.iter().enumerate() {
                    codes[s].push(c);
                }
            }
        }
        codes
    }

    /// Samples of code frames (`codes[stage][frame]`), continuing the stream in `state`.
    fn decode_frames(&self, codes: &[Vec<u32>], state: &mut StreamState) -> Vec<f32> {
        let frames = codes.first().map_or(0, Vec::len);
        let mut out = Vec::with_capacity(frames * FRAME);
        let mut frame_codes = vec![0u32; codes.len()];
        let mut start = 0;
        while start < frames {
            let n = WINDOW_FRAMES.min(frames - start);
            let mut features = vec![0f32; n * FEATURES];
            for (f, dst) in features.chunks_exact_mut(FEATURES).enumerate() {
                for (s, c) in frame_codes.iter_mut().enumerate() {
                    *c = codes[s][start + f];
                }
                self.quantizer.decode(&frame_codes, dst);
            }
            out.extend(
                self.generator
                    .forward(Rows::new(n, FEATURES, features), &mut state.walk(n)),
            );
            start += n;
        }
        out
    }

    /// Features `[frames, 64]` of whole frames (the encoder's output, before quantisation).
    pub fn features(&self, samples: &[f32]) -> Vec<f32> {
        let mut state = StreamState::default();
        let whole = samples.len() / FRAME * FRAME;
        let mut out = Vec::new();
        for window in samples[..whole].chunks(WINDOW_FRAMES * FRAME) {
            out.extend(
                self.encoder
                    .forward(window, &mut state.walk(window.len() / FRAME))
                    .data,
            );
        }
        out
    }

    /// Codes `[stages][frames]` of features `[frames, 64]` (the quantizer alone).
    pub fn quantize_features(&self, features: &[f32], stages: usize) -> Vec<Vec<u32>> {
        let mut codes = vec![Vec::new(); stages];
        let mut frame_codes = Vec::new();
        for f in features.chunks_exact(FEATURES) {
            frame_codes.clear();
            self.quantizer.encode(f, stages, &mut frame_codes);
            for (s, &c) in frame_codes.iter().enumerate() {
                codes[s].push(c);
            }
        }
        codes
    }

    /// Features `[frames, 64]` of codes `[stages][frames]` (the quantizer's decode alone).
    pub fn dequantize_codes(&self, codes: &[Vec<u32>]) -> Vec<f32> {
        let frames = codes.first().map_or(0, Vec::len);
        let mut out = vec![0f32; frames * FEATURES];
        let mut frame_codes = vec![0u32; codes.len()];
        for (f, dst) in out.chunks_exact_mut(FEATURES).enumerate() {
            for (s, c) in frame_codes.iter_mut().enumerate() {
                *c = codes[s][f];
            }
            self.quantizer.decode(&frame_codes, dst);
        }
        out
    }

    fn audio_items(&self, audio: &Tensor) -> Result<Vec<Vec<f32>>> {
        let dims = audio.dims();
        if dims.len() != 3 || dims[1] != 1 {
            return Err(Error::audio_shape(
                &self.info.name,
                "[batch, 1, samples]",
                dims,
            ));
        }
        Ok(audio
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .squeeze(1)?
            .to_vec2::<f32>()?)
    }

    fn code_items(&self, codes: &Tensor) -> Result<Vec<Vec<Vec<u32>>>> {
        check_stacked_codes(
            codes,
            self.quantizer.stages,
            self.quantizer.entries,
            &self.info.name,
        )?;
        Ok(codes
            .to_device(&Device::Cpu)?
            .to_dtype(DType::U32)?
            .to_vec3::<u32>()?)
    }

    fn codes_tensor(&self, items: Vec<Vec<Vec<u32>>>) -> Result<Tensor> {
        let (b, s) = (items.len(), items.first().map_or(0, Vec::len));
        let f = items.first().and_then(|i| i.first()).map_or(0, Vec::len);
        let flat: Vec<u32> = items.into_iter().flatten().flatten().collect();
        Ok(Tensor::from_vec(flat, (b, s, f), &self.device)?)
    }
}

/// The largest graph file read (the published ones are 0.3 to 1.8 MB).
const MAX_FILE_BYTES: u64 = 64 << 20;

/// Zero-pad to whole frames (at least one).
fn whole_frames(mut samples: Vec<f32>) -> Vec<f32> {
    let frames = samples.len().div_ceil(FRAME).max(1);
    samples.resize(frames * FRAME, 0.0);
    samples
}

impl Codec for Lyra {
    // Items run apart through the same kernels: a batch changes nothing by construction.
    fn batch_invariant(&self) -> bool {
        true
    }

    fn info(&self) -> &CodecInfo {
        &self.info
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn encode(&self, audio: &Tensor) -> Result<Tensor> {
        self.encode_with(audio, &EncodeOptions::default())?
            .stacked()
    }

    fn encode_with(&self, audio: &Tensor, options: &EncodeOptions) -> Result<CodeStreams> {
        use rayon::prelude::*;
        let stages = self.stages_for(options)?;
        let items = self.audio_items(audio)?;
        let threads = Self::threads_per_item(items.len());
        let items = items
            .into_par_iter()
            .map(|x| self.encode_clip(&whole_frames(x), stages, threads))
            .collect();
        CodeStreams::from_stacked(&self.codes_tensor(items)?)
    }

    fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        use rayon::prelude::*;
        let items = self.code_items(codes)?;
        let b = items.len();
        let threads = Self::threads_per_item(b);
        let audio: Vec<f32> = items
            .par_iter()
            .map(|c| self.decode_clip(c, threads))
            .collect::<Vec<_>>()
            .concat();
        let n = audio.len() / b.max(1);
        Ok(Tensor::from_vec(audio, (b, 1, n), &self.device)?)
    }

    fn supports_streaming(&self) -> bool {
        true
    }

    fn streaming_encoder(
        &self,
        batch: usize,
        options: &EncodeOptions,
    ) -> Result<Box<dyn StreamingEncoder>> {
        Ok(Box::new(LyraStreamEncoder {
            stages: self.stages_for(options)?,
            model: self.clone(),
            states: vec![StreamState::default(); batch],
            pending: vec![Vec::new(); batch],
        }))
    }

    fn streaming_decoder(&self, batch: usize) -> Result<Box<dyn StreamingDecoder>> {
        Ok(Box::new(LyraStreamDecoder {
            model: self.clone(),
            states: vec![StreamState::default(); batch],
        }))
    }
}

/// The Lyra family: graph files, not a tensor checkpoint.
pub struct LyraFamily;

/// The registry's entry for this family.
pub static FAMILY: LyraFamily = LyraFamily;

impl Family for LyraFamily {
    fn name(&self) -> &'static str {
        "lyra"
    }

    fn check_card(&self, card: &ModelCard) -> Result<()> {
        let cfg: LyraConfig = architecture(&card.architecture, &card.name)?;
        let frame_rate = cfg.sample_rate as f64 / FRAME as f64;
        if cfg.default_quantizers == 0 || cfg.default_quantizers > card.codebooks.len() {
            return Err(Error::config(
                &card.name,
                format!(
                    "default_quantizers {} of {} stages",
                    cfg.default_quantizers,
                    card.codebooks.len()
                ),
            ));
        }
        CardFacts {
            sample_rate: cfg.sample_rate,
            frame_rate,
            codebooks: None,
            codebook_frame_rates: None,
        }
        .check(card)
    }

    fn graph_files(&self) -> Option<&'static [&'static str]> {
        Some(&FILES)
    }

    fn load_graph(
        &self,
        arch: Option<&toml::Table>,
        files: &[Vec<u8>],
        name: &str,
        device: &Device,
    ) -> Result<Loaded> {
        let [encoder, quantizer, generator] = files else {
            return Err(Error::UnknownModel {
                name: name.to_string(),
                hint: format!("Lyra loads {} files, got {}", FILES.len(), files.len()),
            });
        };
        let config = match arch {
            Some(table) => architecture(table, name)?,
            None => LyraConfig::lyra_v2(),
        };
        let model = Lyra::from_bytes(&config, [encoder, quantizer, generator], name, device)?;
        Ok(Loaded::new(model, Vec::new()))
    }
}

/// Frame-by-frame encoding: samples wait until a frame is whole, then go through the encoder
/// with the stream's state.
struct LyraStreamEncoder {
    model: Lyra,
    stages: usize,
    states: Vec<StreamState>,
    pending: Vec<Vec<f32>>,
}

impl StreamingEncoder for LyraStreamEncoder {
    fn frame_size(&self) -> usize {
        FRAME
    }

    fn push_audio(&mut self, audio: &Tensor) -> Result<Option<Tensor>> {
        let items = self.model.audio_items(audio)?;
        if items.len() != self.states.len() {
            return Err(Error::InvalidAudio(AudioProblem::Batch {
                stream: self.states.len(),
                got: items.len(),
            }));
        }
        let mut out = Vec::with_capacity(items.len());
        for ((x, pending), state) in items
            .into_iter()
            .zip(&mut self.pending)
            .zip(&mut self.states)
        {
            pending.extend(x);
            let whole = pending.len() / FRAME * FRAME;
            out.push(
                self.model
                    .encode_frames(&pending[..whole], self.stages, state),
            );
            pending.drain(..whole);
        }
        if out
            .first()
            .and_then(|c| c.first())
            .is_none_or(Vec::is_empty)
        {
            return Ok(None);
        }
        self.model.codes_tensor(out).map(Some)
    }

    fn finish(&mut self) -> Result<Option<Tensor>> {
        // Every item has had the same number of samples; complete its last frame with silence.
        let partial = self.pending.first().map_or(0, Vec::len);
        let device = self.model.device.clone();
        crate::streaming::finish_with_silence(self, (self.states.len(), 1, partial), &device)
    }

    fn reset(&mut self) {
        self.states.iter_mut().for_each(StreamState::reset);
        self.pending.iter_mut().for_each(Vec::clear);
    }

    fn reset_item(&mut self, index: usize) -> Result<()> {
        let batch = self.states.len();
        let (Some(state), Some(pending)) =
            (self.states.get_mut(index), self.pending.get_mut(index))
        else {
            return Err(Error::InvalidAudio(AudioProblem::Batch {
                stream: batch,
                got: index + 1,
            }));
        };
        // The batch advances a frame at a time for every item at once: a new stream starts
        // on a frame boundary, or the items' frames would no longer line up.
        if !pending.is_empty() {
            return Err(Error::Unsupported(format!(
                "a stream item resets on a frame boundary only: {} samples of a {FRAME}-sample \
                 frame are waiting; push the rest of the frame first",
                pending.len()
            )));
        }
        state.reset();
        Ok(())
    }
}

/// Frame-by-frame decoding with the stream's generator state.
struct LyraStreamDecoder {
    model: Lyra,
    states: Vec<StreamState>,
}

impl StreamingDecoder for LyraStreamDecoder {
    fn frame_size(&self) -> usize {
        FRAME
    }

    fn push_codes(&mut self, codes: &Tensor) -> Result<Option<Tensor>> {
        let items = self.model.code_items(codes)?;
        if items.len() != self.states.len() {
            return Err(Error::InvalidCodes(CodesProblem::Batch {
                stream: self.states.len(),
                got: items.len(),
            }));
        }
        let b = items.len();
        let audio: Vec<f32> = items
            .iter()
            .zip(&mut self.states)
            .flat_map(|(c, state)| self.model.decode_frames(c, state))
            .collect();
        if audio.is_empty() {
            return Ok(None);
        }
        let n = audio.len() / b;
        Ok(Some(Tensor::from_vec(
            audio,
            (b, 1, n),
            &self.model.device,
        )?))
    }

    fn reset(&mut self) {
        self.states.iter_mut().for_each(StreamState::reset);
    }

    fn reset_item(&mut self, index: usize) -> Result<()> {
        let batch = self.states.len();
        self.states
            .get_mut(index)
            .ok_or(Error::InvalidCodes(CodesProblem::Batch {
                stream: batch,
                got: index + 1,
            }))?
            .reset();
        Ok(())
    }
}

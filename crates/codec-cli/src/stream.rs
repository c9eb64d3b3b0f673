//! `codec encode --stream` and `codec decode --stream`: audio and tokens through pipes, a frame
//! at a time, for causal models:
//!
//! ```text
//! arecord -f S16_LE -r 24000 -c 1 | codec encode --stream -m mimi - - | codec decode --stream - - | aplay
//! ```

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use codec_core::audio::stream::{PcmStreamReader, RawPcm, StreamSampleFormat, WavStreamWriter};
use codec_core::output::{ensure_distinct, OutputFile};
use codec_core::pipeline::{check_codes_fit, CodesOrigin};
use codec_core::tokstream::{StreamHeader, TokenStreamReader, TokenStreamWriter};
use codec_core::{Codec, Tensor};

use crate::commands::CodebookChoice;

/// `-` is standard input.
fn open_input(path: &Path) -> Result<Box<dyn Read>> {
    if path.as_os_str() == "-" {
        Ok(Box::new(std::io::stdin().lock()))
    } else {
        let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(Box::new(f))
    }
}

/// Where a stream's output goes: standard output, or a file (or FIFO) that replaces its
/// destination only once the stream has ended well, so a failed stream never truncates an
/// existing file. Writers flush after every frame, so a buffer only groups the bytes of one frame.
enum StreamOutput {
    Stdout(BufWriter<std::io::StdoutLock<'static>>),
    File(OutputFile),
}

impl StreamOutput {
    /// `-` is standard output.
    fn open(path: &Path) -> Result<Self> {
        if path.as_os_str() == "-" {
            Ok(Self::Stdout(BufWriter::new(std::io::stdout().lock())))
        } else {
            Ok(Self::File(OutputFile::create(path)?))
        }
    }

    /// The stream ended well: flush, and put a file in place.
    fn finish(self) -> Result<()> {
        match self {
            Self::Stdout(mut out) => Ok(out.flush()?),
            Self::File(file) => Ok(file.commit()?),
        }
    }

    /// A WAV stream ended well: in a regular file, write the real sizes into the header (a
    /// pipe keeps the "unknown length" ones players accept), then put the file in place.
    fn finish_wav(self, data_bytes: u64) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        match self {
            Self::File(mut file) if !file.is_in_place() => {
                if let (Ok(data), Ok(riff)) =
                    (u32::try_from(data_bytes), u32::try_from(data_bytes + 36))
                {
                    file.seek(SeekFrom::Start(4))?;
                    file.write_all(&riff.to_le_bytes())?;
                    file.seek(SeekFrom::Start(40))?;
                    file.write_all(&data.to_le_bytes())?;
                }
                Ok(file.commit()?)
            }
            other => other.finish(),
        }
    }
}

impl Write for StreamOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Stdout(out) => out.write(buf),
            Self::File(file) => file.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Stdout(out) => out.flush(),
            Self::File(file) => file.flush(),
        }
    }
}

/// Options of `codec encode --stream`.
pub struct EncodeStream<'a> {
    pub input: &'a Path,
    pub output: &'a Path,
    pub choice: CodebookChoice,
    /// Layout of headerless input.
    pub raw_rate: Option<u32>,
    pub raw_channels: u16,
}

/// Timing of the work done per code frame, for the latency report.
#[derive(Default)]
struct FrameTimes(Vec<Duration>);

impl FrameTimes {
    fn record(&mut self, elapsed: Duration, frames: usize) {
        let per = elapsed / frames.max(1) as u32;
        self.0.extend(std::iter::repeat_n(per, frames));
    }

    fn report(&mut self, what: &str, frame_seconds: f64) -> String {
        if self.0.is_empty() {
            return format!("no {what} frames");
        }
        self.0.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let n = self.0.len();
        let mean = self.0.iter().sum::<Duration>() / n as u32;
        let p95 = self.0[((n as f64 * 0.95).ceil() as usize).clamp(1, n) - 1];
        format!(
            "{what} compute per frame: mean {:.1} ms, p95 {:.1} ms, max {:.1} ms ({:.1}x real time)",
            ms(mean),
            ms(p95),
            ms(self.0[n - 1]),
            frame_seconds / mean.as_secs_f64().max(1e-9)
        )
    }
}

pub fn encode_stream(model: &dyn Codec, opts: EncodeStream<'_>) -> Result<()> {
    ensure_distinct(opts.input, opts.output)?;
    let options = opts.choice.options(model)?;
    let info = model.info().clone();
    let mut encoder = model.streaming_encoder(1, &options)?;
    let frame = encoder.frame_size();
    let raw = RawPcm {
        sample_rate: opts.raw_rate.unwrap_or(info.sample_rate),
        channels: opts.raw_channels,
    };
    let mut reader = PcmStreamReader::new(open_input(opts.input)?, raw)?;
    if reader.sample_rate() != info.sample_rate {
        bail!(
            "the input stream is {} Hz; model {} streams at {} Hz. Record at that rate \
             (arecord -f S16_LE -r {} -c 1) or resample first (sox/ffmpeg)",
            reader.sample_rate(),
            info.name,
            info.sample_rate,
            info.sample_rate
        );
    }
    if reader.channels() > 1 {
        eprintln!(
            "note: mixing {} input channels down to mono",
            reader.channels()
        );
    }
    let books = options.num_codebooks.unwrap_or(info.codebook_sizes.len());
    let header = StreamHeader {
        model: info.name.clone(),
        fingerprint: info.fingerprint,
        sample_rate: info.sample_rate,
        frame_rate: info.frame_rate,
        channels: info.channels,
        codebook_sizes: info.codebook_sizes[..books].to_vec(),
    };
    let mut writer = TokenStreamWriter::new(StreamOutput::open(opts.output)?, header)?;
    let device = model.device().clone();
    let mut times = FrameTimes::default();
    let (mut samples_in, mut frames_out) = (0usize, 0usize);
    let mut write = |codes: Option<Tensor>,
                     elapsed: Duration,
                     writer: &mut TokenStreamWriter<StreamOutput>|
     -> Result<()> {
        if let Some(codes) = codes {
            let codes = codes.squeeze(0)?.t()?.to_vec2::<u32>()?; // [frames, books]
            times.record(elapsed, codes.len());
            for f in &codes {
                writer.write_frame(f)?;
            }
            frames_out += codes.len();
        }
        Ok(())
    };
    while let Some(samples) = reader.read_mono()? {
        let n = samples.len();
        samples_in += n;
        let start = Instant::now();
        let audio = Tensor::from_vec(samples, (1, 1, n), &device)?;
        let codes = encoder.push_audio(&audio)?;
        write(codes, start.elapsed(), &mut writer)?;
    }
    // The encoder completes the last frame with silence, as batch encoding pads.
    let start = Instant::now();
    let codes = encoder.finish()?;
    write(codes, start.elapsed(), &mut writer)?;
    writer.into_inner().finish()?;
    let frame_seconds = frame as f64 / info.sample_rate as f64;
    let startup = encoder.startup_frames();
    let frames_in = samples_in.div_ceil(frame);
    if frames_out < frames_in {
        eprintln!(
            "note: the stream ended after {frames_in} frames, inside {}'s start-up of {} frames: \
             {} frames gave no codes",
            info.name,
            startup + 1,
            frames_in - frames_out
        );
    }
    let latency = if startup == 0 {
        format!("{:.0} ms (one frame)", frame_seconds * 1000.0)
    } else {
        format!(
            "{:.0} ms (one frame), {:.0} ms for the first ({} frames of start-up look-ahead)",
            frame_seconds * 1000.0,
            (startup + 1) as f64 * frame_seconds * 1000.0,
            startup
        )
    };
    eprintln!(
        "streamed {:.2} s into {frames_out} frames x {books} codebooks with {}; algorithmic latency {latency}; {}",
        samples_in as f64 / info.sample_rate as f64,
        info.name,
        times.report("encode", frame_seconds)
    );
    Ok(())
}

/// Options of `codec decode --stream`.
pub struct DecodeStream<'a> {
    pub output: &'a Path,
    pub float: bool,
    pub raw: bool,
    pub force: bool,
}

/// Open the token stream first: its header names the model to load.
pub fn open_token_stream(path: &Path) -> Result<TokenStreamReader<Box<dyn Read>>> {
    Ok(TokenStreamReader::new(open_input(path)?)?)
}

pub fn decode_stream(
    model: &dyn Codec,
    mut reader: TokenStreamReader<Box<dyn Read>>,
    opts: DecodeStream<'_>,
) -> Result<()> {
    let info = model.info().clone();
    let h = reader.header().clone();
    check_codes_fit(
        &info,
        &CodesOrigin {
            container: "token stream",
            model: &h.model,
            fingerprint: h.fingerprint,
            sample_rate: h.sample_rate,
            codebook_sizes: &h.codebook_sizes,
        },
        opts.force,
    )?;
    if info.channels != 1 {
        bail!(
            "model {} has {} channels; streaming output is mono",
            info.name,
            info.channels
        );
    }
    let mut decoder = model.streaming_decoder(1)?;
    let format = if opts.float {
        StreamSampleFormat::Float32
    } else {
        StreamSampleFormat::Pcm16
    };
    let mut writer = WavStreamWriter::new(
        StreamOutput::open(opts.output)?,
        info.sample_rate,
        1,
        format,
        !opts.raw,
    )?;
    let device = model.device().clone();
    let books = h.codebook_sizes.len();
    let mut times = FrameTimes::default();
    let mut samples_out = 0usize;
    // One frame at a time: each is decoded as soon as it has arrived.
    while let Some(codes) = reader.next_frame()? {
        let start = Instant::now();
        let codes = Tensor::from_vec(codes, (1, books, 1), &device)?;
        if let Some(audio) = decoder.push_codes(&codes)? {
            let samples = audio.flatten_all()?.to_vec1::<f32>()?;
            times.record(start.elapsed(), 1);
            samples_out += samples.len();
            writer.write_mono(&samples)?;
        }
    }
    let out = writer.into_inner();
    if opts.raw {
        out.finish()?;
    } else {
        let bytes_per_sample = if matches!(format, StreamSampleFormat::Float32) {
            4
        } else {
            2
        };
        out.finish_wav(samples_out as u64 * bytes_per_sample)?;
    }
    let frame_seconds = decoder.frame_size() as f64 / info.sample_rate as f64;
    let frames_decoded = samples_out / decoder.frame_size();
    if (frames_decoded as u64) < reader.frames_read() {
        eprintln!(
            "note: {} of {} frames gave no audio: the stream ended inside {}'s start-up of {} frames",
            reader.frames_read() - frames_decoded as u64,
            reader.frames_read(),
            info.name,
            decoder.startup_frames() + 1
        );
    }
    eprintln!(
        "streamed {} frames into {:.2} s at {} Hz with {}; {}",
        reader.frames_read(),
        samples_out as f64 / info.sample_rate as f64,
        info.sample_rate,
        info.name,
        times.report("decode", frame_seconds)
    );
    Ok(())
}

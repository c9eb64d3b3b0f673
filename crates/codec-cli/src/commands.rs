//! The subcommands. Each is a thin wrapper over `codec_core`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Subcommand, ValueEnum};
use codec_core::audio::{self, WavSampleFormat};
use codec_core::output::ensure_distinct;
use codec_core::pipeline::{self, DecodeOptions};
use codec_core::tokfile::TokenFile;
use codec_core::weights::StateDict;
use codec_core::{load_model_with_report, Codec, EncodeOptions, ModelCard, ModelSpec};

use crate::corpus;
use crate::device::parse_device;
use crate::progress::with_spinner;
use crate::stream;

/// The model used when `--model` is not given.
pub const DEFAULT_MODEL: &str = "lyra-v2";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Encode an audio file (WAV, FLAC, MP3, OGG, ...) into tokens.
    ///
    /// With --stream (causal models: lyra-v2, mimi): read PCM as it arrives (a WAV stream, or raw
    /// 16-bit PCM) and write a token stream frame by frame; `-` is stdin / stdout:
    /// `arecord -f S16_LE -r 24000 -c 1 | codec encode --stream -m mimi - - | codec decode --stream - - | aplay`
    Encode {
        /// Input audio file (`-`: standard input, with --stream).
        input: PathBuf,
        /// Output file (.tok, or .npy with --format npy; with --stream a token stream, `-`:
        /// standard output).
        output: PathBuf,
        /// Model: a card name (see `codec models`), a hub repo id, a folder or a weight file.
        #[arg(long, short, default_value = DEFAULT_MODEL)]
        model: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = TokenFormat::Tok)]
        format: TokenFormat,
        /// Use only the first N codebooks (residual codecs such as EnCodec); default: the
        /// model's (all, or Lyra v2's 16 = 3.2 kbit/s).
        #[arg(long, value_name = "N", conflicts_with = "bandwidth")]
        codebooks: Option<usize>,
        /// Target bandwidth in kbit/s, one of those the model defines (Lyra v2: 3.2, 6, 9.2;
        /// EnCodec: 1.5, 3, 6, 12, 24 at 24 kHz); selects the matching number of codebooks.
        #[arg(long, value_name = "KBPS")]
        bandwidth: Option<f64>,
        /// Stream: encode audio as it arrives, writing each frame's codes as soon as it is
        /// complete (causal models only).
        #[arg(long, conflicts_with = "format")]
        stream: bool,
        /// With --stream: the sample rate of headerless (raw 16-bit PCM) input; default: the
        /// model's. A WAV header on the input overrides it.
        #[arg(long, value_name = "HZ", requires = "stream")]
        raw_rate: Option<u32>,
        /// With --stream: interleaved channels of headerless input (mixed down to mono).
        #[arg(long, value_name = "N", default_value_t = 1, requires = "stream")]
        raw_channels: u16,
        /// Inputs longer than this many seconds run in windows of it, so memory stays bounded
        /// on any length; the codes are those of one pass for models whose windows are exact
        /// (the README's long-input table). 0: one pass however long.
        #[arg(long, value_name = "SECONDS", default_value_t = codec_core::long_form::DEFAULT_WINDOW_SECONDS)]
        window_seconds: f64,
        /// Corpus mode: INPUT is a manifest (one audio path per line, or TSV with `id` and
        /// `path` columns) and OUTPUT a folder. A folder or a glob as INPUT is corpus mode too.
        #[arg(long, conflicts_with = "stream")]
        manifest: bool,
        /// Corpus mode: write tar shards (per item `ID.codes.npy` + `ID.json`) and a JSONL index
        /// per shard, instead of one output file per input.
        #[arg(long, conflicts_with = "stream")]
        shards: bool,
        /// Corpus mode with --shards: items per shard.
        #[arg(long, value_name = "N", default_value_t = 1000, requires = "shards")]
        shard_size: usize,
        /// Corpus mode: run job I of N (0-based) of a split; N jobs write what one job would.
        #[arg(long, value_name = "I/N", conflicts_with = "stream")]
        shard: Option<crate::corpus::ShardSpec>,
    },
    /// Decode a token file back to a WAV file.
    ///
    /// With --stream: read a token stream (`codec encode --stream` output) and write audio frame
    /// by frame, as a WAV stream (or raw PCM with --raw); `-` is stdin / stdout.
    Decode {
        /// Input token file (.tok; with --stream a token stream, `-`: standard input).
        input: PathBuf,
        /// Output WAV file (`-`: standard output, with --stream).
        output: PathBuf,
        /// Model (default: the model named in the token file).
        #[arg(long, short)]
        model: Option<String>,
        /// Write 32-bit float samples instead of 16-bit PCM.
        #[arg(long)]
        float: bool,
        /// Resample to the sample rate of the audio that was encoded.
        #[arg(long)]
        original_rate: bool,
        /// Decode even if the token file was made by another model.
        #[arg(long)]
        force: bool,
        /// Codes of more than this many seconds run in windows of it, so memory stays bounded
        /// on any length; the audio is that of one pass for models whose windows are exact
        /// (the README's long-input table). 0: one pass however long.
        #[arg(long, value_name = "SECONDS", default_value_t = codec_core::long_form::DEFAULT_WINDOW_SECONDS)]
        window_seconds: f64,
        /// Stream: decode a token stream frame by frame as it arrives (causal models only).
        #[arg(long, conflicts_with = "original_rate")]
        stream: bool,
        /// With --stream: write raw PCM samples without a WAV header.
        #[arg(long, requires = "stream")]
        raw: bool,
    },
    /// Show a token file's header and code statistics.
    Info {
        /// Token file (.tok).
        file: PathBuf,
    },
    /// List the known models and whether their weights are in the local cache.
    Models,
    /// Turn codes made elsewhere (a .npy array [codebooks, frames], [1, codebooks, frames],
    /// [codebooks, 1, frames] as residual-VQ packages return them, or [frames] for
    /// single-codebook models) into a token file for a model.
    ImportCodes {
        /// Input .npy array of integer codes.
        input: PathBuf,
        /// Output token file (.tok).
        output: PathBuf,
        /// The model the codes are for: a card name, a hub repo id, a folder or a weight file.
        #[arg(long, short, default_value = DEFAULT_MODEL)]
        model: String,
    },
    /// Write a checkpoint's inference weights (weight norm folded) to safetensors.
    Convert {
        /// Input checkpoint (.ckpt, .pth, .th, .safetensors).
        input: PathBuf,
        /// Output .safetensors file.
        output: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenFormat {
    /// The versioned, checksummed token file (docs/token-format.md).
    Tok,
    /// A NumPy int64 array shaped [codebooks, frames].
    Npy,
}

pub fn run(command: Command, settings: &LoadSettings) -> Result<()> {
    match command {
        Command::Encode {
            input,
            output,
            model,
            format: _,
            codebooks,
            bandwidth,
            stream: true,
            raw_rate,
            raw_channels,
            ..
        } => {
            ensure_distinct(&input, &output)?;
            let spec = ModelSpec::parse(&model)?;
            let model = load(&spec, settings)?;
            stream::encode_stream(
                model.as_ref(),
                stream::EncodeStream {
                    input: &input,
                    output: &output,
                    choice: CodebookChoice {
                        codebooks,
                        bandwidth,
                        window_seconds: None,
                    },
                    raw_rate,
                    raw_channels,
                },
            )
        }
        Command::Encode {
            input,
            output,
            model,
            format,
            codebooks,
            bandwidth,
            manifest,
            shards,
            shard_size,
            shard,
            window_seconds,
            ..
        } if manifest
            || shards
            || shard.is_some()
            || corpus::Source::from_arg(&input, false).is_some() =>
        {
            let Some(source) = corpus::Source::from_arg(&input, manifest) else {
                bail!(
                    "--shards and --shard need a corpus input: a folder, a glob, or a manifest with --manifest"
                );
            };
            if output.exists() && !output.is_dir() {
                bail!(
                    "corpus mode writes into a folder; {} is a file",
                    output.display()
                );
            }
            let spec = ModelSpec::parse(&model)?;
            let model = load(&spec, settings)?;
            let options = CodebookChoice {
                codebooks,
                bandwidth,
                window_seconds: Some(window_seconds),
            }
            .options(model.as_ref())?;
            corpus::run(
                model.as_ref(),
                corpus::CorpusRun {
                    source,
                    output: &output,
                    layout: if shards {
                        corpus::Layout::Shards(shard_size)
                    } else {
                        corpus::Layout::Mirror(format)
                    },
                    shard,
                    options,
                },
            )
        }
        Command::Encode {
            input,
            output,
            model,
            format,
            codebooks,
            bandwidth,
            window_seconds,
            ..
        } => encode(
            &input,
            &output,
            &model,
            format,
            CodebookChoice {
                codebooks,
                bandwidth,
                window_seconds: Some(window_seconds),
            },
            settings,
        ),
        Command::Decode {
            input,
            output,
            model,
            float,
            original_rate: _,
            force,
            stream: true,
            raw,
            window_seconds: _,
        } => {
            ensure_distinct(&input, &output)?;
            let reader = stream::open_token_stream(&input)?;
            let name = match model {
                Some(m) => m,
                None => model_of_tokens(&reader.header().model)?,
            };
            let model = load(&ModelSpec::parse(&name)?, settings)?;
            stream::decode_stream(
                model.as_ref(),
                reader,
                stream::DecodeStream {
                    output: &output,
                    float,
                    raw,
                    force,
                },
            )
        }
        Command::Decode {
            input,
            output,
            model,
            float,
            original_rate,
            force,
            window_seconds,
            ..
        } => decode(
            &input,
            &output,
            model.as_deref(),
            float,
            DecodeOptions::new(original_rate, force)
                .with_window_seconds(window_option(window_seconds)),
            settings,
        ),
        Command::Info { file } => info(&file),
        Command::Models => models(),
        Command::ImportCodes {
            input,
            output,
            model,
        } => import_codes(&input, &output, &model, settings),
        Command::Convert { input, output } => convert(&input, &output),
    }
}

/// How every command loads its model: the device, and model-specific options to set.
pub struct LoadSettings {
    /// `--device`.
    pub device: String,
    /// `--set NAME=VALUE`, in order.
    pub options: Vec<String>,
}

fn load(spec: &ModelSpec, settings: &LoadSettings) -> Result<Box<dyn Codec>> {
    let device = parse_device(&settings.device)?;
    let loaded = with_spinner("loading model", || load_model_with_report(spec, &device))?;
    if !loaded.unused_keys.is_empty() {
        // Not an error: the model is complete. But keys no layer reads may mean the checkpoint
        // is another variant than the config says, so say so.
        let shown: Vec<&str> = loaded
            .unused_keys
            .iter()
            .take(5)
            .map(String::as_str)
            .collect();
        eprintln!(
            "warning: {} of the checkpoint's tensors are not used by model {} ({}{})",
            loaded.unused_keys.len(),
            loaded.model.info().name,
            shown.join(", "),
            if loaded.unused_keys.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        );
    }
    let mut model = loaded.model;
    for option in &settings.options {
        let Some((name, value)) = option.split_once('=') else {
            bail!("--set {option}: write NAME=VALUE");
        };
        model.set_option(name.trim(), value.trim()).map_err(|e| {
            let known: Vec<String> = model
                .options()
                .iter()
                .map(|o| format!("{} ({}; now {})", o.name, o.description, o.value))
                .collect();
            anyhow::anyhow!(
                "--set {option}: {e}{}",
                if known.is_empty() {
                    String::new()
                } else {
                    format!("\n  options: {}", known.join("; "))
                }
            )
        })?;
    }
    Ok(model)
}

/// `--window-seconds` as the library's option: 0 (or less) is one pass.
fn window_option(seconds: f64) -> Option<f64> {
    (seconds > 0.0).then_some(seconds)
}

/// How many codebooks `codec encode` was asked to use, and its windows on long inputs.
#[derive(Debug, Clone, Copy, Default)]
pub struct CodebookChoice {
    pub codebooks: Option<usize>,
    pub bandwidth: Option<f64>,
    /// `--window-seconds` (0: one pass); `None`: the library's default.
    pub window_seconds: Option<f64>,
}

impl CodebookChoice {
    /// The encode options for `model`; errors name the flag and say what the model offers.
    pub fn options(self, model: &dyn Codec) -> Result<EncodeOptions> {
        let options =
            EncodeOptions::choose(model.info(), self.codebooks, self.bandwidth).map_err(|e| {
                let flag = match (self.codebooks, self.bandwidth) {
                    (Some(n), _) => format!("--codebooks {n}"),
                    (None, Some(kbps)) => format!("--bandwidth {kbps}"),
                    (None, None) => String::new(),
                };
                match &e {
                    codec_core::Error::Bandwidth { offered, .. } if offered.is_empty() => {
                        anyhow::anyhow!("{flag}: {e}; use --codebooks N")
                    }
                    _ => anyhow::anyhow!("{flag}: {e}"),
                }
            })?;
        Ok(match self.window_seconds {
            Some(w) => options.with_window_seconds(window_option(w)),
            None => options,
        })
    }
}

fn encode(
    input: &Path,
    output: &Path,
    model: &str,
    format: TokenFormat,
    choice: CodebookChoice,
    settings: &LoadSettings,
) -> Result<()> {
    // Cheap checks first: a wrong --model should not wait for the audio to be decoded.
    no_pipe_without_stream(&[input, output])?;
    ensure_distinct(input, output)?;
    let spec = ModelSpec::parse(model)?;
    if choice
        .bandwidth
        .is_some_and(|b| !(b > 0.0 && b.is_finite()))
    {
        bail!("--bandwidth must be a positive number of kbit/s");
    }
    let clip = audio::read_audio(input)?;
    let model = load(&spec, settings)?;
    let options = choice.options(model.as_ref())?;
    let encoded = with_spinner("encoding", || {
        pipeline::encode_audio_with(model.as_ref(), &clip, &options)
    })?;
    for note in &encoded.notes {
        eprintln!("note: {note}");
    }
    match format {
        TokenFormat::Tok => encoded.tokens.write(output)?,
        TokenFormat::Npy => {
            let codes: Vec<Vec<u32>> = encoded
                .tokens
                .streams
                .iter()
                .map(|s| s.codes.clone())
                .collect();
            codec_core::npy::write_codes_npy(output, &codes)?
        }
    }
    let t = &encoded.tokens;
    eprintln!(
        "encoded {:.2} s into {} frames x {} codebooks ({:.0} bit/s) with {} -> {}",
        t.duration_seconds(),
        t.num_frames(),
        t.streams.len(),
        t.bitrate(),
        t.header.model,
        output.display()
    );
    Ok(())
}

fn decode(
    input: &Path,
    output: &Path,
    model: Option<&str>,
    float: bool,
    options: DecodeOptions,
    settings: &LoadSettings,
) -> Result<()> {
    no_pipe_without_stream(&[input, output])?;
    ensure_distinct(input, output)?;
    let tokens = TokenFile::read(input)?;
    let model_name = match model {
        Some(m) => m.to_string(),
        None => model_of_tokens(&tokens.header.model)?,
    };
    let model = load(&ModelSpec::parse(&model_name)?, settings)?;
    let clip = with_spinner("decoding", || {
        pipeline::decode_tokens(model.as_ref(), &tokens, &options)
    })?;
    let format = if float {
        WavSampleFormat::Float32
    } else {
        WavSampleFormat::Pcm16
    };
    audio::write_wav(output, &clip, format)?;
    eprintln!(
        "decoded {} frames into {:.2} s at {} Hz -> {}",
        tokens.num_frames(),
        clip.duration_seconds(),
        clip.sample_rate,
        output.display()
    );
    Ok(())
}

/// `-` (stdin/stdout) is for streams; whole files need seekable paths.
fn no_pipe_without_stream(paths: &[&Path]) -> Result<()> {
    if paths.iter().any(|p| p.as_os_str() == "-") {
        bail!("'-' (standard input/output) needs --stream; without it, give file paths");
    }
    Ok(())
}

/// The card to decode with when --model is not given: the one the tokens name.
fn model_of_tokens(name: &str) -> Result<String> {
    if ModelCard::find(name).is_none() {
        bail!(
            "the tokens were made by '{name}', which is not a known model card; pass --model (the folder or file they were encoded with)"
        );
    }
    Ok(name.to_string())
}

/// Write what a listing command made to standard output in one go; a closed pipe is an error
/// `main` ends quietly on, never a panic (as `println!` would give).
fn print_out(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn info(file: &Path) -> Result<()> {
    let out = info_text(file)?;
    print_out(&out)
}

fn info_text(file: &Path) -> Result<String> {
    use std::fmt::Write;
    let mut out = String::new();
    let t = TokenFile::read(file)?;
    let h = &t.header;
    writeln!(out, "file:             {}", file.display())?;
    writeln!(out, "model:            {}", h.model)?;
    writeln!(out, "weights:          {:016x}", h.fingerprint)?;
    writeln!(out, "sample rate:      {} Hz", h.sample_rate)?;
    writeln!(out, "frame rate:       {} frames/s", h.frame_rate)?;
    writeln!(out, "channels:         {}", h.channels)?;
    writeln!(
        out,
        "original:         {} samples at {} Hz ({:.3} s)",
        h.original_length,
        h.original_sample_rate,
        t.duration_seconds()
    )?;
    writeln!(out, "codebooks:        {}", t.streams.len())?;
    writeln!(out, "frames:           {}", t.num_frames())?;
    writeln!(
        out,
        "bitrate:          {:.1} bit/s ({:.3} kbit/s)",
        t.bitrate(),
        t.bitrate() / 1000.0
    )?;
    if !t.scales.is_empty() {
        writeln!(out, "scales:           {}", t.scales.len())?;
    }
    for (i, s) in t.streams.iter().enumerate() {
        let mut counts = std::collections::HashMap::new();
        for &c in &s.codes {
            *counts.entry(c).or_insert(0usize) += 1;
        }
        let n = s.codes.len().max(1) as f64;
        let entropy: f64 = counts
            .values()
            .map(|&k| {
                let p = k as f64 / n;
                -p * p.log2()
            })
            .sum();
        writeln!(
            out,
            "  codebook {i:>2}: {} entries, {} frames at {} frames/s, {} distinct codes, entropy {:.2} bits",
            s.codebook_size,
            s.codes.len(),
            s.frame_rate,
            counts.len(),
            entropy
        )?;
    }
    Ok(out)
}

fn models() -> Result<()> {
    let out = models_text()?;
    print_out(&out)
}

fn models_text() -> Result<String> {
    use std::fmt::Write;
    let mut out = String::new();
    writeln!(
        out,
        "{:<36} {:>6} {:>7} {:>9}  {:<8} licence",
        "name", "kHz", "tok/s", "bit/s", "cached"
    )?;
    for card in ModelCard::builtin() {
        let cached = if card.embedded.is_some() {
            if card.is_built_in() {
                "built in"
            } else {
                "missing"
            }
        } else if card.cached_weights().is_some() {
            "yes"
        } else {
            "no"
        };
        let name = if card.name == DEFAULT_MODEL {
            format!("{} (default)", card.name)
        } else {
            card.name.clone()
        };
        writeln!(
            out,
            "{:<36} {:>6} {:>7} {:>9.0}  {:<8} {}",
            name,
            short_number(card.sample_rate as f64 / 1000.0),
            short_number(card.frame_rate),
            card.bitrate(),
            cached,
            card.license
        )?;
    }
    writeln!(out, "\n--model also takes a hub repo id (owner/name), a folder with a config and a checkpoint, or a weight file.")?;
    Ok(out)
}

/// At most two decimals, without trailing zeros: 44.1, 86.13, 75.
fn short_number(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn import_codes(input: &Path, output: &Path, model: &str, settings: &LoadSettings) -> Result<()> {
    ensure_distinct(input, output)?;
    let spec = ModelSpec::parse(model)?;
    let codes = codec_core::npy::read_npy(input)?;
    let model = load(&spec, settings)?;
    let tokens = pipeline::import_codes(model.info(), &codes, &input.display().to_string())?;
    tokens.write(output)?;
    eprintln!(
        "imported {} frames x {} codebook{} ({:.0} bit/s, {:.2} s) for {} -> {}",
        tokens.num_frames(),
        tokens.streams.len(),
        if tokens.streams.len() == 1 { "" } else { "s" },
        tokens.bitrate(),
        tokens.duration_seconds(),
        tokens.header.model,
        output.display()
    );
    Ok(())
}

fn convert(input: &Path, output: &Path) -> Result<()> {
    ensure_distinct(input, output)?;
    let (family, weights) = if codec_core::models::is_onnx_file(input) {
        let graph = codec_core::weights::OnnxGraph::load(input)?;
        codec_core::models::onnx_inference_weights(&graph)?
    } else {
        codec_core::models::inference_weights(StateDict::load(input)?)?
    };
    codec_core::weights::convert_to_safetensors(&weights.tensors, output)
        .with_context(|| format!("converting {}", input.display()))?;
    eprintln!(
        "wrote {} {family} inference tensors to {}",
        weights.tensors.len(),
        output.display()
    );
    Ok(())
}

//! Encode/decode speed and memory of the full-size published models on the CPU: WavTokenizer
//! (75 tokens/s), EnCodec 24 kHz, DAC 44.1 kHz and SNAC 24 kHz (and, on request, EnCodec at
//! 24 kbit/s and SNAC 32 kHz).
//!
//! ```text
//! cargo bench --bench codec_bench                     # every default model, 10 s and 60 s, 2 threads
//! cargo bench --bench codec_bench -- --quick          # 10 s only, one run (smoke test)
//! cargo bench --bench codec_bench -- --models encodec,dac --seconds 10 --runs 2
//! cargo bench --bench codec_bench -- --models wavtokenizer --seconds 10,30 --threads 4 --stages
//! cargo bench --bench codec_bench -- --models snac --seconds 60 --window-seconds 0   # one pass, no windows
//! ```
//!
//! Models (`--models`, comma-separated; default `wavtokenizer,encodec,dac,snac`, `all` for
//! every one):
//!
//! | key | model | codes |
//! |---|---|---|
//! | `wavtokenizer` | WavTokenizer, 75 tokens/s (`WavTokenizerConfig::frame75_24khz()`) | 1 codebook |
//! | `encodec` | EnCodec 24 kHz at 6 kbit/s (`EncodecConfig::encodec_24khz()`) | first 8 of 32 codebooks |
//! | `encodec-24kbps` | EnCodec 24 kHz at 24 kbit/s | all 32 codebooks |
//! | `dac` | DAC 44.1 kHz (`DacConfig::dac_44khz()`) | all 9 codebooks |
//! | `snac` | SNAC 24 kHz (`SnacConfig::snac_24khz()`) | all 3 codebooks (decoder noise on, as the reference) |
//! | `snac-32khz` | SNAC 32 kHz (`SnacConfig::snac_32khz()`, with local attention) | all 4 codebooks |
//! | `tinycodec` | the project's own tinycodec-24khz: both keys below | |
//! | `tinycodec-1` | tinycodec-24khz, single-stream mode (580 bit/s) | 1 of 4 stages |
//! | `tinycodec-4` | tinycodec-24khz, every stage (2.3 kbit/s) | all 4 stages |
//! | `lyra` | lyra-v2, the default model, on its published weights (compiled in); batch and streaming | first 16 of 46 stages (3.2 kbit/s) |
//! | `s3tokenizer` | S3Tokenizer v2 (`S3TokenizerConfig::s3tokenizer_v2()`, keys from the fixture's manifest), encode only | 1 stream of 6561 |
//! | `s3tokenizer-v1` | S3Tokenizer v1 at 50 Hz (`S3TokenizerConfig::s3tokenizer_v1_50hz()`, keys from the fixture's v1 manifest), encode only | 1 stream of 4096 |
//! | `xcodec2` | X-Codec2 (`XCodec2Config::xcodec2()`, the whole published model: keys from the `xcodec2` fixture's manifest) | 1 FSQ stream of 65536 |
//! | `speechtokenizer` | SpeechTokenizer (`SpeechTokenizerConfig::speechtokenizer_hubert_avg()`, keys from the fixture's manifest) | all 8 codebooks |
//! | `qwen3-tts` | Qwen3-TTS-Tokenizer-12Hz (`Qwen3TtsConfig::qwen3_tts_tokenizer_12hz()`, keys from the fixture's manifest) | all 16 codebooks |
//! | `moss-audio-tokenizer` | MOSS-Audio-Tokenizer, 1.77 B parameters (`MossAudioTokenizerConfig::moss_audio_tokenizer()`, keys from the fixture's manifest) | all 32 codebooks |
//! | `xy-tokenizer` | XY-Tokenizer, 16 kHz release, 534 M values (`XyTokenizerConfig::xy_tokenizer()`, keys from the fixture's manifest) | all 8 codebooks |
//!
//! The published models have random weights: their keys and shapes are built from the configs
//! (`tests/support/{wavtokenizer_keys,codec_keys}.rs`, checked against the reference's key
//! manifests by `tests/*_keys*.rs`), so no checkpoint or fixture is needed; speed and memory do
//! not depend on the values. tinycodec runs on the weights compiled into the library. Encode
//! runs `long_form::encode` on a speech-like signal, decode `long_form::decode` on random
//! codes of the same length: the pipeline's path, one pass up to `--window-seconds` (default
//! 30) and windows beyond it, so that memory stays bounded on long inputs (`--window-seconds
//! 0`: one pass however long); tinycodec also has an `encode+decode` case (encode, then decode
//! the codes just made, timed together: the round trip the CLI does). Each case (model x task x audio
//! length) runs in a fresh child process (this binary, re-executed with
//! `--case TASK --model KEY --seconds S`) so that its peak resident memory (`VmHWM`) is its
//! own; the child prints one JSON line, the parent collects a table and writes
//! `target/codec_bench.json`. `benches/run_all.sh` runs the same children beside the reference
//! Python packages and candle-transformers and prints one table.
//!
//! Options: `--models LIST`; `--seconds 10,60` audio lengths; `--threads N` (default 2, passed
//! to the children as `RAYON_NUM_THREADS` / `CANDLE_NUM_THREADS` before any tensor work);
//! `--runs N` timed runs per case (best is reported; default 3 up to 30 s, else 2); `--quick`
//! (10 s, one run, no stage breakdown); `--stages` / `--no-stages` rough per-stage timing of
//! WavTokenizer (default on unless `--quick`, only when `wavtokenizer` is selected). Unknown
//! arguments (cargo passes `--bench`) are ignored.
//!
//! Each case's JSON also has its CPU time (user/system) and minor page faults per run. On
//! glibc, temporaries over 32 MiB (long inputs) are mmap'ed fresh on every allocation, and the
//! page faults show up as system time; to see what that costs, run the bench under e.g.
//! `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=2147483647:glibc.malloc.trim_threshold=4294967295`.

#[path = "../tests/support/codec_keys.rs"]
mod codec_keys;
#[path = "../tests/support/manifest.rs"]
mod manifest;
#[path = "../tests/support/proc_stats.rs"]
mod proc_stats;
#[path = "../tests/support/random_weights.rs"]
mod random_weights;
#[path = "../tests/support/wavtokenizer_keys.rs"]
mod wavtokenizer_keys;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use codec::long_form;
use codec::models::dac::{Dac, DacConfig};
use codec::models::encodec::{Encodec, EncodecConfig};
use codec::models::lyra::{LyraConfig, FRAME};
use codec::models::mimi::{Mimi, MimiConfig};
use codec::models::moss_audio_tokenizer::{MossAudioTokenizer, MossAudioTokenizerConfig};
use codec::models::qwen3_tts::{Qwen3Tts, Qwen3TtsConfig};
use codec::models::s3tokenizer::{S3Tokenizer, S3TokenizerConfig};
use codec::models::snac::{Snac, SnacConfig};
use codec::models::speechtokenizer::{SpeechTokenizer, SpeechTokenizerConfig};
use codec::models::tinycodec::{TinyCodec, TinyCodecConfig};
use codec::models::wavtokenizer::{WavTokenizer, WavTokenizerConfig};
use codec::models::xcodec2::{XCodec2, XCodec2Config};
use codec::models::xy_tokenizer::{XyTokenizer, XyTokenizerConfig};
use codec::weights::StateDict;
use codec::{CodeStreams, Codec, Device, EncodeOptions, ModelCard, Tensor};
use proc_stats::{cpu_per_run, cpu_usage, memory_mib};
use serde_json::{json, Value};

use codec_keys::{dac_keys, encodec_keys, snac_keys};
use random_weights::{default_init, random_state_dict_with, speech_like, Init, XorShift};
use wavtokenizer_keys::wavtokenizer_keys;

const RESULT_TAG: &str = "CODEC_BENCH_RESULT ";
const WEIGHT_SEED: u64 = 0x5EED_0075;
const DEFAULT_MODELS: &str = "wavtokenizer,encodec,dac,snac";

/// One benchmarked model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bench {
    WavTokenizer,
    Encodec6,
    Encodec24,
    Dac44,
    Snac24,
    Snac32,
    TinyCodec1,
    TinyCodec4,
    Mimi,
    XCodec2,
    Lyra,
    SpeechTokenizer,
    S3Tokenizer,
    S3TokenizerV1,
    Qwen3Tts,
    MossAudioTokenizer,
    XyTokenizer,
}

impl Bench {
    const ALL: [Bench; 17] = [
        Bench::WavTokenizer,
        Bench::Encodec6,
        Bench::Encodec24,
        Bench::Dac44,
        Bench::Snac24,
        Bench::Snac32,
        Bench::TinyCodec1,
        Bench::TinyCodec4,
        Bench::Mimi,
        Bench::XCodec2,
        Bench::Lyra,
        Bench::SpeechTokenizer,
        Bench::S3Tokenizer,
        Bench::S3TokenizerV1,
        Bench::Qwen3Tts,
        Bench::MossAudioTokenizer,
        Bench::XyTokenizer,
    ];

    /// The `--models` key (also what `benches/run_all.sh` matches results on).
    fn key(self) -> &'static str {
        match self {
            Bench::WavTokenizer => "wavtokenizer",
            Bench::Encodec6 => "encodec",
            Bench::Encodec24 => "encodec-24kbps",
            Bench::Dac44 => "dac",
            Bench::Snac24 => "snac",
            Bench::Snac32 => "snac-32khz",
            Bench::TinyCodec1 => "tinycodec-1",
            Bench::TinyCodec4 => "tinycodec-4",
            Bench::Mimi => "mimi",
            Bench::XCodec2 => "xcodec2",
            Bench::SpeechTokenizer => "speechtokenizer",
            Bench::S3Tokenizer => "s3tokenizer",
            Bench::S3TokenizerV1 => "s3tokenizer-v1",
            Bench::Qwen3Tts => "qwen3-tts",
            Bench::MossAudioTokenizer => "moss-audio-tokenizer",
            Bench::XyTokenizer => "xy-tokenizer",
            Bench::Lyra => "lyra",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Bench::WavTokenizer => "wavtokenizer-75 (full)",
            Bench::Encodec6 => "encodec-24khz 6kbps",
            Bench::Encodec24 => "encodec-24khz 24kbps",
            Bench::Dac44 => "dac-44khz",
            Bench::Snac24 => "snac-24khz",
            Bench::Snac32 => "snac-32khz",
            Bench::TinyCodec1 => "tinycodec 1 stage",
            Bench::TinyCodec4 => "tinycodec 4 stages",
            Bench::Mimi => "mimi (8 codebooks)",
            Bench::XCodec2 => "xcodec2",
            Bench::SpeechTokenizer => "speechtokenizer (8 codebooks)",
            Bench::S3Tokenizer => "s3tokenizer v2",
            Bench::S3TokenizerV1 => "s3tokenizer v1 (50 Hz)",
            Bench::Qwen3Tts => "qwen3-tts-tokenizer-12hz (16 codebooks)",
            Bench::MossAudioTokenizer => "moss-audio-tokenizer (32 codebooks)",
            Bench::XyTokenizer => "xy-tokenizer (8 codebooks)",
            Bench::Lyra => "lyra-v2 3.2 kbps",
        }
    }

    fn from_key(key: &str) -> Option<Bench> {
        let key = key.trim().to_ascii_lowercase();
        let alias = match key.as_str() {
            "encodec-6kbps" | "encodec-24khz" => "encodec",
            "dac-44khz" | "dac44" => "dac",
            "snac-24khz" | "snac24" => "snac",
            "snac32" => "snac-32khz",
            "wavtokenizer-75" => "wavtokenizer",
            k => k,
        };
        Bench::ALL.into_iter().find(|b| b.key() == alias)
    }

    fn sample_rate(self) -> u32 {
        match self {
            Bench::WavTokenizer => WavTokenizerConfig::frame75_24khz().sample_rate,
            Bench::Encodec6 | Bench::Encodec24 => EncodecConfig::encodec_24khz().sample_rate,
            Bench::Dac44 => DacConfig::dac_44khz().sample_rate,
            Bench::Snac24 => SnacConfig::snac_24khz().sample_rate,
            Bench::Snac32 => SnacConfig::snac_32khz().sample_rate,
            Bench::TinyCodec1 | Bench::TinyCodec4 => TinyCodecConfig::tinycodec_24khz().sample_rate,
            Bench::Mimi => MimiConfig::mimi().sample_rate,
            Bench::XCodec2 => XCodec2Config::xcodec2().sample_rate,
            Bench::SpeechTokenizer => {
                SpeechTokenizerConfig::speechtokenizer_hubert_avg().sample_rate
            }
            Bench::S3Tokenizer => S3TokenizerConfig::s3tokenizer_v2().sample_rate,
            Bench::S3TokenizerV1 => S3TokenizerConfig::s3tokenizer_v1_50hz().sample_rate,
            Bench::Qwen3Tts => Qwen3TtsConfig::qwen3_tts_tokenizer_12hz().input_sample_rate,
            Bench::MossAudioTokenizer => {
                MossAudioTokenizerConfig::moss_audio_tokenizer().sample_rate
            }
            Bench::XyTokenizer => XyTokenizerConfig::xy_tokenizer().input_sample_rate,
            Bench::Lyra => LyraConfig::lyra_v2().sample_rate,
        }
    }

    /// The cases run for this model.
    fn tasks(self) -> &'static [&'static str] {
        match self {
            Bench::TinyCodec1 | Bench::TinyCodec4 => &["encode", "decode", "encode+decode"],
            // One frame per step, as a live stream runs; per-frame compute times reported.
            Bench::Mimi | Bench::Lyra => &["encode", "decode", "encode-stream", "decode-stream"],
            // Encode only: its decoder is CosyVoice's flow-matching model.
            Bench::S3Tokenizer | Bench::S3TokenizerV1 => &["encode"],
            _ => &["encode", "decode"],
        }
    }
}

fn parse_models(list: &str) -> Result<Vec<Bench>, String> {
    let mut out = Vec::new();
    for key in list.split(',').filter(|k| !k.trim().is_empty()) {
        match key.trim().to_ascii_lowercase().as_str() {
            "all" => {
                out.extend(Bench::ALL);
                continue;
            }
            "tinycodec" | "tinycodec-24khz" => {
                out.extend([Bench::TinyCodec1, Bench::TinyCodec4]);
                continue;
            }
            _ => {}
        }
        let b = Bench::from_key(key).ok_or_else(|| {
            let keys: Vec<_> = Bench::ALL.iter().map(|b| b.key()).collect();
            format!("unknown model {key:?} (known: {}, all)", keys.join(", "))
        })?;
        out.push(b);
    }
    let mut seen = Vec::new();
    out.retain(|b| {
        let new = !seen.contains(b);
        seen.push(*b);
        new
    });
    if out.is_empty() {
        return Err("--models is empty".into());
    }
    Ok(out)
}

#[derive(Debug, Clone)]
struct Args {
    case: Option<String>,
    models: Vec<Bench>,
    seconds: Vec<f64>,
    threads: usize,
    runs: Option<usize>,
    quick: bool,
    stages: Option<bool>,
    /// Windows on long inputs, as the pipeline runs them (`None`: one pass).
    window_seconds: Option<f64>,
}

/// The command line (`cargo bench --bench codec_bench -- --models mimi --seconds 10`).
#[derive(clap::Parser)]
#[command(about = "Real-time factors and peak memory of our models beside their references")]
struct Cli {
    /// Run one measurement in this process (what the parent spawns per case).
    #[arg(long, hide = true)]
    case: Option<String>,
    /// Comma-separated models (keys, `tinycodec`, or `all`).
    #[arg(long, alias = "model", default_value = DEFAULT_MODELS)]
    models: String,
    /// Comma-separated clip lengths in seconds.
    #[arg(long, value_delimiter = ',', default_values_t = [10.0, 60.0])]
    seconds: Vec<f64>,
    /// Threads for every engine.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed runs per case (best kept); by default 3 up to 30 s of audio, then 2.
    #[arg(long)]
    runs: Option<usize>,
    /// One 10 s clip, one run.
    #[arg(long)]
    quick: bool,
    /// Inputs longer than this run in windows of it, as the library's pipeline runs them
    /// (`codec_core::long_form`); 0: one pass however long.
    #[arg(long, default_value_t = codec::long_form::DEFAULT_WINDOW_SECONDS)]
    window_seconds: f64,
    /// Time WavTokenizer's stages (on unless --quick).
    #[arg(long, overrides_with = "no_stages")]
    stages: bool,
    /// Do not time WavTokenizer's stages.
    #[arg(long)]
    no_stages: bool,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
    /// Test-name filters cargo passes on; ignored.
    #[arg(hide = true)]
    filters: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let cli = <Cli as clap::Parser>::parse();
    if cli.seconds.iter().any(|&s| s.is_nan() || s <= 0.0) {
        return Err("--seconds must be positive".into());
    }
    if cli.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    let mut args = Args {
        case: cli.case,
        models: parse_models(&cli.models)?,
        seconds: cli.seconds,
        threads: cli.threads,
        runs: cli.runs.map(|r| r.max(1)),
        quick: cli.quick,
        stages: match (cli.stages, cli.no_stages) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        window_seconds: (cli.window_seconds > 0.0).then_some(cli.window_seconds),
    };
    if args.quick {
        args.seconds = vec![10.0];
        args.runs.get_or_insert(1);
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("codec_bench: {e}");
            std::process::exit(2);
        }
    };
    let code = match args.case.clone() {
        Some(case) => child(&case, &args),
        None => parent(&args),
    };
    std::process::exit(code);
}

// ---------------------------------------------------------------------------------------------
// Child: one case in this process.

/// Random values for a published checkpoint's keys: [`default_init`], Snake `alpha`s positive
/// and of order one, SNAC's rotary `inv_freq` buffers as the reference computes them.
fn random_state(keys: &[(String, Vec<usize>)], source: &str) -> codec::Result<StateDict> {
    let mut state = random_state_dict_with(keys, WEIGHT_SEED, source, |name, shape| {
        if name.ends_with(".alpha") || name.ends_with(".cluster_usage") {
            Init::Uniform(0.5, 1.5)
        } else if name.ends_with("._initialized") {
            Init::Constant(1.0)
        } else {
            default_init(name, shape)
        }
    })?;
    for (k, t) in state.tensors.iter_mut() {
        if k.ends_with(".rel_pos.inv_freq") {
            let n = t.dims()[0];
            let v: Vec<f32> = (0..n)
                .map(|i| 1.0 / 10000f32.powf((2 * i) as f32 / (2 * n) as f32))
                .collect();
            *t = Tensor::from_vec(v, n, &Device::Cpu)?;
        }
    }
    Ok(state)
}

/// The key list of a published checkpoint from the reference fixtures' manifest (Mimi and
/// X-Codec2 have no key generator from their configs here).
fn fixture_keys(family: &str, file: &str) -> codec::Result<Vec<(String, Vec<usize>)>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(family)
        .join(file);
    manifest::read_manifest(&path)
        .map(|m| m.keys)
        .map_err(|reason| codec::Error::UnknownModel {
            name: family.to_string(),
            hint: format!("the benchmark builds it from the key manifest: {reason}"),
        })
}

fn check_unused(what: &str, unused: &[String]) {
    assert!(
        unused.is_empty(),
        "{what}: generated keys not used by the model: {unused:?}"
    );
}

fn build_wavtokenizer(config: &WavTokenizerConfig) -> codec::Result<WavTokenizer> {
    let keys = wavtokenizer_keys(config);
    let state = random_state(&keys, "random weights")?;
    let label = Bench::WavTokenizer.label();
    let (model, unused) = WavTokenizer::load(config, state, label, &Device::Cpu)?;
    check_unused(label, &unused);
    Ok(model)
}

/// A model built with random weights, with what its cases need to know.
struct Built {
    model: Box<dyn Codec>,
    /// Codebooks to encode with (`None`: all).
    num_codebooks: Option<usize>,
    /// Frames (of the finest stream) that `samples` of audio make.
    frames: usize,
    /// Frames of each code stream for `frames` finest frames (coarse streams are shorter).
    stream_frames: Vec<usize>,
    /// Samples per (finest) frame.
    hop: usize,
    codebook_size: usize,
    num_params: usize,
}

fn num_params(keys: &[(String, Vec<usize>)]) -> usize {
    keys.iter().map(|(_, s)| s.iter().product::<usize>()).sum()
}

fn build(which: Bench, samples: usize) -> codec::Result<Built> {
    let label = which.label();
    Ok(match which {
        Bench::WavTokenizer => {
            let config = WavTokenizerConfig::frame75_24khz();
            let hop = config.head.hop_length;
            let frames = samples.div_ceil(hop);
            Built {
                model: Box::new(build_wavtokenizer(&config)?),
                num_codebooks: None,
                frames,
                stream_frames: vec![frames; config.num_quantizers],
                hop,
                codebook_size: config.codebook_size,
                num_params: num_params(&wavtokenizer_keys(&config)),
            }
        }
        Bench::Encodec6 | Bench::Encodec24 => {
            let config = EncodecConfig::encodec_24khz();
            let keys = encodec_keys(&config);
            let n = if which == Bench::Encodec6 {
                config.codebooks_for_bandwidth(6.0)
            } else {
                config.num_quantizers
            };
            let hop = config.hop_length();
            let frames = samples.div_ceil(hop);
            let (model, unused) =
                Encodec::load(&config, random_state(&keys, label)?, label, &Device::Cpu)?;
            check_unused(label, &unused);
            Built {
                model: Box::new(model),
                num_codebooks: Some(n),
                frames,
                stream_frames: vec![frames; n],
                hop,
                codebook_size: config.codebook_size,
                num_params: num_params(&keys),
            }
        }
        Bench::Dac44 => {
            let config = DacConfig::dac_44khz();
            let keys = dac_keys(&config);
            let hop = config.hop_length();
            let frames = samples.div_ceil(hop);
            let (model, unused) =
                Dac::load(&config, random_state(&keys, label)?, label, &Device::Cpu)?;
            check_unused(label, &unused);
            Built {
                model: Box::new(model),
                num_codebooks: None,
                frames,
                stream_frames: vec![frames; config.n_codebooks],
                hop,
                codebook_size: config.codebook_size,
                num_params: num_params(&keys),
            }
        }
        Bench::Snac24 | Bench::Snac32 => {
            let config = if which == Bench::Snac24 {
                SnacConfig::snac_24khz()
            } else {
                SnacConfig::snac_32khz()
            };
            let keys = snac_keys(&config);
            // The input is padded to a multiple of `pad_multiple` samples.
            let frames = samples.div_ceil(config.pad_multiple()) * config.frame_multiple();
            let (model, unused) =
                Snac::load(&config, random_state(&keys, label)?, label, &Device::Cpu)?;
            check_unused(label, &unused);
            Built {
                model: Box::new(model),
                num_codebooks: None,
                frames,
                stream_frames: config.vq_strides.iter().map(|s| frames / s).collect(),
                hop: config.hop_length(),
                codebook_size: config.codebook_size,
                num_params: num_params(&keys),
            }
        }
        Bench::Mimi => {
            let config = MimiConfig::mimi();
            let keys = fixture_keys("mimi", "full-keys.json")?;
            let n = 8; // as Moshi uses it
            let hop = config.frame_size();
            let frames = samples.div_ceil(hop); // batch encode pads to whole frames
            let (model, unused) =
                Mimi::load(&config, random_state(&keys, label)?, label, &Device::Cpu)?;
            check_unused(label, &unused);
            Built {
                model: Box::new(model),
                num_codebooks: Some(n),
                frames,
                stream_frames: vec![frames; n],
                hop,
                codebook_size: 2048,
                num_params: num_params(&keys),
            }
        }
        Bench::SpeechTokenizer => {
            let config = SpeechTokenizerConfig::speechtokenizer_hubert_avg();
            let keys = fixture_keys("speechtokenizer", "full-speechtokenizer-keys.json")?;
            let hop = config.hop_length();
            let frames = samples.div_ceil(hop);
            let (model, unused) =
                SpeechTokenizer::load(&config, random_state(&keys, label)?, label, &Device::Cpu)?;
            check_unused(label, &unused);
            Built {
                model: Box::new(model),
                num_codebooks: None,
                frames,
                stream_frames: vec![frames; config.num_quantizers],
                hop,
                codebook_size: config.codebook_size,
                num_params: num_params(&keys),
            }
        }
        Bench::S3Tokenizer | Bench::S3TokenizerV1 => {
            let (config, manifest) = if which == Bench::S3Tokenizer {
                (
                    S3TokenizerConfig::s3tokenizer_v2(),
                    "full-v2-25hz-keys.json",
                )
            } else {
                (
                    S3TokenizerConfig::s3tokenizer_v1_50hz(),
                    "full-v1-50hz-keys.json",
                )
            };
            let keys = fixture_keys("s3tokenizer", manifest)?;
            let frames = config.tokens_for_samples(samples);
            let (model, unused) =
                S3Tokenizer::load(&config, random_state(&keys, label)?, label, &Device::Cpu)?;
            check_unused(label, &unused);
            Built {
                model: Box::new(model),
                num_codebooks: None,
                frames,
                stream_frames: vec![frames],
                hop: config.hop_samples(),
                codebook_size: config.codebook_size as usize,
                num_params: num_params(&keys),
            }
        }
        Bench::Qwen3Tts => {
            let config = Qwen3TtsConfig::qwen3_tts_tokenizer_12hz();
            let keys = fixture_keys("qwen3-tts-tokenizer", "full-keys.json")?;
            let hop = config.encode_downsample_rate;
            let frames = samples.div_ceil(hop);
            let books = config.encoder_valid_num_quantizers;
            let (model, unused) =
                Qwen3Tts::load(&config, random_state(&keys, label)?, label, &Device::Cpu)?;
            check_unused(label, &unused);
            Built {
                model: Box::new(model),
                num_codebooks: None,
                frames,
                stream_frames: vec![frames; books],
                hop,
                codebook_size: config.decoder_config.codebook_size,
                num_params: num_params(&keys),
            }
        }
        Bench::MossAudioTokenizer => {
            let config = MossAudioTokenizerConfig::moss_audio_tokenizer();
            let keys = fixture_keys("moss-audio-tokenizer", "full-keys.json")?;
            let hop = config.downsample_rate;
            let frames = samples.div_ceil(hop);
            let books = config.quantizer_kwargs.num_quantizers;
            let (model, unused) = MossAudioTokenizer::load(
                &config,
                random_state(&keys, label)?,
                label,
                &Device::Cpu,
            )?;
            check_unused(label, &unused);
            Built {
                model: Box::new(model),
                num_codebooks: None,
                frames,
                stream_frames: vec![frames; books],
                hop,
                codebook_size: config.quantizer_kwargs.codebook_size,
                num_params: num_params(&keys),
            }
        }
        Bench::XyTokenizer => {
            // The repo's release: 16 kHz in and out, so one hop serves encode and decode.
            let config = XyTokenizerConfig::xy_tokenizer();
            let keys = fixture_keys("xy-tokenizer", "full-xy_tokenizer-keys.json")?;
            let hop = config.input_hop();
            debug_assert_eq!(hop, config.output_hop());
            // The reference keeps whole code frames only (L // 1280).
            let frames = samples / hop;
            let books = config.quantizer_kwargs.num_quantizers;
            let (model, unused) =
                XyTokenizer::load(&config, random_state(&keys, label)?, label, &Device::Cpu)?;
            check_unused(label, &unused);
            Built {
                model: Box::new(model),
                num_codebooks: None,
                frames,
                stream_frames: vec![frames; books],
                hop,
                codebook_size: config.quantizer_kwargs.codebook_size as usize,
                num_params: num_params(&keys),
            }
        }
        Bench::XCodec2 => {
            let config = XCodec2Config::xcodec2();
            // The whole published model: w2v-BERT 2.0 embedded, encoder and decoder.
            let keys = fixture_keys("xcodec2", "full-xcodec2-keys.json")?;
            let hop = config.hop_length;
            // The reference pads every clip by up to a whole hop: one frame more than whole
            // hops (decode runs on as many codes).
            let frames = samples / hop + 1;
            let (model, unused) =
                XCodec2::load(&config, random_state(&keys, label)?, label, &Device::Cpu)?;
            check_unused(label, &unused);
            Built {
                model: Box::new(model),
                num_codebooks: None,
                frames,
                stream_frames: vec![frames],
                hop,
                codebook_size: config.codebook_size(),
                num_params: num_params(&keys),
            }
        }
        Bench::Lyra => {
            // The real published weights, compiled in (the default model).
            let card = ModelCard::find("lyra-v2").expect("the lyra-v2 card");
            let model = codec::load_model(&codec::ModelSpec::Card(Box::new(card)), &Device::Cpu)?;
            let config = LyraConfig::lyra_v2();
            let frames = samples.div_ceil(FRAME);
            Built {
                model,
                num_codebooks: Some(config.default_quantizers),
                frames,
                stream_frames: vec![frames; config.default_quantizers],
                hop: FRAME,
                codebook_size: 16,
                // Constants of the three graphs (weights, biases, codebooks).
                num_params: 1_392_423,
            }
        }
        Bench::TinyCodec1 | Bench::TinyCodec4 => {
            let config = TinyCodecConfig::tinycodec_24khz();
            let card = ModelCard::find("tinycodec-24khz").expect("the tinycodec-24khz card");
            let bytes = card
                .embedded_weights()
                .ok_or_else(|| codec::Error::UnknownModel {
                    name: card.name.clone(),
                    hint: "its weights are not compiled in (the `embedded` feature is off)".into(),
                })?;
            let state = StateDict::from_safetensors_bytes(bytes, "embedded tinycodec-24khz")?;
            let num_params = state.tensors.values().map(|t| t.elem_count()).sum();
            let n = if which == Bench::TinyCodec1 {
                1
            } else {
                config.quantizer.stages
            };
            let (model, _unused) = TinyCodec::load(&config, state, label, &Device::Cpu)?;
            let frames = samples.div_ceil(config.hop_length);
            Built {
                model: Box::new(model),
                num_codebooks: Some(n),
                frames,
                stream_frames: vec![frames; n],
                hop: config.hop_length,
                codebook_size: config.quantizer.levels.pow(config.quantizer.dims as u32),
                num_params,
            }
        }
    })
}

fn audio_tensor(samples: usize, sample_rate: u32) -> codec::Result<Tensor> {
    let audio = speech_like(samples, sample_rate, 7);
    Ok(Tensor::from_vec(audio, (1, 1, samples), &Device::Cpu)?)
}

/// Random codes, one stream per codebook: decoding cost does not depend on which codes they
/// are, and the decode case then needs no encoder run of its own.
fn random_streams(stream_frames: &[usize], codebook_size: usize) -> codec::Result<CodeStreams> {
    let mut rng = XorShift::new(11);
    let streams = stream_frames
        .iter()
        .map(|&n| {
            let codes: Vec<u32> = (0..n).map(|_| rng.below(codebook_size as u32)).collect();
            Tensor::from_vec(codes, (1, n), &Device::Cpu)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CodeStreams {
        streams,
        scales: None,
    })
}

/// WavTokenizer codes `[1, 1, frames]` for the stage breakdown.
fn wavtokenizer_codes(config: &WavTokenizerConfig, frames: usize) -> codec::Result<Tensor> {
    let streams = random_streams(&vec![frames; config.num_quantizers], config.codebook_size)?;
    streams.stacked()
}

fn timed<T>(f: impl FnOnce() -> codec::Result<T>) -> codec::Result<(T, f64)> {
    let t = Instant::now();
    let out = f()?;
    Ok((out, t.elapsed().as_secs_f64()))
}

fn child(case: &str, args: &Args) -> i32 {
    // Thread counts are read once, when candle/rayon build their pools: set them before any
    // tensor work (the parent also puts them in our environment).
    let threads = args.threads.to_string();
    for var in ["RAYON_NUM_THREADS", "CANDLE_NUM_THREADS"] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, &threads);
        }
    }
    let seconds = args.seconds[0];
    let which = args.models[0];
    let result = match case {
        "encode" | "decode" | "encode+decode" => run_case(which, case, seconds, args),
        "encode-stream" | "decode-stream" => run_stream_case(which, case, seconds, args),
        "stages" => run_stages(seconds, args),
        other => {
            eprintln!("codec_bench: unknown case {other}");
            return 2;
        }
    };
    match result {
        Ok(mut v) => {
            v["impl"] = json!("ours");
            v["threads"] = json!(std::env::var("RAYON_NUM_THREADS").ok());
            println!("{RESULT_TAG}{v}");
            0
        }
        Err(e) => {
            eprintln!(
                "codec_bench: {} {case} {seconds} s failed: {e}",
                which.key()
            );
            1
        }
    }
}

fn run_case(which: Bench, task: &str, seconds: f64, args: &Args) -> codec::Result<Value> {
    let runs = args.runs.unwrap_or(if seconds <= 30.0 { 3 } else { 2 });
    let sample_rate = which.sample_rate();
    let samples = (seconds * sample_rate as f64).round() as usize;

    let (built, load_s) = timed(|| build(which, samples))?;
    let (load_hwm, load_rss) = memory_mib();
    let Built {
        model,
        num_codebooks,
        frames,
        stream_frames,
        hop,
        codebook_size,
        num_params,
    } = built;
    let round_trip = task == "encode+decode";
    let audio = match task {
        "encode" | "encode+decode" => Some(audio_tensor(samples, sample_rate)?),
        _ => None,
    };
    let codes = match task {
        "decode" => Some(random_streams(&stream_frames, codebook_size)?),
        _ => None,
    };
    let options = EncodeOptions::new(num_codebooks).with_window_seconds(args.window_seconds);
    let long = if task == "decode" {
        long_form::is_long_to_decode(model.as_ref(), samples, args.window_seconds)
    } else {
        long_form::is_long(model.as_ref(), samples, args.window_seconds)
    };
    let mut walls = Vec::with_capacity(runs);
    let cpu_before = cpu_usage();
    for i in 0..runs {
        let wall = match (&audio, &codes) {
            (Some(audio), _) => {
                let (out, wall) = timed(|| {
                    let codes = long_form::encode(model.as_ref(), audio, &options)?;
                    let decoded = if round_trip {
                        Some(long_form::decode(
                            model.as_ref(),
                            &codes,
                            args.window_seconds,
                        )?)
                    } else {
                        None
                    };
                    Ok((codes, decoded))
                })?;
                let lens: Vec<usize> = out.0.streams.iter().map(|s| s.dims()[1]).collect();
                assert_eq!(
                    lens,
                    stream_frames,
                    "{} encode: stream lengths",
                    which.key()
                );
                if let Some(decoded) = out.1 {
                    assert_eq!(
                        decoded.dims(),
                        &[1, 1, frames * hop],
                        "{} encode+decode: output shape",
                        which.key()
                    );
                }
                wall
            }
            (None, Some(codes)) => {
                let (out, wall) =
                    timed(|| long_form::decode(model.as_ref(), codes, args.window_seconds))?;
                let dims = out.dims();
                let want = frames * hop;
                assert!(
                    dims.len() == 3 && dims[..2] == [1, 1] && dims[2].abs_diff(want) < hop,
                    "{} decode: output shape {dims:?}, about {want} samples expected",
                    which.key()
                );
                wall
            }
            _ => unreachable!(),
        };
        eprintln!(
            "  {} {task} {seconds} s run {}/{runs}: {wall:.2} s",
            which.key(),
            i + 1
        );
        walls.push(wall);
    }
    let best = walls.iter().copied().fold(f64::INFINITY, f64::min);
    let (peak, _) = memory_mib();
    // CPU time and page faults per run (averaged over the runs).
    let cpu = cpu_per_run(cpu_before, runs);
    Ok(json!({
        "model": which.label(),
        "model_key": which.key(),
        "task": task,
        "audio_s": seconds,
        "sample_rate": sample_rate,
        "samples": samples,
        "frames": frames,
        "codebooks": stream_frames.len(),
        "params": num_params,
        "runs": runs,
        "wall_s": best,
        "walls_s": walls,
        "rtf": seconds / best,
        "windowed": long,
        "window_s": args.window_seconds,
        "peak_rss_mib": peak,
        "after_load_rss_mib": load_rss,
        "load_peak_rss_mib": load_hwm,
        "load_s": load_s,
        "cpu": cpu,
    }))
}

/// A streaming case: push one frame of audio (or of codes) per step, as a live stream does,
/// timing each step; the result adds per-frame compute times (median, p95, max) of the best run.
fn run_stream_case(which: Bench, task: &str, seconds: f64, args: &Args) -> codec::Result<Value> {
    let runs = args.runs.unwrap_or(if seconds <= 30.0 { 3 } else { 2 });
    let sample_rate = which.sample_rate();
    let samples = (seconds * sample_rate as f64).round() as usize;
    let (built, load_s) = timed(|| build(which, samples))?;
    let (load_hwm, load_rss) = memory_mib();
    // Whole frames: a stream emits codes once a frame's last sample is in.
    let hop = built.hop;
    let frames = samples / hop;
    let options = EncodeOptions::new(built.num_codebooks);
    let audio = audio_tensor(frames * hop, sample_rate)?;
    let codes = random_streams(&built.stream_frames, built.codebook_size)?.stacked()?;
    let mut walls = Vec::with_capacity(runs);
    let mut best_frames: Vec<f64> = Vec::new();
    let cpu_before = cpu_usage();
    for i in 0..runs {
        let mut per_frame = Vec::with_capacity(frames);
        let start = Instant::now();
        if task == "encode-stream" {
            let mut enc = built.model.streaming_encoder(1, &options)?;
            for f in 0..frames {
                let t = Instant::now();
                let out = enc.push_audio(&audio.narrow(2, f * hop, hop)?)?;
                per_frame.push(t.elapsed().as_secs_f64() * 1000.0);
                let got = out.map(|c| c.dims()[2]).unwrap_or(0);
                assert_eq!(got, 1, "{} encode-stream: one frame per step", which.key());
            }
        } else {
            let mut dec = built.model.streaming_decoder(1)?;
            for f in 0..frames {
                let t = Instant::now();
                let out = dec.push_codes(&codes.narrow(2, f, 1)?)?;
                per_frame.push(t.elapsed().as_secs_f64() * 1000.0);
                let got = out.map(|a| a.dims()[2]).unwrap_or(0);
                assert_eq!(
                    got,
                    hop,
                    "{} decode-stream: one frame per step",
                    which.key()
                );
            }
        }
        let wall = start.elapsed().as_secs_f64();
        eprintln!(
            "  {} {task} {seconds} s run {}/{runs}: {wall:.2} s",
            which.key(),
            i + 1
        );
        if walls.iter().all(|&w| wall < w) {
            best_frames = per_frame;
        }
        walls.push(wall);
    }
    let best = walls.iter().copied().fold(f64::INFINITY, f64::min);
    let (peak, _) = memory_mib();
    let cpu = cpu_per_run(cpu_before, runs);
    best_frames.sort_by(f64::total_cmp);
    let n = best_frames.len().max(1);
    let at = |q: f64| {
        best_frames
            .get(((n as f64 * q) as usize).min(n - 1))
            .copied()
    };
    Ok(json!({
        "model": which.label(),
        "model_key": which.key(),
        "task": task,
        "audio_s": seconds,
        "sample_rate": sample_rate,
        "samples": frames * hop,
        "frames": frames,
        "params": built.num_params,
        "runs": runs,
        "wall_s": best,
        "walls_s": walls,
        "rtf": (frames * hop) as f64 / sample_rate as f64 / best,
        "peak_rss_mib": peak,
        "after_load_rss_mib": load_rss,
        "load_peak_rss_mib": load_hwm,
        "load_s": load_s,
        "cpu": cpu,
        "frame_compute_ms": {
            "median": at(0.5),
            "p95": at(0.95),
            "max": best_frames.last(),
            "frame_ms": 1000.0 * hop as f64 / sample_rate as f64,
        },
    }))
}

/// Rough per-stage times from the public methods, best of `--runs` (default 3). The LSTM and
/// `pos_net` are timed by difference against models built without them; all variants stay
/// loaded and their runs are interleaved, so that load from other processes hits them alike.
fn run_stages(seconds: f64, args: &Args) -> codec::Result<Value> {
    let runs = args.runs.unwrap_or(3);
    let config = WavTokenizerConfig::frame75_24khz();
    let samples = (seconds * config.sample_rate as f64).round() as usize;
    let frames = samples.div_ceil(config.head.hop_length);
    let audio = audio_tensor(samples, config.sample_rate)?;
    let codes = wavtokenizer_codes(&config, frames)?;

    let full = build_wavtokenizer(&config)?;
    let mut cfg = config.clone();
    cfg.encoder.lstm = 0;
    let no_lstm = build_wavtokenizer(&cfg)?;
    let mut cfg = config.clone();
    cfg.backbone.pos_net = false;
    let no_pos_net = build_wavtokenizer(&cfg)?;
    let features = full.codes_to_features(&codes)?;

    type Step<'a> = Box<dyn Fn() -> codec::Result<Tensor> + 'a>;
    let steps: Vec<(&str, Step)> = vec![
        ("encode", Box::new(|| full.encode(&audio))),
        ("encode_latent", Box::new(|| full.encode_latent(&audio))),
        (
            "encode_latent_no_lstm",
            Box::new(|| no_lstm.encode_latent(&audio)),
        ),
        ("decode", Box::new(|| full.decode(&codes))),
        (
            "codes_to_features",
            Box::new(|| full.codes_to_features(&codes)),
        ),
        ("backbone", Box::new(|| full.backbone(&features))),
        (
            "backbone_no_pos_net",
            Box::new(|| no_pos_net.backbone(&features)),
        ),
    ];
    let mut best = vec![f64::INFINITY; steps.len()];
    for run in 0..runs {
        for (i, (_, step)) in steps.iter().enumerate() {
            let (_, t) = timed(step)?;
            best[i] = best[i].min(t);
        }
        eprintln!("  stages {seconds} s: round {}/{runs} done", run + 1);
    }
    let t = |name: &str| best[steps.iter().position(|(n, _)| *n == name).expect("step")];
    let (encode, encoder, encoder_no_lstm) =
        (t("encode"), t("encode_latent"), t("encode_latent_no_lstm"));
    let (decode, codes_to_features) = (t("decode"), t("codes_to_features"));
    let (backbone, backbone_no_pos_net) = (t("backbone"), t("backbone_no_pos_net"));

    Ok(json!({
        "model": Bench::WavTokenizer.label(),
        "model_key": Bench::WavTokenizer.key(),
        "task": "stages",
        "audio_s": seconds,
        "frames": frames,
        "runs": runs,
        "encode_s": encode,
        "encode": {
            "seanet_convs_s": encoder_no_lstm,
            "lstm_s": (encoder - encoder_no_lstm).max(0.0),
            "quantize_s": (encode - encoder).max(0.0),
        },
        "decode_s": decode,
        "decode": {
            "codes_to_features_s": codes_to_features,
            "pos_net_s": (backbone - backbone_no_pos_net).max(0.0),
            "convnext_s": backbone_no_pos_net,
            "head_istft_s": (decode - codes_to_features - backbone).max(0.0),
        },
    }))
}

// ---------------------------------------------------------------------------------------------
// Parent: one child per case, then the table.

fn run_child(
    exe: &PathBuf,
    which: Bench,
    case: &str,
    seconds: f64,
    args: &Args,
) -> Result<Value, String> {
    let mut cmd = Command::new(exe);
    cmd.args(["--case", case, "--model", which.key()])
        .args(["--seconds", &seconds.to_string()])
        .args(["--threads", &args.threads.to_string()])
        .args([
            "--window-seconds",
            &args.window_seconds.unwrap_or(0.0).to_string(),
        ])
        .env("RAYON_NUM_THREADS", args.threads.to_string())
        .env("CANDLE_NUM_THREADS", args.threads.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(runs) = args.runs {
        cmd.args(["--runs", &runs.to_string()]);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("child exited with {}", out.status));
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(RESULT_TAG))
        .ok_or("child printed no result")?;
    serde_json::from_str(line).map_err(|e| format!("bad result line {line:?}: {e}"))
}

fn mib(v: &Value) -> String {
    v.as_f64()
        .map(|m| format!("{m:.0}"))
        .unwrap_or_else(|| "n/a".into())
}

fn secs(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

fn parent(args: &Args) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("codec_bench: cannot find this executable: {e}");
            return 1;
        }
    };
    let stages = args.stages.unwrap_or(!args.quick) && args.models.contains(&Bench::WavTokenizer);
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let keys: Vec<_> = args.models.iter().map(|b| b.key()).collect();
    eprintln!(
        "codec_bench: {}, audio {:?} s, {} threads ({cpus} CPUs available, load average {}){}",
        keys.join(", "),
        args.seconds,
        args.threads,
        load_average(),
        if args.quick { ", quick" } else { "" }
    );
    let mut results = Vec::new();
    let mut stage_results = Vec::new();
    let mut failed = 0;
    for &which in &args.models {
        for &seconds in &args.seconds {
            for &task in which.tasks() {
                eprintln!("{} {task} {seconds} s ...", which.key());
                let load_before = load_average();
                match run_child(&exe, which, task, seconds, args) {
                    Ok(mut v) => {
                        v["load_average_before"] = json!(load_before);
                        v["load_average_after"] = json!(load_average());
                        results.push(v);
                    }
                    Err(e) => {
                        eprintln!("codec_bench: {} {task} {seconds} s: {e}", which.key());
                        failed += 1;
                    }
                }
            }
        }
    }
    if stages {
        for &seconds in &args.seconds {
            eprintln!("wavtokenizer stage breakdown {seconds} s ...");
            match run_child(&exe, Bench::WavTokenizer, "stages", seconds, args) {
                Ok(v) => stage_results.push(v),
                Err(e) => {
                    eprintln!("codec_bench: stages {seconds} s: {e}");
                    failed += 1;
                }
            }
        }
    }

    println!();
    println!(
        "{:<23} {:<13} {:<6} {:<8} {:<8} {:<6} {:<14} {:<16} load avg",
        "model", "task", "audio", "threads", "wall(s)", "RTF", "peak RSS (MB)", "after load (MB)"
    );
    for r in &results {
        println!(
            "{:<23} {:<13} {:<6} {:<8} {:<8.2} {:<6.1} {:<14} {:<16} {}",
            r["model"].as_str().unwrap_or("?"),
            r["task"].as_str().unwrap_or("?"),
            format!("{} s", secs(&r["audio_s"])),
            r["threads"].as_str().unwrap_or("?"),
            secs(&r["wall_s"]),
            secs(&r["rtf"]),
            mib(&r["peak_rss_mib"]),
            mib(&r["after_load_rss_mib"]),
            r["load_average_before"].as_str().unwrap_or("?"),
        );
    }
    let runs = match args.runs {
        Some(n) => n.to_string(),
        None => "3 (up to 30 s) or 2".into(),
    };
    println!(
        "(RTF = audio seconds / wall seconds, best of {runs} run(s) per case; MB = MiB, \
         VmHWM of the case's own process; after load = VmRSS once the model is built; load avg \
         = 1/5/15-minute load average before the case)"
    );
    for s in &stage_results {
        let (e, d) = (&s["encode"], &s["decode"]);
        println!(
            "stages {} s: encode {:.2} s = SEANet convs {:.2} + LSTM {:.2} + quantize {:.2}; \
             decode {:.2} s = codes_to_features {:.3} + pos_net {:.2} + ConvNeXt/embed {:.2} + head/iSTFT {:.2}",
            secs(&s["audio_s"]),
            secs(&s["encode_s"]),
            secs(&e["seanet_convs_s"]),
            secs(&e["lstm_s"]),
            secs(&e["quantize_s"]),
            secs(&s["decode_s"]),
            secs(&d["codes_to_features_s"]),
            secs(&d["pos_net_s"]),
            secs(&d["convnext_s"]),
            secs(&d["head_istft_s"]),
        );
    }

    let report = json!({
        "models": keys,
        "threads": args.threads,
        "available_cpus": cpus,
        "quick": args.quick,
        "results": results,
        "stages": stage_results,
    });
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = target.join("codec_bench.json");
    let written = std::fs::create_dir_all(&target).and_then(|_| {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&report).unwrap_or_default(),
        )
    });
    match written {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => {
            eprintln!("codec_bench: cannot write {}: {e}", path.display());
            failed += 1;
        }
    }
    i32::from(failed > 0)
}

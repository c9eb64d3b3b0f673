//! The library's error type: every failure says what went wrong and where.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in `codec-core`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Not a `#[source]`: the message already includes it, and chains would repeat it.
        cause: std::io::Error,
    },

    /// An audio file could not be decoded (not audio, truncated, unsupported codec, ...).
    #[error("cannot read audio from {path}: {reason}")]
    AudioRead {
        /// The file.
        path: PathBuf,
        /// Why it could not be decoded.
        reason: String,
    },

    /// An audio file decoded fine but holds no samples.
    #[error("audio file {path} contains no samples")]
    EmptyAudio {
        /// The file.
        path: PathBuf,
    },

    /// Audio given to a model or writer is not what it accepts (rate, channels, shape).
    #[error("invalid audio: {0}")]
    InvalidAudio(AudioProblem),

    /// A sample rate read from a file or given by the caller is outside the supported range
    /// ([`crate::audio::MIN_SAMPLE_RATE`] to [`crate::audio::MAX_SAMPLE_RATE`]).
    #[error(
        "{what}: a sample rate of {rate} Hz is outside the supported range ({} to {} Hz)",
        crate::audio::MIN_SAMPLE_RATE,
        crate::audio::MAX_SAMPLE_RATE
    )]
    SampleRate {
        /// Where the rate came from.
        what: String,
        /// The rate, in Hz.
        rate: u64,
    },

    /// An input is larger than the library reads (see [`crate::audio::MAX_INPUT_BYTES`]).
    #[error("{path}: the input is larger than {limit} bytes, the most this tool reads")]
    InputTooLarge {
        /// The input.
        path: PathBuf,
        /// The most read, in bytes.
        limit: u64,
    },

    /// Resampling between two rates failed.
    #[error("resampling from {from} Hz to {to} Hz failed: {reason}")]
    Resample {
        /// The input rate, in Hz.
        from: u32,
        /// The output rate, in Hz.
        to: u32,
        /// What the resampler said.
        reason: String,
    },

    /// A token file is malformed, corrupted or from another version.
    #[error("token file {}: {kind}", path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "<memory>".into()))]
    TokenFile {
        /// The file (`None` for one in memory).
        path: Option<PathBuf>,
        /// What is wrong with it.
        kind: TokenFileError,
    },

    /// A token stream (`codec encode --stream` output) is malformed or corrupted.
    #[error("token stream: {0}")]
    TokenStream(TokenFileError),

    /// A token file or stream was made by a different model than the one decoding it.
    #[error(
        "the {container} was made by model '{file_model}' (weights {file_fingerprint:016x}) but \
         the decoding model is '{model}' (weights {model_fingerprint:016x})"
    )]
    ModelMismatch {
        /// `token file` or `token stream`.
        container: &'static str,
        /// The model the file names.
        file_model: String,
        /// The fingerprint of the weights it was made with.
        file_fingerprint: u64,
        /// The decoding model.
        model: String,
        /// The decoding model's fingerprint.
        model_fingerprint: u64,
    },

    /// Codes do not fit the model (wrong number of codebooks, index out of range, ...).
    #[error("invalid codes: {0}")]
    InvalidCodes(CodesProblem),

    /// A latent given to a model's quantizer is not shaped as it takes.
    #[error("model {model} takes a latent shaped {expected}, got {got:?}")]
    LatentShape {
        /// The model.
        model: String,
        /// The shape it takes.
        expected: String,
        /// The shape given.
        got: Vec<usize>,
    },

    /// A file of codes to import (`.npy`, text) is malformed.
    #[error("codes file {source_name}: {problem}")]
    CodesFile {
        /// The file, or what stands for it.
        source_name: String,
        /// What is wrong with it.
        problem: String,
    },

    /// The model cannot do what was asked in this build (e.g. encode with a model whose encoder
    /// is not ported yet).
    #[error("not supported: {0}")]
    Unsupported(String),

    /// A model-specific option the model does not have ([`crate::Codec::set_option`]).
    #[error("model {model} has {}", known_options(name, known))]
    UnknownOption {
        /// The model.
        model: String,
        /// The option asked for.
        name: String,
        /// The options it has.
        known: Vec<&'static str>,
    },

    /// A model-specific option's value does not parse.
    #[error("option {name} takes {expected}, not '{value}'")]
    OptionValue {
        /// The option.
        name: String,
        /// The value given.
        value: String,
        /// What it takes.
        expected: &'static str,
    },

    /// `--model` named nothing we know.
    #[error("unknown model '{name}': {hint}")]
    UnknownModel {
        /// What was asked for.
        name: String,
        /// What would work instead.
        hint: String,
    },

    /// A model configuration (card, yaml) is malformed or inconsistent.
    #[error("model config {source_name}: {reason}")]
    Config {
        /// The card or config file.
        source_name: String,
        /// What is wrong.
        reason: String,
    },

    /// A weight file is unreadable, or a tensor is missing or misshaped.
    #[error("weights {path}: {reason}")]
    Weights {
        /// The weight file.
        path: String,
        /// What is wrong.
        reason: String,
    },

    /// A model could not be built from its weights; the source names the tensor that is
    /// missing or misshaped.
    #[error("weights {path}")]
    Build {
        /// The weight file (or the model, for weights given as a `VarBuilder`).
        path: String,
        /// What went wrong.
        #[source]
        source: candle_core::Error,
    },

    /// A model graph file (TFLite) is unreadable, or is not the graph the family expects: an
    /// op it does not know, a shape, stride or quantisation that does not match.
    #[error("model file {file}: {problem}")]
    Graph {
        /// The graph file.
        file: String,
        /// What is wrong.
        problem: String,
    },

    /// A file that must come from the model hub is not available.
    #[error("{file} from hub repo {repo} is not available: {reason}\n  to use it offline, download it on a machine with internet and load the folder it is in (or put it in the Hugging Face cache)")]
    Download {
        /// The hub repo.
        repo: String,
        /// The file in it.
        file: String,
        /// Why it is not available.
        reason: String,
    },

    /// An output path names the same file as an input: writing it would destroy the input.
    #[error("the output {} is the same file as the input {}: choose another output path", output.display(), input.display())]
    SameFile {
        /// The input.
        input: PathBuf,
        /// The output that names it.
        output: PathBuf,
    },

    /// A codebook count the model does not have.
    #[error("model {model} has {available} codebook{} (use 1 to {available}), not {requested}", if *available == 1 { "" } else { "s" })]
    CodebookCount {
        /// The model.
        model: String,
        /// Codebooks asked for.
        requested: usize,
        /// Codebooks it has.
        available: usize,
    },

    /// A bandwidth the model does not define (`offered` is empty when it defines none).
    #[error("{}", bandwidth_message(model, *kbps, offered, *codebooks))]
    Bandwidth {
        /// The model.
        model: String,
        /// The bandwidth asked for.
        kbps: f64,
        /// The bandwidths it defines.
        offered: Vec<f64>,
        /// How many codebooks the model has (to say what to use instead).
        codebooks: usize,
    },

    /// Item `index` of a batch failed; `source` says why.
    #[error("batch item {index}: {source}")]
    BatchItem {
        /// The item's index in the batch.
        index: usize,
        /// Why it failed.
        #[source]
        source: Box<Error>,
    },

    /// Error from a tensor operation.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// What is wrong with codes given to a model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodesProblem {
    /// The codes tensor's shape is not the one the model takes.
    #[error("model {model} takes codes shaped {expected}, got {got:?}")]
    Shape {
        /// The model.
        model: String,
        /// The shape it takes, e.g. `[batch, 1..=8, frames > 0]`.
        expected: String,
        /// The shape given.
        got: Vec<usize>,
    },
    /// More (or fewer) codebooks than the model has.
    #[error("{given} codebooks given, model {model} takes 1 to {available}")]
    Codebooks {
        /// The model.
        model: String,
        /// Codebooks in the codes.
        given: usize,
        /// Codebooks the model has.
        available: usize,
    },
    /// A code is not an index into its codebook.
    #[error("code {code}{} is out of range for a codebook of {size} entries", codebook.map(|c| format!(" in codebook {c}")).unwrap_or_default())]
    OutOfRange {
        /// The codebook, when known.
        codebook: Option<usize>,
        /// The code.
        code: u64,
        /// Entries in the codebook.
        size: usize,
    },
    /// One codebook's stream is not shaped as the others require.
    #[error("codebook stream {stream} is shaped {got:?}, expected {expected}")]
    StreamShape {
        /// The stream's index.
        stream: usize,
        /// What it should be.
        expected: String,
        /// What it is.
        got: Vec<usize>,
    },
    /// A frame count is not a multiple of what a multi-scale model needs.
    #[error("{frames} frames is not a multiple of {multiple} ({why})")]
    FrameMultiple {
        /// Frames given.
        frames: usize,
        /// The multiple needed.
        multiple: usize,
        /// Where the multiple comes from.
        why: String,
    },
    /// Codebook streams of different lengths where one array is needed.
    #[error("codebooks of different lengths (multi-scale codes) cannot be {into}")]
    Ragged {
        /// What they cannot be made into.
        into: &'static str,
    },
    /// Codes for a different number of streams than a streaming decoder was made for.
    #[error("the stream has batch {stream}, got codes for {got}")]
    Batch {
        /// The stream's batch.
        stream: usize,
        /// The codes' batch.
        got: usize,
    },
    /// Code frames that do not split into the segments of a segmenting model (EnCodec 48 kHz).
    #[error("{frames} frames: {problem}")]
    Segments {
        /// Code frames given.
        frames: usize,
        /// Why they do not split.
        problem: String,
    },
    /// No code frames at all.
    #[error("there are no code frames")]
    NoFrames,
    /// A normalising model (EnCodec 48 kHz) was given codes without their per-segment scales.
    #[error("model {model} normalises its input: decoding needs the per-segment scales (CodeStreams::scales, a token file's scales)")]
    MissingScales {
        /// The model.
        model: String,
    },
    /// Scales were given to a model that has none.
    #[error("model {model} does not use per-segment scales, but scales were given")]
    UnexpectedScales {
        /// The model.
        model: String,
    },
    /// The per-segment scales are not shaped `[batch, segments]`.
    #[error("{frames} frames make {segments} segments, which need scales shaped {expected:?}, got {got:?}")]
    ScalesShape {
        /// Code frames.
        frames: usize,
        /// Segments they make.
        segments: usize,
        /// The shape needed.
        expected: Vec<usize>,
        /// The shape given.
        got: Vec<usize>,
    },
    /// A codebook of the codes has another size than the model's.
    #[error("codebook {codebook} of the codes has {theirs} entries, model {model}'s has {size}")]
    CodebookSize {
        /// The codebook.
        codebook: usize,
        /// Its size in the codes.
        theirs: u32,
        /// The model.
        model: String,
        /// Its size in the model.
        size: u32,
    },
    /// The codes were made at another sample rate than the model's.
    #[error("the codes are for {theirs} Hz, model {model} runs at {rate} Hz")]
    SampleRate {
        /// The codes' rate.
        theirs: u32,
        /// The model.
        model: String,
        /// The model's rate.
        rate: u32,
    },
    /// A token file's stated length does not agree with its frames.
    #[error("the token file says its audio had {stated} samples, but its frames decode to {decodable}: it is damaged or forged")]
    LengthMismatch {
        /// Samples the file states.
        stated: u64,
        /// What its frames can decode to (at most).
        decodable: String,
    },
    /// Decoding would write more samples than the output can hold.
    #[error("{frames} frames would decode to {samples} samples, more than the {limit} this tool writes (a WAV file's 4 GiB)")]
    TooLong {
        /// Code frames.
        frames: usize,
        /// Samples they decode to.
        samples: u64,
        /// The most written.
        limit: u64,
    },
}

/// What is wrong with audio given to a model or a writer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AudioProblem {
    /// The audio tensor's shape is not the one the model takes.
    #[error("model {model} takes audio shaped {expected}, got {got:?}")]
    Shape {
        /// The model.
        model: String,
        /// The shape it takes, e.g. `[batch, 1, samples > 0]`.
        expected: String,
        /// The shape given.
        got: Vec<usize>,
    },
    /// Audio for a different number of streams than a streaming encoder was made for.
    #[error("the stream has batch {stream}, got audio for {got}")]
    Batch {
        /// The stream's batch.
        stream: usize,
        /// The audio's batch.
        got: usize,
    },
    /// Too short to give a single code frame.
    #[error("too short for model {model} to encode")]
    TooShort {
        /// The model.
        model: String,
    },
    /// A model whose channel count the file pipeline does not handle.
    #[error(
        "model {model} takes {channels} channels; the pipeline handles mono and stereo models"
    )]
    Channels {
        /// The model.
        model: String,
        /// Its channels.
        channels: usize,
    },
    /// A sample rate of 0 Hz.
    #[error("a sample rate of 0 Hz")]
    ZeroRate,
    /// No channels.
    #[error("the audio has no channels")]
    NoChannels,
    /// No samples.
    #[error("the audio has no samples")]
    NoSamples,
    /// Channels of different lengths.
    #[error(
        "channels differ in length: channel 0 has {first} samples, channel {channel} has {len}"
    )]
    ChannelLengths {
        /// The first channel that differs.
        channel: usize,
        /// Its length.
        len: usize,
        /// Channel 0's length.
        first: usize,
    },
    /// A sample that is NaN or infinite.
    #[error("sample {sample} of channel {channel} is not a finite number")]
    NotFinite {
        /// The channel.
        channel: usize,
        /// The sample's index.
        sample: usize,
    },
    /// More channels than a WAV file holds.
    #[error("a WAV file holds at most {max} channels, the clip has {channels}")]
    TooManyChannels {
        /// The most a WAV holds.
        max: usize,
        /// The clip's.
        channels: usize,
    },
    /// More data than a WAV file holds.
    #[error("{frames} frames of {channels} channels do not fit in a WAV file (4 GiB limit)")]
    TooLongForWav {
        /// Sample frames.
        frames: usize,
        /// Channels.
        channels: usize,
    },
    /// A sample format a stream is not written in.
    #[error("streams are written as 16-bit PCM or 32-bit float, not {format}")]
    SampleFormat {
        /// The format asked for.
        format: String,
    },
}

/// What is wrong with a token file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenFileError {
    /// The bytes do not start as a token file does.
    #[error("not a token file (bad magic bytes)")]
    BadMagic,
    /// A format version this build does not read.
    #[error("unsupported format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// The file's version.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// The file ends early.
    #[error("truncated: needs at least {needed} bytes, has {actual}")]
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes there.
        actual: u64,
    },
    /// The checksum does not match the contents.
    #[error(
        "checksum mismatch (stored {stored:08x}, computed {computed:08x}): the file is corrupted"
    )]
    ChecksumMismatch {
        /// The CRC32 the file stores.
        stored: u32,
        /// The CRC32 of its contents.
        computed: u32,
    },
    /// A header field is impossible.
    #[error("corrupted header: {0}")]
    Corrupt(String),
    /// A token stream's frame is damaged or cut (the header was fine).
    #[error("frame {frame}: {problem}")]
    Frame {
        /// The frame's index.
        frame: u64,
        /// What is wrong with it.
        problem: String,
    },
    /// The bytes are not a token stream at all.
    #[error("not a token stream (bad magic bytes){hint}")]
    NotAStream {
        /// What the bytes look like instead, if known.
        hint: &'static str,
    },
    /// Bytes after the end of the data.
    #[error("{0} unexpected bytes after the end of the data")]
    TrailingBytes(u64),
    /// The in-memory contents cannot be written (code out of range, bad rate, ...).
    #[error("cannot write token file: {0}")]
    Invalid(String),
}

fn known_options(name: &str, known: &[&str]) -> String {
    if known.is_empty() {
        format!("no options (asked for '{name}')")
    } else {
        format!("no option '{name}' (its options: {})", known.join(", "))
    }
}

fn bandwidth_message(model: &str, kbps: f64, offered: &[f64], codebooks: usize) -> String {
    if !(kbps > 0.0 && kbps.is_finite()) {
        return format!("a bandwidth must be a positive number of kbit/s, not {kbps}");
    }
    if offered.is_empty() {
        return format!(
            "model {model} defines no bandwidths; choose a number of codebooks instead (1 to \
             {codebooks})"
        );
    }
    let list: Vec<String> = offered.iter().map(|b| format!("{b}")).collect();
    format!(
        "{kbps} kbit/s is not one of model {model}'s bandwidths ({} kbit/s)",
        list.join(", ")
    )
}

impl Error {
    /// [`Error::InvalidCodes`] of a [`CodesProblem::Shape`].
    pub(crate) fn codes_shape(model: &str, expected: impl Into<String>, got: &[usize]) -> Self {
        Error::InvalidCodes(CodesProblem::Shape {
            model: model.to_string(),
            expected: expected.into(),
            got: got.to_vec(),
        })
    }

    /// [`Error::InvalidAudio`] of an [`AudioProblem::Shape`].
    pub(crate) fn audio_shape(model: &str, expected: impl Into<String>, got: &[usize]) -> Self {
        Error::InvalidAudio(AudioProblem::Shape {
            model: model.to_string(),
            expected: expected.into(),
            got: got.to_vec(),
        })
    }

    /// Wrap an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause: source,
        }
    }

    pub(crate) fn config(source_name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            source_name: source_name.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn weights(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Weights {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

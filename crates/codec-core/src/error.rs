//! The library's error type: every failure says what went wrong and where.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in `codec-core`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        /// Not a `#[source]`: the message already includes it, and chains would repeat it.
        cause: std::io::Error,
    },

    /// An audio file could not be decoded (not audio, truncated, unsupported codec, ...).
    #[error("cannot read audio from {path}: {reason}")]
    AudioRead { path: PathBuf, reason: String },

    /// An audio file decoded fine but holds no samples.
    #[error("audio file {path} contains no samples")]
    EmptyAudio { path: PathBuf },

    /// Audio given to a model or writer is not what it accepts (rate, channels, shape).
    #[error("invalid audio: {0}")]
    InvalidAudio(String),

    /// A sample rate read from a file or given by the caller is outside the supported range
    /// ([`crate::audio::MIN_SAMPLE_RATE`] to [`crate::audio::MAX_SAMPLE_RATE`]).
    #[error(
        "{what}: a sample rate of {rate} Hz is outside the supported range ({} to {} Hz)",
        crate::audio::MIN_SAMPLE_RATE,
        crate::audio::MAX_SAMPLE_RATE
    )]
    SampleRate { what: String, rate: u64 },

    /// An input is larger than the library reads (see [`crate::audio::MAX_INPUT_BYTES`]).
    #[error("{path}: the input is larger than {limit} bytes, the most this tool reads")]
    InputTooLarge { path: PathBuf, limit: u64 },

    /// Resampling between two rates failed.
    #[error("resampling from {from} Hz to {to} Hz failed: {reason}")]
    Resample { from: u32, to: u32, reason: String },

    /// A token file is malformed, corrupted or from another version.
    #[error("token file {}: {kind}", path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "<memory>".into()))]
    TokenFile {
        path: Option<PathBuf>,
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
        file_model: String,
        file_fingerprint: u64,
        model: String,
        model_fingerprint: u64,
    },

    /// Codes do not fit the model (wrong number of codebooks, index out of range, ...).
    #[error("invalid codes: {0}")]
    InvalidCodes(String),

    /// The model cannot do what was asked in this build (e.g. encode with a model whose encoder
    /// is not ported yet).
    #[error("not supported: {0}")]
    Unsupported(String),

    /// `--model` named nothing we know.
    #[error("unknown model '{name}': {hint}")]
    UnknownModel { name: String, hint: String },

    /// A model configuration (card, yaml) is malformed or inconsistent.
    #[error("model config {source_name}: {reason}")]
    Config { source_name: String, reason: String },

    /// A weight file is unreadable, or a tensor is missing or misshaped.
    #[error("weights {path}: {reason}")]
    Weights { path: String, reason: String },

    /// A model graph file (TFLite) is unreadable, or is not the graph the family expects: an
    /// op it does not know, a shape, stride or quantisation that does not match.
    #[error("model file {file}: {problem}")]
    Graph { file: String, problem: String },

    /// A file that must come from the model hub is not available.
    #[error("{file} from hub repo {repo} is not available: {reason}\n  to use it offline, download it on a machine with internet and pass the folder with --model DIR (or put it in the Hugging Face cache)")]
    Download {
        repo: String,
        file: String,
        reason: String,
    },

    /// An output path names the same file as an input: writing it would destroy the input.
    #[error("the output {} is the same file as the input {}: choose another output path", output.display(), input.display())]
    SameFile { input: PathBuf, output: PathBuf },

    /// The requested device is not compiled in or not present.
    #[error("device {0} is not available: {1}")]
    Device(String, String),

    /// Error from a tensor operation.
    /// A codebook count the model does not have.
    #[error("model {model} has {available} codebook{} (use 1 to {available}), not {requested}", if *available == 1 { "" } else { "s" })]
    CodebookCount {
        model: String,
        requested: usize,
        available: usize,
    },

    /// A bandwidth the model does not define (`offered` is empty when it defines none).
    #[error("{}", bandwidth_message(model, *kbps, offered, *codebooks))]
    Bandwidth {
        model: String,
        kbps: f64,
        offered: Vec<f64>,
        /// How many codebooks the model has (to say what to use instead).
        codebooks: usize,
    },

    /// Item `index` of a batch failed; `source` says why.
    #[error("batch item {index}: {source}")]
    BatchItem {
        index: usize,
        #[source]
        source: Box<Error>,
    },

    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// What is wrong with a token file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFileError {
    #[error("not a token file (bad magic bytes)")]
    BadMagic,
    #[error("unsupported format version {found} (this build reads version {supported})")]
    UnsupportedVersion { found: u16, supported: u16 },
    #[error("truncated: needs at least {needed} bytes, has {actual}")]
    Truncated { needed: u64, actual: u64 },
    #[error(
        "checksum mismatch (stored {stored:08x}, computed {computed:08x}): the file is corrupted"
    )]
    ChecksumMismatch { stored: u32, computed: u32 },
    #[error("corrupted header: {0}")]
    Corrupt(String),
    /// A token stream's frame is damaged or cut (the header was fine).
    #[error("frame {frame}: {problem}")]
    Frame { frame: u64, problem: String },
    /// The bytes are not a token stream at all.
    #[error("not a token stream (bad magic bytes){hint}")]
    NotAStream { hint: &'static str },
    #[error("{0} unexpected bytes after the end of the data")]
    TrailingBytes(u64),
    /// The in-memory contents cannot be written (code out of range, bad rate, ...).
    #[error("cannot write token file: {0}")]
    Invalid(String),
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

//! The `Codec` trait that every model family implements.

use candle_core::{Device, Tensor};

use crate::error::CodesProblem;
use crate::long_form::LongForm;
use crate::streaming::{StreamingDecoder, StreamingEncoder};
use crate::Result;

/// Static facts about a loaded codec.
#[derive(Debug, Clone, PartialEq)]
pub struct CodecInfo {
    /// Model name as it appears in token files (the card name, or a name derived from files).
    pub name: String,
    /// Family, e.g. `wavtokenizer`.
    pub family: String,
    /// Sample rate the model consumes and produces, in Hz.
    pub sample_rate: u32,
    /// Audio channels the model consumes and produces.
    pub channels: u16,
    /// Code frames per second (of the finest stream for multi-scale models).
    pub frame_rate: f64,
    /// Size of each codebook (number of entries), in stream order.
    pub codebook_sizes: Vec<u32>,
    /// Frames per second of each codebook stream (they differ in multi-scale codecs like SNAC).
    pub codebook_frame_rates: Vec<f64>,
    /// Bandwidths (kbit/s) the model defines, each selecting a prefix of the codebooks
    /// (EnCodec); empty when the model has none.
    pub bandwidths_kbps: Vec<f64>,
    /// A fingerprint of the model's inference weights (xxh3-64), recorded in token files.
    pub fingerprint: u64,
}

impl CodecInfo {
    /// Samples per code frame.
    pub fn hop_length(&self) -> usize {
        (self.sample_rate as f64 / self.frame_rate).round() as usize
    }

    /// Bits per second with the first `codebooks` codebooks: Σ frames/s × log2(size).
    pub fn bitrate_with(&self, codebooks: usize) -> f64 {
        self.codebook_sizes
            .iter()
            .zip(&self.codebook_frame_rates)
            .take(codebooks)
            .map(|(&n, &rate)| rate * (n as f64).log2())
            .sum()
    }

    /// Bits per second with every codebook.
    pub fn bitrate(&self) -> f64 {
        self.bitrate_with(self.codebook_sizes.len())
    }

    /// How many codebooks a bandwidth (kbit/s) the model defines selects.
    pub fn codebooks_for_bandwidth(&self, kbps: f64) -> Option<usize> {
        if !self
            .bandwidths_kbps
            .iter()
            .any(|&b| (b - kbps).abs() < 1e-6)
        {
            return None;
        }
        (1..=self.codebook_sizes.len())
            .find(|&n| (self.bitrate_with(n) - kbps * 1000.0).abs() < 1.0)
    }
}

/// Codes of a batch of clips: one tensor per codebook stream, each `[batch, frames_i]` `u32`,
/// plus optional per-segment scales `[batch, segments]` (EnCodec 48 kHz).
#[derive(Debug, Clone)]
pub struct CodeStreams {
    /// One tensor per codebook stream, each `[batch, frames_i]` `u32`.
    pub streams: Vec<Tensor>,
    /// Per-segment scales `[batch, segments]` of a normalising model (EnCodec 48 kHz).
    pub scales: Option<Tensor>,
}

impl CodeStreams {
    /// Split single-rate codes `[batch, codebooks, frames]` into streams.
    pub fn from_stacked(codes: &Tensor) -> Result<Self> {
        let n = codes.dim(1)?;
        let streams = (0..n)
            .map(|i| codes.narrow(1, i, 1)?.squeeze(1))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            streams,
            scales: None,
        })
    }

    /// Stack equal-length streams into `[batch, codebooks, frames]`.
    pub fn stacked(&self) -> Result<Tensor> {
        let len = self.streams.first().map(|s| s.dims().to_vec());
        if self.streams.iter().any(|s| Some(s.dims().to_vec()) != len) {
            return Err(crate::Error::InvalidCodes(CodesProblem::Ragged {
                into: "stacked",
            }));
        }
        Ok(Tensor::stack(&self.streams, 1)?)
    }
}

/// A model-specific setting, as [`Codec::options`] lists it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ModelOption {
    /// Its name, for [`Codec::set_option`].
    pub name: &'static str,
    /// What it does and which values it takes.
    pub description: &'static str,
    /// Its current value.
    pub value: String,
}

impl ModelOption {
    /// An option called `name`, currently `value`.
    pub fn new(name: &'static str, description: &'static str, value: impl ToString) -> Self {
        Self {
            name,
            description,
            value: value.to_string(),
        }
    }
}

/// Options of [`Codec::encode_with`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EncodeOptions {
    /// Use only the first N codebooks (residual codecs); `None` for all.
    pub num_codebooks: Option<usize>,
    /// Inputs longer than this many seconds run in windows of it, in bounded memory (see
    /// [`crate::long_form`]; [`Codec::encode_with`] itself always takes its input whole).
    /// `None`: one pass however long.
    pub window_seconds: Option<f64>,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            num_codebooks: None,
            window_seconds: Some(crate::long_form::DEFAULT_WINDOW_SECONDS),
        }
    }
}

impl EncodeOptions {
    /// Keep the first `num_codebooks` codebooks (`None`: the model's default).
    pub fn new(num_codebooks: Option<usize>) -> Self {
        Self {
            num_codebooks,
            ..Self::default()
        }
    }

    /// The same options with windows of `seconds` on long inputs (`None`: one pass).
    pub fn with_window_seconds(mut self, seconds: Option<f64>) -> Self {
        self.window_seconds = seconds;
        self
    }

    /// The number of codebooks these options select for `info`'s model: `num_codebooks`, or
    /// `default` when unset. [`Error::CodebookCount`](crate::Error::CodebookCount) when it is
    /// not 1 to the model's count: the one check every model's encoder makes.
    pub fn codebooks_for(&self, info: &CodecInfo, default: usize) -> Result<usize> {
        let available = info.codebook_sizes.len();
        let n = self.num_codebooks.unwrap_or(default);
        if n == 0 || n > available {
            return Err(crate::Error::CodebookCount {
                model: info.name.clone(),
                requested: n,
                available,
            });
        }
        Ok(n)
    }
    /// The options that keep the first `codebooks` codebooks, or the number that `bandwidth`
    /// (kbit/s, one the model defines) selects; neither: the model's default. Errors say what
    /// the model offers.
    ///
    /// ```
    /// # use codec_core::{CodecInfo, EncodeOptions};
    /// # let info = CodecInfo { name: "m".into(), family: "f".into(), sample_rate: 24_000,
    /// #     channels: 1, frame_rate: 75.0, codebook_sizes: vec![1024; 8],
    /// #     codebook_frame_rates: vec![75.0; 8], bandwidths_kbps: vec![1.5, 3.0, 6.0],
    /// #     fingerprint: 0 };
    /// assert_eq!(EncodeOptions::choose(&info, None, Some(3.0))?.num_codebooks, Some(4));
    /// assert!(EncodeOptions::choose(&info, Some(9), None).is_err());
    /// # Ok::<(), codec_core::Error>(())
    /// ```
    pub fn choose(
        info: &CodecInfo,
        codebooks: Option<usize>,
        bandwidth: Option<f64>,
    ) -> Result<Self> {
        let available = info.codebook_sizes.len();
        let num_codebooks = match (codebooks, bandwidth) {
            (Some(n), _) if n == 0 || n > available => {
                return Err(crate::Error::CodebookCount {
                    model: info.name.clone(),
                    requested: n,
                    available,
                })
            }
            (Some(n), _) => Some(n),
            (None, Some(kbps)) => Some(
                info.codebooks_for_bandwidth(kbps)
                    .filter(|_| kbps > 0.0 && kbps.is_finite())
                    .ok_or_else(|| crate::Error::Bandwidth {
                        model: info.name.clone(),
                        kbps,
                        offered: info.bandwidths_kbps.clone(),
                        codebooks: available,
                    })?,
            ),
            (None, None) => None,
        };
        Ok(Self {
            num_codebooks,
            ..Self::default()
        })
    }
}

/// A neural audio codec: audio to discrete codes and back.
///
/// Shapes are batch-first:
/// - audio: `[batch, channels, samples]`, `f32`, at [`CodecInfo::sample_rate`];
/// - codes: `[batch, codebooks, frames]`, `u32`.
pub trait Codec: Send + Sync {
    /// Facts about the model.
    fn info(&self) -> &CodecInfo;

    /// The device the model's weights live on.
    fn device(&self) -> &Device;

    /// Encode audio `[batch, channels, samples]` into codes `[batch, codebooks, frames]`.
    fn encode(&self, audio: &Tensor) -> Result<Tensor>;

    /// Decode codes `[batch, codebooks, frames]` into audio `[batch, channels, samples]`.
    fn decode(&self, codes: &Tensor) -> Result<Tensor>;

    /// Encode with options, into per-codebook streams. The default covers single-rate codecs:
    /// it encodes with every codebook and keeps the first `num_codebooks`. Residual codecs
    /// override it to skip the work of the unused stages; multi-scale codecs to return streams of
    /// different lengths.
    fn encode_with(&self, audio: &Tensor, options: &EncodeOptions) -> Result<CodeStreams> {
        let n = options.codebooks_for(self.info(), self.info().codebook_sizes.len())?;
        let codes = self.encode(audio)?;
        CodeStreams::from_stacked(&codes.narrow(1, 0, n)?)
    }

    /// Decode per-codebook streams (a prefix of the codebooks is fine for residual codecs).
    fn decode_streams(&self, codes: &CodeStreams) -> Result<Tensor> {
        self.decode(&codes.stacked()?)
    }

    /// Whether a batch of equal-length items gives every item bit for bit what it gets alone.
    /// Only then does [`crate::batch`] put several items in one call; other models run them
    /// one at a time. Not true by default: candle's matmul stacks a batch into the rows of one
    /// GEMM, whose summation order can change with the row count (LSTM steps, Mimi's and DAC's
    /// decoders differ in the last bits, and EnCodec's deep residual codes then differ).
    /// `tests/batch_identity.rs` holds every model that says yes to it.
    fn batch_invariant(&self) -> bool {
        false
    }

    /// The model's own settings (SNAC's decoder noise, ...), with their current values; set
    /// them with [`set_option`](Self::set_option). Empty for models that have none.
    fn options(&self) -> Vec<ModelOption> {
        Vec::new()
    }

    /// Set one of [`options`](Self::options) by name, from its text form (`true`, `512`, ...).
    ///
    /// ```no_run
    /// # use codec_core::{load_model, Codec, Device, ModelSpec};
    /// let mut model = load_model(&ModelSpec::parse("snac-24khz")?, &Device::Cpu)?;
    /// model.set_option("decoder_noise", "false")?; // reproducible decoding
    /// # Ok::<(), codec_core::Error>(())
    /// ```
    fn set_option(&mut self, name: &str, value: &str) -> Result<()> {
        let _ = value;
        Err(unknown_option(self.info(), &self.options(), name))
    }

    /// How the model takes an input longer than one window (see [`crate::long_form`]): one
    /// pass unless the model says otherwise.
    fn long_form(&self) -> LongForm {
        LongForm::Whole
    }

    /// Whether [`streaming_encoder`](Self::streaming_encoder) and
    /// [`streaming_decoder`](Self::streaming_decoder) work (causal models).
    fn supports_streaming(&self) -> bool {
        false
    }

    /// A streaming encoder for `batch` independent streams (see [`crate::streaming`]). Its
    /// codes equal [`encode_with`](Self::encode_with)'s over whole frames. It owns what it
    /// needs (the model's tensors are shared, not copied), so it can move to another thread
    /// and outlive this value. Only causal models stream; the others say so.
    fn streaming_encoder(
        &self,
        batch: usize,
        options: &EncodeOptions,
    ) -> Result<Box<dyn StreamingEncoder>> {
        let _ = (batch, options);
        Err(not_streaming(self.info()))
    }

    /// A streaming decoder for `batch` independent streams; its audio equals
    /// [`decode`](Self::decode)'s.
    fn streaming_decoder(&self, batch: usize) -> Result<Box<dyn StreamingDecoder>> {
        let _ = batch;
        Err(not_streaming(self.info()))
    }
}

/// Check mono audio `[batch > 0, 1, samples > 0]`: the shared check of mono models' `encode`.
pub fn check_mono_audio(audio: &Tensor, model: &str) -> Result<()> {
    let dims = audio.dims();
    if dims.len() != 3 || dims[0] == 0 || dims[1] != 1 || dims[2] == 0 {
        return Err(crate::Error::audio_shape(
            model,
            "[batch, 1, samples > 0]",
            dims,
        ));
    }
    Ok(())
}

/// Encode a batch `[batch, 1, samples]` one item at a time, for models whose front end works
/// on one utterance (its own normalisation or windowing): checks the shape
/// ([`check_mono_audio`]), hands `encode_item` each item's samples (f32, on the CPU) and stacks
/// the `[1, ...]` codes it returns along the batch.
pub(crate) fn encode_each_item(
    audio: &Tensor,
    model: &str,
    encode_item: impl Fn(&[f32]) -> Result<Tensor>,
) -> Result<Tensor> {
    check_mono_audio(audio, model)?;
    let audio = audio
        .to_dtype(candle_core::DType::F32)?
        .to_device(&Device::Cpu)?;
    let items = (0..audio.dim(0)?)
        .map(|i| encode_item(&audio.get(i)?.flatten_all()?.to_vec1::<f32>()?))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&items, 0)?)
}

/// Check codes `[batch, 1..=max_codebooks, frames > 0]` with every code below `codebook_size`:
/// the shared check of single-rate models' `decode`.
pub fn check_stacked_codes(
    codes: &Tensor,
    max_codebooks: usize,
    codebook_size: usize,
    model: &str,
) -> Result<()> {
    let dims = codes.dims();
    if dims.len() != 3 || dims[1] == 0 || dims[1] > max_codebooks || dims[2] == 0 {
        let books = if max_codebooks == 1 {
            "1".to_string()
        } else {
            format!("1..={max_codebooks}")
        };
        return Err(crate::Error::codes_shape(
            model,
            format!("[batch, {books}, frames > 0]"),
            dims,
        ));
    }
    let max = codes
        .to_dtype(candle_core::DType::U32)?
        .flatten_all()?
        .max(0)?
        .to_scalar::<u32>()?;
    if max as usize >= codebook_size {
        return Err(crate::Error::InvalidCodes(CodesProblem::OutOfRange {
            codebook: None,
            code: max.into(),
            size: codebook_size,
        }));
    }
    Ok(())
}

/// The error for an option a model does not have.
pub(crate) fn unknown_option(
    info: &CodecInfo,
    options: &[ModelOption],
    name: &str,
) -> crate::Error {
    crate::Error::UnknownOption {
        model: info.name.clone(),
        name: name.to_string(),
        known: options.iter().map(|o| o.name).collect(),
    }
}

/// An option's value that does not parse.
pub(crate) fn bad_option_value(name: &str, value: &str, expected: &'static str) -> crate::Error {
    crate::Error::OptionValue {
        name: name.to_string(),
        value: value.to_string(),
        expected,
    }
}

pub(crate) fn not_streaming(info: &CodecInfo) -> crate::Error {
    crate::Error::Unsupported(format!(
        "model {} ({}) cannot stream: its encoder or decoder looks ahead in time; \
         use a causal model such as lyra-v2 or mimi, or encode whole files",
        info.name, info.family
    ))
}

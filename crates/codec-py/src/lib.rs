//! The native half of the `codec` Python package (`codec._codec`).
//!
//! The Python half (`python/codec/__init__.py`) gives the API its Python shape (defaults, mono
//! arrays, lists); this module moves numpy arrays in and out of `codec_core` and releases the
//! GIL while a model runs. Every library error becomes `codec.CodecError` with the library's
//! message; a panic becomes pyo3's `PanicException`, never an abort.

use std::sync::{Arc, Mutex};

use codec_core::audio::AudioClip;
use codec_core::batch;
use codec_core::long_form::DEFAULT_WINDOW_SECONDS;
use codec_core::pipeline::{self, DecodeOptions};
use codec_core::tokfile::TokenFile;
use codec_core::{
    load_model_with_report, Codec, Device, EncodeOptions, ModelSpec, StreamingDecoder,
    StreamingEncoder, Tensor,
};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

create_exception!(
    _codec,
    CodecError,
    PyException,
    "A codec error: unreadable or invalid input, a model that cannot be loaded, codes that do \
     not fit the model. The message says what and where."
);

fn err(e: codec_core::Error) -> PyErr {
    // The whole chain: a batch item's error names the item, then the cause.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text = format!("{text}: {s_text}");
        }
        source = s.source();
    }
    CodecError::new_err(text)
}

fn candle_err(e: candle_core::Error) -> PyErr {
    err(codec_core::Error::from(e))
}

/// A loaded model.
#[pyclass(frozen, module = "codec._codec")]
struct Model {
    inner: Arc<dyn Codec>,
    /// Checkpoint keys no layer read (see `load_model_with_report`).
    unused_keys: Vec<String>,
}

#[pymethods]
impl Model {
    /// Facts about the model, as a dict.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let i = self.inner.info();
        let d = PyDict::new(py);
        d.set_item("name", &i.name)?;
        d.set_item("family", &i.family)?;
        d.set_item("sample_rate", i.sample_rate)?;
        d.set_item("channels", i.channels)?;
        d.set_item("frame_rate", i.frame_rate)?;
        d.set_item("hop_length", i.hop_length())?;
        d.set_item("codebook_sizes", i.codebook_sizes.clone())?;
        d.set_item("codebook_frame_rates", i.codebook_frame_rates.clone())?;
        d.set_item("bandwidths_kbps", i.bandwidths_kbps.clone())?;
        d.set_item("bitrate", i.bitrate())?;
        d.set_item("fingerprint", format!("{:016x}", i.fingerprint))?;
        d.set_item("supports_streaming", self.inner.supports_streaming())?;
        d.set_item("batch_invariant", self.inner.batch_invariant())?;
        let options = PyDict::new(py);
        for o in self.inner.options() {
            let entry = PyDict::new(py);
            entry.set_item("value", &o.value)?;
            entry.set_item("description", o.description)?;
            options.set_item(o.name, entry)?;
        }
        d.set_item("options", options)?;
        d.set_item("unused_keys", self.unused_keys.clone())?;
        Ok(d)
    }

    /// Encode clips (each `[channels, samples]` float32 at its rate) into token files.
    #[pyo3(signature = (clips, sample_rates, codebooks=None, bandwidth=None, window_seconds=DEFAULT_WINDOW_SECONDS))]
    fn encode_batch(
        &self,
        py: Python<'_>,
        clips: Vec<PyReadonlyArray2<'_, f32>>,
        sample_rates: Vec<u32>,
        codebooks: Option<usize>,
        bandwidth: Option<f64>,
        window_seconds: Option<f64>,
    ) -> PyResult<Vec<Tokens>> {
        let window_seconds = window(window_seconds)?;
        if clips.len() != sample_rates.len() {
            return Err(PyValueError::new_err(format!(
                "{} clips but {} sample rates",
                clips.len(),
                sample_rates.len()
            )));
        }
        let clips: Vec<AudioClip> = clips
            .iter()
            .zip(&sample_rates)
            .map(|(a, &rate)| {
                let a = a.as_array();
                AudioClip {
                    sample_rate: rate,
                    channels: a.outer_iter().map(|c| c.to_vec()).collect(),
                }
            })
            .collect();
        let model = self.inner.clone();
        let options =
            options(model.as_ref(), codebooks, bandwidth)?.with_window_seconds(window_seconds);
        let encoded = py
            .allow_threads(move || batch::encode_batch(model.as_ref(), &clips, &options))
            .map_err(err)?;
        Ok(encoded
            .into_iter()
            .map(|e| Tokens {
                inner: e.tokens,
                notes: e.notes,
            })
            .collect())
    }

    /// Decode token files; each item is `(audio [channels, samples] float32, sample_rate)`.
    #[pyo3(signature = (tokens, original_rate=false, force=false, window_seconds=DEFAULT_WINDOW_SECONDS))]
    fn decode_batch<'py>(
        &self,
        py: Python<'py>,
        tokens: Vec<PyRef<'py, Tokens>>,
        original_rate: bool,
        force: bool,
        window_seconds: Option<f64>,
    ) -> PyResult<Vec<(Bound<'py, PyArray2<f32>>, u32)>> {
        let files: Vec<TokenFile> = tokens.iter().map(|t| t.inner.clone()).collect();
        let model = self.inner.clone();
        let options =
            DecodeOptions::new(original_rate, force).with_window_seconds(window(window_seconds)?);
        let clips = py
            .allow_threads(move || batch::decode_batch(model.as_ref(), &files, &options))
            .map_err(err)?;
        clips
            .into_iter()
            .map(|c| Ok((planar_to_array(py, c.channels)?, c.sample_rate)))
            .collect()
    }

    /// A token file for codes made elsewhere: one int array per codebook stream, the audio
    /// taken to be `frames * hop` samples at the model's rate.
    fn tokens_from_codes(&self, streams: Vec<PyReadonlyArray1<'_, i64>>) -> PyResult<Tokens> {
        let rows: Vec<Vec<i64>> = streams.iter().map(|s| s.as_array().to_vec()).collect();
        Ok(Tokens {
            inner: pipeline::tokens_from_codes(self.inner.info(), &rows, "codes").map_err(err)?,
            notes: Vec::new(),
        })
    }

    /// A streaming encoder (causal models).
    #[pyo3(signature = (codebooks=None, bandwidth=None))]
    fn stream_encoder(
        &self,
        codebooks: Option<usize>,
        bandwidth: Option<f64>,
    ) -> PyResult<StreamEncoder> {
        let options = options(self.inner.as_ref(), codebooks, bandwidth)?;
        let inner = self.inner.streaming_encoder(1, &options).map_err(err)?;
        Ok(StreamEncoder {
            frame_size: inner.frame_size(),
            inner: Mutex::new(inner),
            channels: self.inner.info().channels as usize,
        })
    }

    /// A streaming decoder (causal models).
    fn stream_decoder(&self) -> PyResult<StreamDecoder> {
        let inner = self.inner.streaming_decoder(1).map_err(err)?;
        Ok(StreamDecoder {
            inner: Mutex::new(inner),
        })
    }
}

/// Windows on long inputs: a positive number of seconds, or `None` for one pass.
fn window(seconds: Option<f64>) -> PyResult<Option<f64>> {
    match seconds {
        Some(s) if !(s > 0.0 && s.is_finite()) => Err(PyValueError::new_err(format!(
            "window_seconds must be a positive number of seconds or None (one pass), got {s}"
        ))),
        s => Ok(s),
    }
}

fn options(
    model: &dyn Codec,
    codebooks: Option<usize>,
    bandwidth: Option<f64>,
) -> PyResult<EncodeOptions> {
    if codebooks.is_some() && bandwidth.is_some() {
        return Err(PyValueError::new_err(
            "give codebooks or bandwidth, not both",
        ));
    }
    // A choice the model does not offer is the caller's mistake: ValueError, as Python has it.
    EncodeOptions::choose(model.info(), codebooks, bandwidth)
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

fn planar_to_array(py: Python<'_>, channels: Vec<Vec<f32>>) -> PyResult<Bound<'_, PyArray2<f32>>> {
    let rows = channels.len();
    let cols = channels.first().map_or(0, Vec::len);
    let flat: Vec<f32> = channels.concat();
    let array = numpy::ndarray::Array2::from_shape_vec((rows, cols), flat)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(array.into_pyarray(py))
}

fn tensor_to_array<'py>(py: Python<'py>, t: &Tensor) -> PyResult<Bound<'py, PyArray2<f32>>> {
    // [1, channels, samples] -> [channels, samples]
    let planar: Vec<Vec<f32>> = t
        .squeeze(0)
        .and_then(|t| t.to_dtype(codec_core::DType::F32))
        .and_then(|t| t.to_vec2())
        .map_err(candle_err)?;
    planar_to_array(py, planar)
}

/// A token file: codes plus what is needed to decode them (model, rates, original length).
#[pyclass(module = "codec._codec")]
struct Tokens {
    inner: TokenFile,
    notes: Vec<String>,
}

#[pymethods]
impl Tokens {
    /// Read a `.tok` file.
    #[staticmethod]
    fn read(path: std::path::PathBuf) -> PyResult<Self> {
        Ok(Self {
            inner: TokenFile::read(&path).map_err(err)?,
            notes: Vec::new(),
        })
    }

    /// A token file from the bytes of one.
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        Ok(Self {
            inner: TokenFile::from_bytes(data)
                .map_err(|kind| err(codec_core::Error::TokenFile { path: None, kind }))?,
            notes: Vec::new(),
        })
    }

    /// Write it as a `.tok` file (atomically: an existing file is replaced only on success).
    fn write(&self, path: std::path::PathBuf) -> PyResult<()> {
        self.inner.write(&path).map_err(err)
    }

    /// The file's bytes.
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let bytes = self
            .inner
            .to_bytes()
            .map_err(|kind| err(codec_core::Error::TokenFile { path: None, kind }))?;
        Ok(pyo3::types::PyBytes::new(py, &bytes))
    }

    /// One int64 array per codebook stream.
    fn streams<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyArray1<i64>>> {
        self.inner
            .streams
            .iter()
            .map(|s| {
                s.codes
                    .iter()
                    .map(|&c| i64::from(c))
                    .collect::<Vec<_>>()
                    .into_pyarray(py)
            })
            .collect()
    }

    /// What was done to the input on the way in (mixdown, resampling).
    #[getter]
    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    #[getter]
    fn model(&self) -> String {
        self.inner.header.model.clone()
    }

    #[getter]
    fn fingerprint(&self) -> String {
        format!("{:016x}", self.inner.header.fingerprint)
    }

    #[getter]
    fn sample_rate(&self) -> u32 {
        self.inner.header.sample_rate
    }

    #[getter]
    fn frame_rate(&self) -> f64 {
        self.inner.header.frame_rate
    }

    #[getter]
    fn original_sample_rate(&self) -> u32 {
        self.inner.header.original_sample_rate
    }

    #[getter]
    fn original_length(&self) -> u64 {
        self.inner.header.original_length
    }

    #[getter]
    fn num_frames(&self) -> usize {
        self.inner.num_frames()
    }

    #[getter]
    fn duration(&self) -> f64 {
        self.inner.duration_seconds()
    }

    #[getter]
    fn bitrate(&self) -> f64 {
        self.inner.bitrate()
    }

    fn __eq__(&self, other: PyRef<'_, Tokens>) -> bool {
        self.inner == other.inner
    }

    fn __repr__(&self) -> String {
        format!(
            "Tokens(model={:?}, codebooks={}, frames={}, duration={:.2} s)",
            self.inner.header.model,
            self.inner.streams.len(),
            self.inner.num_frames(),
            self.inner.duration_seconds()
        )
    }
}

/// Push audio as it arrives, get the codes of every frame it completes.
#[pyclass(module = "codec._codec")]
struct StreamEncoder {
    /// Owns what it needs of the model.
    inner: Mutex<Box<dyn StreamingEncoder>>,
    frame_size: usize,
    channels: usize,
}

#[pymethods]
impl StreamEncoder {
    /// Push samples `[channels, n]` (float32, at the model's rate); returns the codes
    /// `[codebooks, frames]` (int64) of the frames they complete, possibly none.
    fn push<'py>(
        &self,
        py: Python<'py>,
        audio: PyReadonlyArray2<'_, f32>,
    ) -> PyResult<Bound<'py, PyArray2<i64>>> {
        let a = audio.as_array();
        if a.nrows() != self.channels {
            return Err(PyValueError::new_err(format!(
                "the model takes {} channel(s), got {}",
                self.channels,
                a.nrows()
            )));
        }
        let flat: Vec<f32> = a.iter().copied().collect();
        let (channels, n) = (a.nrows(), a.ncols());
        let codes = if n == 0 {
            None
        } else {
            let t = Tensor::from_vec(flat, (1, channels, n), &Device::Cpu).map_err(candle_err)?;
            let mut inner = self
                .inner
                .lock()
                .expect("a push never panics while holding it");
            inner.push_audio(&t).map_err(err)?
        };
        codes_array(py, codes)
    }

    /// End the stream: complete the last partial frame with silence and return its codes
    /// (as the CLI does); the encoder is then ready for a new stream.
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<i64>>> {
        let mut inner = self
            .inner
            .lock()
            .expect("a push never panics while holding it");
        let codes = inner.finish().map_err(err)?;
        codes_array(py, codes)
    }

    /// Samples per code frame.
    #[getter]
    fn frame_size(&self) -> usize {
        self.frame_size
    }

    /// Frames held back at the start of a stream.
    #[getter]
    fn startup_frames(&self) -> usize {
        self.inner.lock().expect("never poisoned").startup_frames()
    }

    /// Forget the stream.
    fn reset(&self) {
        self.inner.lock().expect("never poisoned").reset();
    }
}

/// Codes `[1, codebooks, frames]` as an int64 array `[codebooks, frames]` (`[0, 0]` for none).
fn codes_array<'py>(py: Python<'py>, codes: Option<Tensor>) -> PyResult<Bound<'py, PyArray2<i64>>> {
    let codebooks_empty = || numpy::ndarray::Array2::<i64>::zeros((0, 0)).into_pyarray(py);
    match codes {
        None => Ok(codebooks_empty()),
        Some(codes) => {
            let rows: Vec<Vec<u32>> = codes
                .squeeze(0)
                .and_then(|c| c.to_dtype(codec_core::DType::U32))
                .and_then(|c| c.to_vec2())
                .map_err(candle_err)?;
            let (r, c) = (rows.len(), rows.first().map_or(0, Vec::len));
            let flat: Vec<i64> = rows.concat().into_iter().map(i64::from).collect();
            Ok(numpy::ndarray::Array2::from_shape_vec((r, c), flat)
                .map_err(|e| PyValueError::new_err(e.to_string()))?
                .into_pyarray(py))
        }
    }
}

/// Push codes as they arrive, get the audio of every frame.
#[pyclass(module = "codec._codec")]
struct StreamDecoder {
    /// Owns what it needs of the model.
    inner: Mutex<Box<dyn StreamingDecoder>>,
}

#[pymethods]
impl StreamDecoder {
    /// Push codes `[codebooks, frames]` (int); returns audio `[channels, frames * frame_size]`
    /// (float32), possibly empty.
    fn push<'py>(
        &self,
        py: Python<'py>,
        codes: PyReadonlyArray2<'_, i64>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let a = codes.as_array();
        let (rows, frames) = (a.nrows(), a.ncols());
        let flat = a
            .iter()
            .map(|&v| {
                u32::try_from(v).map_err(|_| {
                    CodecError::new_err(format!("invalid codes: code {v} is negative or too large"))
                })
            })
            .collect::<PyResult<Vec<u32>>>()?;
        if frames == 0 {
            return planar_to_array(py, Vec::new());
        }
        let t = Tensor::from_vec(flat, (1, rows, frames), &Device::Cpu).map_err(candle_err)?;
        let mut inner = self.inner.lock().expect("never poisoned");
        match inner.push_codes(&t).map_err(err)? {
            None => planar_to_array(py, Vec::new()),
            Some(audio) => tensor_to_array(py, &audio),
        }
    }

    /// Samples produced per code frame.
    #[getter]
    fn frame_size(&self) -> usize {
        self.inner.lock().expect("never poisoned").frame_size()
    }

    /// Forget the stream.
    fn reset(&self) {
        self.inner.lock().expect("never poisoned").reset();
    }
}

/// Load a model by card name, hub repo id, folder or weight file (as the CLI's `--model`),
/// with model-specific options set (name to value, as the CLI's `--set NAME=VALUE`).
#[pyfunction]
#[pyo3(signature = (spec, device="cpu", options=None))]
fn load(
    py: Python<'_>,
    spec: &str,
    device: &str,
    options: Option<Vec<(String, String)>>,
) -> PyResult<Model> {
    let device = match device {
        "cpu" => Device::Cpu,
        "cuda" => Device::new_cuda(0).map_err(candle_err)?,
        "metal" => Device::new_metal(0).map_err(candle_err)?,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown device {other:?} (expected \"cpu\", \"cuda\" or \"metal\")"
            )))
        }
    };
    let spec = ModelSpec::parse(spec).map_err(err)?;
    let loaded = py
        .allow_threads(move || load_model_with_report(&spec, &device))
        .map_err(err)?;
    let mut model = loaded.model;
    for (name, value) in options.unwrap_or_default() {
        model.set_option(&name, &value).map_err(err)?;
    }
    Ok(Model {
        inner: Arc::from(model),
        unused_keys: loaded.unused_keys,
    })
}

/// Use `threads` worker threads for tensor math; only before the first model runs.
#[pyfunction]
fn set_threads(threads: usize) -> PyResult<()> {
    if threads == 0 || threads > 256 {
        return Err(PyValueError::new_err(format!(
            "threads must be between 1 and 256 (got {threads})"
        )));
    }
    // candle sizes its GEMMs by the variable rayon reads; the pool itself must agree.
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
    {
        Ok(()) => Ok(()),
        Err(_) if rayon::current_num_threads() == threads => Ok(()),
        Err(_) => Err(CodecError::new_err(format!(
            "the thread pool already runs {} threads: set threads before the first model \
             is loaded or run",
            rayon::current_num_threads()
        ))),
    }
}

/// Read an audio file (WAV, FLAC, MP3, OGG, ... as the CLI reads them): `([channels, n], rate)`.
#[pyfunction]
fn read_audio(
    py: Python<'_>,
    path: std::path::PathBuf,
) -> PyResult<(Bound<'_, PyArray2<f32>>, u32)> {
    let clip = py
        .allow_threads(move || codec_core::audio::read_audio(&path))
        .map_err(err)?;
    Ok((planar_to_array(py, clip.channels)?, clip.sample_rate))
}

/// Decode audio from the bytes of a file; `name` (e.g. `a.flac`) hints the format and names the
/// input in errors.
#[pyfunction]
#[pyo3(signature = (data, name="<bytes>"))]
fn read_audio_bytes<'py>(
    py: Python<'py>,
    data: Vec<u8>,
    name: &str,
) -> PyResult<(Bound<'py, PyArray2<f32>>, u32)> {
    let path = std::path::PathBuf::from(name);
    let clip = py
        .allow_threads(move || {
            let ext = path.extension().and_then(|e| e.to_str()).map(str::to_owned);
            codec_core::audio::read_audio_from_bytes(data, ext.as_deref(), &path)
        })
        .map_err(err)?;
    Ok((planar_to_array(py, clip.channels)?, clip.sample_rate))
}

/// The model cards this build knows, as (name, family, built_in) tuples.
#[pyfunction]
fn models() -> Vec<(String, String, bool)> {
    codec_core::ModelCard::builtin()
        .into_iter()
        .map(|c| {
            let built_in = c.is_built_in();
            (c.name, c.family, built_in)
        })
        .collect()
}

#[pymodule]
fn _codec(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("CodecError", m.py().get_type::<CodecError>())?;
    m.add_class::<Model>()?;
    m.add_class::<Tokens>()?;
    m.add_class::<StreamEncoder>()?;
    m.add_class::<StreamDecoder>()?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(set_threads, m)?)?;
    m.add_function(wrap_pyfunction!(models, m)?)?;
    m.add_function(wrap_pyfunction!(read_audio, m)?)?;
    m.add_function(wrap_pyfunction!(read_audio_bytes, m)?)?;
    Ok(())
}

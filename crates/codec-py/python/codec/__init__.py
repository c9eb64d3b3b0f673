"""Neural audio codecs: audio to discrete tokens and back, from Python.

>>> import numpy as np, codec
>>> m = codec.load("lyra-v2")                       # the built-in default, works offline
>>> audio = np.zeros(16_000, dtype=np.float32)      # 1 s of mono audio, any rate
>>> codes = m.encode(audio, 16_000)                 # int64 [codebooks, frames]
>>> codes.shape
(16, 50)
>>> m.decode(codes).shape                           # float32 mono [samples]
(16000,)

Batches keep every clip's codes exactly as a lone encode gives them (no padding), token files
(``.tok``) are read and written with :class:`Tokens`, causal models stream with
:meth:`Model.stream_encoder` / :meth:`Model.stream_decoder`, and :mod:`codec.ray` tokenizes
corpora on Ray Data.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Union

import numpy as np

from . import _codec
from ._codec import CodecError, StreamDecoder, StreamEncoder, Tokens

__all__ = [
    "CodecError",
    "Model",
    "StreamDecoder",
    "StreamEncoder",
    "Tokens",
    "load",
    "models",
    "read_audio",
    "read_tokens",
    "set_threads",
]

#: The model used when none is named: Lyra v2 (SoundStream), built in.
DEFAULT_MODEL = "lyra-v2"

Codes = Union[np.ndarray, List[np.ndarray]]


def set_threads(threads: int) -> None:
    """Use ``threads`` worker threads for tensor math (default: all cores).

    Only before the first model is loaded or run: the thread pool starts once per process.
    """
    _codec.set_threads(int(threads))


def load(
    model: str = DEFAULT_MODEL,
    device: str = "cpu",
    threads: Optional[int] = None,
    options: Optional[dict] = None,
) -> "Model":
    """Load a model: a card name (see :func:`models`), a hub repo id, a folder or a weight file.

    ``device`` is ``"cpu"``, ``"cuda"`` or ``"metal"`` (the latter two in builds with them).
    ``options`` sets model-specific settings, e.g. ``{"decoder_noise": False}`` for SNAC's
    reproducible decoding; ``Model.options`` lists a model's.
    """
    if threads is not None:
        set_threads(threads)
    pairs = [(str(k), str(v).lower() if isinstance(v, bool) else str(v)) for k, v in (options or {}).items()]
    return Model(_codec.load(model, device, pairs))


def models() -> List[dict]:
    """The model cards this build knows: name, family, and whether its weights are built in."""
    return [{"name": n, "family": f, "built_in": b} for n, f, b in _codec.models()]


def read_audio(source, name: str = "<bytes>"):
    """Read audio (WAV, FLAC, MP3, OGG, ...) from a path or from a file's bytes, as the CLI
    does: ``(float32 [channels, samples], sample_rate)``."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _codec.read_audio_bytes(bytes(source), name)
    return _codec.read_audio(str(source))


def read_tokens(path) -> Tokens:
    """Read a ``.tok`` file."""
    return Tokens.read(str(path))


def _planar(audio) -> np.ndarray:
    """Audio as float32 ``[channels, samples]``: mono arrays may be 1-D."""
    a = np.asarray(audio)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"audio must be a numeric array, got dtype {a.dtype}")
    if a.dtype.kind in "iu":
        # Integer PCM: scale to [-1, 1) by its type's range.
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max + 1)
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(
            f"audio must be [samples] or [channels, samples], got shape {a.shape}"
        )
    return a


def _unplanar(audio: np.ndarray) -> np.ndarray:
    return audio[0] if audio.shape[0] == 1 else audio


class Model:
    """A loaded codec. Not built directly: use :func:`load`."""

    def __init__(self, native: "_codec.Model"):
        self._native = native
        #: Inputs longer than this many seconds encode and decode in windows of it, so that
        #: memory stays bounded on any length (exact for DAC, SNAC, EnCodec, Mimi; see the
        #: README's "Long inputs"). ``None``: one pass however long.
        self.window_seconds: Optional[float] = 30.0
        info = native.info()
        self.info: dict = info
        self.name: str = info["name"]
        self.family: str = info["family"]
        self.sample_rate: int = info["sample_rate"]
        self.channels: int = info["channels"]
        self.frame_rate: float = info["frame_rate"]
        self.hop_length: int = info["hop_length"]
        self.codebook_sizes: List[int] = info["codebook_sizes"]
        self.codebook_frame_rates: List[float] = info["codebook_frame_rates"]
        self.bandwidths_kbps: List[float] = info["bandwidths_kbps"]
        self.bitrate: float = info["bitrate"]
        self.supports_streaming: bool = info["supports_streaming"]
        self.fingerprint: str = info["fingerprint"]
        #: Model-specific settings: name -> {"value", "description"}.
        self.options: dict = info["options"]
        #: Checkpoint keys no layer read (empty for a complete checkpoint).
        self.unused_keys: List[str] = info["unused_keys"]

    @property
    def multi_scale(self) -> bool:
        """Whether the codebooks run at different frame rates (SNAC): codes are then a list."""
        return len(set(self.codebook_frame_rates)) > 1

    def __repr__(self) -> str:
        return (
            f"Model({self.name!r}, family={self.family!r}, {self.sample_rate} Hz, "
            f"{len(self.codebook_sizes)} codebooks, {self.frame_rate:g} frames/s)"
        )

    # Encoding -------------------------------------------------------------------------------

    def encode_tokens_batch(
        self,
        audios: Sequence,
        sample_rate: Union[int, Sequence[int]],
        codebooks: Optional[int] = None,
        bandwidth: Optional[float] = None,
    ) -> List[Tokens]:
        """Encode clips into :class:`Tokens` (token files), one per clip."""
        audios = list(audios)
        rates = [sample_rate] * len(audios) if np.isscalar(sample_rate) else list(sample_rate)
        clips = [_planar(a) for a in audios]
        return self._native.encode_batch(
            clips, [int(r) for r in rates], codebooks, bandwidth, self.window_seconds
        )

    def encode_tokens(self, audio, sample_rate: int, codebooks=None, bandwidth=None) -> Tokens:
        """Encode one clip into :class:`Tokens` (write it with ``.write(path)``)."""
        return self.encode_tokens_batch([audio], sample_rate, codebooks, bandwidth)[0]

    def encode_batch(
        self,
        audios: Sequence,
        sample_rate: Union[int, Sequence[int]],
        codebooks: Optional[int] = None,
        bandwidth: Optional[float] = None,
    ) -> List[Codes]:
        """Encode clips of any lengths; item ``i`` equals ``encode(audios[i], ...)`` exactly.

        Clips of equal length share a model call; nothing is padded.
        """
        return [
            self._codes(t)
            for t in self.encode_tokens_batch(audios, sample_rate, codebooks, bandwidth)
        ]

    def encode(self, audio, sample_rate: int, codebooks=None, bandwidth=None) -> Codes:
        """Encode audio (``[samples]`` or ``[channels, samples]``, float or int PCM, any rate:
        mixed and resampled as the CLI does) into int64 codes ``[codebooks, frames]``
        (multi-scale models: a list of one array per codebook).

        ``codebooks`` keeps the first N codebooks of a residual codec; ``bandwidth`` (kbit/s)
        picks N from the model's bandwidths.
        """
        return self.encode_batch([audio], sample_rate, codebooks, bandwidth)[0]

    def _codes(self, tokens: Tokens) -> Codes:
        streams = tokens.streams()
        if self.multi_scale:
            return streams
        return np.stack(streams) if streams else np.zeros((0, 0), np.int64)

    # Decoding -------------------------------------------------------------------------------

    def tokens_from_codes(self, codes: Codes) -> Tokens:
        """Codes made elsewhere (``[codebooks, frames]``, or a list per stream) as a token file."""
        if isinstance(codes, np.ndarray):
            if codes.ndim == 1:
                codes = codes[None, :]
            if codes.ndim == 3 and codes.shape[0] == 1:
                codes = codes[0]
            if codes.ndim != 2:
                raise ValueError(
                    f"codes must be [codebooks, frames], got shape {codes.shape}"
                )
            streams = list(codes)
        else:
            streams = list(codes)
        streams = [np.ascontiguousarray(np.asarray(s), dtype=np.int64) for s in streams]
        return self._native.tokens_from_codes(streams)

    def decode_tokens_batch(
        self, tokens: Sequence[Tokens], original_rate: bool = False, force: bool = False
    ):
        """Decode token files; returns ``(audio, sample_rate)`` per file, at its original
        length (and, with ``original_rate``, at the rate of the audio that was encoded)."""
        out = self._native.decode_batch(
            list(tokens), original_rate, force, self.window_seconds
        )
        return [(_unplanar(a), r) for a, r in out]

    def decode_tokens(self, tokens: Tokens, original_rate: bool = False, force: bool = False):
        """Decode one token file: ``(audio, sample_rate)``."""
        return self.decode_tokens_batch([tokens], original_rate, force)[0]

    def decode_batch(self, codes_list: Sequence[Codes]) -> List[np.ndarray]:
        """Decode several code arrays (each as :meth:`decode` takes)."""
        tokens = [self.tokens_from_codes(c) for c in codes_list]
        return [a for a, _ in self.decode_tokens_batch(tokens)]

    def decode(self, codes: Codes) -> np.ndarray:
        """Decode codes (as :meth:`encode` returns them) into float32 audio at the model's
        rate: ``[samples]`` for mono models, ``[channels, samples]`` otherwise."""
        return self.decode_batch([codes])[0]

    # Streaming ------------------------------------------------------------------------------

    def stream_encoder(self, codebooks=None, bandwidth=None) -> "StreamEncoder":
        """A streaming encoder (causal models): ``push(samples)`` returns the codes of each
        frame it completes, ``finish()`` completes the last frame with silence."""
        return _MonoStreamEncoder(self._native.stream_encoder(codebooks, bandwidth))

    def stream_decoder(self) -> "StreamDecoder":
        """A streaming decoder (causal models): ``push(codes)`` returns their audio."""
        return _MonoStreamDecoder(self._native.stream_decoder())


class _MonoStreamEncoder:
    """Accepts 1-D arrays for mono models; otherwise as :class:`StreamEncoder`."""

    def __init__(self, native: StreamEncoder):
        self._native = native
        self.frame_size: int = native.frame_size
        self.startup_frames: int = native.startup_frames

    def push(self, audio) -> np.ndarray:
        return self._native.push(_planar(audio))

    def finish(self) -> np.ndarray:
        return self._native.finish()

    def reset(self) -> None:
        self._native.reset()


class _MonoStreamDecoder:
    def __init__(self, native: StreamDecoder):
        self._native = native
        self.frame_size: int = native.frame_size

    def push(self, codes) -> np.ndarray:
        c = np.ascontiguousarray(np.asarray(codes), dtype=np.int64)
        return _unplanar_stream(self._native.push(c))

    def reset(self) -> None:
        self._native.reset()


def _unplanar_stream(audio: np.ndarray) -> np.ndarray:
    if audio.size == 0:
        return np.zeros(0, np.float32)
    return _unplanar(audio)

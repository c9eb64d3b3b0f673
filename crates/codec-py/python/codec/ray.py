"""Tokenize corpora on Ray Data (https://docs.ray.io/en/latest/data/), one model per worker.

Where a corpus outgrows one machine it runs on an existing engine, not on a scheduler of ours:
:class:`Tokenizer` is a callable class for ``Dataset.map_batches``; each worker loads the model
once and turns rows of ``path`` (or ``bytes`` + ``name``) and ``id`` into token files, written
by the worker under ``output_dir`` (a folder every node sees: NFS, a mounted bucket) exactly as
``codec encode IN_DIR OUT_DIR`` writes them, and/or returned as bytes.

>>> import ray, codec.ray
>>> ray.init()                                     # or ray.init(address="auto") on a cluster
>>> ds = codec.ray.dataset_from_folder("corpus/")  # or ray.data.read_parquet / read_json
>>> done = codec.ray.tokenize(ds, "tokens/", model="lyra-v2")
>>> done.write_json("tokens/_index")               # id, path, frames, duration, error per item

On a cluster, start Ray on the nodes (``ray start --head`` on one, ``ray start
--address=HEAD:6379`` on the others, each with this wheel installed) and run the same script
with ``RAY_ADDRESS=HEAD:6379``; nothing else changes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional

import numpy as np

import codec

#: Extensions taken as audio when a folder is listed (the CLI's list).
AUDIO_EXTENSIONS = (
    ".wav", ".wave", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".aac",
    ".aif", ".aiff", ".caf", ".mkv", ".webm",
)


def list_folder(folder) -> list:
    """Rows ``{"id", "path"}`` for the audio under ``folder``, with the ids the CLI's corpus
    mode gives (the relative path without extension), sorted by id."""
    folder = Path(folder)
    rows = []
    for root, _, files in os.walk(folder):
        for f in files:
            p = Path(root) / f
            if p.suffix.lower() in AUDIO_EXTENSIONS:
                rel = p.relative_to(folder).with_suffix("")
                rows.append({"id": rel.as_posix(), "path": str(p)})
    return sorted(rows, key=lambda r: r["id"])


def dataset_from_folder(folder, **kwargs):
    """A Ray dataset of :func:`list_folder`'s rows."""
    import ray.data

    return ray.data.from_items(list_folder(folder), **kwargs)


class Tokenizer:
    """A callable class for ``map_batches``: rows of ``id`` and ``path`` (or ``bytes`` and
    ``name``) in; ``id``, ``path``, ``frames``, ``duration``, ``model``, ``fingerprint``,
    ``error`` (empty when it worked) and, with ``return_tokens``, ``tokens`` (the ``.tok``
    bytes) out. A file that fails is reported in ``error``; the others go on."""

    def __init__(
        self,
        model: str = codec.DEFAULT_MODEL,
        output_dir: Optional[str] = None,
        threads: Optional[int] = 1,
        codebooks: Optional[int] = None,
        bandwidth: Optional[float] = None,
        return_tokens: bool = False,
        skip_existing: bool = True,
    ):
        if threads is not None:
            try:
                codec.set_threads(threads)
            except codec.CodecError:
                pass  # The worker's pool already runs; keep it.
        self.model = codec.load(model)
        self.output_dir = Path(output_dir) if output_dir else None
        self.options = dict(codebooks=codebooks, bandwidth=bandwidth)
        self.return_tokens = return_tokens
        self.skip_existing = skip_existing

    def _one(self, item_id: str, path: str, data) -> dict:
        out = {"id": item_id, "path": path, "frames": 0, "duration": 0.0,
               "model": self.model.name, "fingerprint": self.model.fingerprint, "error": "",
               "tokens": b""}
        try:
            target = self.output_dir / f"{item_id}.tok" if self.output_dir else None
            tokens = None
            if target is not None and self.skip_existing and target.exists():
                try:
                    old = codec.read_tokens(target)
                    if old.fingerprint == self.model.fingerprint:
                        tokens = old
                except codec.CodecError:
                    pass
            if tokens is None:
                if data is not None:
                    audio, rate = codec.read_audio(data, name=path or item_id)
                else:
                    audio, rate = codec.read_audio(path)
                tokens = self.model.encode_tokens(audio, rate, **self.options)
                if target is not None:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    tokens.write(target)
            out.update(frames=tokens.num_frames, duration=tokens.duration)
            if self.return_tokens:
                out["tokens"] = tokens.to_bytes()
        except codec.CodecError as e:
            out["error"] = str(e)
        return out

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        n = len(batch["id"])
        paths = batch.get("path")
        blobs = batch.get("bytes")
        names = batch.get("name")
        rows = []
        for i in range(n):
            path = str(paths[i]) if paths is not None else (str(names[i]) if names is not None else "")
            data = blobs[i] if blobs is not None else None
            rows.append(self._one(str(batch["id"][i]), path, data))
        cols = {k: [r[k] for r in rows] for k in rows[0]} if rows else {}
        if not self.return_tokens:
            cols.pop("tokens", None)
        return {
            k: np.array(v, dtype=object if k in ("tokens",) else None) for k, v in cols.items()
        }


def tokenize(ds, output_dir: Optional[str] = None, model: str = codec.DEFAULT_MODEL,
             concurrency: int = 2, batch_size: int = 16, **kwargs):
    """``ds.map_batches(Tokenizer, ...)`` with ``concurrency`` model-holding workers (one CPU
    each). Returns the lazy dataset of per-item results; consume it (``write_json``,
    ``take_all``, ``materialize``) to run it."""
    return ds.map_batches(
        Tokenizer,
        fn_constructor_kwargs=dict(model=model, output_dir=output_dir, **kwargs),
        concurrency=concurrency,
        batch_size=batch_size,
        batch_format="numpy",
        num_cpus=1,
    )

"""Build the tinycodec training set: 24 kHz mono int16, one .npy per source under training/data/.

Sources (never ../shared/audio/eval/):
  (a) /work/shared/audio/train/{ljspeech-subset, aishell1-S0913}  (speech)
  (b) Debian packages (apt-get download + dpkg-deb -x + ffmpeg decode):
      asterisk-core-sounds-{en,es,fr,it,ru}-g722 (speech), fillets-ng-data-nl (speech),
      wesnoth-1.16-music, warzone2100-music, fretsonfire-songs-{muldjord,sectoid} (music, capped)

Writes training/data/<source>.npy (int16, all files of the source concatenated, silence-trimmed)
and training/data/<source>.json (per-file offsets), and training/data_manifest.json (committed):
package names + versions + .deb sha256, file counts, hours per source, failures.

Usage: python3 training/prepare_data.py            (idempotent: re-uses downloaded .debs)
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
SHARED_TRAIN = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "audio", "train"))
SR = 24000

# name, kind, origin, patterns/packages, licence, per-file excerpt cap (s), source cap (h)
SOURCES = [
    dict(name="ljspeech-subset", kind="speech", shared="ljspeech-subset", glob="*.flac",
         licence="public domain (LJSpeech)"),
    dict(name="aishell1-S0913", kind="speech", shared="aishell1-S0913", glob="*.flac",
         licence="Apache-2.0 (AISHELL-1)"),
    *[dict(name=f"asterisk-{lang}", kind="speech", packages=[f"asterisk-core-sounds-{lang}-g722"],
           glob="**/*.g722", fmt="g722",
           licence="CC-BY-3.0" if lang == "ru" else "CC-BY-SA-3.0")
      for lang in ["en", "es", "fr", "it", "ru"]],
    dict(name="fillets-nl", kind="speech", packages=["fillets-ng-data-nl"], glob="**/*.ogg",
         licence="GPL-2"),
    dict(name="wesnoth-music", kind="music", packages=["wesnoth-1.16-music"], glob="**/*.ogg",
         licence="GPL-2+", excerpt_s=60.0, cap_h=0.6),
    dict(name="warzone2100-music", kind="music", packages=["warzone2100-music"],
         glob="**/*.opus", licence="GPL-2+ / CC-BY-SA-3.0", excerpt_s=60.0, cap_h=0.5),
    dict(name="fretsonfire-songs", kind="music",
         packages=["fretsonfire-songs-muldjord", "fretsonfire-songs-sectoid"],
         glob="**/song.ogg", stems=True, licence="CC-BY-SA-3.0 / MIT",
         excerpt_s=180.0, cap_h=0.4),
]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_package(pkg: str) -> dict:
    """apt-get download + dpkg-deb -x into data/pkgs/<pkg>. Returns info (or raises)."""
    debdir = os.path.join(DATA, "debs")
    os.makedirs(debdir, exist_ok=True)
    debs = glob.glob(os.path.join(debdir, f"{pkg}_*.deb"))
    if not debs:
        sh(["apt-get", "download", pkg], cwd=debdir)
        debs = glob.glob(os.path.join(debdir, f"{pkg}_*.deb"))
    deb = sorted(debs)[-1]
    version = sh(["dpkg-deb", "-f", deb, "Version"]).stdout.decode().strip()
    dest = os.path.join(DATA, "pkgs", pkg)
    if not os.path.isdir(dest):
        sh(["dpkg-deb", "-x", deb, dest])
    return dict(package=pkg, version=version, deb=os.path.basename(deb), sha256=sha256(deb),
                root=dest)


def decode(path: str, fmt: str | None = None) -> np.ndarray:
    """Any audio file -> float32 mono 24 kHz: ffmpeg (soxr resampler, float output, all
    channels kept), then the mean of the channels in numpy (as the Rust front-end mixes down).

    Not `ffmpeg -ac 1`: its stereo->mono matrix is (L+R)/sqrt(2) for float output (louder,
    can exceed 1.0), and its s16 output adds random dither (not reproducible).
    """
    pre = ["-f", fmt] if fmt else []
    probe = sh(["ffprobe", "-v", "error", *pre, "-select_streams", "a:0", "-show_entries",
                "stream=channels", "-of", "csv=p=0", path]).stdout.decode().split()
    channels = int(probe[0]) if probe else 1
    cmd = ["ffmpeg", "-nostdin", "-v", "error", *pre, "-i", path, "-map", "0:a:0",
           "-af", f"aresample={SR}:resampler=soxr", "-ar", str(SR),
           "-f", "f32le", "-acodec", "pcm_f32le", "-"]
    x = np.frombuffer(sh(cmd).stdout, dtype=np.float32)
    return x.reshape(-1, channels).mean(1, dtype=np.float32)


def decode_song(song_path: str) -> np.ndarray:
    """Fretsonfire: song.ogg plus its stems (guitar.ogg, rhythm.ogg, ...) mixed."""
    d = os.path.dirname(song_path)
    parts = [decode(p) for p in sorted(glob.glob(os.path.join(d, "*.ogg")))]
    n = max(len(p) for p in parts)
    mix = np.zeros(n, np.float32)
    for p in parts:
        mix[: len(p)] += p
    peak = np.abs(mix).max()
    return mix / peak * 0.9 if peak > 0.99 else mix


def trim_silence(x: np.ndarray, rel_db=-50.0, margin_s=0.1) -> np.ndarray:
    win = SR // 50
    n = len(x) // win
    if n < 2:
        return x
    rms = np.sqrt((x[: n * win].reshape(n, win) ** 2).mean(1) + 1e-12)
    thr = max(rms.max() * 10 ** (rel_db / 20), 3e-4)
    active = np.nonzero(rms > thr)[0]
    if len(active) == 0:
        return x[:0]
    m = int(margin_s * SR)
    return x[max(0, active[0] * win - m): min(len(x), (active[-1] + 1) * win + m)]


def build_source(src: dict, rng: random.Random, workers: int) -> dict:
    info = dict(name=src["name"], kind=src["kind"], licence=src["licence"])
    roots = []
    if "shared" in src:
        root = os.path.join(SHARED_TRAIN, src["shared"])
        info["origin"] = f"shared/audio/train/{src['shared']}"
        roots.append(root)
    else:
        info["packages"] = []
        for pkg in src["packages"]:
            try:
                p = fetch_package(pkg)
                roots.append(p.pop("root"))
                info["packages"].append(p)
            except Exception as e:  # keep going, record it
                msg = getattr(e, "stderr", b"") or b""
                info.setdefault("failed_packages", []).append(
                    dict(package=pkg, error=f"{e} {msg.decode(errors='replace')[-300:]}"))
                print(f"  ! {pkg} failed: {e}", file=sys.stderr)
    files = sorted(f for r in roots for f in glob.glob(os.path.join(r, src["glob"]), recursive=True))
    assert not any("/eval/" in f for f in files)
    info["files_available"] = len(files)
    if "cap_h" in src:
        rng.shuffle(files)

    def load(f):
        try:
            x = decode_song(f) if src.get("stems") else decode(f, src.get("fmt"))
        except subprocess.CalledProcessError as e:
            return f, None, e.stderr.decode(errors="replace")[-200:]
        return f, trim_silence(x), None

    chunks, index, errors = [], [], []
    total = 0
    cap = src.get("cap_h", 1e9) * 3600 * SR
    with ThreadPoolExecutor(workers) as ex:
        for f, x, err in ex.map(load, files):
            if err is not None:
                errors.append(dict(file=os.path.relpath(f, DATA), error=err))
                continue
            if total >= cap or x is None or len(x) < int(0.3 * SR):
                continue
            if "excerpt_s" in src and len(x) > src["excerpt_s"] * SR:
                n = int(src["excerpt_s"] * SR)
                start = rng.randrange(0, len(x) - n)
                x = x[start: start + n]
            x = x[: int(min(len(x), cap - total))]
            peak = float(np.abs(x).max()) if len(x) else 0.0
            if peak > 1.0:  # a few lossy sources overshoot: scale the file instead of clipping
                x = x * (0.999 / peak)
            q = np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
            rel = os.path.relpath(f, SHARED_TRAIN if "shared" in src else os.path.join(DATA, "pkgs"))
            index.append(dict(file=rel, offset=total, length=len(q)))
            chunks.append(q)
            total += len(q)
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    # atomic replace: a running train.py keeps its memory-mapped copy of the old file
    path = os.path.join(DATA, f"{src['name']}.npy")
    with open(path + ".tmp", "wb") as fh:
        np.save(fh, audio)
    os.replace(path + ".tmp", path)
    with open(path[:-4] + ".json.tmp", "w") as fh:
        json.dump(dict(name=src["name"], kind=src["kind"], sample_rate=SR, files=index), fh)
    os.replace(path[:-4] + ".json.tmp", path[:-4] + ".json")
    info.update(files_used=len(index), samples=int(total), hours=round(total / SR / 3600, 4),
                sha256_npy=hashlib.sha256(audio.tobytes()).hexdigest())
    if "cap_h" in src:
        info["cap"] = dict(hours=src["cap_h"], excerpt_s_per_file=src.get("excerpt_s"))
    if errors:
        info["decode_errors"] = errors[:20]
        info["decode_error_count"] = len(errors)
    return info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", help="source names to (re)build")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    os.makedirs(DATA, exist_ok=True)
    manifest_path = os.path.join(HERE, "data_manifest.json")
    old = {}
    if args.only and os.path.exists(manifest_path):
        old = {s["name"]: s for s in json.load(open(manifest_path))["sources"]}
    results = []
    for src in SOURCES:
        if args.only and src["name"] not in args.only:
            if src["name"] in old:
                results.append(old[src["name"]])
            continue
        print(f"== {src['name']}", flush=True)
        info = build_source(src, random.Random(f"{args.seed}-{src['name']}"), args.workers)
        print(f"   {info.get('files_used')} files, {info.get('hours')} h", flush=True)
        results.append(info)
    hours = {k: round(sum(s["hours"] for s in results if s["kind"] == k), 3)
             for k in ("speech", "music")}
    manifest = dict(
        description="tinycodec training data: 24 kHz mono int16, silence-trimmed (-50 dB rel, "
                    "100 ms margin; files shorter than 0.3 s after trimming skipped); music capped so "
                    "speech dominates. Eval audio "
                    "(shared/audio/eval) never used. Few voices, many languages: there is no "
                    "large many-speaker English corpus in this set.",
        sample_rate=SR, seed=args.seed, hours=hours,
        total_hours=round(hours["speech"] + hours["music"], 3),
        sources=results,
        failed_packages=[fp for s in results for fp in s.get("failed_packages", [])],
    )
    with open(manifest_path, "w") as fh:
        json.dump(manifest, fh, indent=1)
    print(json.dumps(hours))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Perceptual quality of Lyra v2 (SoundStream) on held-out real speech: the official runtime
(LiteRT), our Rust port (the `codec` CLI) and two classic low-bitrate codecs (Opus, Codec2).

Every speech file of ../shared/audio/eval (the folder beside the repository root; groups
`speech-clean-en` = LibriSpeech excerpts and a 1961 speech, `speech-varied-mics` = radio
amateurs incl. Japanese, and the male/female speech clips of `speech/singing-44k`; the singing,
music, instrument and environmental files are left out) is decoded with ffmpeg to 16 kHz mono
16-bit PCM, cut to its first --max-seconds (default 10), and used as the reference (int16/32768).
Each system codes and decodes it; the output is scored against the reference with

  * PESQ wideband (ITU-T P.862.2, the `pesq` package, mode 'wb', 16 kHz), and
  * STOI (the `pystoi` package, 16 kHz, classic not extended).

Systems (--systems, comma-separated; default official-3.2,official-6,official-9.2,opus-6,codec2-1300):

  official-3.2 / -6 / -9.2  Google's published TFLite files (../shared/fixtures/lyra/) run frame by
                            frame with LiteRT (ai-edge-litert), as Lyra does: the clip is padded with
                            zeros to whole 320-sample frames; per frame encoder -> quantizer.encode
                            (16 / 30 / 46 quantizers) -> quantizer.decode -> generator; the output
                            is cut back to the clip length. Fresh interpreters per clip (the models
                            keep their streaming state inside the interpreter).
  codec-3.2 / -6 / -9.2     our Rust CLI (--codec-bin, default target/release/codec):
                            `codec encode REF.wav OUT.tok --model lyra-v2 --bandwidth B` then
                            `codec decode OUT.tok OUT.wav --float`. Skipped, with a message, when
                            the binary does not exist.
  opus-N                    opusenc --bitrate N --vbr (16 kHz WAV in) / opusdec --rate 16000 --float
                            (opus-tools), e.g. opus-6.
  codec2-MODE               Debian codec2 tools: 16 -> 8 kHz (scipy resample_poly), c2enc MODE /
                            c2dec MODE on raw 8 kHz int16, 8 -> 16 kHz; e.g. codec2-1300, codec2-3200.

Delay: before scoring, each output is shifted back by the system's fixed delay. The delay of
every (file, system) is estimated by cross-correlation with the reference (lags within +-0.25 s):
of the waveforms, or, where those hardly correlate (normalised peak < 0.5: Codec2, a parametric
coder with its own phase), of the 5 ms amplitude envelopes. With --align system (default) the
median over the files is applied to all of them (a codec's delay is fixed), with --align file
each file's own estimate, with --align none nothing. Measured (16 speech files, first 10 s):
Lyra has no delay (official runtime: waveform peak 0.75-0.95 at lag 0 on 15 files, lag 1 on one;
the 20 ms framing delays nothing in the output), opusdec already removes Opus's pre-skip (lag 1
sample), and the Codec2 chain is about 20 ms late (envelope estimates 234-457 samples, median
349 for 1300 and 332 for 3200; a scan of STOI over the shift peaks at 320-330). PESQ aligns by
itself; STOI does not and is steep: 10 ms (160 samples) of misalignment costs Lyra and Opus
about 0.11 STOI, and unaligned Codec2 1300 scores 0.66 instead of 0.79.

Output: a Markdown table (system, kbit/s, mean PESQ-WB, mean STOI, files) on stdout and a JSON
file (--json, default target/lyra_quality.json) with the settings and per-file numbers.

Setup (a venv; the system needs ffmpeg, and opus-tools / codec2 for those systems):

    apt-get install ffmpeg opus-tools codec2
    python3 -m venv venv && venv/bin/pip install numpy scipy soundfile pesq pystoi ai-edge-litert
    venv/bin/python tools/eval/lyra_quality.py                       # from the repository root
    venv/bin/python tools/eval/lyra_quality.py --systems official-6,codec-6 --max-seconds 0   # whole files
    venv/bin/python tools/eval/lyra_quality.py --groups speech-clean-en --files jfk   # a subset

--max-seconds 0 uses the whole files. --threads sets LiteRT's num_threads (default 1).
--extra-metrics adds PESQ narrowband (P.862 on the signals resampled to 8 kHz) and extended STOI.
The JSON's summary also has the means per group (`by_group`). About 1.5 minutes for the default
systems on the 16 files (2 cores; PESQ dominates).
"""

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared"))
EVAL_DIR = os.path.join(SHARED, "audio", "eval")
LYRA_DIR = os.path.join(SHARED, "fixtures", "lyra")
SR = 16000
FRAME = 320
LYRA_NQ = {"3.2": 16, "6": 30, "9.2": 46}  # 4 bits per quantizer, 50 frames/s
SPEECH_GROUPS = ["speech-clean-en", "speech-varied-mics", "speech/singing-44k"]
# In the mixed male/female/singing group keep the speech, drop the singing: singing-female.wav
# (sung) and vignesh.wav (a Carnatic vocal phrase, sms-tools' singing-voice example).
NOT_SPEECH = {"mtg-sms-tools-singing-female.wav", "mtg-sms-tools-vignesh.wav"}
DEFAULT_SYSTEMS = "official-3.2,official-6,official-9.2,opus-6,codec2-1300"
MAX_LAG = SR // 4


# ---------------------------------------------------------------------------------------------
# Files and audio I/O


def speech_files(groups, name_filter=None):
    """(file name, group, path) of the eval files in the given groups, manifest order."""
    with open(os.path.join(EVAL_DIR, "manifest.tsv"), newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    out = []
    for r in rows:
        group = r.get("group") or r.get("category")
        if group not in groups or r["file"] in NOT_SPEECH:
            continue
        if name_filter and not any(s in r["file"] for s in name_filter):
            continue
        out.append((r["file"], group, os.path.join(EVAL_DIR, r["file"])))
    return out


def load_reference(path, max_seconds):
    """ffmpeg -> 16 kHz mono int16 -> float32 in [-1, 1) (int16 / 32768), at most max_seconds."""
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-ac", "1", "-ar", str(SR)]
    if max_seconds and max_seconds > 0:
        cmd += ["-t", str(max_seconds)]
    cmd += ["-f", "s16le", "-acodec", "pcm_s16le", "-"]
    raw = subprocess.run(cmd, stdout=subprocess.PIPE, check=True).stdout
    x = np.frombuffer(raw, "<i2")
    if max_seconds and max_seconds > 0:
        x = x[: int(round(max_seconds * SR))]
    return x.astype(np.float32) / 32768.0


def write_wav16(path, x, sr=SR):
    import soundfile as sf
    sf.write(path, to_int16(x), sr, subtype="PCM_16")


def to_int16(x):
    return np.clip(np.round(np.asarray(x, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def read_audio(path, expect_sr=SR):
    import soundfile as sf
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    if sr != expect_sr:
        raise RuntimeError(f"{path}: {sr} Hz, expected {expect_sr}")
    return y.mean(axis=1) if y.shape[1] > 1 else y[:, 0]


def fit_length(y, n):
    y = np.asarray(y, np.float32)
    return y[:n] if len(y) >= n else np.concatenate([y, np.zeros(n - len(y), np.float32)])


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()[-500:]}")
    return p


# ---------------------------------------------------------------------------------------------
# Systems


class OfficialLyra:
    """The published TFLite files under LiteRT, frame by frame. The encoder runs once per clip
    (its output does not depend on the bitrate); quantizer + generator once per bitrate."""

    def __init__(self, threads):
        from ai_edge_litert.interpreter import Interpreter
        self.Interpreter = Interpreter
        self.threads = threads
        q = self._interp("quantizer")
        self.qenc = q.get_signature_runner("encode")
        self.qdec = q.get_signature_runner("decode")  # stateless: shared by all clips
        self._cache = (None, None)

    def _interp(self, name):
        return self.Interpreter(model_path=os.path.join(LYRA_DIR, name + ".tflite"),
                                num_threads=self.threads)

    def features(self, x):
        if self._cache[0] is x:
            return self._cache[1]
        enc = self._interp("soundstream_encoder").get_signature_runner("serving_default")
        n = -(-len(x) // FRAME)
        frames = fit_length(x, n * FRAME).reshape(n, 1, FRAME)
        feats = [enc(input_audio=f)["output_0"] for f in frames]  # each [1, 1, 64]
        self._cache = (x, feats)
        return feats

    def code_decode(self, x, nq):
        feats = self.features(x)
        gen = self._interp("lyragan").get_signature_runner("serving_default")
        nqa = np.array(nq, np.int32)
        out, codes = [], []
        for f in feats:
            c = self.qenc(input_frames=f, num_quantizers=nqa)["output_0"]  # [46, 1, 1]
            codes.append(c)
            out.append(gen(input_audio=self.qdec(encoding_indices=c)["output_0"])["output_0"][0])
        return fit_length(np.concatenate(out), len(x)), len(codes) * nq * 4


def run_official(state, x, kbps, tmp):
    y, bits = state.code_decode(x, LYRA_NQ[kbps])
    return y, bits


def run_codec(codec_bin, x, kbps, tmp):
    ref = os.path.join(tmp, "ref.wav")
    tok = os.path.join(tmp, "out.tok")
    out = os.path.join(tmp, "out.wav")
    write_wav16(ref, x)
    run([codec_bin, "encode", ref, tok, "--model", "lyra-v2", "--bandwidth", kbps])
    run([codec_bin, "decode", tok, out, "--float"])
    return fit_length(read_audio(out), len(x)), os.path.getsize(tok) * 8


def run_opus(x, kbps, tmp):
    ref = os.path.join(tmp, "ref.wav")
    enc = os.path.join(tmp, "out.opus")
    out = os.path.join(tmp, "out.wav")
    write_wav16(ref, x)
    run(["opusenc", "--quiet", "--bitrate", kbps, "--vbr", ref, enc])
    run(["opusdec", "--quiet", "--rate", str(SR), "--float", enc, out])
    return fit_length(read_audio(out), len(x)), os.path.getsize(enc) * 8  # incl. Ogg pages


def run_codec2(x, mode, tmp):
    from scipy.signal import resample_poly
    raw8 = os.path.join(tmp, "in8k.raw")
    bit = os.path.join(tmp, "out.c2")
    out8 = os.path.join(tmp, "out8k.raw")
    to_int16(resample_poly(x.astype(np.float64), 1, 2)).tofile(raw8)
    run(["c2enc", mode, raw8, bit])
    run(["c2dec", mode, bit, out8])
    y8 = np.fromfile(out8, "<i2").astype(np.float64) / 32768.0
    y = resample_poly(y8, 2, 1).astype(np.float32)
    return fit_length(y, len(x)), os.path.getsize(bit) * 8


def parse_system(name):
    """-> (kind, parameter, nominal kbit/s)."""
    kind, _, par = name.partition("-")
    if kind in ("official", "codec") and par in LYRA_NQ:
        return kind, par, float(par)
    if kind == "opus" and par:
        return kind, par, float(par)
    if kind == "codec2" and par:
        try:
            return kind, par, float(par) / 1000.0
        except ValueError:  # 700C, 450, ...
            return kind, par, float("".join(ch for ch in par if ch.isdigit())) / 1000.0
    raise ValueError(f"unknown system {name!r}")


# ---------------------------------------------------------------------------------------------
# Scoring


def _xcorr_peak(ref, y, max_lag):
    n = len(ref) + len(y)
    nfft = 1 << (n - 1).bit_length()
    xc = np.fft.irfft(np.fft.rfft(y, nfft) * np.conj(np.fft.rfft(ref, nfft)), nfft)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    vals = np.concatenate([xc[: max_lag + 1], xc[nfft - max_lag:]])
    i = int(np.argmax(vals))
    norm = np.sqrt(np.sum(ref ** 2) * np.sum(y ** 2)) or 1.0
    return int(lags[i]), float(vals[i] / norm)


def _envelope(x, width=80):
    e = np.convolve(np.abs(x), np.ones(width) / width, "same")
    return e - e.mean()


def estimate_delay(ref, y, max_lag=MAX_LAG):
    """Delay of y against ref in samples (positive = output late): the lag of the waveform
    cross-correlation peak; where the waveforms hardly correlate (normalised peak < 0.5, as for
    parametric coders such as Codec2, whose output has its own phase), the lag of the peak of
    the amplitude envelopes' (|x| averaged over 5 ms) cross-correlation instead.
    Returns (lag, normalised waveform peak, method)."""
    ref = ref.astype(np.float64)
    y = y.astype(np.float64)
    lag, peak = _xcorr_peak(ref, y, max_lag)
    if peak >= 0.5:
        return lag, peak, "waveform"
    return _xcorr_peak(_envelope(ref), _envelope(y), max_lag)[0], peak, "envelope"


def shift(y, lag):
    """Undo a delay of `lag` samples (positive: output late), keeping the length."""
    if lag > 0:
        return np.concatenate([y[lag:], np.zeros(lag, np.float32)])
    if lag < 0:
        return np.concatenate([np.zeros(-lag, np.float32), y[:lag]])
    return y


def score(ref, y, extra=False):
    """PESQ-WB and STOI (plus PESQ narrowband on the 8 kHz-resampled signals, and extended STOI,
    with extra=True)."""
    from pesq import pesq
    from pystoi import stoi
    ref = ref.astype(np.float64)
    y = y.astype(np.float64)

    def pesq_or_none(sr, a, b, mode):
        try:
            return float(pesq(sr, a, b, mode))
        except Exception as e:  # noqa: BLE001 - e.g. no utterances detected
            print(f"  pesq {mode} failed: {e}", file=sys.stderr)
            return None

    r = {"pesq_wb": pesq_or_none(SR, ref, y, "wb"), "stoi": float(stoi(ref, y, SR, extended=False))}
    if extra:
        from scipy.signal import resample_poly
        r["pesq_nb"] = pesq_or_none(8000, resample_poly(ref, 1, 2), resample_poly(y, 1, 2), "nb")
        r["estoi"] = float(stoi(ref, y, SR, extended=True))
    return r


def mean(v):
    v = [a for a in v if a is not None]
    return float(np.mean(v)) if v else None


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--systems", default=DEFAULT_SYSTEMS)
    ap.add_argument("--max-seconds", type=float, default=10.0,
                    help="use at most the first N seconds of each file (0 = whole file)")
    ap.add_argument("--groups", default=",".join(SPEECH_GROUPS),
                    help="manifest groups to use (default: the speech groups)")
    ap.add_argument("--files", default="", help="only files whose name contains one of these "
                    "comma-separated strings")
    ap.add_argument("--align", choices=["system", "file", "none"], default="system")
    ap.add_argument("--codec-bin", default=os.path.join(ROOT, "target", "release", "codec"))
    ap.add_argument("--threads", type=int, default=1, help="LiteRT num_threads")
    ap.add_argument("--extra-metrics", action="store_true",
                    help="also PESQ narrowband (P.862, signals resampled to 8 kHz) and extended STOI")
    ap.add_argument("--json", default=os.path.join(ROOT, "target", "lyra_quality.json"))
    args = ap.parse_args()

    systems = []
    for name in (s.strip() for s in args.systems.split(",") if s.strip()):
        kind, par, kbps = parse_system(name)
        if kind == "codec" and not os.access(args.codec_bin, os.X_OK):
            print(f"lyra_quality: skipping {name}: no codec binary at {args.codec_bin} "
                  "(build it with `cargo build --release`, or pass --codec-bin)", file=sys.stderr)
            continue
        tool = {"opus": "opusenc", "codec2": "c2enc"}.get(kind)
        if tool and not shutil.which(tool):
            print(f"lyra_quality: skipping {name}: {tool} not found "
                  f"(apt-get install {'opus-tools' if kind == 'opus' else 'codec2'})", file=sys.stderr)
            continue
        systems.append((name, kind, par, kbps))
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    files = speech_files(groups, [s for s in args.files.split(",") if s] or None)
    if not files or not systems:
        sys.exit("lyra_quality: nothing to do (no files or no systems)")

    official = OfficialLyra(args.threads) if any(k == "official" for _, k, _, _ in systems) else None
    per_file = []
    outputs = {}  # (file, system) -> output before alignment
    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="lyra_quality_") as tmp:
        for fname, group, path in files:
            x = load_reference(path, args.max_seconds)
            entry = {"file": fname, "group": group, "seconds": len(x) / SR, "systems": {}}
            for name, kind, par, kbps in systems:
                t = time.perf_counter()
                if kind == "official":
                    y, bits = run_official(official, x, par, tmp)
                elif kind == "codec":
                    y, bits = run_codec(args.codec_bin, x, par, tmp)
                elif kind == "opus":
                    y, bits = run_opus(x, par, tmp)
                else:
                    y, bits = run_codec2(x, par, tmp)
                lag, peak, method = estimate_delay(x, y)
                outputs[(fname, name)] = (x, y)
                entry["systems"][name] = {"delay_estimate": lag, "delay_method": method,
                                          "xcorr_peak": peak,
                                          "coded_kbps": bits / 1000.0 / (len(x) / SR),
                                          "code_s": time.perf_counter() - t}
            per_file.append(entry)
            print(f"  {fname} ({len(x) / SR:.1f} s) coded", file=sys.stderr, flush=True)

    summary = []
    for name, kind, par, kbps in systems:
        lags = [e["systems"][name]["delay_estimate"] for e in per_file]
        sys_lag = int(np.median(lags))
        metrics = {}
        for e in per_file:
            r = e["systems"][name]
            lag = {"system": sys_lag, "file": r["delay_estimate"], "none": 0}[args.align]
            x, y = outputs[(e["file"], name)]
            r["applied_delay"] = lag
            for k, v in score(x, shift(y, lag), args.extra_metrics).items():
                r[k] = v
                metrics.setdefault(k, []).append(v)
        summary.append({"system": name, "kbps": kbps,
                        **{k: mean(v) for k, v in metrics.items()},
                        "files": len(per_file), "delay_samples": sys_lag,
                        "delay_estimates": lags,
                        "by_group": {g: {k: mean([e["systems"][name].get(k) for e in per_file
                                                  if e["group"] == g]) for k in metrics}
                                     for g in dict.fromkeys(e["group"] for e in per_file)},
                        "coded_kbps": mean([e["systems"][name]["coded_kbps"] for e in per_file])})

    print()
    print(f"Speech ({len(per_file)} files: {', '.join(groups)}; first "
          f"{args.max_seconds:g} s of each; delay alignment: {args.align})")
    print()
    cols = [("pesq_wb", "PESQ-WB", 2), ("stoi", "STOI", 3)]
    if args.extra_metrics:
        cols += [("pesq_nb", "PESQ-NB", 2), ("estoi", "ESTOI", 3)]
    print("| system | kbit/s | " + " | ".join(c[1] for c in cols) + " | files | delay (samples) |")
    print("|---|---:|" + "---:|" * len(cols) + "---:|---:|")
    for s in summary:
        vals = ["—" if s[k] is None else f"{s[k]:.{d}f}" for k, _, d in cols]
        print(f"| {s['system']} | {s['kbps']:g} | " + " | ".join(vals) +
              f" | {s['files']} | {s['delay_samples']} |")

    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"settings": {"max_seconds": args.max_seconds, "groups": groups,
                                "align": args.align, "threads": args.threads,
                                "excluded_as_not_speech": sorted(NOT_SPEECH),
                                "sample_rate": SR, "wall_s": time.time() - t_start},
                   "summary": summary, "files": per_file}, f, indent=1)
    print(f"\nlyra_quality: per-file numbers in {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()

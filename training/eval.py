"""Evaluate tinycodec (and Opus for comparison) on shared/audio/eval (manifest.tsv groups).

  python3 training/eval.py                                   # Rust CLI: target/release/codec
  python3 training/eval.py --torch training/runs/main/ckpt.pt    # PyTorch checkpoint
  python3 training/eval.py --torch models/tinycodec-24khz.safetensors  # shipped f16 weights

Every clip is decoded with ffmpeg to 24 kHz mono float (the reference). Systems:
  tinycodec with 1..4 stages (580.5 bit/s per stage), via the Rust binary
  (`codec encode IN OUT.tok --model M --codebooks N`, `codec decode OUT.tok OUT.wav --float`)
  or the PyTorch model; Opus (opusenc/opusdec, VBR, nominal 6/8/12 kbit/s).
Metrics per file (averaged per group): bitrate (kbit/s; Opus: actual file size incl. Ogg
overhead), log-mel L1 distance, multi-resolution STFT distance (spectral convergence + log
magnitude L1), SI-SDR (dB); for speech groups also wideband PESQ (16 kHz) and STOI.
Output: Markdown table on stdout (also written next to the JSON), JSON to --json.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
import torch
from scipy.signal import resample_poly

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from losses import MultiResolutionMelLoss, MultiResolutionSTFTLoss  # noqa: E402
from model import BITS_PER_STAGE_FRAME, FRAME_RATE, SAMPLE_RATE, TinyCodec  # noqa: E402
from prepare_data import decode as ffmpeg_decode  # noqa: E402

EVAL_DIR = os.path.normpath(os.path.join(ROOT, "..", "shared", "audio", "eval"))
SPEECH_GROUPS = ("speech-clean-en", "speech-varied-mics", "speech/singing-44k")

_mel = MultiResolutionMelLoss(SAMPLE_RATE)
_stft = MultiResolutionSTFTLoss()


# ---------------------------------------------------------------- metrics
def si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    ref = ref - ref.mean()
    est = est - est.mean()
    a = np.dot(est, ref) / (np.dot(ref, ref) + 1e-12)
    target = a * ref
    noise = est - target
    return float(10 * np.log10((np.dot(target, target) + 1e-12) / (np.dot(noise, noise) + 1e-12)))


def best_lag(ref: np.ndarray, est: np.ndarray, max_lag: int = 1200) -> int:
    n = min(len(ref), len(est), 10 * SAMPLE_RATE)
    a, b = ref[:n], est[:n]
    size = 1 << int(math.ceil(math.log2(2 * n)))
    xc = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    vals = np.concatenate([xc[: max_lag + 1], xc[-max_lag:]])
    return int(lags[np.argmax(vals)])


def align(ref: np.ndarray, est: np.ndarray, max_lag: int) -> tuple[np.ndarray, int]:
    lag = best_lag(ref, est, max_lag) if max_lag > 0 else 0
    if lag > 0:
        est = est[lag:]
    elif lag < 0:
        est = np.concatenate([np.zeros(-lag, np.float32), est])
    est = est[: len(ref)]
    if len(est) < len(ref):
        est = np.concatenate([est, np.zeros(len(ref) - len(est), np.float32)])
    return est.astype(np.float32), lag


def metrics(ref: np.ndarray, est: np.ndarray, speech: bool, max_lag: int = 0) -> dict:
    """max_lag: search +-max_lag samples for the best alignment (0 for tinycodec, whose output
    is aligned by construction; 48 = 2 ms for Opus, whose pre-skip should already align it)."""
    est, lag = align(ref, est, max_lag)
    r = torch.from_numpy(ref)[None]
    e = torch.from_numpy(est)[None]
    with torch.no_grad():
        mel = float(_mel(e, r))
        sc, lm = _stft(e, r)
    out = dict(mel=mel, stft=float(sc) + float(lm), si_sdr=si_sdr(ref, est), lag=lag)
    if speech:
        from pesq import pesq
        from pystoi import stoi
        r16 = resample_poly(ref, 2, 3).astype(np.float64)
        e16 = resample_poly(est, 2, 3).astype(np.float64)
        try:
            out["pesq_wb"] = float(pesq(16000, r16, e16, "wb"))
        except Exception as ex:  # no utterance detected, etc.
            out["pesq_wb"] = float("nan")
            out["pesq_error"] = str(ex)
        out["stoi"] = float(stoi(r16, e16, 16000, extended=False))
    return out


# ---------------------------------------------------------------- systems
class TorchCodec:
    def __init__(self, path: str):
        self.model = TinyCodec().eval()
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file
            sd = {k: v.to(torch.float32) for k, v in load_file(path).items()}
            self.step = "?"
        else:
            ck = torch.load(path, map_location="cpu", weights_only=False)
            sd = ck["model"]
            self.step = ck.get("step")
        self.model.load_state_dict(sd)
        self.name = f"torch:{os.path.relpath(path, ROOT)}"

    def run(self, x: np.ndarray, stages_list, tmp) -> dict:
        xt = torch.from_numpy(x)[None]
        out = {}
        with torch.no_grad():
            codes = self.model.encode(xt, max(stages_list))
            for s in stages_list:
                out[s] = self.model.decode(codes[:, :s], len(x))[0].numpy()
        return out


class RustCodec:
    def __init__(self, binary: str, model: str):
        if not os.path.exists(binary):
            sys.exit(f"{binary} not found: build it (cargo build --release) or use --torch CKPT")
        self.binary, self.model = binary, model
        self.name = f"rust:{os.path.relpath(binary, ROOT)} --model {model}"
        self.step = "?"

    def run(self, x: np.ndarray, stages_list, tmp) -> dict:
        wav = os.path.join(tmp, "in.wav")
        sf.write(wav, x, SAMPLE_RATE, subtype="FLOAT")
        out = {}
        for s in stages_list:
            tok, dec = os.path.join(tmp, f"s{s}.tok"), os.path.join(tmp, f"s{s}.wav")
            subprocess.run([self.binary, "encode", wav, tok, "--model", self.model,
                            "--codebooks", str(s)], check=True, capture_output=True)
            subprocess.run([self.binary, "decode", tok, dec, "--model", self.model, "--float"],
                           check=True, capture_output=True)
            y, sr = sf.read(dec, dtype="float32")
            assert sr == SAMPLE_RATE, sr
            out[s] = y if y.ndim == 1 else y.mean(1)
        return out


def run_opus(x: np.ndarray, kbps: float, tmp) -> tuple[np.ndarray, float]:
    wav, enc, dec = (os.path.join(tmp, n) for n in ("o.wav", "o.opus", "o_dec.wav"))
    sf.write(wav, x, SAMPLE_RATE, subtype="FLOAT")
    subprocess.run(["opusenc", "--quiet", "--bitrate", str(kbps), wav, enc], check=True,
                   capture_output=True)
    subprocess.run(["opusdec", "--quiet", "--rate", str(SAMPLE_RATE), "--float", enc, dec],
                   check=True, capture_output=True)
    y, sr = sf.read(dec, dtype="float32")
    assert sr == SAMPLE_RATE
    actual_kbps = os.path.getsize(enc) * 8 / (len(x) / SAMPLE_RATE) / 1000
    return (y if y.ndim == 1 else y.mean(1)), actual_kbps


# ---------------------------------------------------------------- main
def fmt(v, nd=2):
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--torch", metavar="CKPT", help="evaluate a PyTorch checkpoint (.pt) or the "
                    "exported .safetensors with PyTorch instead of the Rust binary")
    ap.add_argument("--codec-bin", default=os.path.join(ROOT, "target", "release", "codec"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models",
                                                    "tinycodec-24khz.safetensors"))
    ap.add_argument("--stages", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--opus", type=float, nargs="*", default=[6, 8, 12],
                    help="Opus bitrates in kbit/s (empty: skip Opus)")
    ap.add_argument("--groups", nargs="*", help="only these manifest groups")
    ap.add_argument("--max-seconds", type=float, default=None, help="cut clips (quick runs)")
    ap.add_argument("--json", default=os.path.join(HERE, "eval_results.json"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    system = TorchCodec(args.torch) if args.torch else RustCodec(args.codec_bin, args.model)
    rows = list(csv.DictReader(open(os.path.join(EVAL_DIR, "manifest.tsv")), delimiter="\t"))
    # Some licence texts run onto a line of their own: those rows name no file.
    rows = [r for r in rows if r.get("file")]
    if args.groups:
        rows = [r for r in rows if r["category"] in args.groups]
    per_file = []
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for r in rows:
            group = r["category"]
            speech = group in SPEECH_GROUPS
            x = ffmpeg_decode(os.path.join(EVAL_DIR, r["file"]))
            if args.max_seconds:
                x = x[: int(args.max_seconds * SAMPLE_RATE)]
            x = np.ascontiguousarray(x, dtype=np.float32)
            dur = len(x) / SAMPLE_RATE
            outs = system.run(x, args.stages, tmp)
            for s in args.stages:
                m = metrics(x, outs[s], speech)
                per_file.append(dict(file=r["file"], group=group, seconds=dur,
                                     system=f"tinycodec {s} stage{'s' if s > 1 else ''}",
                                     kbps=s * BITS_PER_STAGE_FRAME * FRAME_RATE / 1000, **m))
            for kb in args.opus:
                y, actual = run_opus(x, kb, tmp)
                m = metrics(x, y, speech, max_lag=48)
                per_file.append(dict(file=r["file"], group=group, seconds=dur,
                                     system=f"opus {kb:g} kbps", kbps=actual, **m))
            print(f"  [{time.time() - t0:6.0f}s] {r['file']} ({group}, {dur:.1f} s)",
                  file=sys.stderr, flush=True)

    keys = ["kbps", "mel", "stft", "si_sdr", "pesq_wb", "stoi"]
    groups = sorted({p["group"] for p in per_file}, key=lambda g: (g not in SPEECH_GROUPS, g))
    systems = list(dict.fromkeys(p["system"] for p in per_file))
    summary = []
    for g in groups + ["ALL"]:
        for s in systems:
            sel = [p for p in per_file if p["system"] == s and (g == "ALL" or p["group"] == g)]
            if not sel:
                continue
            row = dict(group=g, system=s, files=len(sel))
            for k in keys:
                vals = [p[k] for p in sel if k in p and not math.isnan(p[k])]
                row[k] = float(np.mean(vals)) if vals else None
            summary.append(row)

    lines = [f"tinycodec eval ({system.name}, step {system.step}) on shared/audio/eval, "
             f"{len(rows)} files; 24 kHz mono reference. mel = multi-res log-mel L1, "
             "stft = MR-STFT (SC + log-mag L1), lower is better; SI-SDR dB, PESQ-WB (16 kHz), "
             "STOI: higher is better. Opus kbit/s = actual file size (incl. Ogg overhead).", "",
             "| group | system | files | kbit/s | mel ↓ | stft ↓ | SI-SDR ↑ | PESQ-WB ↑ | STOI ↑ |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in summary:
        lines.append(f"| {row['group']} | {row['system']} | {row['files']} | "
                     f"{fmt(row['kbps'])} | {fmt(row['mel'], 3)} | {fmt(row['stft'], 3)} | "
                     f"{fmt(row['si_sdr'], 1)} | {fmt(row['pesq_wb'])} | {fmt(row['stoi'], 3)} |")
    table = "\n".join(lines)
    print(table)
    result = dict(system=system.name, step=system.step, eval_dir="shared/audio/eval",
                  date=time.strftime("%Y-%m-%d %H:%M:%S"), summary=summary, per_file=per_file)
    with open(args.json, "w") as fh:
        json.dump(result, fh, indent=1)
    with open(os.path.splitext(args.json)[0] + ".md", "w") as fh:
        fh.write(table + "\n")
    print(f"\nwrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()

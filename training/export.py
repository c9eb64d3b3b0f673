"""Export a tinycodec checkpoint to models/tinycodec-24khz.safetensors (float16) and write the
Rust parity fixtures to training/fixtures/.

  python3 training/export.py                          # runs/main/ckpt.pt (latest)
  python3 training/export.py --ckpt training/runs/main/best.pt

Fixtures are computed with the float16-rounded weights cast back to float32 (exactly what the
Rust side gets when it loads the float16 file as float32), including head.istft.window, which
the ISTFT uses as stored. The analysis STFT uses a float32 periodic Hann window computed in
code (not a stored weight). Input audio = int16 WAV samples / 32768.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import sys

import numpy as np
import soundfile as sf
import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from model import N_STAGES, SAMPLE_RATE, TinyCodec, fsq_quantize  # noqa: E402
from prepare_data import SHARED_TRAIN, decode as ffmpeg_decode  # noqa: E402

# (name, shared train file, start seconds, duration seconds). Training clips, never eval.
CLIPS = [
    ("ljspeech_LJ001-0001_2p5s", "ljspeech-subset/LJ001-0001.flac", 0.5, 2.5),
    ("aishell_S0913W0300_1p234s", "aishell1-S0913/BAC009S0913W0300.flac", 0.8, 1.234),
]
BOUNDARIES = torch.tensor([-1.5, -0.5, 0.5, 1.5])
AMBIGUOUS_EPS = 1e-4


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_rounded_model(ckpt_path):
    ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    sd = {k: v.detach().to(torch.float32).contiguous() for k, v in ck["model"].items()}
    half = {k: v.to(torch.float16).contiguous() for k, v in sd.items()}
    model = TinyCodec()
    model.load_state_dict({k: v.to(torch.float32) for k, v in half.items()})
    model.eval()
    return ck, half, model


def ambiguous_pairs(zb: torch.Tensor, zb_eps: float = 1e-5):
    """zb [F, 5] -> ([(stage, frame)] with |2*x_k - boundary| < 1e-4, min margin per stage,
    [(stage, frame)] whose margin in tanh(z) units, |2*x_k - b| / (2 * 4**k), is < zb_eps)."""
    qsum = torch.zeros_like(zb)
    pairs, margins, loose = [], [], []
    for k in range(N_STAGES):
        scale = float(4 ** k)
        x2 = 2.0 * (zb - qsum) * scale  # [F, 5]
        dist = (x2[..., None] - BOUNDARIES).abs().amin(-1)  # [F, 5]
        margins.append(float(dist.min()))
        for f in torch.nonzero(dist.amin(-1) < AMBIGUOUS_EPS).flatten().tolist():
            pairs.append([k, f])
        for f in torch.nonzero(dist.amin(-1) / (2.0 * scale) < zb_eps).flatten().tolist():
            loose.append([k, f])
        i = torch.clamp(torch.round(x2), -2, 2)
        qsum = qsum + i / 2.0 / scale
    return pairs, margins, loose


def write_fixtures(model, out_dir, weights_sha):
    os.makedirs(out_dir, exist_ok=True)
    cases = dict(
        description="tinycodec parity fixtures: computed in float32 with the float16-rounded "
                    "weights of the safetensors file below. Input = int16 WAV / 32768. codes "
                    "[4, F] int64; s{1,4}.decoded = decode of the first 1 / all 4 stages, cut "
                    "to T; latent = z before tanh [F, 5]. `ambiguous` lists [stage, frame] "
                    "where some |2*x_k - b| < 1e-4 for a rounding boundary b in "
                    "{-1.5,-0.5,0.5,1.5}: codes there (and at later stages of that frame) may "
                    "legitimately differ between implementations. `ambiguous_zb_1e-5` is a "
                    "looser list: the margin measured in tanh(z) units, |2*x_k - b| / (2*4^k), "
                    "is < 1e-5 (stage 3 is 64x more sensitive than stage 0). torch.round "
                    "rounds half to even. min_boundary_margin_per_stage is in 2*x_k units.",
        weights_sha256=weights_sha, sample_rate=SAMPLE_RATE, stages=N_STAGES, clips=[])
    for name, rel, start, dur in CLIPS:
        audio = ffmpeg_decode(os.path.join(SHARED_TRAIN, rel))
        s0 = int(round(start * SAMPLE_RATE))
        n = int(round(dur * SAMPLE_RATE))
        pcm = np.clip(np.round(audio[s0: s0 + n] * 32768.0), -32768, 32767).astype(np.int16)
        wav_path = os.path.join(out_dir, f"{name}.wav")
        sf.write(wav_path, pcm, SAMPLE_RATE, subtype="PCM_16")
        pcm_back, sr = sf.read(wav_path, dtype="int16")
        assert sr == SAMPLE_RATE and np.array_equal(pcm_back, pcm)
        x = torch.from_numpy(pcm.astype(np.float32) / 32768.0)[None]
        T = x.shape[-1]
        with torch.no_grad():
            z = model.latent_z(x)[0]  # [F, 5]
            codes = model.encode(x, N_STAGES)[0]  # [4, F]
            codes1 = model.encode(x, 1)[0]
            assert torch.equal(codes1, codes[:1])
            s1 = model.decode(codes[None, :1], T)[0]
            s4 = model.decode(codes[None], T)[0]
            # the training forward with all stages decodes the same audio
            y4, _ = model(x, N_STAGES)
            assert torch.allclose(y4[0], s4, atol=1e-5), (y4[0] - s4).abs().max()
        F = codes.shape[-1]
        np.save(os.path.join(out_dir, f"{name}.codes.npy"), codes.numpy().astype(np.int64))
        np.save(os.path.join(out_dir, f"{name}.s1.decoded.npy"), s1.numpy().astype(np.float32))
        np.save(os.path.join(out_dir, f"{name}.s4.decoded.npy"), s4.numpy().astype(np.float32))
        np.save(os.path.join(out_dir, f"{name}.latent.npy"), z.numpy().astype(np.float32))
        amb, margins, loose = ambiguous_pairs(torch.tanh(z))
        cases["clips"].append(dict(
            name=name, source=f"shared/audio/train/{rel}", start_s=start, samples=T, frames=F,
            ambiguous=amb, **{"ambiguous_zb_1e-5": loose}, min_boundary_margin_per_stage=margins,
            s1_rms=float(s1.square().mean().sqrt()), s4_rms=float(s4.square().mean().sqrt()),
            input_rms=float(x.square().mean().sqrt())))
        print(f"  {name}: T={T} F={F} ambiguous={len(amb)} margins={['%.2e' % m for m in margins]}")
    with open(os.path.join(out_dir, "cases.json"), "w") as fh:
        json.dump(cases, fh, indent=1)
    total = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(f"  fixtures: {total / 1024:.0f} KiB in {out_dir}")
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.path.join(HERE, "runs", "main", "ckpt.pt"))
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "tinycodec-24khz.safetensors"))
    ap.add_argument("--fixtures", default=os.path.join(HERE, "fixtures"))
    ap.add_argument("--no-fixtures", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)

    ck, half, model = load_rounded_model(args.ckpt)
    manifest = os.path.join(HERE, "data_manifest.json")
    meta = dict(
        format="tinycodec", architecture="training/ARCHITECTURE.md", dtype="float16",
        step=str(ck["step"]), date=datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        data_manifest_sha256=sha256_file(manifest) if os.path.exists(manifest) else "missing",
        best_val=str(ck.get("best_val")), checkpoint=os.path.relpath(args.ckpt, ROOT),
        sample_rate=str(SAMPLE_RATE), hop_length="480", n_fft="1920", stages=str(N_STAGES),
    )
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    tmp = args.out + ".tmp"
    save_file(half, tmp, metadata=meta)
    os.chmod(tmp, 0o644)
    os.replace(tmp, args.out)
    weights_sha = sha256_file(args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB, {len(half)} tensors, "
          f"step {ck['step']}, sha256 {weights_sha[:16]}...)")
    if not args.no_fixtures:
        write_fixtures(model, args.fixtures, weights_sha)


if __name__ == "__main__":
    main()

"""Train tinycodec (spectral losses only) on the data built by prepare_data.py.

  nohup nice -n 10 python3 training/train.py --name main > training/runs/main.out 2>&1 &
  nohup nice -n 10 python3 training/train.py --name main --resume > training/runs/main.out 2>&1 &

Checkpoints: training/runs/NAME/ckpt.pt (model + optimizer + step + rng), written atomically
every --ckpt-minutes and on SIGTERM/SIGINT; training/runs/NAME/best.pt keeps the checkpoint
with the lowest validation loss. Logs: runs/NAME/log.tsv (train), runs/NAME/val.tsv.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from losses import CodecLoss  # noqa: E402
from model import HOP, TinyCodec, param_count  # noqa: E402

DATA = os.path.join(HERE, "data")


class SegmentSampler:
    """Random fixed-length segments from the per-source int16 .npy files (memory-mapped).

    Files are drawn with probability proportional to their length (uniform over audio), except
    that --music-weight rescales the music share. Every 50th file is held out for validation.
    """

    def __init__(self, seg_len: int, split: str = "train", music_weight: float = 1.0,
                 sources: list[str] | None = None, seed: int = 0):
        self.seg_len = seg_len
        self.rng = np.random.default_rng(seed)
        self.arrays, self.items, weights = {}, [], []
        for name in sorted(f[:-5] for f in os.listdir(DATA) if f.endswith(".json")):
            if sources and name not in sources:
                continue
            idx = json.load(open(os.path.join(DATA, name + ".json")))
            arr = np.load(os.path.join(DATA, name + ".npy"), mmap_mode="r")
            self.arrays[name] = arr
            w = music_weight if idx["kind"] == "music" else 1.0
            for i, f in enumerate(idx["files"]):
                if (i % 50 == 7) != (split == "val"):
                    continue
                self.items.append((name, f["offset"], f["length"]))
                weights.append(f["length"] * w)
        p = np.asarray(weights, dtype=np.float64)
        self.p = p / p.sum()
        self.hours = sum(it[2] for it in self.items) / 24000 / 3600

    def segment(self) -> np.ndarray:
        for _ in range(10):
            name, off, length = self.items[self.rng.choice(len(self.items), p=self.p)]
            n = self.seg_len
            if length > n:
                s = off + int(self.rng.integers(0, length - n))
                x = np.asarray(self.arrays[name][s: s + n], dtype=np.float32) / 32768.0
            else:
                x = np.zeros(n, np.float32)
                x[:length] = np.asarray(self.arrays[name][off: off + length]) / 32768.0
            rms = float(np.sqrt(np.mean(x ** 2)))
            if rms > 3e-4:
                break
        # random loudness: target RMS in [-32, -14] dBFS, peak limited to 0.99
        gain = 10 ** (self.rng.uniform(-32, -14) / 20) / max(rms, 1e-4)
        peak = float(np.abs(x).max()) * gain
        if peak > 0.99:
            gain *= 0.99 / peak
        if self.rng.random() < 0.5:
            gain = -gain  # polarity
        return x * gain

    def batch(self, B: int) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.segment() for _ in range(B)]))


def lr_at(step: int, args) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t = min(1.0, (step - args.warmup) / max(1, args.total_steps - args.warmup))
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * t))


def save_atomic(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="main")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seg-seconds", type=float, default=1.2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr", type=float, default=2e-5)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--total-steps", type=int, default=200_000)
    ap.add_argument("--max-steps", type=int, default=None, help="stop after this step")
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--music-weight", type=float, default=1.0)
    ap.add_argument("--sources", nargs="*", default=None)
    ap.add_argument("--threads", type=int, default=1,
                    help="1 is fastest on this shared 2-core box (2 threads: 5x slower)")
    ap.add_argument("--no-bf16", action="store_true", help="disable bf16 autocast (2x slower)")
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--val-every", type=int, default=500)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    run_dir = os.path.join(HERE, "runs", args.name)
    os.makedirs(run_dir, exist_ok=True)
    ckpt_path = os.path.join(run_dir, "ckpt.pt")
    lock = os.path.join(run_dir, "train.pid")
    if os.path.exists(lock):  # refuse to run two trainers on one checkpoint
        try:
            other = int(open(lock).read().strip())
            os.kill(other, 0)
            if other != os.getpid():
                sys.exit(f"run {args.name} is already being trained by pid {other} ({lock})")
        except (ValueError, ProcessLookupError, PermissionError):
            pass
    with open(lock, "w") as fh:
        fh.write(str(os.getpid()))

    model = TinyCodec()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99),
                            weight_decay=args.weight_decay)
    step, best_val = 0, float("inf")
    seed = args.seed
    if args.resume and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step, best_val = ck["step"], ck.get("best_val", float("inf"))
        seed = args.seed + step  # fresh data stream after resume
        print(f"resumed from {ckpt_path} at step {step}", flush=True)
    elif os.path.exists(ckpt_path):
        sys.exit(f"{ckpt_path} exists: pass --resume or choose another --name")
    torch.manual_seed(seed)
    random.seed(seed)

    seg_len = int(round(args.seg_seconds * 24000 / HOP)) * HOP
    train = SegmentSampler(seg_len, "train", args.music_weight, args.sources, seed)
    val = SegmentSampler(seg_len, "val", args.music_weight, args.sources, 12345)
    val_batch = val.batch(32)
    loss_fn = CodecLoss()
    print(f"params {param_count(model)}  train {train.hours:.2f} h  val {val.hours:.2f} h  "
          f"seg {seg_len}  batch {args.batch}", flush=True)
    with open(os.path.join(run_dir, "args.json"), "w") as fh:
        json.dump(vars(args), fh, indent=1)

    def checkpoint(path=ckpt_path):
        save_atomic(dict(model=model.state_dict(), optimizer=opt.state_dict(), step=step,
                         best_val=best_val, args=vars(args), time=time.time()), path)

    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    log = open(os.path.join(run_dir, "log.tsv"), "a")
    vlog = open(os.path.join(run_dir, "val.tsv"), "a")
    if step == 0:
        log.write("step\ttime\tlr\tloss\tmel\tsc\tlogmag\tgrad_norm\tsteps_per_s\n")
        vlog.write("step\ttime\tval_s1\tval_s2\tval_s4\tmel_s1\tmel_s4\n")
    last_ckpt = time.time()
    t_log, n_log = time.time(), 0
    acc = {"loss": 0.0, "mel": 0.0, "sc": 0.0, "logmag": 0.0, "gn": 0.0}
    model.train()
    while not stop["flag"]:
        if args.max_steps is not None and step >= args.max_steps:
            break
        lr = lr_at(step, args)
        for g in opt.param_groups:
            g["lr"] = lr
        x = train.batch(args.batch)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not args.no_bf16):
            y, _ = model(x)
        loss, parts = loss_fn(y.float(), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        if torch.isfinite(gn):
            opt.step()
        step += 1
        n_log += 1
        acc["loss"] += loss.item()
        acc["gn"] += gn.item()
        for k in ("mel", "sc", "logmag"):
            acc[k] += parts[k]
        if step % args.log_every == 0:
            sps = n_log / (time.time() - t_log)
            a = {k: v / n_log for k, v in acc.items()}
            log.write(f"{step}\t{time.time():.0f}\t{lr:.2e}\t{a['loss']:.4f}\t{a['mel']:.4f}\t"
                      f"{a['sc']:.4f}\t{a['logmag']:.4f}\t{a['gn']:.3f}\t{sps:.3f}\n")
            log.flush()
            print(f"step {step} loss {a['loss']:.4f} mel {a['mel']:.4f} sc {a['sc']:.4f} "
                  f"logmag {a['logmag']:.4f} gn {a['gn']:.2f} lr {lr:.2e} {sps:.3f} it/s",
                  flush=True)
            t_log, n_log = time.time(), 0
            acc = {k: 0.0 for k in acc}
        if step % args.val_every == 0:
            model.eval()
            res = {}
            with torch.no_grad():
                for s in (1, 2, 4):
                    tot, mel = 0.0, 0.0
                    for chunk in val_batch.split(16):
                        yv, _ = model(chunk, s)
                        l, p = loss_fn(yv, chunk)
                        tot += l.item() * len(chunk) / len(val_batch)
                        mel += p["mel"] * len(chunk) / len(val_batch)
                    res[s] = (tot, mel)
            model.train()
            vl = (res[1][0] + res[4][0]) / 2
            vlog.write(f"{step}\t{time.time():.0f}\t{res[1][0]:.4f}\t{res[2][0]:.4f}\t"
                       f"{res[4][0]:.4f}\t{res[1][1]:.4f}\t{res[4][1]:.4f}\n")
            vlog.flush()
            print(f"VAL step {step} s1 {res[1][0]:.4f} s2 {res[2][0]:.4f} s4 {res[4][0]:.4f}",
                  flush=True)
            if vl < best_val:
                best_val = vl
                checkpoint(os.path.join(run_dir, "best.pt"))
        if time.time() - last_ckpt > args.ckpt_minutes * 60:
            checkpoint()
            last_ckpt = time.time()
    checkpoint()
    print(f"saved {ckpt_path} at step {step}", flush=True)
    try:
        if int(open(lock).read().strip()) == os.getpid():
            os.remove(lock)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    main()

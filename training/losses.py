"""Spectral losses for tinycodec (also used as distances by eval.py).

- multi-resolution log-mel L1 (n_fft 512/1024/2048, 64/96/128 mels, hop n_fft/4)
- multi-resolution STFT loss: spectral convergence + L1 log magnitude
  (n_fft 512/1024/2048, hop n_fft/4, Hann)
Adversarial losses are not used (yet).
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn as nn


def _hz_to_mel(f):  # Slaney (librosa default)
    f = torch.as_tensor(f, dtype=torch.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return torch.where(f >= min_log_hz, min_log_mel + torch.log(f / min_log_hz) / logstep, mels)


def _mel_to_hz(m):
    m = torch.as_tensor(m, dtype=torch.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return torch.where(m >= min_log_mel, min_log_hz * torch.exp(logstep * (m - min_log_mel)), freqs)


@functools.lru_cache(maxsize=None)
def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> torch.Tensor:
    """Slaney-style, slaney-normalised mel filterbank [n_mels, n_fft//2+1] (like librosa)."""
    fmax = fmax or sr / 2
    fftfreqs = torch.linspace(0, sr / 2, n_fft // 2 + 1, dtype=torch.float64)
    mel_pts = torch.linspace(_hz_to_mel(fmin).item(), _hz_to_mel(fmax).item(), n_mels + 2,
                             dtype=torch.float64)
    hz = _mel_to_hz(mel_pts)
    fdiff = hz[1:] - hz[:-1]
    ramps = hz[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    w = torch.clamp(torch.minimum(lower, upper), min=0)
    enorm = 2.0 / (hz[2: n_mels + 2] - hz[:n_mels])
    return (w * enorm[:, None]).to(torch.float32)


@functools.lru_cache(maxsize=None)
def _window(n: int, device: str) -> torch.Tensor:
    return torch.hann_window(n, device=device)


def stft_mag(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """[B, T] -> |STFT| [B, n_fft//2+1, frames] (centered, reflect padding)."""
    X = torch.stft(x, n_fft, hop, window=_window(n_fft, str(x.device)), center=True,
                   pad_mode="reflect", return_complex=True)
    return torch.sqrt(X.real.square() + X.imag.square() + 1e-9)


class MultiResolutionMelLoss(nn.Module):
    def __init__(self, sr=24000, n_ffts=(512, 1024, 2048), n_mels=(64, 96, 128)):
        super().__init__()
        self.sr = sr
        self.cfg = list(zip(n_ffts, n_mels))

    def forward(self, y_hat, y, mags_hat=None, mags=None):
        loss = 0.0
        for i, (n_fft, nm) in enumerate(self.cfg):
            fb = mel_filterbank(self.sr, n_fft, nm).to(y.device)
            a = mags_hat[n_fft] if mags_hat else stft_mag(y_hat, n_fft, n_fft // 4)
            b = mags[n_fft] if mags else stft_mag(y, n_fft, n_fft // 4)
            ma = torch.log(torch.clamp(fb @ a, min=1e-5))
            mb = torch.log(torch.clamp(fb @ b, min=1e-5))
            loss = loss + (ma - mb).abs().mean()
        return loss / len(self.cfg)


class MultiResolutionSTFTLoss(nn.Module):
    """Returns (spectral convergence, log-magnitude L1), each averaged over resolutions."""

    def __init__(self, n_ffts=(512, 1024, 2048)):
        super().__init__()
        self.n_ffts = n_ffts

    def forward(self, y_hat, y, mags_hat=None, mags=None):
        sc, mag = 0.0, 0.0
        for n_fft in self.n_ffts:
            a = mags_hat[n_fft] if mags_hat else stft_mag(y_hat, n_fft, n_fft // 4)
            b = mags[n_fft] if mags else stft_mag(y, n_fft, n_fft // 4)
            sc = sc + torch.linalg.norm(a - b, dim=(1, 2)).div(
                torch.linalg.norm(b, dim=(1, 2)) + 1e-7).mean()
            mag = mag + (torch.log(torch.clamp(a, min=1e-5)) -
                         torch.log(torch.clamp(b, min=1e-5))).abs().mean()
        return sc / len(self.n_ffts), mag / len(self.n_ffts)


class CodecLoss(nn.Module):
    """total = w_mel * mel + w_sc * sc + w_mag * logmag (STFTs shared between both losses)."""

    def __init__(self, sr=24000, w_mel=1.0, w_sc=1.0, w_mag=1.0):
        super().__init__()
        self.mel = MultiResolutionMelLoss(sr)
        self.stft = MultiResolutionSTFTLoss()
        self.w = (w_mel, w_sc, w_mag)

    def forward(self, y_hat, y):
        n_ffts = sorted({n for n, _ in self.mel.cfg} | set(self.stft.n_ffts))
        mh = {n: stft_mag(y_hat, n, n // 4) for n in n_ffts}
        with torch.no_grad():
            m = {n: stft_mag(y, n, n // 4) for n in n_ffts}
        mel = self.mel(y_hat, y, mh, m)
        sc, mag = self.stft(y_hat, y, mh, m)
        total = self.w[0] * mel + self.w[1] * sc + self.w[2] * mag
        return total, dict(mel=mel.item(), sc=sc.item(), logmag=mag.item())

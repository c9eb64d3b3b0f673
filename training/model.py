"""tinycodec: the exact model of training/ARCHITECTURE.md.

Module attribute names are the safetensors keys (encoder.embed.weight, ..., encoder_proj.weight,
decoder...., head.out.weight, head.istft.window). Do not rename anything without changing
ARCHITECTURE.md and the Rust port (crates/codec-core/src/models/tinycodec.rs).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

SAMPLE_RATE = 24000
HOP = 480
N_FFT = 1920
N_BINS = N_FFT // 2 + 1  # 961
PAD = (N_FFT - HOP) // 2  # 720
FSQ_DIM = 5
FSQ_LEVELS = 5
N_STAGES = 4
CODEBOOK_SIZE = FSQ_LEVELS ** FSQ_DIM  # 3125
BITS_PER_STAGE_FRAME = math.log2(CODEBOOK_SIZE)  # 11.61
FRAME_RATE = SAMPLE_RATE / HOP  # 50


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, intermediate_dim: int, layer_scale_init: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(layer_scale_init * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, C, F]
        residual = x
        x = self.dwconv(x).transpose(1, 2)  # [B, F, C]
        x = self.norm(x)
        x = self.pwconv1(x)
        x = F.gelu(x)  # exact (erf) GELU
        x = self.pwconv2(x)
        x = self.gamma * x
        return residual + x.transpose(1, 2)


class VocosBackbone(nn.Module):
    """embed -> norm -> ConvNeXt blocks -> final_layer_norm. In [B, C_in, F], out [B, F, dim]."""

    def __init__(self, input_channels: int, dim: int, intermediate_dim: int, num_layers: int):
        super().__init__()
        self.embed = nn.Conv1d(input_channels, dim, kernel_size=7, padding=3)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        layer_scale = 1.0 / num_layers  # 1/4 for the encoder (as specified), 1/8 for the decoder
        self.convnext = nn.ModuleList(
            [ConvNeXtBlock(dim, intermediate_dim, layer_scale) for _ in range(num_layers)]
        )
        self.final_layer_norm = nn.LayerNorm(dim, eps=1e-6)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        for block in self.convnext:
            x = block(x)
        return self.final_layer_norm(x.transpose(1, 2))


def hann_window(n: int = N_FFT) -> torch.Tensor:
    return torch.hann_window(n, periodic=True, dtype=torch.float32)


class ISTFT(nn.Module):
    """Inverse STFT with "same" padding (Vocos): overlap-add / summed squared window, trim PAD."""

    def __init__(self, n_fft: int = N_FFT, hop: int = HOP):
        super().__init__()
        self.n_fft = n_fft
        self.hop = hop
        self.register_buffer("window", hann_window(n_fft))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:  # spec [B, N_BINS, F] complex
        pad = (self.n_fft - self.hop) // 2
        B, N, T = spec.shape
        frames = torch.fft.irfft(spec, self.n_fft, dim=1, norm="backward")  # [B, n_fft, F]
        frames = frames * self.window[None, :, None]
        output_size = (T - 1) * self.hop + self.n_fft
        y = F.fold(frames, output_size=(1, output_size), kernel_size=(1, self.n_fft),
                   stride=(1, self.hop))[:, 0, 0, pad:-pad]
        wsq = self.window.square().expand(1, T, -1).transpose(1, 2)
        env = F.fold(wsq, output_size=(1, output_size), kernel_size=(1, self.n_fft),
                     stride=(1, self.hop)).squeeze()[pad:-pad]
        return y / env


class ISTFTHead(nn.Module):
    def __init__(self, dim: int = 320):
        super().__init__()
        self.out = nn.Linear(dim, N_FFT + 2)  # 1922
        self.istft = ISTFT()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, F, dim] -> [B, F*HOP]
        with torch.autocast(x.device.type, enabled=False):  # head in float32 (bf16 training)
            y = self.out(x.float()).transpose(1, 2)  # [B, 1922, F]
        mag, phase = y.chunk(2, dim=1)
        mag = torch.clamp(torch.exp(mag), max=1e2)
        spec = torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))
        return self.istft(spec)


def frame_pad(x: torch.Tensor) -> torch.Tensor:
    """[B, T] -> right-pad to a multiple of HOP, then PAD zeros on both sides."""
    T = x.shape[-1]
    Tp = -(-T // HOP) * HOP
    return F.pad(x, (PAD, PAD + Tp - T))


def stft_features(x: torch.Tensor) -> torch.Tensor:
    """[B, T] -> log magnitude [B, N_BINS, F]."""
    padded = frame_pad(x)
    X = torch.stft(padded, N_FFT, HOP, window=hann_window().to(x.device), center=False,
                   return_complex=True)
    return torch.log(torch.clamp(X.abs(), min=1e-2))


def fsq_quantize(zb: torch.Tensor, n_stages: int):
    """Residual FSQ on zb = tanh(z) [..., 5]. Returns (indices [S, ..., 5] int64, latent).

    Arithmetic is exact in float32 after tanh (all q_k are dyadic), so any ordering of the
    subtractions gives the same codes. torch.round rounds half to even.
    """
    qsum = torch.zeros_like(zb)
    idx = []
    for k in range(n_stages):
        scale = float(4 ** k)
        x = (zb - qsum) * scale
        i = torch.clamp(torch.round(2.0 * x), -2, 2)
        qsum = qsum + i / 2.0 / scale
        idx.append(i)
    return torch.stack(idx, 0).to(torch.int64), qsum


_CODE_WEIGHTS = torch.tensor([FSQ_LEVELS ** d for d in range(FSQ_DIM)], dtype=torch.int64)


def indices_to_codes(idx: torch.Tensor) -> torch.Tensor:
    """[..., 5] ints in -2..2 -> [...] codes in 0..3125."""
    return ((idx + 2) * _CODE_WEIGHTS.to(idx.device)).sum(-1)


def codes_to_indices(codes: torch.Tensor) -> torch.Tensor:
    """[...] codes -> [..., 5] ints in -2..2."""
    digits = [(codes // (FSQ_LEVELS ** d)) % FSQ_LEVELS for d in range(FSQ_DIM)]
    return torch.stack(digits, -1) - 2


class TinyCodec(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = VocosBackbone(N_BINS, 256, 768, 4)
        self.encoder_proj = nn.Linear(256, FSQ_DIM)
        self.decoder = VocosBackbone(FSQ_DIM, 320, 960, 8)
        self.head = ISTFTHead(320)

    # ---- inference API (exactly the spec) ----
    def latent_z(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T] -> z [B, F, 5] (before tanh)."""
        h = self.encoder(stft_features(x))
        with torch.autocast(x.device.type, enabled=False):  # z in float32 (bf16 training)
            return self.encoder_proj(h.float())

    @torch.no_grad()
    def encode(self, x: torch.Tensor, n_stages: int = N_STAGES) -> torch.Tensor:
        """[B, T] float audio -> codes [B, S, F] int64."""
        z = self.latent_z(x)
        idx, _ = fsq_quantize(torch.tanh(z), n_stages)  # [S, B, F, 5]
        return indices_to_codes(idx).permute(1, 0, 2).contiguous()

    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """latent [B, F, 5] -> audio [B, F*HOP]."""
        return self.head(self.decoder(latent.transpose(1, 2)))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """codes [B, S, F] -> audio [B, F*HOP] (cut to `length` if given)."""
        idx = codes_to_indices(codes)  # [B, S, F, 5]
        S = codes.shape[1]
        scales = torch.tensor([2.0 * 4 ** k for k in range(S)], dtype=torch.float32,
                              device=codes.device)
        latent = (idx.to(torch.float32) / scales[None, :, None, None]).sum(1)
        y = self.decode_latent(latent)
        return y if length is None else y[..., :length]

    # ---- training ----
    def forward(self, x: torch.Tensor, n_stages: torch.Tensor | int | None = None):
        """Training forward with straight-through rounding and quantizer dropout.

        n_stages: None -> sampled per example (P(1)=0.4, P(2)=P(3)=P(4)=0.2);
        int -> that many stages for all; LongTensor [B] -> per example.
        Returns (audio [B, T], n_stages [B]).
        """
        B, T = x.shape
        z = self.latent_z(x)
        zb = torch.tanh(z)
        if n_stages is None:
            n_stages = sample_n_stages(B, x.device)
        elif isinstance(n_stages, int):
            n_stages = torch.full((B,), n_stages, dtype=torch.int64, device=x.device)
        with torch.no_grad():
            qsum = torch.zeros_like(zb)
            for k in range(N_STAGES):
                scale = float(4 ** k)
                xk = (zb - qsum) * scale
                i = torch.clamp(torch.round(2.0 * xk), -2, 2)
                use = (n_stages > k).to(zb.dtype)[:, None, None]
                qsum = qsum + use * i / 2.0 / scale
        latent = zb + (qsum - zb).detach()  # straight-through
        y = self.decode_latent(latent)[..., :T]
        return y, n_stages


def sample_n_stages(B: int, device=None, probs=(0.4, 0.2, 0.2, 0.2)) -> torch.Tensor:
    return torch.multinomial(torch.tensor(probs), B, replacement=True).to(device) + 1


def param_count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


if __name__ == "__main__":
    m = TinyCodec()
    print("params", param_count(m))
    for k, v in m.state_dict().items():
        print(k, tuple(v.shape))

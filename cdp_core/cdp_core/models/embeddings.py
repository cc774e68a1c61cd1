"""Time embedding shared by the denoisers."""

from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalTimeEmbedding(nn.Module):
    """Transformer-style sinusoidal features of the diffusion time, followed by an MLP.

    ``t`` in [0, 1] is scaled by 1000 so the frequencies match the usual discrete-step
    embeddings (fine resolution near t = 0 matters for precise final actions).
    """

    def __init__(self, dim: int):
        super().__init__()
        if dim % 2:
            raise ValueError(f"time embedding dim must be even, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / max(half - 1, 1))
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 4), nn.Mish(), nn.Linear(dim * 4, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = (1000.0 * t)[:, None] * self.freqs[None, :]
        return self.mlp(torch.cat([torch.sin(args), torch.cos(args)], dim=-1))

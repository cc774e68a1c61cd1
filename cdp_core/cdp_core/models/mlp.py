"""Residual MLP denoiser over the flattened action chunk."""

from __future__ import annotations

import torch
from torch import nn

from .embeddings import SinusoidalTimeEmbedding


class _FiLMBlock(nn.Module):
    def __init__(self, hidden: int, cond_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.film = nn.Linear(cond_dim, 2 * hidden)
        self.fc1, self.fc2 = nn.Linear(hidden, hidden * 2), nn.Linear(hidden * 2, hidden)
        self.act = nn.Mish()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(cond).chunk(2, dim=-1)
        y = self.norm(x) * (1 + scale) + shift
        return x + self.fc2(self.act(self.fc1(y)))


class ResidualMLPDenoiser(nn.Module):
    """Pre-norm residual MLP with FiLM conditioning on (time, observation feature).

    Cheap and strong for short chunks and flat actions; the U-Net is the better prior for
    long, smooth chunks.
    """

    def __init__(
        self, horizon: int, action_dim: int, cond_dim: int, hidden: int = 256, blocks: int = 3, time_embed_dim: int = 64
    ):
        super().__init__()
        self.horizon, self.action_dim = horizon, action_dim
        self.time_embed = SinusoidalTimeEmbedding(time_embed_dim)
        film_dim = time_embed_dim + cond_dim
        self.inp = nn.Linear(horizon * action_dim, hidden)
        self.blocks = nn.ModuleList(_FiLMBlock(hidden, film_dim) for _ in range(blocks))
        self.out_norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, horizon * action_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        c = torch.cat([self.time_embed(t), cond], dim=-1)
        h = self.inp(x.flatten(1))
        for block in self.blocks:
            h = block(h, c)
        return self.out(self.out_norm(h)).view(-1, self.horizon, self.action_dim)

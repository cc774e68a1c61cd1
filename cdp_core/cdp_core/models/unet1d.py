"""Diffusion Policy's conditional 1-D temporal U-Net (Chi et al., 2023).

Convolutions run over the action horizon; every residual block is FiLM-modulated by the
concatenation of the time embedding and the observation feature.
"""

from __future__ import annotations

import torch
from torch import nn

from .embeddings import SinusoidalTimeEmbedding


class _Conv1dBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, groups: int):
        super().__init__(nn.Conv1d(cin, cout, kernel, padding=kernel // 2), nn.GroupNorm(groups, cout), nn.Mish())


class _CondResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, cond_dim: int, kernel: int, groups: int):
        super().__init__()
        self.block1 = _Conv1dBlock(cin, cout, kernel, groups)
        self.block2 = _Conv1dBlock(cout, cout, kernel, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * cout))
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        h = self.block1(x) * scale + shift
        return self.block2(h) + self.skip(x)


class ConditionalUnet1D(nn.Module):
    """U-Net over the horizon axis; ``horizon`` must be divisible by ``2**(len(dims)-1)``."""

    def __init__(
        self,
        horizon: int,
        action_dim: int,
        cond_dim: int,
        dims: list[int] | tuple[int, ...] = (64, 128, 256),
        kernel_size: int = 5,
        groups: int = 8,
        time_embed_dim: int = 64,
    ):
        super().__init__()
        self.horizon, self.action_dim = horizon, action_dim
        self.time_embed = SinusoidalTimeEmbedding(time_embed_dim)
        c = time_embed_dim + cond_dim
        chans = [action_dim, *dims]
        self.down = nn.ModuleList()
        for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:])):
            last = i == len(dims) - 1
            self.down.append(
                nn.ModuleList(
                    [
                        _CondResBlock(cin, cout, c, kernel_size, groups),
                        _CondResBlock(cout, cout, c, kernel_size, groups),
                        nn.Identity() if last else nn.Conv1d(cout, cout, 3, stride=2, padding=1),
                    ]
                )
            )
        self.mid = nn.ModuleList([_CondResBlock(dims[-1], dims[-1], c, kernel_size, groups) for _ in range(2)])
        self.up = nn.ModuleList()
        rev = list(reversed(dims))
        for cout, cin in zip(rev[1:], rev[:-1]):
            self.up.append(
                nn.ModuleList(
                    [
                        _CondResBlock(cin * 2, cout, c, kernel_size, groups),
                        _CondResBlock(cout, cout, c, kernel_size, groups),
                        nn.ConvTranspose1d(cout, cout, 4, stride=2, padding=1),
                    ]
                )
            )
        self.final = nn.Sequential(
            _Conv1dBlock(dims[0], dims[0], kernel_size, groups), nn.Conv1d(dims[0], action_dim, 1)
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        c = torch.cat([self.time_embed(t), cond], dim=-1)
        h = x.transpose(1, 2)  # [B, A, H]: convolve over time
        skips = []
        for res1, res2, downsample in self.down:
            h = res2(res1(h, c), c)
            skips.append(h)
            h = downsample(h)
        for res in self.mid:
            h = res(h, c)
        for res1, res2, upsample in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            h = upsample(res2(res1(h, c), c))
        return self.final(h).transpose(1, 2)

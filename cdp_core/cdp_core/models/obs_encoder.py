"""Low-dimensional observation encoders: ``obs [B, n_obs_steps, obs_dim] -> feature [B, F]``."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig


class FlattenObsEncoder(nn.Module):
    """Diffusion Policy's low-dim default: the observation history, flattened."""

    def __init__(self, n_obs_steps: int, obs_dim: int):
        super().__init__()
        self.out_dim = n_obs_steps * obs_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.flatten(1)


class MLPObsEncoder(nn.Module):
    """A two-layer MLP over the flattened history (learns which observation parts matter)."""

    def __init__(self, n_obs_steps: int, obs_dim: int, out_dim: int):
        super().__init__()
        self.out_dim = out_dim
        self.net = nn.Sequential(
            nn.Linear(n_obs_steps * obs_dim, out_dim * 2), nn.Mish(), nn.Linear(out_dim * 2, out_dim)
        )

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.flatten(1))


def build_obs_encoder(cfg: ModelConfig, n_obs_steps: int, obs_dim: int) -> nn.Module:
    """Encoder named by ``cfg.obs_encoder``; its ``out_dim`` attribute is the feature size."""
    if cfg.obs_encoder == "identity":
        return FlattenObsEncoder(n_obs_steps, obs_dim)
    if cfg.obs_encoder == "mlp":
        return MLPObsEncoder(n_obs_steps, obs_dim, cfg.obs_feature_dim)
    raise ValueError(f"unknown obs encoder {cfg.obs_encoder!r} (known: identity, mlp)")

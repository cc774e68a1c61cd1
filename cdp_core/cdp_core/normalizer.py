"""Normalisers stored as module buffers, so checkpoints and ONNX graphs carry them."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class RangeNormalizer(nn.Module):
    """Affine map of each dimension's [min, max] onto [-1, 1] (actions).

    Dimensions that never vary in the data (a gripper never used) get a unit range around
    their constant value instead of a division by ~0.
    """

    def __init__(self, dim: int, eps: float = 1e-4):
        super().__init__()
        self.eps = eps
        self.register_buffer("scale", torch.ones(dim))
        self.register_buffer("offset", torch.zeros(dim))

    def fit(self, data: np.ndarray) -> "RangeNormalizer":
        lo, hi = data.min(axis=0).astype(np.float64), data.max(axis=0).astype(np.float64)
        span = hi - lo
        flat = span < self.eps
        scale = np.where(flat, 1.0, 2.0 / np.where(flat, 1.0, span))
        offset = np.where(flat, -lo, -1.0 - lo * scale)
        self.scale.copy_(torch.as_tensor(scale, dtype=torch.float32))
        self.offset.copy_(torch.as_tensor(offset, dtype=torch.float32))
        return self

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.offset

    def unnormalize(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.offset) / self.scale


class GaussianNormalizer(RangeNormalizer):
    """Per-dimension zero mean / unit variance (observations)."""

    def fit(self, data: np.ndarray) -> "GaussianNormalizer":
        mean, std = data.mean(axis=0).astype(np.float64), data.std(axis=0).astype(np.float64)
        std = np.where(std < self.eps, 1.0, std)
        self.scale.copy_(torch.as_tensor(1.0 / std, dtype=torch.float32))
        self.offset.copy_(torch.as_tensor(-mean / std, dtype=torch.float32))
        return self

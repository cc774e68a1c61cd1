"""Variance-preserving (VP) noise schedules in continuous time.

Convention used throughout the package: ``t`` runs from 0 (data) to 1 (noise),
``x_t = alpha_t * x_0 + sigma_t * eps`` with ``alpha_t**2 + sigma_t**2 = 1``. The forward
SDE is ``dx = f(t) x dt + g(t) dW`` with ``f = d log(alpha)/dt`` and, for VP,
``g^2 = -2 f``. Sampling integrates the probability-flow ODE backwards in ``t``.
"""

from __future__ import annotations

import math

import torch

from .config import DiffusionConfig


class VPSchedule:
    """A VP schedule defined by ``log alpha(t)`` and its time derivative.

    All methods take and return tensors (any float dtype); callers that need exact
    coefficients (the fixed-step samplers) evaluate them in float64.
    """

    #: Largest usable time. For the cosine schedule alpha reaches 0 at t = 1, where the
    #: drift is singular, so sampling starts slightly before it.
    t_max: float = 1.0

    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def f(self, t: torch.Tensor) -> torch.Tensor:
        """Drift coefficient ``f(t) = d log alpha / dt`` (negative)."""
        raise NotImplementedError

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_alpha(t))

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        # 1 - alpha^2 via expm1 keeps precision at small t, where sigma is tiny.
        return torch.sqrt(-torch.expm1(2.0 * self.log_alpha(t)))

    def g2(self, t: torch.Tensor) -> torch.Tensor:
        """Squared diffusion coefficient ``g(t)^2 = -2 f(t)`` (VP)."""
        return -2.0 * self.f(t)

    def h(self, t: torch.Tensor) -> torch.Tensor:
        """Coefficient of eps in the probability-flow drift, ``g^2 / (2 sigma)``."""
        return self.g2(t) / (2.0 * self.sigma(t))

    def log_snr(self, t: torch.Tensor) -> torch.Tensor:
        """``lambda(t) = log(alpha / sigma)``, decreasing in t."""
        return self.log_alpha(t) - torch.log(self.sigma(t))

    def t_of_log_snr(self, lam: torch.Tensor, iters: int = 80) -> torch.Tensor:
        """Inverse of :meth:`log_snr` on [1e-9, t_max] by bisection (float64; any schedule, no closed form needed)."""
        lam = lam.to(torch.float64)
        lo = torch.full_like(lam, 1e-9)
        hi = torch.full_like(lam, self.t_max)
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            above = self.log_snr(mid) > lam  # log_snr decreases: the root lies later
            lo, hi = torch.where(above, mid, lo), torch.where(above, hi, mid)
        return 0.5 * (lo + hi)


class LinearVPSchedule(VPSchedule):
    """The VP-SDE of Song et al.: ``beta(t) = beta_min + t (beta_max - beta_min)`` (DDPM's linear betas)."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        if not 0 < beta_min < beta_max:
            raise ValueError(f"need 0 < beta_min < beta_max, got {beta_min}, {beta_max}")
        self.beta_min, self.beta_max = beta_min, beta_max

    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def f(self, t: torch.Tensor) -> torch.Tensor:
        return -0.5 * (self.beta_min + t * (self.beta_max - self.beta_min))


class CosineVPSchedule(VPSchedule):
    """Nichol & Dhariwal's cosine schedule ``alpha = cos(pi/2 (t+s)/(1+s)) / cos(pi/2 s/(1+s))``."""

    t_max = 0.999

    def __init__(self, s: float = 0.008):
        self.s = s
        self._log_alpha0 = math.log(math.cos(math.pi / 2 * s / (1 + s)))

    def _phase(self, t: torch.Tensor) -> torch.Tensor:
        return math.pi / 2 * (t + self.s) / (1 + self.s)

    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.cos(self._phase(t))) - self._log_alpha0

    def f(self, t: torch.Tensor) -> torch.Tensor:
        return -math.pi / (2 * (1 + self.s)) * torch.tan(self._phase(t))


def make_schedule(cfg: DiffusionConfig) -> VPSchedule:
    """Build the schedule a :class:`DiffusionConfig` names."""
    if cfg.schedule == "linear":
        return LinearVPSchedule(cfg.beta_min, cfg.beta_max)
    if cfg.schedule == "cosine":
        return CosineVPSchedule()
    raise ValueError(f"unknown noise schedule {cfg.schedule!r} (known: linear, cosine)")

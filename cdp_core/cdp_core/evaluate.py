"""Offline measurements of a policy: contraction (lambda_max over diffusion time) and action spread.

These are the quantities the CDP paper argues about, measured on our own models:
``lambda_max(sym dG_hat/dx)`` at noised data points across the sampling time range (the
flow contracts where it is < 0), and the spread of sampled actions across noise seeds at a
fixed observation (what a robot sees as action jitter between control steps).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .contraction import estimate_lambda_max
from .policy import DiffusionPolicy


def lambda_max_profile(
    policy: DiffusionPolicy,
    obs: torch.Tensor,
    actions: torch.Tensor,
    times: list[float],
    iterations: int = 16,
    seed: int = 0,
) -> np.ndarray:
    """Mean lambda_max of the normalised sampling drift at each time, over (obs, action) pairs.

    Returns ``[len(times), B]``: per time, per sample. ``actions`` are raw units ``[B, H, A]``.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        cond = policy.encode_obs(obs)
        x0 = policy.action_normalizer.normalize(policy.to_model_actions(actions, obs))
    out = []
    for t_val in times:
        t = torch.full((x0.shape[0],), float(t_val))
        eps = torch.randn(x0.shape, generator=g)
        xt = policy.schedule.alpha(t).view(-1, 1, 1) * x0 + policy.schedule.sigma(t).view(-1, 1, 1) * eps
        lam = estimate_lambda_max(
            lambda z: policy.normalized_sampling_drift(z, t, cond),
            xt,
            iterations,
            "lanczos",
            differentiable=False,
            generator=g,
        )
        out.append(lam.numpy())
    return np.stack(out)


def action_dispersion(
    sample: Callable[[np.ndarray, np.ndarray], np.ndarray],
    obs: np.ndarray,
    noise_shape: tuple[int, int],
    seeds: int = 32,
    seed: int = 0,
) -> dict[str, float]:
    """Spread of sampled action chunks across noise seeds at each fixed observation.

    ``sample(obs [B, To, D], noise [B, H, A]) -> actions [B, H, A]``. Reports the mean over
    observations of the per-dimension standard deviation across seeds (raw units), averaged
    over the chunk and over its first step only.
    """
    rng = np.random.default_rng(seed)
    n = obs.shape[0]
    rep_obs = np.repeat(obs, seeds, axis=0)
    noise = rng.standard_normal((n * seeds, *noise_shape)).astype(np.float32)
    acts = sample(rep_obs, noise)
    acts = acts.reshape(n, seeds, *acts.shape[1:])  # the sampler may return only the executed steps
    std = acts.std(axis=1)  # [n, steps, A]
    return {"chunk_std": float(std.mean()), "first_step_std": float(std[:, 0].mean())}

"""Fixed-step deterministic samplers of the probability-flow ODE.

The number of steps is chosen when a sampler is built (inference or export time), not at
training time. All time-dependent coefficients are computed once in float64 and baked in
as constants, so a :class:`FixedStepSampler` traces to one static ONNX graph with
``steps`` (or ``2 * steps`` for Heun) network evaluations.

Time grid: uniform in log-SNR ``lambda = log(alpha/sigma)`` from ``schedule.t_max`` to
``t_min`` (DPM-Solver's choice). Uniform-in-t grids put steps far too coarsely near t = 0,
where the drift's stiffness grows like ``h / sigma``; in lambda the stiffness per step is
about the step size, so explicit Euler / Heun stay stable. Euler and Heun integrate the
probability-flow ODE ``dx/dt = f x + h eps`` in t and stop at ``t_min`` (the drift is
singular at t = 0); Heun skips its corrector on the last step, as EDM does, so it never
evaluates the network at the stiffest time. DDIM and DPM-Solver++ take their last step to
exactly t = 0, which returns the predicted clean action.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .policy import DiffusionPolicy

SAMPLERS = ("euler", "heun", "ddim", "dpmpp_2m")
MAX_STEPS = 1000


class SamplerSpecError(ValueError):
    """An unknown sampler name or an invalid number of steps."""


def check_sampler_spec(sampler: str, steps: int) -> None:
    """Raise :class:`SamplerSpecError` naming the problem if (sampler, steps) is not supported."""
    if sampler not in SAMPLERS:
        raise SamplerSpecError(f"unknown sampler {sampler!r}; supported samplers: {', '.join(SAMPLERS)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise SamplerSpecError(f"sampling steps must be an integer in [1, {MAX_STEPS}], got {steps!r}")


def time_grid(policy: DiffusionPolicy, sampler: str, steps: int) -> list[float]:
    """The ``steps + 1`` times the sampler visits, from noise to data."""
    s = policy.schedule
    ends = torch.tensor([s.t_max, policy.t_min], dtype=torch.float64)
    lam_start, lam_end = s.log_snr(ends).tolist()
    lam = torch.linspace(lam_start, lam_end, steps + 1, dtype=torch.float64)
    times = s.t_of_log_snr(lam).tolist()
    times[0], times[-1] = s.t_max, policy.t_min  # exact ends, not bisection results
    if sampler in ("ddim", "dpmpp_2m"):
        times[-1] = 0.0
    return times


class FixedStepSampler(nn.Module):
    """``(obs [B, To, obs_dim], noise [B, H, A]) -> actions [B, H, A]`` in raw units."""

    def __init__(self, policy: DiffusionPolicy, sampler: str, steps: int):
        super().__init__()
        check_sampler_spec(sampler, steps)
        self.policy, self.sampler, self.steps = policy, sampler, steps
        self.clip = policy.cfg.diffusion.clip_sample
        self.times = time_grid(policy, sampler, steps)
        s = policy.schedule
        t64 = torch.tensor(self.times, dtype=torch.float64)
        # Python floats: traced as graph constants, exact to float32 rounding.
        self.alpha = s.alpha(t64).tolist()
        self.sigma = s.sigma(t64).tolist()
        self.f = s.f(t64).tolist()
        self.h = [
            float("nan") if sg == 0 else v for v, sg in zip((s.g2(t64) / (2 * s.sigma(t64))).tolist(), self.sigma)
        ]
        lam = [math.inf if sg == 0 else math.log(a / sg) for a, sg in zip(self.alpha, self.sigma)]
        self.step_h = [lam[i + 1] - lam[i] for i in range(steps)]

    def _model(self, x: torch.Tensor, i: int, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = x.new_ones(x.shape[0]) * self.times[i]
        eps, x0 = self.policy.predict_eps_x0(x, t, cond)
        if self.clip:
            x0 = x0.clamp(-1.0, 1.0)
            eps = (x - self.alpha[i] * x0) / self.sigma[i]
        return eps, x0

    def _drift(self, x: torch.Tensor, i: int, cond: torch.Tensor) -> torch.Tensor:
        eps, _ = self._model(x, i, cond)
        return self.f[i] * x + self.h[i] * eps

    def forward(self, obs: torch.Tensor, noise: torch.Tensor, images: torch.Tensor | None = None) -> torch.Tensor:
        cond = self.policy.encode_obs(obs, images)
        x = noise * self.sigma[0]  # sigma(t_max) ~ 1; scaled so the start is exactly the prior
        prev_x0 = None
        for i in range(self.steps):
            dt = self.times[i + 1] - self.times[i]
            if self.sampler == "euler":
                x = x + dt * self._drift(x, i, cond)
            elif self.sampler == "heun":
                d0 = self._drift(x, i, cond)
                if i == self.steps - 1:
                    x = x + dt * d0
                else:
                    d1 = self._drift(x + dt * d0, i + 1, cond)
                    x = x + 0.5 * dt * (d0 + d1)
            else:
                eps, x0 = self._model(x, i, cond)
                if self.sampler == "ddim":
                    x = self.alpha[i + 1] * x0 + self.sigma[i + 1] * eps
                else:
                    x = self._dpmpp_2m_step(x, x0, prev_x0, i)
                    prev_x0 = x0
        return self.policy.from_model_actions(self.policy.action_normalizer.unnormalize(x), obs)

    def _dpmpp_2m_step(self, x: torch.Tensor, x0: torch.Tensor, prev_x0: torch.Tensor | None, i: int) -> torch.Tensor:
        """DPM-Solver++(2M) (Lu et al. 2022), first order on the first and the final step."""
        if self.sigma[i + 1] == 0.0:  # final step to t = 0: the update reduces to x0
            return x0
        h = self.step_h[i]
        coef_x = self.sigma[i + 1] / self.sigma[i]
        coef_d = self.alpha[i + 1] * -math.expm1(-h)
        if prev_x0 is None:
            d = x0
        else:
            r = self.step_h[i - 1] / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * prev_x0
        return coef_x * x + coef_d * d

    @property
    def network_evaluations(self) -> int:
        return 2 * self.steps - 1 if self.sampler == "heun" else self.steps


@torch.no_grad()
def sample_actions(
    policy: DiffusionPolicy,
    obs: torch.Tensor,
    sampler: str = "ddim",
    steps: int = 10,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    images: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sample action chunks for raw observations ``[B, To, obs_dim]`` (+ uint8 images; PyTorch path)."""
    shape = (obs.shape[0], policy.shape.horizon, policy.shape.action_dim)
    if noise is None:
        noise = torch.randn(shape, generator=generator, device=obs.device, dtype=obs.dtype)
    return FixedStepSampler(policy, sampler, steps)(obs, noise, images)

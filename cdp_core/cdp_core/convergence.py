"""Convergence gate: is a trained policy precise enough to be trusted, before anyone runs it?

Closed-loop evaluation is the real test, but it needs a simulator (or a robot) and minutes.
An under-trained diffusion policy shows itself much earlier, open loop, where precision
matters: at the end of a demonstration (the hold of reach_precise, the insertion of
peg_insert) its sampled actions scatter wider than the task's tolerance and miss the
demonstrated action. The gate measures both on *held-out* demonstrations, in millimetres
at the TCP, and compares them with thresholds (:class:`~cdp_core.config.GateConfig`).

Measured on reach_precise (200 demos, MLP 512 x 4; see ``cdp_core/results/recipes``): the
4000-step recipe, 20 % closed-loop success, scatters several mm at the hold; the converged
recipe stays under the task's tolerance.

The gate is model-agnostic: it takes ``sample(obs, noise) -> actions`` (a PyTorch sampler or
an exported ONNX graph) and ``to_tcp(actions [N, A]) -> positions [N, 3]`` (forward
kinematics for joint-position actions, a slice for TCP-pose actions).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from .config import GateConfig
from .data.episodes import Episode
from .observation import episode_observations

#: obs [B, To, D], noise [B, H, A], images uint8 [B, To, cameras, H, W, 3] or None -> actions [B, H, A]
SampleFn = Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], np.ndarray]
TcpFn = Callable[[np.ndarray], np.ndarray]  # actions [N, A] -> TCP positions [N, 3] (m)


class GateError(ValueError):
    """The gate cannot run (no held-out demonstrations, no final phase, no way to reach TCP units)."""


@dataclass
class GateReport:
    """What the gate measured and decided; written as ``gate.json`` beside a run."""

    passed: bool
    action_error_mm: float
    scatter_mm: float
    max_error_mm: float
    max_scatter_mm: float
    windows: int
    episodes: int
    samples_per_window: int
    reasons: list[str]

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        return (
            f"convergence gate {verdict}: open-loop action error {self.action_error_mm:.2f} mm "
            f"(max {self.max_error_mm:g}), sample scatter {self.scatter_mm:.2f} mm (max {self.max_scatter_mm:g}) "
            f"at the TCP over {self.windows} final-phase windows of {self.episodes} held-out demonstrations"
            + ("" if self.passed else ": " + "; ".join(self.reasons))
        )


def final_phase_windows(
    episodes: list[Episode],
    obs_keys: list[str],
    n_obs_steps: int,
    horizon: int,
    to_tcp: TcpFn,
    radius_m: float,
    max_windows_per_episode: int,
    cameras: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Observation histories and demonstrated action chunks at each episode's final phase.

    The final phase is where the demonstrated TCP target is within ``radius_m`` of the
    episode's last one (the hold / insertion). Windows are built as in training
    (:class:`~cdp_core.data.windows.WindowDataset`: edges padded by repetition). At most
    ``max_windows_per_episode`` windows per episode, evenly spread over the phase.
    Returns ``obs [N, To, D]``, ``action [N, H, A]`` and, with ``cameras``, the observed frames
    ``[N, To, cameras, H, W, 3]`` (else None).
    """
    obs_out, act_out, img_out = [], [], []
    cams = list(cameras or [])
    for ep in episodes:
        absent = [c for c in cams if c not in ep.images]
        if absent:
            raise GateError(f"held-out demonstration {ep.name or '?'} has no frames of cameras {absent}")
    for ep in episodes:
        obs = episode_observations(ep.obs, obs_keys)
        act = ep.action.astype(np.float32)
        n = len(ep)
        tcp = to_tcp(act)
        near = np.flatnonzero(np.linalg.norm(tcp - tcp[-1], axis=1) <= radius_m)
        # the window's current step t = start + n_obs_steps - 1 lies in the final phase
        steps = near[np.linspace(0, len(near) - 1, min(len(near), max_windows_per_episode)).round().astype(int)]
        for t in np.unique(steps):
            start = t - (n_obs_steps - 1)
            idx = np.clip(start + np.arange(horizon), 0, n - 1)
            obs_out.append(obs[idx[:n_obs_steps]])
            act_out.append(act[idx])
            if cams:
                img_out.append(np.stack([ep.images[c][idx[:n_obs_steps]] for c in cams], axis=1))
    if not obs_out:
        raise GateError("no final-phase windows in the held-out demonstrations")
    return np.stack(obs_out), np.stack(act_out), (np.stack(img_out) if img_out else None)


def run_gate(
    sample: SampleFn,
    episodes: list[Episode],
    obs_keys: list[str],
    n_obs_steps: int,
    horizon: int,
    action_dim: int,
    action_start: int,
    n_action_steps: int,
    to_tcp: TcpFn,
    cfg: GateConfig,
    seed: int = 0,
    cameras: list[str] | None = None,
) -> GateReport:
    """Measure open-loop action error and sample scatter (mm at the TCP) and decide pass / fail.

    - action error: mean distance between the TCP of each sampled executed action and of the
      demonstrated one, averaged per window; the median over windows is reported.
    - scatter: RMS distance of the samples' TCP from their mean, per executed step, averaged
      per window; median over windows.
    Only the executed part of each chunk (``action_start`` .. ``+ n_action_steps``) counts.
    """
    if not episodes:
        raise GateError("the convergence gate needs held-out demonstrations; none were given")
    obs, demo, images = final_phase_windows(
        episodes, obs_keys, n_obs_steps, horizon, to_tcp, cfg.phase_radius_m, cfg.windows_per_episode, cameras
    )
    k = cfg.samples
    n = obs.shape[0]
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n * k, horizon, action_dim)).astype(np.float32)
    frames = np.repeat(images, k, axis=0) if images is not None else None
    acts = np.asarray(sample(np.repeat(obs, k, axis=0), noise, frames), dtype=np.float64)
    if not np.isfinite(acts).all():
        raise GateError("the policy produced non-finite actions on held-out demonstrations")
    sl = slice(action_start, action_start + n_action_steps)
    exec_acts = acts[:, sl].reshape(n, k, -1, action_dim)
    exec_demo = demo[:, sl].astype(np.float64)
    steps = exec_acts.shape[2]
    p = to_tcp(exec_acts.reshape(-1, action_dim)).reshape(n, k, steps, 3)
    d = to_tcp(exec_demo.reshape(-1, action_dim)).reshape(n, 1, steps, 3)
    err = 1000 * np.linalg.norm(p - d, axis=-1).mean(axis=(1, 2))
    scatter = 1000 * np.sqrt((np.linalg.norm(p - p.mean(axis=1, keepdims=True), axis=-1) ** 2).mean(axis=1)).mean(
        axis=1
    )
    e, s = float(np.median(err)), float(np.median(scatter))
    reasons = []
    if e > cfg.max_error_mm:
        reasons.append(f"action error {e:.2f} mm > {cfg.max_error_mm:g} mm")
    if s > cfg.max_scatter_mm:
        reasons.append(f"scatter {s:.2f} mm > {cfg.max_scatter_mm:g} mm")
    if reasons:
        reasons.append("the model is likely under-trained: train longer (see cdp_core/results/recipes)")
    return GateReport(
        passed=not reasons,
        action_error_mm=e,
        scatter_mm=s,
        max_error_mm=cfg.max_error_mm,
        max_scatter_mm=cfg.max_scatter_mm,
        windows=n,
        episodes=len(episodes),
        samples_per_window=k,
        reasons=reasons,
    )

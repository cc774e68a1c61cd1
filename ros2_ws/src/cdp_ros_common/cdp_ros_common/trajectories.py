"""Simple joint paths that operator tools (homing, calibration collection) send through the safety filter."""

from __future__ import annotations

import numpy as np


def homing_trajectory(
    q_now: np.ndarray, q_goal: np.ndarray, t0: float, speed: float, dt: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """A smooth (smoothstep) joint path from ``q_now`` to ``q_goal``: absolute due times and positions.

    The safety filter adds the jerk limits; this only keeps the requested speed modest.
    """
    dist = float(np.max(np.abs(q_goal - q_now)))
    duration = max(1.0, 1.5 * dist / max(speed, 1e-3))
    n = int(np.ceil(duration / dt)) + 1
    s = np.linspace(0.0, 1.0, n)
    s = s * s * (3 - 2 * s)
    return t0 + np.arange(n) * dt, q_now[None] + s[:, None] * (q_goal - q_now)[None]

"""Time-scaling profiles shared by every scripted motion (demonstrations, homing, replay tests)."""

from __future__ import annotations

import numpy as np


def minimum_jerk(s: np.ndarray | float) -> np.ndarray:
    """Minimum-jerk (quintic) progress ``10 s^3 - 15 s^4 + 6 s^5`` of phase ``s``, clipped to [0, 1].

    Starts and ends at rest with zero acceleration, so a path scaled by it has continuous
    velocity and acceleration.
    """
    s = np.clip(np.asarray(s, dtype=np.float64), 0.0, 1.0)
    return 10 * s**3 - 15 * s**4 + 6 * s**5

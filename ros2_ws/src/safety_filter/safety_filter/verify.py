"""Independent check of a stream of joint commands against the limits the filter promises.

Used by the tests (and usable on a recorded /safety/command stream): it re-derives every
limit from :class:`SafetyConfig` and the kinematics instead of asking the filter.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cdp_core.robot.kinematics import forward_kinematics
from cdp_core.robot.rotations import tool_tilt

from .filter import SafetyConfig


def joint_stream_violations(
    positions: Sequence[np.ndarray],
    velocities: Sequence[np.ndarray],
    accelerations: Sequence[np.ndarray],
    config: SafetyConfig,
    tol: float = 1e-6,
    check_box: bool = True,
) -> list[str]:
    """Violations in consecutive commands sent at ``config.dt`` (empty list = all respected).

    Position limits with margin, velocity (constant and position-dependent), acceleration,
    jerk as the finite difference of consecutive accelerations, velocity as the finite
    difference of consecutive positions, TCP inside the configured box, tool tilt.
    """
    p = np.asarray(positions, dtype=np.float64).reshape(-1, 7)
    v = np.asarray(velocities, dtype=np.float64).reshape(-1, 7)
    a = np.asarray(accelerations, dtype=np.float64).reshape(-1, 7)
    lim = config.limits
    dt = config.dt
    out: list[str] = []
    if not (np.isfinite(p).all() and np.isfinite(v).all() and np.isfinite(a).all()):
        return ["non-finite command"]
    if np.any(p < lim.lower - tol) or np.any(p > lim.upper + tol):
        k, j = np.argwhere((p < lim.lower - tol) | (p > lim.upper + tol))[0]
        out.append(f"position limit: tick {k} joint {j + 1} at {p[k, j]:.5f}")
    v_lo, v_hi = lim.velocity_bounds(p)
    if np.any(v < v_lo - tol) or np.any(v > v_hi + tol):
        k, j = np.argwhere((v < v_lo - tol) | (v > v_hi + tol))[0]
        out.append(
            f"velocity limit: tick {k} joint {j + 1} v={v[k, j]:.5f} allowed [{v_lo[k, j]:.5f}, {v_hi[k, j]:.5f}]"
        )
    if np.any(np.abs(a) > lim.acceleration + tol):
        out.append(f"acceleration limit: max |a| {np.max(np.abs(a)):.5f}")
    if len(p) > 1:
        jerk = np.diff(a, axis=0) / dt
        if np.any(np.abs(jerk) > lim.jerk * (1 + 1e-6) + tol):
            k, j = np.argwhere(np.abs(jerk) > lim.jerk * (1 + 1e-6) + tol)[0]
            out.append(f"jerk limit: between ticks {k} and {k + 1} joint {j + 1}: {jerk[k, j]:.3f}")
        fd = np.diff(p, axis=0) / dt
        if np.any(np.abs(fd) > lim.velocity + tol):
            out.append(f"finite-difference velocity: max {np.max(np.abs(fd) / lim.velocity):.4f} of the limit")
    if check_box:
        t = forward_kinematics(p)
        x = t[:, :3, 3]
        lo, hi = np.asarray(config.box_min), np.asarray(config.box_max)
        if np.any(x < lo - tol) or np.any(x > hi + tol):
            k = int(np.argwhere(np.any((x < lo - tol) | (x > hi + tol), axis=1))[0, 0])
            out.append(f"workspace box: tick {k} TCP at {np.round(x[k], 4)}")
        tilt = tool_tilt(t[:, :3, :3])
        if np.any(tilt > config.max_tilt_rad + tol):
            out.append(f"tool tilt: max {np.max(tilt):.4f} rad")
    return out

"""Shared steps of the backend tests (streaming a target, waiting for it)."""

from __future__ import annotations

import time

import numpy as np

#: A reachable target a few tenths of a radian from the sim's home pose on every joint.
OFFSET = np.array([0.15, -0.12, 0.1, 0.15, -0.1, 0.12, 0.1])


def stream_to(backend, target: np.ndarray, duration_s: float = 1.5, rate_hz: float = 50.0) -> list[str]:
    """Stream a straight line from the current q to ``target`` (positions + velocities) at ``rate_hz``.

    Returns every non-empty error the backend reported while streaming.
    """
    q0 = backend.read_state().q
    v = (target - q0) / duration_s
    errors = []
    t0 = time.monotonic()
    while True:
        t = time.monotonic() - t0
        a = min(t / duration_s, 1.0)
        assert backend.command_joint(q0 + a * (target - q0), v if a < 1.0 else np.zeros(7))
        st = backend.read_state()
        if st.error:
            errors.append(st.error)
        if a >= 1.0:
            return errors
        time.sleep(1.0 / rate_hz)


def wait_until_reached(backend, target: np.ndarray, tol: float, timeout_s: float = 6.0) -> float:
    """Max joint error once within ``tol`` and at rest, or the last error seen at the timeout."""
    deadline = time.monotonic() + timeout_s
    err = np.inf
    while time.monotonic() < deadline:
        st = backend.read_state()
        err = float(np.abs(st.q - target).max())
        if err < tol and float(np.abs(st.dq[:6]).max()) < 0.01:
            return err
        time.sleep(0.02)
    return err

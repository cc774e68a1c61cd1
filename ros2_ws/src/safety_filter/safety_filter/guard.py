"""One jerk-limited tick with a verified braking path: the core both filters share.

Safety argument
---------------
The guard keeps one invariant: **the braking path from the current output state stays
safe**. The braking path is Ruckig's time-optimal trajectory (velocity interface, target
velocity and acceleration 0) under the filter's acceleration and jerk limits; "safe" means
that the owner's ``check`` accepts it (joint position limits, position-dependent velocity,
TCP inside the workspace box, tool tilt) at every output instant ``k * dt`` until it rests.

Each tick the guard proposes the Ruckig position-interface step toward the target
(``candidate``). The candidate is output only if ``check`` accepts the candidate itself and
its own braking path, sampled on the same ``dt`` grid the later outputs will fall on; that
braking path is then stored. Otherwise (or when the owner asks to stop: stale input, e-stop,
speed scale 0) the guard outputs the next sample of the *stored* braking path, whose tail is
again the stored path, so the invariant holds without recomputing anything. Every output is
therefore either a checked candidate or a sample of a checked path, and consecutive outputs
always lie on one Ruckig trajectory that starts at the previous output state, so velocity,
acceleration and jerk limits hold between them (Ruckig respects ``max_jerk`` from any start
acceleration, and the acceleration/velocity limits from any state that lay on a trajectory
computed under the same limits).

Time-optimal braking from a state on a braking path is that path's tail, but the guard does
not rely on it: it follows the stored samples exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from ruckig import ControlInterface, InputParameter, Result, Ruckig, Synchronization, Trajectory

#: ``check(positions (N, n), velocities (N, n)) -> None`` when safe, else the reason.
Check = Callable[[np.ndarray, np.ndarray], "str | None"]

_REST_EPS = 1e-9


class JerkLimitedGuard:
    """Ruckig one tick at a time, falling back to a verified braking path (see module docstring)."""

    def __init__(self, dofs: int, dt: float, max_acceleration: np.ndarray, max_jerk: np.ndarray, check: Check):
        if dt <= 0:
            raise ValueError(f"dt must be positive, got {dt}")
        self.n = dofs
        self.dt = float(dt)
        self.a_lim = np.broadcast_to(np.asarray(max_acceleration, dtype=np.float64), (dofs,)).copy()
        self.j_lim = np.broadcast_to(np.asarray(max_jerk, dtype=np.float64), (dofs,)).copy()
        self.check = check
        self._otg = Ruckig(dofs)
        self._inp = InputParameter(dofs)
        self._inp.max_acceleration = self.a_lim.tolist()
        self._inp.max_jerk = self.j_lim.tolist()
        self._inp.target_acceleration = [0.0] * dofs
        self._binp = InputParameter(dofs)
        self._binp.control_interface = ControlInterface.Velocity
        # Every joint stops as fast as it can: time-synchronised braking would stretch the short
        # stops to the longest one and carry joints further towards their limits.
        self._binp.synchronization = Synchronization.No
        self._binp.max_velocity = [1e6] * dofs  # unused by the velocity interface, but validated
        self._binp.max_acceleration = self.a_lim.tolist()
        self._binp.max_jerk = self.j_lim.tolist()
        self._binp.target_velocity = [0.0] * dofs
        self._binp.target_acceleration = [0.0] * dofs
        self.p = np.zeros(dofs)
        self.v = np.zeros(dofs)
        self.a = np.zeros(dofs)
        self._brake: Trajectory | None = None  # None: at rest, braking path = stay at p
        self._brake_t = 0.0
        #: Positions and velocities of the stored braking path (for the owner's bookkeeping).
        self.brake_positions = self.p[None, :].copy()

    # ------------------------------------------------------------------------------------
    def reset(self, position: np.ndarray) -> None:
        """Restart at rest at ``position`` (a sync to the measured state)."""
        self.p = np.asarray(position, dtype=np.float64).copy()
        self.v = np.zeros(self.n)
        self.a = np.zeros(self.n)
        self._brake = None
        self._brake_t = 0.0
        self.brake_positions = self.p[None, :].copy()

    @property
    def at_rest(self) -> bool:
        return self._brake is None

    def braking_path(
        self, p: np.ndarray, v: np.ndarray, a: np.ndarray
    ) -> tuple[Trajectory | None, np.ndarray, np.ndarray]:
        """Time-optimal stop from (p, v, a): (trajectory or None if at rest, positions, velocities).

        Samples are at ``k * dt``, k = 1 .. until rest (one sample past the end).
        """
        if np.all(np.abs(v) < _REST_EPS) and np.all(np.abs(a) < _REST_EPS):
            return None, p[None, :], np.zeros((1, self.n))
        self._binp.current_position = p.tolist()
        self._binp.current_velocity = v.tolist()
        self._binp.current_acceleration = a.tolist()
        traj = Trajectory(self.n)
        result = self._otg.calculate(self._binp, traj)
        if result not in (Result.Working, Result.Finished):
            raise RuntimeError(f"Ruckig braking calculation failed: {result}")
        count = int(math.ceil(traj.duration / self.dt)) + 1
        ps = np.empty((count, self.n))
        vs = np.empty((count, self.n))
        for k in range(count):
            pk, vk, _ = traj.at_time((k + 1) * self.dt)
            ps[k] = pk
            vs[k] = vk
        return traj, ps, vs

    def _candidate(
        self,
        target_p: np.ndarray,
        target_v: np.ndarray,
        v_max: np.ndarray,
        v_min: np.ndarray,
        min_duration: float | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | str:
        inp = self._inp
        inp.minimum_duration = min_duration if min_duration and min_duration > 0 else None
        inp.current_position = self.p.tolist()
        inp.current_velocity = self.v.tolist()
        inp.current_acceleration = self.a.tolist()
        inp.max_velocity = v_max.tolist()
        inp.min_velocity = v_min.tolist()
        inp.target_position = target_p.tolist()
        for tv in (target_v, np.zeros(self.n)):  # retry without feed-forward if Ruckig refuses
            inp.target_velocity = tv.tolist()
            traj = Trajectory(self.n)
            try:
                result = self._otg.calculate(inp, traj)
            except Exception as exc:  # noqa: BLE001  (invalid input raises in the Python binding)
                result = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid input"
            if result in (Result.Working, Result.Finished):
                p, v, a = traj.at_time(self.dt)
                return np.asarray(p), np.asarray(v), np.asarray(a)
        return f"Ruckig could not plan the step ({result})"

    def step(
        self,
        target_p: np.ndarray | None,
        target_v: np.ndarray | None,
        v_max: np.ndarray | None,
        v_min: np.ndarray | None = None,
        brake: bool = False,
        min_duration: float | None = None,
    ) -> str | None:
        """Advance the output state by one tick.

        Follows the Ruckig step toward ``target_p`` (with velocity ``target_v`` there, under
        ``v_min <= v <= v_max``, ``v_min`` default ``-v_max``) when its braking path passes
        ``check``; otherwise, or when ``brake``, advances along the stored braking path.
        ``min_duration``: arrive no earlier than this (s), to follow a timed reference. Returns None when the target was followed
        (or braking was asked for), else why the guard braked instead.
        """
        reason: str | None = None
        if not brake:
            assert target_p is not None and target_v is not None and v_max is not None
            cand = self._candidate(target_p, target_v, v_max, -v_max if v_min is None else v_min, min_duration)
            if isinstance(cand, str):
                reason = cand
            else:
                p, v, a = cand
                try:
                    traj, bp, bv = self.braking_path(p, v, a)
                except RuntimeError as exc:
                    reason = str(exc)
                else:
                    reason = self.check(np.vstack([p[None, :], bp]), np.vstack([v[None, :], bv]))
                    if reason is None:
                        self.p, self.v, self.a = p, v, a
                        self._brake, self._brake_t = traj, 0.0
                        self.brake_positions = np.vstack([p[None, :], bp])
                        return None
        self._advance_brake()
        return reason

    def _advance_brake(self) -> None:
        if self._brake is None:
            self.v = np.zeros(self.n)
            self.a = np.zeros(self.n)
            return
        self._brake_t += self.dt
        if self._brake_t >= self._brake.duration:
            p, _, _ = self._brake.at_time(self._brake.duration)
            self.p = np.asarray(p)
            self.v = np.zeros(self.n)
            self.a = np.zeros(self.n)
            self._brake = None
            self.brake_positions = self.p[None, :].copy()
            return
        p, v, a = self._brake.at_time(self._brake_t)
        self.p, self.v, self.a = np.asarray(p), np.asarray(v), np.asarray(a)

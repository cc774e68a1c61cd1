"""Safety filter between policy / teleop commands and the Franka driver (no ROS in here).

:class:`SafetyFilter` takes time-stamped joint-space action chunks and emits, at ``rate_hz``,
one jerk-limited joint state per tick that respects (see :mod:`safety_filter.guard` for why):

* joint position limits with margin (datasheet limits +- ``limits.position_margin``),
* joint velocity (the scaled constant limit and libfranka's position-dependent limit),
  acceleration and jerk (Ruckig, scaled hardware limits),
* the Cartesian workspace box for the TCP (checked on the box shrunk by ``box_margin``) and a
  maximum tilt of the tool z axis away from world -z,

and that stops (jerk-limited) on stale input, speed scale 0, e-stop (latched until reset) and
internal faults (latched until reset). Malformed commands are rejected whole with a reason.

:class:`CartesianSafetyFilter` is the same machinery for TCP pose targets: position clamped to
the box, Ruckig on position (3) and a rotation-vector chart (3) with the Cartesian limits.

If the filter is synced where a limit is already violated (e.g. a joint inside its margin,
or the TCP outside the box), the violation present at sync becomes a *slack* that only
shrinks: outputs may stay as bad as the start but never get worse, so the arm can be moved
back in instead of freezing.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from cdp_core.robot.kinematics import forward_kinematics
from cdp_core.robot.limits import WORKSPACE_BOX_MAX, WORKSPACE_BOX_MIN, FR3Limits
from cdp_core.robot.rotations import (
    W_NON_NEGATIVE,
    matrix_to_quat,
    matrix_to_rotvec,
    quat_to_matrix,
    rotvec_to_matrix,
    tool_tilt,
)

from .guard import JerkLimitedGuard
from .slack import TOL, Slack
from .reasons import Intervention, Reject, kind_of, reason

_TOL = TOL  # one numerical tolerance for every limit comparison


@dataclass
class SafetyConfig:
    """Settings of the safety filter (one ROS parameter each; ``limits.*`` for the FR3 limits)."""

    #: Output rate (Hz); the filter's time step is 1 / rate_hz.
    rate_hz: float = 100.0
    #: No accepted command for this long (s) => decelerate and hold.
    stale_timeout_s: float = 0.15
    #: Per-tick clamp of the target's distance from the current output, per joint (rad).
    max_step_rad: float = 0.2
    #: Tracking: each tick Ruckig plans to be at the chunk's point due ``lookahead_s`` later, with
    #: the chunk's velocity there, in no less than ``lookahead_s`` (Ruckig minimum_duration).
    lookahead_s: float = 0.1
    #: TCP workspace box in fr3_link0 (m).
    box_min: tuple[float, float, float] = WORKSPACE_BOX_MIN
    box_max: tuple[float, float, float] = WORKSPACE_BOX_MAX
    #: Every check uses the box shrunk by this (m): room for the driver's interpolation between outputs.
    box_margin: float = 0.01
    #: Maximum angle (rad) between the tool z axis and world -z.
    max_tilt_rad: float = 1.2
    #: Commands whose first point is due further than this in the future are rejected (clock mismatch).
    max_future_s: float = 2.0
    #: Measured joints further than this (rad) from every output of the last ``resync_history_s``
    #: => drop the command and resync: the output converges to the measured joints on a
    #: jerk-limited path (never a step).
    resync_tolerance_rad: float = 0.2
    #: An arm that tracks the output late is where the output was a moment ago, not where it is:
    #: drift is measured against the outputs of this last stretch (s), so a delayed arm after a
    #: reversal at speed is not mistaken for a reflex or a push.
    resync_history_s: float = 0.4
    #: A resync ends when the output rests within this (rad) of the measured joints.
    resync_done_rad: float = 0.01
    #: Once measured joints have arrived, none for this long (s) => brake and hold.
    measured_timeout_s: float = 0.25
    #: The arm lagging the filter's output by more than this (rad) scales the speed down, to zero
    #: at lag_hold_rad: the filter waits for an arm that is slower than its commands (a heavy
    #: payload, a simulator running below real time) instead of running ahead into a resync.
    lag_slowdown_rad: float = 0.06
    #: Hard bound, part of every braking-path check while tracking: the output's braking path never
    #: ends further than this (rad, per joint) from the last measured joints (or than they already
    #: are). Even an arm that froze where it was last measured then stays within lag_hold_rad of
    #: every output, below resync_tolerance_rad by construction: the filter's own motion cannot
    #: trigger a resync, only the arm moving away from the command can.
    lag_hold_rad: float = 0.12
    #: Cartesian path: per-tick clamp of the target's distance from the current output (m, rad).
    cartesian_max_step_m: float = 0.05
    cartesian_max_step_rot: float = 0.2
    #: Cartesian path: measured TCP further than this (m) from the filter state => hold and resync.
    cartesian_resync_tolerance_m: float = 0.05
    #: Cartesian path: orientation chart radius (rad) around the orientation at sync.
    cartesian_chart_limit_rad: float = 2.5
    limits: FR3Limits = field(default_factory=FR3Limits)

    def __post_init__(self) -> None:
        if not (self.rate_hz > 0 and math.isfinite(self.rate_hz)):
            raise ValueError(f"rate_hz must be positive, got {self.rate_hz}")
        if not self.resync_history_s >= 0:
            raise ValueError(f"resync_history_s must be >= 0, got {self.resync_history_s}")
        if not self.measured_timeout_s > 0:
            raise ValueError(f"measured_timeout_s must be positive, got {self.measured_timeout_s}")
        if not self.stale_timeout_s > 0 or not self.max_step_rad > 0 or not self.lookahead_s >= 0:
            raise ValueError("stale_timeout_s and max_step_rad must be positive, lookahead_s non-negative")
        if not 0 < self.resync_done_rad < self.lag_slowdown_rad < self.lag_hold_rad < self.resync_tolerance_rad:
            raise ValueError(
                "need 0 < resync_done_rad < lag_slowdown_rad < lag_hold_rad < resync_tolerance_rad, got "
                f"{self.resync_done_rad}, {self.lag_slowdown_rad}, {self.lag_hold_rad}, "
                f"{self.resync_tolerance_rad}"
            )
        lo = np.asarray(self.box_min, dtype=np.float64)
        hi = np.asarray(self.box_max, dtype=np.float64)
        if lo.shape != (3,) or hi.shape != (3,) or np.any(hi - lo <= 2 * self.box_margin):
            raise ValueError(f"workspace box {self.box_min}..{self.box_max} with margin {self.box_margin} is empty")
        self.box_min = tuple(float(v) for v in lo)  # type: ignore[assignment]
        self.box_max = tuple(float(v) for v in hi)  # type: ignore[assignment]
        if not 0 < self.cartesian_chart_limit_rad < math.pi:
            raise ValueError("cartesian_chart_limit_rad must be in (0, pi)")

    @property
    def dt(self) -> float:
        return 1.0 / self.rate_hz

    @property
    def inner_box(self) -> tuple[np.ndarray, np.ndarray]:
        """The box every check uses: the configured box shrunk by ``box_margin``."""
        return np.asarray(self.box_min) + self.box_margin, np.asarray(self.box_max) - self.box_margin


@dataclass
class FilterOutput:
    """One tick of the joint filter: the command for the driver and why it differs from the input."""

    time: float
    position: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray
    interventions: list[str]
    #: unsynced | idle | tracking | paused | stale | estop | fault | resync
    mode: str


@dataclass
class CartesianOutput:
    """One tick of the Cartesian filter: TCP pose in fr3_link0 and rates of (position, rotation vector)."""

    time: float
    position: np.ndarray
    quaternion: np.ndarray  # x, y, z, w
    velocity: np.ndarray  # (6,): linear (m/s), rotation-vector rate (rad/s)
    acceleration: np.ndarray  # (6,)
    interventions: list[str]
    mode: str


class _FilterCore:
    """Mode logic shared by the joint and Cartesian filters: sync, watchdog, e-stop, speed scale."""

    def __init__(self, config: SafetyConfig, dofs: int):
        self.config = config
        self.dofs = dofs
        self.synced = False
        self._estop = False
        self._fault: str | None = None
        self._command: tuple[float, Any] | None = None  # (receive time, command)
        self._stale = False
        self._speed_scale = 1.0
        self._lag_scale = 1.0  # from the measured arm's lag behind the output (joint filter)
        self._epoch = -math.inf  # commands observed before this (sync / reset / e-stop) are refused
        self._resync = False  # converging to the measured state after the arm left the command
        #: Counts per :class:`Reject` / :class:`Intervention` kind (bounded key sets).
        self.rejected: Counter[str] = Counter()
        self.interventions: Counter[str] = Counter()
        self.ticks = 0
        self.last_output_time = -math.inf

    # -- events -----------------------------------------------------------------------------
    def estop(self, t_now: float | None = None) -> None:
        """Latch an e-stop: decelerate and hold until :meth:`reset`; drop the current command."""
        self._estop = True
        self._command = None

    def reset(self, t_now: float) -> None:
        """Clear e-stop and faults. The arm holds until a command observed after ``t_now`` arrives."""
        self._estop = False
        self._fault = None
        self._command = None
        self._stale = False
        self._epoch = t_now

    def latch_fault(self, why: str) -> None:
        """Latch a fault found outside the filter (e.g. a foreign publisher of the measured state):
        brake and hold until :meth:`reset`."""
        self._fault = why
        self._command = None

    def drop_command(self, t_now: float) -> None:
        """Forget the current command (the input was handed to another source): brake and hold
        until a command observed after ``t_now`` arrives. E-stop and faults stay latched."""
        self._command = None
        self._stale = False
        self._epoch = max(self._epoch, t_now)

    def set_speed_scale(self, scale: float) -> str | None:
        """Scale (0..1) of the velocity limit; 0 = hold. Non-finite => 0 (hold) and rejected."""
        try:
            s = float(scale)
        except (TypeError, ValueError):
            s = math.nan
        if not math.isfinite(s):
            self._speed_scale = 0.0
            return self._reject(Reject.SPEED_SCALE, f"speed scale is not a finite number ({scale!r}): holding")
        self._speed_scale = min(max(s, 0.0), 1.0)
        return None

    @property
    def speed_scale(self) -> float:
        return self._speed_scale

    @property
    def estopped(self) -> bool:
        return self._estop

    @property
    def fault(self) -> str | None:
        return self._fault

    @property
    def resyncing(self) -> bool:
        """True while the output converges to the measured state after a resync."""
        return self._resync

    def _reject(self, kind: Reject, detail: str = "") -> str:
        """Count a rejection under its kind (a bounded key set) and return the full reason."""
        self.rejected[kind.value] += 1
        return reason(kind, detail)

    def _validate_common(self, t_first: float, t_last: float, t_now: float) -> tuple[Reject, str] | None:
        if not self.synced:
            return Reject.NOT_SYNCED, "not synced to the measured state yet"
        if self._estop:
            return Reject.ESTOP, "e-stop latched: commands refused until reset"
        if self._fault is not None:
            return Reject.FAULT, f"fault latched ({self._fault}): commands refused until reset"
        if self._resync:
            return Reject.RESYNCING, "the output is converging to the measured joints; commands refused until it rests"
        if t_first < self._epoch:
            return Reject.BEFORE_SYNC, (
                f"command observed at {t_first:.3f} s, before the last sync/reset at {self._epoch:.3f} s"
            )
        if t_first > t_now + self.config.max_future_s:
            return Reject.FUTURE, f"command due {t_first - t_now:.3f} s in the future (clock mismatch?)"
        if t_last < t_now - self.config.stale_timeout_s:
            return Reject.EXPIRED, f"command already over ({t_now - t_last:.3f} s ago)"
        return None

    def _mode(self, t_now: float) -> tuple[str, bool, list[str]]:
        """(mode, brake?, interventions) before the target is looked at."""
        if self._estop:
            return "estop", True, [reason(Intervention.ESTOP, "e-stop latched")]
        if self._fault is not None:
            return "fault", True, [reason(Intervention.FAULT, f"fault latched: {self._fault}")]
        if self._command is not None and t_now - self._command[0] > self.config.stale_timeout_s:
            self._command = None
            self._stale = True
        if self._command is None:
            if self._stale:
                return (
                    "stale",
                    True,
                    [reason(Intervention.STALE, f"no command for {self.config.stale_timeout_s:.3f} s: holding")],
                )
            return "idle", True, []
        if self._speed_scale < 1e-3:
            return "paused", True, [reason(Intervention.PAUSED, "speed scale 0: holding")]
        if self._lag_scale < 1e-3:
            return (
                "paused",
                True,
                [reason(Intervention.LAG_HOLD, "arm lagging the command: holding until it catches up")],
            )
        return "tracking", False, []

    def _count(self, interventions: list[str]) -> None:
        self.ticks += 1
        for r in interventions:
            self.interventions[kind_of(r).value] += 1


class SafetyFilter(_FilterCore):
    """Joint-space safety filter for the FR3 (see module docstring)."""

    def __init__(self, config: SafetyConfig | None = None):
        config = config or SafetyConfig()
        super().__init__(config, 7)
        lim = config.limits
        self.limits = lim
        self._lower, self._upper = lim.lower, lim.upper
        self._box_lo, self._box_hi = config.inner_box
        self._guard = JerkLimitedGuard(7, config.dt, lim.acceleration, lim.jerk, self._check)
        self._slack = Slack({"joint_lower": 7, "joint_upper": 7, "box": 6, "tilt": 1})
        self._safe_target = np.zeros(7)
        self._measured: np.ndarray | None = None  # last measured joints (from check_drift)
        self._measured_t = -math.inf
        #: Outputs of the last resync_history_s (drift is measured against all of them).
        self._recent: deque[np.ndarray] = deque(maxlen=max(1, int(math.ceil(config.resync_history_s / config.dt))))
        #: While tracking: bound (rad) on |braking path - measured| the guard's check enforces; None = off.
        self._lag_bound: float | None = None

    # -- limits as one predicate on a sampled path -------------------------------------------
    def _violations(self, p: np.ndarray) -> dict[str, np.ndarray]:
        """Per-path maxima of each constraint's violation (positive = violated), by name."""
        t = forward_kinematics(p)
        x = t[..., :3, 3]
        return {
            "joint_lower": np.max(self._lower - p, axis=0),
            "joint_upper": np.max(p - self._upper, axis=0),
            "box": np.max(np.concatenate([self._box_lo - x, x - self._box_hi], axis=-1), axis=0),
            "tilt": np.array([np.max(tool_tilt(t[..., :3, :3])) - self.config.max_tilt_rad]),
        }

    def _check(self, p: np.ndarray, v: np.ndarray) -> str | None:
        viol, sl = self._violations(p), self._slack
        if sl.exceeded(viol, "joint_lower") or sl.exceeded(viol, "joint_upper"):
            j = int(np.argmax(np.maximum(sl.excess(viol, "joint_lower"), sl.excess(viol, "joint_upper"))))
            return f"joint position limit (fr3_joint{j + 1} would pass its limit while stopping)"
        v_lo, v_hi = self.limits.velocity_bounds(p)
        if np.any(v < v_lo - _TOL) or np.any(v > v_hi + _TOL):
            return "joint velocity limit (position dependent)"
        if sl.exceeded(viol, "box"):
            return "workspace box (TCP would leave it while stopping)"
        if sl.exceeded(viol, "tilt"):
            return "tool tilt limit"
        if self._lag_bound is not None and self._measured is not None:
            lag = float(np.max(np.abs(p - self._measured)))
            if lag > self._lag_bound + _TOL:
                return (
                    f"lag bound (braking path would end {lag:.3f} rad from the measured joints, "
                    f"bound {self._lag_bound:.3f})"
                )
        return None

    def _tighten_slack(self) -> None:
        self._slack.tighten(self._violations(self._guard.brake_positions))

    # -- inputs ------------------------------------------------------------------------------
    def sync(self, q_measured: np.ndarray, t: float) -> str | None:
        """(Re)start at rest at the measured joints; drops the current command. None or why refused."""
        q = np.asarray(q_measured, dtype=np.float64).reshape(-1)
        if q.shape != (7,) or not np.isfinite(q).all():
            return self._reject(
                Reject.MEASURED_UNUSABLE,
                f"measured joint state unusable (shape {q.shape}, finite {np.isfinite(q).all()})",
            )
        if self.synced:
            # Only the first sync may place the output: afterwards a jump would reach the driver.
            raise RuntimeError("SafetyFilter.sync after the first sync: use check_drift (jerk-limited resync)")
        self._guard.reset(q)
        self._set_slack(q[None, :])
        self._safe_target = q.copy()
        self._command = None
        self._stale = False
        self.synced = True
        return None

    def _set_slack(self, positions: np.ndarray) -> None:
        """Violations present at ``positions`` become the slack that may only shrink (module docstring)."""
        self._slack.reset(self._violations(positions))

    def check_drift(self, q_measured: np.ndarray, t: float) -> str | None:
        """Take a measured joint state; start a resync if it left the filter state (returns why).

        A resync drops the command and refuses new ones; the output then converges to the
        measured joints on a jerk-limited Ruckig path from its current state (see :meth:`step`),
        so the output never steps, whatever the arm did.
        """
        q = np.asarray(q_measured, dtype=np.float64).reshape(-1)
        if not self.synced:
            return self.sync(q, t)
        if q.shape != (7,) or not np.isfinite(q).all():
            return self._reject(Reject.MEASURED_UNUSABLE, "measured joint state unusable")
        self._measured, self._measured_t = q.copy(), float(t)
        lag = float(np.max(np.abs(q - self._guard.p)))
        if self._resync:
            return None
        drift = lag
        if lag > self.config.resync_tolerance_rad and self._recent:
            drift = min(lag, float(np.min(np.max(np.abs(np.asarray(self._recent) - q), axis=1))))
        if drift <= self.config.resync_tolerance_rad:
            lo, hi = self.config.lag_slowdown_rad, self.config.lag_hold_rad
            self._lag_scale = 1.0 if lag <= lo else max(0.0, (hi - lag) / (hi - lo))
            return None
        self._lag_scale = 1.0
        self._resync = True
        self._command = None
        self._stale = False
        self._epoch = max(self._epoch, t)
        # The path to the arm may start where a limit is already violated (the arm was pushed there).
        self._set_slack(np.vstack([self._guard.brake_positions, q[None, :]]))
        self.interventions[Intervention.RESYNC.value] += 1
        return reason(
            Intervention.RESYNC,
            f"measured joints {drift:.3f} rad from the command (reflex or recovery?): converging to them jerk-limited",
        )

    def set_chunk(self, times: np.ndarray, positions: np.ndarray, source: str, t_now: float) -> str | None:
        """Take a chunk (absolute due times (K,), joint targets (K, 7)). None if accepted, else why not.

        A rejected chunk changes nothing: the previous command (if any) stays in effect.
        """
        try:
            t = np.asarray(times, dtype=np.float64).reshape(-1)
            q = np.asarray(positions, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            return self._reject(Reject.NOT_NUMERIC, f"chunk not numeric: {exc}")
        if q.ndim != 2 or q.shape[1] != 7 or q.shape[0] < 1 or t.shape != (q.shape[0],):
            return self._reject(
                Reject.SHAPE, f"chunk shape: times {t.shape}, positions {q.shape}; expected (K,), (K, 7)"
            )
        if not np.isfinite(q).all():
            return self._reject(Reject.NON_FINITE, "chunk has NaN or infinite positions")
        if not np.isfinite(t).all():
            return self._reject(Reject.NON_FINITE, "chunk has NaN or infinite times")
        if np.any(np.diff(t) <= 0):
            return self._reject(Reject.TIMES_NOT_INCREASING, "chunk times must increase strictly")
        refused = self._validate_common(float(t[0]), float(t[-1]), t_now)
        if refused is not None:
            return self._reject(*refused)
        self._command = (t_now, (t.copy(), q.copy(), str(source)))
        self._stale = False
        return None

    # -- the tick ----------------------------------------------------------------------------
    def _chunk_target(self, t_now: float) -> tuple[np.ndarray, np.ndarray, float]:
        """(position, velocity, time to get there) from the chunk, ``lookahead_s`` ahead."""
        assert self._command is not None
        times, q, _ = self._command[1]
        t = t_now + self.config.lookahead_s
        if t <= times[0]:
            return q[0].copy(), np.zeros(7), times[0] - t_now
        if t >= times[-1]:  # hold the last point, arriving when it is due
            return q[-1].copy(), np.zeros(7), max(times[-1] - t_now, 0.0)
        k = int(np.searchsorted(times, t, side="right")) - 1
        span = times[k + 1] - times[k]
        w = (t - times[k]) / span
        return q[k] + w * (q[k + 1] - q[k]), (q[k + 1] - q[k]) / span, self.config.lookahead_s

    def _shape_target(
        self, target: np.ndarray, tv: np.ndarray, v_max: np.ndarray, notes: list[str]
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """(target, target velocity, still the chunk's own timing?) after the clamps."""
        p = self._guard.p
        timed = True
        clamped = np.clip(target, self._lower, self._upper)
        if np.any(clamped != target):
            bad = np.nonzero(clamped != target)[0]
            notes.append(reason(Intervention.POSITION_CLAMPED, ", ".join(f"fr3_joint{j + 1}" for j in bad)))
            tv = np.where(clamped != target, 0.0, tv)
        step = np.clip(clamped - p, -self.config.max_step_rad, self.config.max_step_rad)
        stepped = p + step
        if np.any(np.abs(stepped - clamped) > 1e-12):
            notes.append(reason(Intervention.STEP_CLAMPED, "target more than max_step_rad from the current command"))
            tv = np.zeros(7)
            timed = False
        viol = self._violations(stepped[None, :])
        if self._slack.exceeded(viol, "box") or self._slack.exceeded(viol, "tilt"):
            what = "outside the workspace box" if self._slack.exceeded(viol, "box") else "tool tilted too far"
            notes.append(reason(Intervention.WORKSPACE_REJECTED, f"target TCP {what}; holding the last safe target"))
            return self._safe_target.copy(), np.zeros(7), False
        self._safe_target = stepped.copy()
        v_lo, v_hi = self.limits.velocity_bounds(stepped)
        tv = np.clip(tv, np.maximum(v_lo, -v_max) * 0.9, np.minimum(v_hi, v_max) * 0.9)
        return stepped, tv, timed

    def _resync_step(self, notes: list[str]) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, bool]:
        """(target, target velocity, v_max, brake?) of one resync tick; ends the resync at rest."""
        g, q = self._guard, self._measured
        assert q is not None
        if g.at_rest and float(np.max(np.abs(g.p - q))) <= self.config.resync_done_rad:
            self._resync = False
            self._set_slack(g.p[None, :])
            self._safe_target = g.p.copy()
            return None, None, None, True
        notes.append(reason(Intervention.RESYNC, "converging to the measured joints"))
        if self._speed_scale < 1e-3:
            return None, None, None, True
        return q.copy(), np.zeros(7), self.limits.velocity * self._speed_scale, False

    def step(self, t_now: float) -> FilterOutput | None:
        """One tick at time ``t_now``: the next command, or None before the first sync."""
        if not self.synced:
            return None
        mode, brake, notes = self._mode(t_now)
        target = tv = v_max = v_min = min_duration = None
        self._lag_bound = None
        if (
            self._measured is not None
            and t_now - self._measured_t > self.config.measured_timeout_s
            and mode not in ("estop", "fault")
        ):
            # Measurements stopped (driver gone, or its publisher starved): where the arm is is
            # unknown, so the output brakes and holds until they come back.
            mode, brake = "stale", True
            notes.append(
                reason(Intervention.STALE, f"no measured joint state for {t_now - self._measured_t:.3f} s: holding")
            )
        elif self._resync and mode not in ("estop", "fault"):
            target, tv, v_max, brake = self._resync_step(notes)
            mode = "resync" if self._resync else "idle"
        elif not brake:
            scale = min(self._speed_scale, self._lag_scale)
            v_scaled = self.limits.velocity * scale
            if self._measured is not None:
                self._lag_bound = max(self.config.lag_hold_rad, float(np.max(np.abs(self._guard.p - self._measured))))
            if scale < 1.0:
                notes.append(
                    reason(
                        Intervention.SPEED_SCALED,
                        f"{scale:.2f}" + (" (arm lagging)" if self._lag_scale < self._speed_scale else ""),
                    )
                )
            target, tv, arrive_in = self._chunk_target(t_now)
            target, tv, timed = self._shape_target(target, tv, v_scaled, notes)
            min_duration = arrive_in if timed else None
            # The position-dependent bound at the current position, so Ruckig itself slows down
            # near a limit (the braking-path check alone would make it stop-and-go there).
            v_lo, v_hi = self.limits.velocity_bounds(self._guard.p)
            v_min = np.minimum(np.maximum(v_lo, -v_scaled), -1e-4)
            v_max = v_up = np.maximum(np.minimum(v_hi, v_scaled), 1e-4)
            tv = np.clip(tv, 0.9 * v_min, 0.9 * v_up)
        why = self._guard.step(target, tv, v_max, v_min, brake=brake, min_duration=min_duration)
        self._lag_bound = None
        if why is not None:
            notes.append(reason(Intervention.SAFETY_BRAKE, why))
        elif not brake:
            self._tighten_slack()
        g = self._guard
        if not (np.isfinite(g.p).all() and np.isfinite(g.v).all() and np.isfinite(g.a).all()):
            # Cannot happen with finite inputs; if it does, never emit it and latch a fault.
            self._fault = "non-finite filter state"
            raise FloatingPointError("safety filter state became non-finite")
        self._count(notes)
        self.last_output_time = t_now
        self._recent.append(g.p.copy())
        return FilterOutput(t_now, g.p.copy(), g.v.copy(), g.a.copy(), notes, mode)

    @property
    def state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(position, velocity, acceleration) of the last output."""
        return self._guard.p.copy(), self._guard.v.copy(), self._guard.a.copy()


class CartesianSafetyFilter(_FilterCore):
    """TCP pose targets: NaN rejection, box clamp, tilt limit, Ruckig with the Cartesian limits.

    State: TCP position (3) and the rotation vector ``r`` of ``R @ R_ref.T`` (3), where
    ``R_ref`` is the TCP orientation at sync; |r| stays below ``cartesian_chart_limit_rad``
    (targets beyond are refused) so the chart stays away from its singularity at pi. Ruckig
    limits are per axis, so each is the norm limit / sqrt(3): |linear velocity| and |dr/dt|
    stay within the Cartesian limits; the angular velocity |w| <= |dr/dt| (the SO(3) Jacobian
    of the exponential map has singular values <= 1). Acceleration and jerk of the rotation
    are bounded on the rotation vector only (an approximation of the angular ones). Joint
    limits are not checked here: the driver's Cartesian motion (IK) owns them.
    """

    def __init__(self, config: SafetyConfig | None = None):
        config = config or SafetyConfig()
        super().__init__(config, 6)
        lim = config.limits
        self.limits = lim
        vt, at, jt = lim.cartesian_translation
        vr, ar, jr = lim.cartesian_rotation
        s3 = math.sqrt(3.0)
        self._v_lim = np.array([vt] * 3 + [vr] * 3) / s3
        self._box_lo, self._box_hi = config.inner_box
        self._guard = JerkLimitedGuard(
            6, config.dt, np.array([at] * 3 + [ar] * 3) / s3, np.array([jt] * 3 + [jr] * 3) / s3, self._check
        )
        self._r_ref = np.eye(3)
        self._slack = Slack({"box": 6, "tilt": 1})
        self._safe_rot = np.zeros(3)
        self._measured: np.ndarray | None = None  # measured TCP in the filter's chart (6,)
        self._measured_t = -math.inf

    def _rotations(self, r: np.ndarray) -> np.ndarray:
        return rotvec_to_matrix(r) @ self._r_ref

    def _violations(self, s: np.ndarray) -> dict[str, np.ndarray]:
        """Per-path maxima of the slacked constraints' violations (positive = violated), by name."""
        x = s[:, :3]
        return {
            "box": np.max(np.concatenate([self._box_lo - x, x - self._box_hi], axis=-1), axis=0),
            "tilt": np.array([np.max(tool_tilt(self._rotations(s[:, 3:]))) - self.config.max_tilt_rad]),
        }

    def _check(self, s: np.ndarray, v: np.ndarray) -> str | None:
        viol = self._violations(s)
        if self._slack.exceeded(viol, "box"):
            return "workspace box (TCP would leave it while stopping)"
        if self._slack.exceeded(viol, "tilt"):
            return "tool tilt limit"
        # The orientation chart has no slack: it is centred at sync, so it starts at 0.
        chart = float(np.max(np.linalg.norm(s[:, 3:], axis=-1)))
        if chart > self.config.cartesian_chart_limit_rad:
            return "orientation too far from the orientation at sync"
        return None

    def _tighten_slack(self) -> None:
        self._slack.tighten(self._violations(self._guard.brake_positions))

    @staticmethod
    def _parse_pose(position: np.ndarray, quat_xyzw: np.ndarray) -> tuple[np.ndarray, np.ndarray] | tuple[Reject, str]:
        try:
            x = np.asarray(position, dtype=np.float64).reshape(-1)
            q = np.asarray(quat_xyzw, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            return Reject.NOT_NUMERIC, f"pose not numeric: {exc}"
        if x.shape != (3,) or q.shape != (4,):
            return Reject.SHAPE, f"pose shape: position {x.shape}, quaternion {q.shape}; expected (3,), (4,)"
        if not (np.isfinite(x).all() and np.isfinite(q).all()):
            return Reject.NON_FINITE, "pose has NaN or infinite values"
        n = float(np.linalg.norm(q))
        if abs(n - 1.0) > 0.1:
            return Reject.QUATERNION, f"quaternion norm {n:.3f} is not 1"
        return x, quat_to_matrix(q / n)

    def sync(self, position: np.ndarray, quat_xyzw: np.ndarray, t: float) -> str | None:
        """Start at rest at the measured TCP pose and centre the orientation chart there (first sync,
        or the end of a resync, where the output already rests at this pose: no step either way)."""
        parsed = self._parse_pose(position, quat_xyzw)
        if isinstance(parsed[0], Reject):
            return self._reject(parsed[0], f"measured pose unusable: {parsed[1]}")
        x, rot = parsed
        self._r_ref = rot
        s = np.concatenate([x, np.zeros(3)])
        self._guard.reset(s)
        self._slack.reset(self._violations(s[None, :]))
        self._safe_rot = np.zeros(3)
        self._command = None
        self._stale = False
        self._epoch = max(self._epoch, t) if self.synced else self._epoch
        self.synced = True
        return None

    def sync_joints(self, q_measured: np.ndarray, t: float) -> str | None:
        """Sync to the TCP pose of measured joints (FR3 forward kinematics)."""
        q = np.asarray(q_measured, dtype=np.float64).reshape(-1)
        if q.shape != (7,) or not np.isfinite(q).all():
            return self._reject(Reject.MEASURED_UNUSABLE, "measured joint state unusable")
        tf = forward_kinematics(q)
        return self.sync(tf[:3, 3], matrix_to_quat(tf[:3, :3], hemisphere=W_NON_NEGATIVE), t)

    def check_drift(self, q_measured: np.ndarray, t: float) -> str | None:
        """Take measured joints; start a resync if the TCP left the filter state (returns why).

        As in the joint filter, a resync converges the output to the measured pose on a
        jerk-limited path, then re-centres the chart where the output rests: never a step.
        """
        q = np.asarray(q_measured, dtype=np.float64).reshape(-1)
        if not self.synced:
            return self.sync_joints(q, t)
        if q.shape != (7,) or not np.isfinite(q).all():
            return self._reject(Reject.MEASURED_UNUSABLE, "measured joint state unusable")
        tf = forward_kinematics(q)
        r = matrix_to_rotvec(tf[:3, :3] @ self._r_ref.T)
        if np.linalg.norm(r) > self.config.cartesian_chart_limit_rad:
            r = self._guard.p[3:].copy()  # beyond the chart: converge the position only
        self._measured = np.concatenate([tf[:3, 3], r])
        self._measured_t = float(t)
        if self._resync:
            return None
        drift = float(np.linalg.norm(tf[:3, 3] - self._guard.p[:3]))
        if drift <= self.config.cartesian_resync_tolerance_m:
            return None
        self._resync = True
        self._command = None
        self._stale = False
        self._epoch = max(self._epoch, t)
        self._slack.reset(self._violations(np.vstack([self._guard.brake_positions, self._measured[None, :]])))
        self.interventions[Intervention.RESYNC.value] += 1
        return reason(
            Intervention.RESYNC, f"measured TCP {drift:.3f} m from the command: converging to it jerk-limited"
        )

    def set_target(
        self, position: np.ndarray, quat_xyzw: np.ndarray, stamp: float, source: str, t_now: float
    ) -> str | None:
        """Take a TCP pose target (fr3_link0) observed at ``stamp``. None if accepted, else why not."""
        parsed = self._parse_pose(position, quat_xyzw)
        if isinstance(parsed[0], Reject):
            return self._reject(*parsed)
        if not math.isfinite(stamp):
            return self._reject(Reject.NON_FINITE, "pose stamp is not finite")
        refused = self._validate_common(stamp, stamp + self.config.stale_timeout_s, t_now)
        if refused is not None:
            return self._reject(*refused)
        x, rot = parsed
        self._command = (t_now, (x, rot, str(source)))
        self._stale = False
        return None

    def step(self, t_now: float) -> CartesianOutput | None:
        if not self.synced:
            return None
        mode, brake, notes = self._mode(t_now)
        g = self._guard
        target = tv = v_max = None
        if (
            self._measured is not None
            and t_now - self._measured_t > self.config.measured_timeout_s
            and mode not in ("estop", "fault")
        ):
            mode, brake = "stale", True  # where the arm is is unknown: brake and hold (joint filter)
            notes.append(
                reason(Intervention.STALE, f"no measured joint state for {t_now - self._measured_t:.3f} s: holding")
            )
        elif self._resync and mode not in ("estop", "fault"):
            m = self._measured
            assert m is not None
            if g.at_rest and float(np.linalg.norm(g.p[:3] - m[:3])) <= 0.002:
                self._resync = False
                self.sync(
                    g.p[:3].copy(), matrix_to_quat(self._rotations(g.p[None, 3:])[0], hemisphere=W_NON_NEGATIVE), t_now
                )
                brake, mode = True, "idle"
            else:
                notes.append(reason(Intervention.RESYNC, "converging to the measured pose"))
                mode = "resync"
                brake = self._speed_scale < 1e-3
                if not brake:
                    target, tv, v_max = m.copy(), np.zeros(6), self._v_lim * self._speed_scale
        elif not brake:
            v_max = self._v_lim * self._speed_scale
            if self._speed_scale < 1.0:
                notes.append(reason(Intervention.SPEED_SCALED, f"{self._speed_scale:.2f}"))
            assert self._command is not None  # no command means brake (above)
            x, rot, _ = self._command[1]
            cx = np.clip(x, self._box_lo, self._box_hi)
            if np.any(cx != x):
                notes.append(reason(Intervention.WORKSPACE_CLAMPED, "target TCP outside the box"))
            dx = cx - g.p[:3]
            n = float(np.linalg.norm(dx))
            if n > self.config.cartesian_max_step_m:
                dx *= self.config.cartesian_max_step_m / n
                notes.append(reason(Intervention.STEP_CLAMPED, "target position more than cartesian_max_step_m away"))
            r_t = matrix_to_rotvec(rot @ self._r_ref.T)
            if np.linalg.norm(r_t) > self.config.cartesian_chart_limit_rad:
                notes.append(reason(Intervention.ORIENTATION_REJECTED, "target too far from the orientation at sync"))
                r_t = self._safe_rot
            elif tool_tilt(rot) > self.config.max_tilt_rad + float(self._slack.value("tilt")[0]):
                notes.append(reason(Intervention.ORIENTATION_REJECTED, "target tool tilt beyond max_tilt_rad"))
                r_t = self._safe_rot
            dr = r_t - g.p[3:]
            n = float(np.linalg.norm(dr))
            if n > self.config.cartesian_max_step_rot:
                dr *= self.config.cartesian_max_step_rot / n
                notes.append(reason(Intervention.STEP_CLAMPED, "target rotation more than cartesian_max_step_rot away"))
            self._safe_rot = g.p[3:] + dr
            target = np.concatenate([g.p[:3] + dx, self._safe_rot])
            tv = np.zeros(6)
        why = g.step(target, tv, v_max, brake=brake)
        if why is not None:
            notes.append(reason(Intervention.SAFETY_BRAKE, why))
        elif not brake:
            self._tighten_slack()
        if not (np.isfinite(g.p).all() and np.isfinite(g.v).all()):
            self._fault = "non-finite filter state"
            raise FloatingPointError("Cartesian safety filter state became non-finite")
        self._count(notes)
        self.last_output_time = t_now
        rot = self._rotations(g.p[None, 3:])[0]
        return CartesianOutput(
            t_now, g.p[:3].copy(), matrix_to_quat(rot, hemisphere=W_NON_NEGATIVE), g.v.copy(), g.a.copy(), notes, mode
        )

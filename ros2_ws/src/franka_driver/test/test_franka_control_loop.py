"""The pylibfranka backend's 1 kHz motion against a fake robot stepped at 1 ms: no franky-sim, milliseconds.

Random target streams (positions, velocities, rates, stops, late cycles) are checked against the
FR3 table at the driver's dynamics factor every cycle, by finite differences of what was written
to the robot: the same check libfranka's ``rate_limiting.h`` makes of a real controller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from cdp_core.robot.limits import FR3
from franka_driver.control_loop import HOLD_BEFORE_FINISH_S, JointMotionGenerator, JointTarget, run_motion

pytest.importorskip("ruckig")

Q0 = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785])
FACTOR = 0.6
LIMITS = FR3.generator_limits(FACTOR)


@dataclass
class _State:
    q_d: np.ndarray


@dataclass
class _Duration:
    seconds: float

    def to_sec(self) -> float:
        return self.seconds


class FakeControl:
    """Duck-typed ``ActiveControl``: commanded positions become ``q_d``; periods of 1 ms unless told."""

    def __init__(self, q0: np.ndarray, periods: list[float] | None = None, max_cycles: int = 20000):
        self.q_d = np.array(q0, dtype=np.float64)
        self.periods = list(periods or [])
        self.max_cycles = max_cycles
        self.writes: list[tuple[float, np.ndarray, bool]] = []  # (period before this write, q, finished)
        self._period = 0.001

    def readOnce(self):  # noqa: N802 (pylibfranka's name)
        self._period = self.periods.pop(0) if self.periods else 0.001
        return _State(self.q_d.copy()), _Duration(self._period)

    def writeOnce(self, cmd):  # noqa: N802
        q, finished = cmd
        assert len(self.writes) < self.max_cycles, "the motion never finished"
        self.writes.append((self._period, np.array(q), finished))
        self.q_d = np.array(q)


def _violations(q0: np.ndarray, writes: list[tuple[float, np.ndarray, bool]], check_jerk: bool = True) -> list[str]:
    """Every cycle whose velocity / acceleration / jerk (finite differences) exceeds the limits."""
    vmax, amax, jmax = LIMITS
    q = np.vstack([q0, q0, q0] + [w[1] for w in writes])  # at rest before the motion
    dt = np.array([0.001, 0.001] + [w[0] for w in writes])
    v = np.diff(q, axis=0) / dt[:, None]  # mean velocity over each interval
    a = np.diff(v, axis=0) / (0.5 * (dt[1:] + dt[:-1]))[:, None]  # between interval midpoints
    j = np.diff(a, axis=0) / dt[1:-1, None]
    out = []
    for name, x, lim, tol in (("velocity", v, vmax, 1e-9), ("acceleration", a, amax, 1e-6), ("jerk", j, jmax, 1e-2)):
        if name == "jerk" and not check_jerk:
            continue
        over = np.abs(x) > lim * (1 + tol) + 1e-12
        if over.any():
            k, i = np.argwhere(over)[0]
            out.append(f"{name} {x[k, i]:.4g} > {lim[i]:.4g} at cycle {k}, joint {i + 1}")
    inside = (q >= np.asarray(FR3.q_min)) & (q <= np.asarray(FR3.q_max))
    if not inside.all():
        out.append("position outside the FR3 limits")
    return out


def _random_stream(rng: np.random.Generator, cycles: int, stop_at: int | None = None):
    """poll(): a new random target every 5-150 ms, some with velocities; a stop request from ``stop_at``."""
    targets, t, n = [], 0, 0
    while t < cycles:
        q = np.clip(Q0 + rng.uniform(-0.6, 0.6, 7), np.asarray(FR3.q_min) + 0.05, np.asarray(FR3.q_max) - 0.05)
        dq = rng.uniform(-0.5, 0.5, 7) * LIMITS[0] if rng.random() < 0.5 else None
        targets.append((t, JointTarget(float(n), q, dq)))
        t += int(rng.integers(5, 150))
        n += 1
    cycle = [0]

    def poll():
        k = cycle[0]
        cycle[0] += 1
        current = [tg for start, tg in targets if start <= k][-1]
        return current, stop_at is not None and k >= stop_at

    return targets[0][1], poll


def _run(first, poll, periods=None, gen=None):
    ctrl = FakeControl(Q0, periods)
    gen = gen or JointMotionGenerator(LIMITS)
    stopped = run_motion(ctrl, gen, first, poll, lambda q, fin: (q, fin))
    return ctrl, gen, stopped


@pytest.mark.parametrize("seed", range(12))
def test_random_streams_stay_inside_the_fr3_limits_every_millisecond(seed):
    rng = np.random.default_rng(seed)
    first, poll = _random_stream(rng, cycles=3000, stop_at=3000)
    ctrl, gen, stopped = _run(first, poll)
    assert stopped and ctrl.writes[-1][2]  # braked to rest and ended the motion
    assert _violations(Q0, ctrl.writes) == []
    assert len(ctrl.writes) >= 3000


@pytest.mark.parametrize("seed", range(4))
def test_late_cycles_are_caught_up_without_exceeding_velocity_or_acceleration(seed):
    rng = np.random.default_rng(100 + seed)
    first, poll = _random_stream(rng, cycles=2000, stop_at=2000)
    periods = [float(rng.choice([0.001, 0.001, 0.001, 0.002, 0.003])) for _ in range(2500)]
    ctrl, gen, _ = _run(first, poll, periods)
    assert gen.late_cycles > 100
    # Jerk is not defined across uneven samples; velocity and acceleration are.
    assert _violations(Q0, ctrl.writes, check_jerk=False) == []


def test_a_target_is_reached_at_rest_then_held_for_the_hold_time_of_robot_time():
    goal = Q0 + np.array([0.3, -0.2, 0.2, 0.3, -0.3, 0.2, 0.4])
    target = JointTarget(1.0, goal)
    ctrl, gen, stopped = _run(target, lambda: (target, False))
    assert not stopped and ctrl.writes[-1][2]
    np.testing.assert_allclose(ctrl.writes[-1][1], goal, atol=1e-9)
    at_goal = [k for k, (_, q, _) in enumerate(ctrl.writes) if np.abs(q - goal).max() < 1e-12]
    held = len(ctrl.writes) - at_goal[0]
    assert abs(held * 0.001 - HOLD_BEFORE_FINISH_S) <= 0.002
    assert _violations(Q0, ctrl.writes) == []


def test_a_stop_brakes_without_turning_back_and_ignores_newer_targets():
    far = JointTarget(1.0, Q0 + 1.0 * np.sign(np.arange(7) - 3.0 + 0.5))
    newer = JointTarget(2.0, Q0 - 0.5)
    cycle = [0]

    def poll():
        cycle[0] += 1
        if cycle[0] < 300:
            return far, False
        return newer, True  # a newer target arrives with the stop: it must not be followed

    ctrl, gen, stopped = _run(far, poll)
    assert stopped and ctrl.writes[-1][2]
    q = np.array([w[1] for w in ctrl.writes])
    v = np.diff(q, axis=0) / 0.001
    braking = v[299:]
    moving = np.abs(v[298]) > 1e-6
    # No joint reverses direction while braking.
    assert (np.sign(braking[:, moving]) * np.sign(v[298, moving]) >= 0).all()
    assert np.abs(v[-1]).max() < 1e-6
    assert gen.target_id == 1.0
    assert _violations(Q0, ctrl.writes) == []


def test_a_moving_target_that_is_not_renewed_ends_at_rest():
    goal = Q0 + 0.2
    target = JointTarget(1.0, goal, dq=np.full(7, 0.3))
    ctrl, _, stopped = _run(target, lambda: (target, False))
    assert not stopped
    q = np.array([w[1] for w in ctrl.writes])
    assert np.abs(np.diff(q[-3:], axis=0)).max() < 1e-9  # at rest at the end
    assert _violations(Q0, ctrl.writes) == []

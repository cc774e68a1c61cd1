"""The 1 kHz joint motion of the pylibfranka backend, as plain classes a fake robot can drive.

:class:`JointMotionGenerator` is one continuous Ruckig trajectory from the last *commanded*
state towards the latest target (FR3 velocity / acceleration / jerk limits at the driver's
``relative_dynamics_factor``), advanced by the time the robot actually advanced, so the commanded
positions are continuous to the third derivative whatever the parent streams. Once the target is
reached at rest and nothing new comes for ``hold_before_finish_s`` (robot time), the motion is
finished (the arm holds itself). A stop request, or any Ruckig refusal, brakes to rest on the
velocity interface without turning back.

:func:`run_motion` drives one libfranka motion through a duck-typed controller: ``readOnce() ->
(state, period)`` with ``state.q_d`` and ``period.to_sec()``, and ``writeOnce(command)``. The
control process passes pylibfranka's ``ActiveControl``; the unit tests a fake robot that steps
deterministically at 1 ms, so the loop is tested in milliseconds without franky-sim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The robot is held by the running controller this long after reaching a target at rest,
#: so a target stream with short gaps does not start and stop motions all the time.
HOLD_BEFORE_FINISH_S = 0.5
#: libfranka's control period (s).
CYCLE_S = 0.001
#: At most this many cycles are caught up after a late one (a longer gap is the robot's problem).
MAX_CATCH_UP = 20
#: Fresh robot states read after a motion ends before the next one may start (see :func:`settle`).
SETTLE_STATES = 3


@dataclass(frozen=True)
class JointTarget:
    """One target from the parent: its counter, positions (7,) and velocities (7,) or None."""

    target_id: float
    q: np.ndarray
    dq: np.ndarray | None = None


@dataclass
class CycleResult:
    """What one control cycle commands: positions (7,) and whether the motion ends with them."""

    q: np.ndarray
    finished: bool


class JointMotionGenerator:
    """Ruckig from the commanded state to the latest target; see the module docstring."""

    def __init__(
        self,
        limits: tuple[np.ndarray, np.ndarray, np.ndarray],
        use_velocity: bool = True,
        hold_before_finish_s: float = HOLD_BEFORE_FINISH_S,
    ):
        import ruckig

        self._rk = ruckig
        self.vmax, self.amax, self.jmax = (np.asarray(x, dtype=np.float64) for x in limits)
        self.use_velocity = use_velocity
        self.hold_before_finish_s = hold_before_finish_s
        self.otg = ruckig.Ruckig(7, CYCLE_S)
        self.inp, self.out = ruckig.InputParameter(7), ruckig.OutputParameter(7)
        self.inp.max_velocity, self.inp.max_acceleration = list(self.vmax), list(self.amax)
        self.inp.max_jerk = list(self.jmax)
        self.stopping = False
        self.target_id: float | None = None
        self.late_cycles = 0
        self._rest_s: float | None = None  # robot time spent at rest on the target

    def begin(self, q_d: np.ndarray, target: JointTarget) -> None:
        """Start a motion at the robot's commanded positions ``q_d`` (at rest) towards ``target``."""
        self.inp.current_position = list(np.asarray(q_d, dtype=np.float64))
        self.inp.current_velocity = [0.0] * 7
        self.inp.current_acceleration = [0.0] * 7
        self.stopping = False
        self.retarget(target)

    def retarget(self, target: JointTarget) -> None:
        """A newer target (ignored while braking)."""
        if self.stopping:
            return
        rk = self._rk
        self.target_id = target.target_id
        self.inp.control_interface = rk.ControlInterface.Position
        self.inp.target_position = list(np.asarray(target.q, dtype=np.float64))
        dq = np.array(target.dq, dtype=np.float64) if (self.use_velocity and target.dq is not None) else np.zeros(7)
        dq[np.abs(dq) < 1e-6] = 0.0  # denormal-small velocities trip Ruckig's step 2 at the target
        self.inp.target_velocity = list(np.clip(dq, -self.vmax, self.vmax))
        self.inp.target_acceleration = [0.0] * 7
        self._rest_s = None

    def brake(self) -> None:
        """Brake to rest without turning back (velocity interface); the motion then finishes."""
        if not self.stopping:
            self.stopping = True
            self.inp.control_interface = self._rk.ControlInterface.Velocity
            self.inp.target_velocity = [0.0] * 7
            self.inp.target_acceleration = [0.0] * 7

    def step(self, period_s: float) -> CycleResult:
        """Advance by the robot's ``period_s`` (whole cycles, at least one) and return the command."""
        rk = self._rk
        steps = max(1, min(int(round(period_s / CYCLE_S)), MAX_CATCH_UP))
        if steps > 1:
            self.late_cycles += 1
        res = None
        for _ in range(steps):
            try:
                res = self.otg.update(self.inp, self.out)
            except Exception:  # noqa: BLE001  (RuckigError is not a RuntimeError in every build)
                # A numerical corner case inside Ruckig (seen: "error in step 2" at rest on the
                # target, and with the current acceleration exactly at its limit): brake instead
                # of ending control.
                self.brake()
                res = self.otg.update(self.inp, self.out)
            self.out.pass_to_input(self.inp)
            # Ruckig's own output sits exactly on the acceleration limit while it saturates; fed
            # back unchanged, that boundary state trips its step 2 (seen in CI). A hair inside.
            self.inp.current_acceleration = list(
                np.clip(self.inp.current_acceleration, -self.amax * 0.9999, self.amax * 0.9999)
            )
        if res is not None and int(res) < 0:  # Ruckig refused the input: hold where we are
            self.brake()
        at_rest = res == rk.Result.Finished and max(abs(v) for v in self.out.new_velocity) < 1e-9
        if res == rk.Result.Finished and not at_rest and not self.stopping:
            # Reached a moving target and no newer one came: come to rest at it.
            self.inp.target_velocity = [0.0] * 7
        finished = False
        if at_rest:
            self._rest_s = (self._rest_s or 0.0) + steps * CYCLE_S
            finished = self.stopping or self._rest_s >= self.hold_before_finish_s - 1e-12
        return CycleResult(np.array(self.out.new_position), finished)


def settle(read_once: Callable[[], Any], on_state: Callable[[Any], None], n: int = SETTLE_STATES) -> None:
    """After a motion ends: read ``n`` fresh states (each from a later server cycle) first.

    libfranka ends a motion by sending ``motion_generation_finished`` once per state it receives
    until a state shows the motion over; the last of those datagrams can still be on its way when
    that state arrives. A server that takes a new ``Move`` before draining it (franky-sim handles
    its TCP command first, then the UDP datagrams, each cycle) ends the *new* motion with
    ``kSuccess`` at once, and libfranka reports "Unexpected reply to a Move command" (seen in CI
    under load). Every state read here comes from a cycle that began after the previous read, so
    by the second one every datagram sent before this call has been drained. A few ms on a real
    arm, which is at rest here.
    """
    for _ in range(n):
        on_state(read_once())


#: ``poll() -> (latest target, stop requested)``, read every cycle from the shared command block.
Poll = Callable[[], tuple[JointTarget, bool]]


def run_motion(
    ctrl: Any,
    gen: JointMotionGenerator,
    first: JointTarget,
    poll: Poll,
    make_command: Callable[[np.ndarray, bool], Any],
    on_state: Callable[[Any], None] = lambda _s: None,
) -> bool:
    """One libfranka motion from the commanded state to rest; True when it ended on a stop request.

    ``make_command(q, finished)`` builds what ``ctrl.writeOnce`` takes (pylibfranka's
    ``JointPositions`` with ``motion_finished``); ``on_state`` gets every state read while in control.
    """
    state, _ = ctrl.readOnce()
    gen.begin(np.asarray(state.q_d, dtype=np.float64), first)
    period = CYCLE_S
    while True:
        target, stop = poll()
        if stop:
            gen.brake()
        elif target.target_id != gen.target_id:
            gen.retarget(target)
        cycle = gen.step(period)
        ctrl.writeOnce(make_command(cycle.q, cycle.finished))
        if cycle.finished:
            return gen.stopping
        state, duration = ctrl.readOnce()
        period = duration.to_sec()
        on_state(state)

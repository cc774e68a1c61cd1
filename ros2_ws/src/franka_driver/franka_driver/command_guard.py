"""The driver's last line: who may command the arm, and what a command may be (no rclpy here).

The safety filter is the only path to the arm. The driver does not take that on trust:

* **Source.** Exactly one publisher may exist on the command topic, and it must belong to the
  configured node (``command_source_node``, the safety filter). Each message is accepted only
  if its publisher GID is that publisher's (rmw message info), so a second publisher's
  messages never reach the arm even before the graph shows it; when the graph does show
  another publisher, or a second one under the filter's name, the guard latches a fault: the
  arm brakes and holds until the foreign publisher is gone *and* someone resets.
* **E-stop.** The driver honours the e-stop itself (``/franka/estop``, forwarded by the
  filter's ``/safety/estop``): brake, hold, refuse everything until ``/franka/reset``.
* **Command checks**, independent of the filter's: the FR3 hard position limits and
  velocity limits (one table, :mod:`cdp_core.robot.limits`), the step between consecutive
  accepted commands and the TCP inside the workspace box: a violation means the filter (or
  something posing as it) is broken: latch, brake, hold. A target too far from the measured
  joints is refused without latching (after a reflex the filter's resync brings it back).

A name on the graph can be claimed by anyone who can join the DDS domain; SROS2 access
control (signed permissions per topic) is what makes "only the filter publishes here" hold
against a hostile node, see franka_driver/README.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from cdp_core.robot.limits import WORKSPACE_BOX_MAX, WORKSPACE_BOX_MIN
from cdp_ros_common.names import SAFETY_FILTER_NODE
from cdp_ros_common.sole_publisher import Endpoint, SolePublisher

from .backend import FR3


@dataclasses.dataclass
class GuardConfig:
    """The guard's settings (part of the driver's ROS parameters)."""

    #: Fully qualified node name of the only node allowed to publish commands ("" = any: tests only).
    command_source_node: str = SAFETY_FILTER_NODE
    #: Allowance (rad) on top of the FR3 velocity limit x the time between two consecutive accepted
    #: commands (their stamps, taken as 10 ms to 0.1 s): a command may not move a joint further
    #: from the previous one than the arm could have moved. Commands the subscription dropped
    #: under load make consecutive ones several filter ticks apart, hence the stamps.
    max_step_rad: float = 0.01
    #: Largest per-joint distance (rad) of a command from the measured joints. The filter keeps
    #: its output within its resync tolerance (0.2) of them.
    max_deviation_rad: float = 0.3
    #: Workspace box of the commanded TCP (m, fr3_link0), checked with ``box_tolerance_m``.
    box_min: tuple[float, float, float] = WORKSPACE_BOX_MIN
    box_max: tuple[float, float, float] = WORKSPACE_BOX_MAX
    box_tolerance_m: float = 0.005

    def __post_init__(self) -> None:
        if not (self.max_step_rad > 0 and self.max_deviation_rad > 0 and self.box_tolerance_m >= 0):
            raise ValueError("max_step_rad and max_deviation_rad must be > 0, box_tolerance_m >= 0")
        lo, hi = np.asarray(self.box_min, dtype=float), np.asarray(self.box_max, dtype=float)
        if lo.shape != (3,) or hi.shape != (3,) or np.any(hi <= lo):
            raise ValueError(f"empty workspace box {self.box_min}..{self.box_max}")


class CommandGuard:
    """Accept / refuse each command; latch e-stop and faults (see module docstring)."""

    def __init__(self, config: GuardConfig):
        self.config = config
        self.source = SolePublisher(config.command_source_node)
        self.estopped = False
        self.fault = ""
        self.refused = 0
        self.last_refusal = ""
        self._last_q: np.ndarray | None = None
        self._last_stamp: float | None = None

    @property
    def foreign(self) -> list[str]:
        """Publishers on the command topic other than the configured source."""
        return self.source.foreign

    @property
    def holding(self) -> bool:
        """True while nothing may move the arm (e-stop or latched fault)."""
        return self.estopped or bool(self.fault)

    # -- the graph ------------------------------------------------------------------------
    def update_publishers(self, endpoints: Sequence[Endpoint]) -> str | None:
        """Take the command topic's publishers; returns a fault it latched now, else None."""
        if self.source.update(endpoints) and not self.fault:
            self.fault = (
                f"foreign publisher on the command topic: {', '.join(self.foreign)}; holding until it is "
                "gone and /franka/reset"
            )
            return self.fault
        return None

    # -- events ---------------------------------------------------------------------------
    def estop(self) -> None:
        self.estopped = True

    def reset(self) -> tuple[bool, str]:
        """Clear e-stop and faults, unless a foreign publisher is still there."""
        if self.foreign:
            return False, f"foreign publisher still on the command topic: {', '.join(self.foreign)}"
        self.estopped, self.fault = False, ""
        self.forget_last()
        return True, "e-stop and faults cleared; holding until the next command"

    def forget_last(self) -> None:
        """After a recovery or a hold, the next command is checked against the arm, not an old one."""
        self._last_q = self._last_stamp = None

    # -- commands -------------------------------------------------------------------------
    def check(
        self,
        gid: bytes | None,
        q: np.ndarray,
        dq: np.ndarray | None,
        measured_q: np.ndarray | None,
        tcp_position: np.ndarray | None,
        stamp: float | None = None,
    ) -> str | None:
        """None if the command may go to the arm; else why not. Faults it finds are latched."""
        if self.estopped:
            return self._refuse("e-stop latched: holding until /franka/reset")
        if self.fault:
            return self._refuse(self.fault)
        cfg = self.config
        if not self.source.known:
            return self._refuse(f"{cfg.command_source_node} is not (or not alone) on the command topic yet")
        if not self.source.accepts(gid):
            return self._refuse(f"command from a publisher other than {cfg.command_source_node}")
        q = np.asarray(q, dtype=float)
        if measured_q is not None:
            dev = np.abs(q - np.asarray(measured_q, dtype=float))
            if np.any(dev > cfg.max_deviation_rad):
                # Refused, not latched: after a reflex or a push the filter's output converges
                # back to the arm (its resync) and is taken again once it is near. The next
                # accepted command is checked against the arm, not against an old command.
                j = int(np.argmax(dev))
                self.forget_last()
                return self._refuse(
                    f"fr3_joint{j + 1} commanded {dev[j]:.3f} rad from the measured arm (max {cfg.max_deviation_rad})"
                )
        why = self._motion_problem(q, dq, tcp_position, stamp)
        if why is not None:
            self.fault = f"last-line check: {why}; holding until /franka/reset"
            return self._refuse(self.fault)
        self._last_q, self._last_stamp = q.copy(), stamp
        return None

    def _motion_problem(
        self, q: np.ndarray, dq: np.ndarray | None, tcp_position: np.ndarray | None, stamp: float | None
    ) -> str | None:
        cfg = self.config
        if dq is not None and np.any(np.abs(dq) > np.asarray(FR3.v_max)):
            j = int(np.argmax(np.abs(dq) / np.asarray(FR3.v_max)))
            return f"fr3_joint{j + 1} velocity {dq[j]:.3f} rad/s beyond the FR3's {FR3.v_max[j]:.2f}"
        if self._last_q is not None:
            dt = 0.01
            if stamp is not None and self._last_stamp is not None:
                dt = min(max(stamp - self._last_stamp, 0.01), 0.1)
            step = np.abs(q - self._last_q)
            allowed = np.asarray(FR3.v_max) * dt + cfg.max_step_rad
            if np.any(step > allowed):
                j = int(np.argmax(step - allowed))
                return (
                    f"fr3_joint{j + 1} steps {step[j]:.3f} rad between two commands {dt * 1e3:.0f} ms apart "
                    f"(the FR3 moves at most {allowed[j]:.3f})"
                )
        if tcp_position is not None:
            x = np.asarray(tcp_position, dtype=float)
            lo = np.asarray(cfg.box_min) - cfg.box_tolerance_m
            hi = np.asarray(cfg.box_max) + cfg.box_tolerance_m
            if np.any(x < lo) or np.any(x > hi):
                return f"commanded TCP {np.round(x, 4).tolist()} outside the workspace box"
        return None

    def _refuse(self, why: str) -> str:
        self.refused += 1
        self.last_refusal = why
        return why

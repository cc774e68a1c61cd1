"""Command validation and bookkeeping for the driver node (no rclpy: messages are duck-typed).

A /safety/command JointTrajectory must carry exactly one point naming all seven FR3 joints,
with finite positions inside the FR3 limits and, optionally, as many finite velocities; anything
else is refused whole (counted, reported) and the arm keeps doing what it did.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from cdp_ros_common.conversions import MessageError
from cdp_ros_common.names import BASE_FRAME, JOINT_NAMES

from .backend import canonical_quat, validate_joint_target


def parse_joint_command(msg: Any, joint_names: Sequence[str] = JOINT_NAMES) -> tuple[np.ndarray, np.ndarray | None]:
    """trajectory_msgs/JointTrajectory (one point) -> (q (7,), dq (7,) or None) in ``joint_names`` order."""
    names = list(msg.joint_names)
    missing = [j for j in joint_names if j not in names]
    if missing:
        raise MessageError(f"command lacks joints {missing} (has {names})")
    if len(set(names)) != len(names):
        raise MessageError(f"command names a joint twice: {names}")
    if len(msg.points) != 1:
        raise MessageError(f"command must have exactly one point, has {len(msg.points)}")
    p = msg.points[0]
    if len(p.positions) != len(names):
        raise MessageError(f"command has {len(p.positions)} positions for {len(names)} joints")
    index = [names.index(j) for j in joint_names]
    q = np.array([p.positions[i] for i in index], dtype=np.float64)
    dq = None
    if len(p.velocities):
        if len(p.velocities) != len(names):
            raise MessageError(f"command has {len(p.velocities)} velocities for {len(names)} joints")
        dq = np.array([p.velocities[i] for i in index], dtype=np.float64)
    try:
        return validate_joint_target(q, dq)
    except ValueError as exc:
        raise MessageError(str(exc)) from exc


def parse_pose_command(msg: Any) -> tuple[np.ndarray, np.ndarray]:
    """geometry_msgs/PoseStamped in fr3_link0 -> (position (3,), quaternion xyzw (4,), w >= 0)."""
    frame = msg.header.frame_id
    if frame not in ("", BASE_FRAME):
        raise MessageError(f"Cartesian command must be in {BASE_FRAME!r}, got frame {frame!r}")
    p, o = msg.pose.position, msg.pose.orientation
    pos = np.array([p.x, p.y, p.z], dtype=np.float64)
    quat = np.array([o.x, o.y, o.z, o.w], dtype=np.float64)
    if not (np.isfinite(pos).all() and np.isfinite(quat).all()):
        raise MessageError("Cartesian command contains NaN or infinite values")
    norm = float(np.linalg.norm(quat))
    if abs(norm - 1.0) > 1e-3:
        raise MessageError(f"Cartesian command quaternion is not unit length (|q| = {norm:.4g})")
    return pos, canonical_quat(quat)


@dataclasses.dataclass
class CommandMonitor:
    """Counts accepted / rejected commands, measures their rate, and decides when a stream that
    carried velocities went quiet long enough to be replaced by a hold at rest."""

    timeout_s: float
    window_s: float = 2.0
    accepted: int = 0
    rejected: int = 0
    refused: int = 0  # valid, but the backend refused (in error)
    last_reject_reason: str = ""
    last_time: float = math.nan
    last_q: np.ndarray | None = None
    moving: bool = False  # the last accepted target carried a non-zero velocity
    _times: collections.deque = dataclasses.field(default_factory=collections.deque)

    def on_accepted(self, now: float, q: np.ndarray, dq: np.ndarray | None) -> None:
        self.accepted += 1
        self.last_time = now
        self.last_q = np.array(q, dtype=np.float64)
        self.moving = dq is not None and bool(np.any(dq != 0.0))
        self._times.append(now)
        self._trim(now)

    def on_rejected(self, reason: str) -> None:
        self.rejected += 1
        self.last_reject_reason = reason

    def forget_target(self) -> None:
        """After a recovery nothing from before may be replayed or held on its behalf."""
        self.last_q = None
        self.moving = False

    def hold_due(self, now: float) -> np.ndarray | None:
        """The position to hold at rest when a velocity-carrying stream went quiet, once."""
        if self.moving and self.last_q is not None and now - self.last_time > self.timeout_s:
            self.moving = False
            return self.last_q
        return None

    def rate(self, now: float) -> float:
        self._trim(now)
        return len(self._times) / self.window_s

    def age(self, now: float) -> float:
        return now - self.last_time if math.isfinite(self.last_time) else math.inf

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()

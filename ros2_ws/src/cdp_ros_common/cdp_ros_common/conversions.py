"""Conversions between ROS messages and the numpy arrays the plain classes work on."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import PoseStamped
from std_msgs.msg import Float64MultiArray, MultiArrayDimension
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from .names import BASE_FRAME, JOINT_NAMES


class MessageError(ValueError):
    """A message that cannot be turned into a command: wrong joints, wrong sizes, non-finite values.

    ``kind`` names the problem from a fixed set (``missing_joints``, ``duplicate_joints``,
    ``shape``, ``non_finite``, ``times_not_increasing``, ``malformed``) so that receivers can
    count rejections without parsing the text.
    """

    def __init__(self, message: str, kind: str = "malformed"):
        super().__init__(message)
        self.kind = kind


def time_to_sec(t: Time) -> float:
    """builtin_interfaces/Time -> seconds (float)."""
    return t.sec + t.nanosec * 1e-9


def sec_to_time(s: float) -> Time:
    """Seconds -> builtin_interfaces/Time (non-negative)."""
    ns = int(round(max(s, 0.0) * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def sec_to_duration(s: float) -> Duration:
    """Seconds -> builtin_interfaces/Duration (non-negative)."""
    ns = int(round(max(s, 0.0) * 1e9))
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def duration_to_sec(d: Duration) -> float:
    return d.sec + d.nanosec * 1e-9


def chunk_to_msg(
    t0: float, dt: float, positions: np.ndarray, joint_names: Sequence[str] = JOINT_NAMES, frame_id: str = BASE_FRAME
) -> JointTrajectory:
    """An action chunk (K x n joint targets) stamped ``t0``; point k is due at ``t0 + k * dt``."""
    msg = JointTrajectory()
    msg.header.stamp = sec_to_time(t0)
    msg.header.frame_id = frame_id
    msg.joint_names = list(joint_names)
    for k, q in enumerate(np.asarray(positions, dtype=np.float64)):
        msg.points.append(
            JointTrajectoryPoint(positions=[float(v) for v in q], time_from_start=sec_to_duration(k * dt))
        )
    return msg


def msg_to_chunk(msg: JointTrajectory, joint_names: Sequence[str] = JOINT_NAMES) -> tuple[np.ndarray, np.ndarray]:
    """JointTrajectory -> (absolute due times (K,), positions (K, n)) in ``joint_names`` order.

    Raises :class:`MessageError` for missing joints, ragged or empty points, non-increasing
    times or non-finite numbers: a malformed command is rejected whole, never half-used.
    """
    names = list(msg.joint_names)
    if len(set(names)) != len(names):
        # Which of two values for one joint is meant cannot be known: refuse, never pick one.
        twice = sorted({j for j in names if names.count(j) > 1})
        raise MessageError(f"trajectory names joints {twice} more than once", "duplicate_joints")
    missing = [j for j in joint_names if j not in names]
    if missing:
        raise MessageError(f"trajectory lacks joints {missing} (has {names})", "missing_joints")
    if not msg.points:
        raise MessageError("trajectory has no points", "shape")
    index = [names.index(j) for j in joint_names]
    t0 = time_to_sec(msg.header.stamp)
    times, rows = [], []
    for k, p in enumerate(msg.points):
        if len(p.positions) != len(names):
            raise MessageError(f"point {k} has {len(p.positions)} positions for {len(names)} joints", "shape")
        rows.append([p.positions[i] for i in index])
        times.append(t0 + duration_to_sec(p.time_from_start))
    q = np.asarray(rows, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if not np.isfinite(q).all():
        raise MessageError("trajectory contains NaN or infinite positions", "non_finite")
    if np.any(np.diff(t) <= 0):
        raise MessageError("trajectory point times must increase strictly", "times_not_increasing")
    return t, q


def pose_to_msg(stamp: float, position: np.ndarray, quat_xyzw: np.ndarray, frame_id: str = BASE_FRAME) -> PoseStamped:
    """Position (m) + quaternion (x, y, z, w) -> PoseStamped."""
    msg = PoseStamped()
    msg.header.stamp = sec_to_time(stamp)
    msg.header.frame_id = frame_id
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = (float(v) for v in position)
    q.x, q.y, q.z, q.w = (float(v) for v in quat_xyzw)
    return msg


def msg_to_pose(msg: PoseStamped) -> tuple[float, np.ndarray, np.ndarray]:
    """PoseStamped -> (stamp seconds, position (3,), quaternion x, y, z, w (4,))."""
    p, q = msg.pose.position, msg.pose.orientation
    return time_to_sec(msg.header.stamp), np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w])


def array_to_msg(a: np.ndarray, labels: Sequence[str]) -> Float64MultiArray:
    """An n-d array as std_msgs/Float64MultiArray (row-major, one labelled dimension per axis)."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    if len(labels) != a.ndim:
        raise ValueError(f"{len(labels)} labels for a {a.ndim}-d array")
    msg = Float64MultiArray()
    stride = a.size
    for label, size in zip(labels, a.shape, strict=True):
        msg.layout.dim.append(MultiArrayDimension(label=label, size=int(size), stride=int(stride)))
        stride //= max(int(size), 1)
    msg.data = a.ravel().tolist()
    return msg


def msg_to_array(msg: Float64MultiArray) -> np.ndarray:
    """The inverse of :func:`array_to_msg`; ValueError when the layout does not match the data."""
    shape = tuple(int(d.size) for d in msg.layout.dim)
    data = np.asarray(msg.data, dtype=np.float64)[int(msg.layout.data_offset) :]
    if int(np.prod(shape)) != data.size:
        raise ValueError(f"layout {shape} does not hold {data.size} values")
    return data.reshape(shape)

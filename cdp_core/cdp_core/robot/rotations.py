"""The one rotation module: quaternions (x, y, z, w, as geometry_msgs orders them), rotation
matrices, rotation vectors, rigid transforms. numpy only.

q and -q are the same rotation, so every function that *returns* a quaternion takes an explicit
``hemisphere``: a reference quaternion whose dot product with the result is >= 0.

* :data:`W_NON_NEGATIVE` (w >= 0): the message convention of ``/franka/ee_pose`` and the
  perception topics. It is discontinuous at 180-degree rotations.
* :data:`TOOL_DOWN`: the observation convention of the policies. A Franka tool pointing down
  *is* a 180-degree rotation about x, so w sits near 0 there and a millimetre of motion would flip
  every component's sign under ``w >= 0``; the hemisphere around tool-down has its boundary at a
  90-degree tilt, which tabletop tasks never reach.

Naming of transforms: ``a_T_b`` maps points in frame ``b`` into frame ``a`` (``p_a = a_T_b @ p_b``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

#: Reference of the message convention: the result has w >= 0.
W_NON_NEGATIVE = np.array([0.0, 0.0, 0.0, 1.0])
#: Tool pointing down (TCP z axis = -z of the base): 180 degrees about the base x axis.
TOOL_DOWN = np.array([1.0, 0.0, 0.0, 0.0])


class QuaternionError(ValueError):
    """A quaternion that is not a rotation (non-finite or zero length)."""


def canonical_quat(q_xyzw: np.ndarray, hemisphere: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w), sign chosen so that its dot product with ``hemisphere`` is >= 0.

    A unit input stays bit-exact (only its sign may change).
    """
    q = np.asarray(q_xyzw, dtype=np.float64).reshape(4)
    n = float(np.linalg.norm(q))
    if not np.isfinite(q).all() or n < 1e-9:
        raise QuaternionError(f"quaternion {q.tolist()} is not a rotation")
    if abs(n - 1.0) > 1e-9:
        q = q / n
    return -q if float(q @ np.asarray(hemisphere, dtype=np.float64)) < 0 else q


def quat_to_matrix(q_xyzw: np.ndarray) -> np.ndarray:
    """Quaternion (x, y, z, w; any length but zero, either sign) -> 3x3 rotation matrix."""
    x, y, z, w = canonical_quat(q_xyzw, W_NON_NEGATIVE)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(r: np.ndarray, *, hemisphere: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix -> unit quaternion (x, y, z, w) in ``hemisphere`` (Shepperd's method)."""
    r = np.asarray(r, dtype=np.float64).reshape(3, 3)
    if not np.isfinite(r).all():
        raise QuaternionError(f"rotation matrix has non-finite entries: {r.tolist()}")
    tr = float(np.trace(r))
    q: list[float]
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s]
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        q = [0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s]
    elif r[1, 1] > r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        q = [(r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        q = [(r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s, (r[1, 0] - r[0, 1]) / s]
    qa = np.asarray(q)
    return canonical_quat(qa / np.linalg.norm(qa), hemisphere)


def rotvec_to_matrix(r: np.ndarray) -> np.ndarray:
    """Rotation vector(s) (..., 3) -> rotation matrices (..., 3, 3) (Rodrigues)."""
    r = np.asarray(r, dtype=np.float64)
    theta = np.linalg.norm(r, axis=-1)[..., None, None]
    k = np.zeros(r.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2] = -r[..., 2], r[..., 1]
    k[..., 1, 0], k[..., 1, 2] = r[..., 2], -r[..., 0]
    k[..., 2, 0], k[..., 2, 1] = -r[..., 1], r[..., 0]
    small = theta < 1e-8
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 1.0, np.sin(safe) / safe)
    b = np.where(small, 0.5, (1 - np.cos(safe)) / safe**2)
    return np.eye(3) + a * k + b * (k @ k)


def matrix_to_rotvec(r: np.ndarray) -> np.ndarray:
    """Rotation matrix -> rotation vector with angle in [0, pi]."""
    q = matrix_to_quat(r, hemisphere=W_NON_NEGATIVE)  # w >= 0, so the angle is in [0, pi]
    s = np.linalg.norm(q[:3])
    if s < 1e-12:
        return np.zeros(3)
    return q[:3] / s * 2.0 * np.arctan2(s, q[3])


def rotation_angle(r: np.ndarray) -> float:
    """Angle (rad) of a rotation matrix, in [0, pi]."""
    return float(np.arccos(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)))


def rot_z(yaw: float) -> np.ndarray:
    """Rotation (3, 3) by ``yaw`` rad about z."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def yaw_quat(yaw: float) -> np.ndarray:
    """Quaternion (x, y, z, w) of a rotation by ``yaw`` about z, w >= 0 for |yaw| <= pi."""
    return np.array([0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)])


def quat_yaw(q_xyzw: np.ndarray) -> float:
    """Yaw (rad) of a quaternion that rotates about z only (the inverse of :func:`yaw_quat`)."""
    x, y, z, w = canonical_quat(q_xyzw, W_NON_NEGATIVE)
    return float(2.0 * np.arctan2(z, w))


def tool_tilt(rotation: np.ndarray) -> np.ndarray:
    """Angle(s) (rad) between the tool z axis and world -z, for rotations (..., 3, 3)."""
    return np.arccos(np.clip(-np.asarray(rotation)[..., 2, 2], -1.0, 1.0))


def make_transform(rotation: ArrayLike, translation: ArrayLike) -> np.ndarray:
    """4x4 rigid transform from a rotation (3, 3) and a translation (3,)."""
    t = np.eye(4)
    t[:3, :3] = np.asarray(rotation, dtype=np.float64)
    t[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
    return t


def invert_transform(t: np.ndarray) -> np.ndarray:
    """Inverse of a 4x4 rigid transform."""
    r, p = t[:3, :3], t[:3, 3]
    return make_transform(r.T, -r.T @ p)


def pose_to_transform(position: np.ndarray, quat_xyzw: np.ndarray) -> np.ndarray:
    """4x4 transform of a pose (position, quaternion x y z w)."""
    return make_transform(quat_to_matrix(quat_xyzw), position)


def transform_to_pose(t: np.ndarray, *, hemisphere: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position (3,), quaternion x y z w in ``hemisphere``) of a 4x4 transform."""
    return np.asarray(t)[:3, 3].copy(), matrix_to_quat(np.asarray(t)[:3, :3], hemisphere=hemisphere)

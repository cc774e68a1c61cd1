"""Rigid transforms as 4x4 numpy arrays, quaternions (x, y, z, w like geometry_msgs), error metrics.

Naming: ``a_T_b`` maps points expressed in frame ``b`` into frame ``a`` (``p_a = a_T_b @ p_b``).
"""

from __future__ import annotations

import numpy as np
from cdp_ros_common.rotations import matrix_to_quat, quat_to_matrix  # noqa: F401 (re-exported)


def make_transform(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    t = np.eye(4)
    t[:3, :3] = np.asarray(rotation, dtype=np.float64)
    t[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
    return t


def invert(t: np.ndarray) -> np.ndarray:
    r, p = t[:3, :3], t[:3, 3]
    return make_transform(r.T, -r.T @ p)




def pose_to_transform(position: np.ndarray, quat_xyzw: np.ndarray) -> np.ndarray:
    return make_transform(quat_to_matrix(quat_xyzw), position)


def transform_to_pose(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return t[:3, 3].copy(), matrix_to_quat(t[:3, :3])


def rotvec_to_matrix(rvec: np.ndarray) -> np.ndarray:
    r = np.asarray(rvec, dtype=np.float64).reshape(3)
    theta = float(np.linalg.norm(r))
    if theta < 1e-12:
        return np.eye(3)
    k = r / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


def matrix_to_rotvec(r: np.ndarray) -> np.ndarray:
    q = matrix_to_quat(r)
    s = np.linalg.norm(q[:3])
    if s < 1e-12:
        return np.zeros(3)
    return q[:3] / s * 2.0 * np.arctan2(s, q[3])


def rotation_angle(r: np.ndarray) -> float:
    """Angle (rad) of a rotation matrix, in [0, pi]."""
    return float(np.arccos(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)))


def transform_error(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(translation error in metres, rotation error in degrees) between two transforms."""
    dt = float(np.linalg.norm(a[:3, 3] - b[:3, 3]))
    dr = np.degrees(rotation_angle(a[:3, :3].T @ b[:3, :3]))
    return dt, float(dr)


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """world_T_cam of an OpenCV camera (z forward, x right, y down) at ``eye`` looking at ``target``."""
    eye, target = np.asarray(eye, dtype=np.float64), np.asarray(target, dtype=np.float64)
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-6:  # looking straight along ``up``: any x perpendicular to z will do
        x = np.cross(z, np.array([1.0, 0.0, 0.0]))
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return make_transform(np.column_stack([x, y, z]), eye)


def average_rotations(rotations: list[np.ndarray], weights: np.ndarray | None = None) -> np.ndarray:
    """Chordal L2 mean of rotation matrices (SVD projection of the weighted sum)."""
    w = np.ones(len(rotations)) if weights is None else np.asarray(weights, dtype=np.float64)
    m = sum(wi * ri for wi, ri in zip(w, rotations))
    u, _, vt = np.linalg.svd(m)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    return u @ d @ vt


def slerp(r0: np.ndarray, r1: np.ndarray, alpha: float) -> np.ndarray:
    """Rotation ``alpha`` of the way from r0 to r1 (geodesic)."""
    return r0 @ rotvec_to_matrix(alpha * matrix_to_rotvec(r0.T @ r1))

"""Perception's geometry: error metrics, camera placement, rotation averaging and slerp. The
transforms, quaternions and rotation vectors themselves are the FR3 model's
(:mod:`cdp_core.robot.rotations`), re-exported here for perception's modules.

Naming: ``a_T_b`` maps points expressed in frame ``b`` into frame ``a`` (``p_a = a_T_b @ p_b``).
"""

from __future__ import annotations

import numpy as np
from cdp_core.robot.rotations import (
    W_NON_NEGATIVE,
    make_transform,
    matrix_to_quat,
    matrix_to_rotvec,
    pose_to_transform,
    quat_to_matrix,
    rotation_angle,
    rotvec_to_matrix,
)
from cdp_core.robot.rotations import invert_transform as invert
from cdp_core.robot.rotations import transform_to_pose as _transform_to_pose

__all__ = [
    "average_rotations",
    "invert",
    "look_at",
    "make_transform",
    "matrix_to_quat",
    "matrix_to_rotvec",
    "pose_to_transform",
    "quat_to_matrix",
    "rotation_angle",
    "rotvec_to_matrix",
    "slerp",
    "transform_error",
    "transform_to_pose",
]


def transform_to_pose(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position, quaternion x y z w) of a transform, in the message convention (w >= 0)."""
    return _transform_to_pose(t, hemisphere=W_NON_NEGATIVE)


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

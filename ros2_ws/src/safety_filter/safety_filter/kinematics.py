"""FR3 forward kinematics in numpy, vectorised over batches of joint configurations.

Franka's published modified Denavit-Hartenberg (Craig) parameters for the FR3 (the same as
Panda), frame i relative to frame i-1: ``T = RotX(alpha) TransX(a) RotZ(theta) TransZ(d)``.

======  ========  =======  ========
joint   a (m)     d (m)    alpha
======  ========  =======  ========
1       0         0.333    0
2       0         0        -pi/2
3       0         0.316    pi/2
4       0.0825    0        pi/2
5       -0.0825   0.384    -pi/2
6       0         0        pi/2
7       0.088     0        pi/2
flange  0         0.107    0
======  ========  =======  ========

The Franka Hand's TCP is 0.1034 m along the flange z axis, rotated -pi/4 about z
(libfranka's default ``F_T_EE`` with the hand). That is also the ``tcp`` frame franky-sim's
``Robot.kinematics(q)`` returns (flange ``link8`` * (xyz 0 0 0.1034, rpy 0 0 -pi/4)); the test
``test_kinematics.py`` checks the two agree within 1 mm.
"""

from __future__ import annotations

import numpy as np

DH_A = np.array([0.0, 0.0, 0.0, 0.0825, -0.0825, 0.0, 0.088])
DH_D = np.array([0.333, 0.0, 0.316, 0.0, 0.384, 0.0, 0.0])
DH_ALPHA = np.array([0.0, -np.pi / 2, np.pi / 2, np.pi / 2, -np.pi / 2, np.pi / 2, np.pi / 2])
FLANGE_D = 0.107
HAND_TCP_Z = 0.1034
HAND_TCP_YAW = -np.pi / 4


def _tcp_offset(tcp_z: float, tcp_yaw: float) -> np.ndarray:
    c, s = np.cos(tcp_yaw), np.sin(tcp_yaw)
    t = np.eye(4)
    t[:2, :2] = [[c, -s], [s, c]]
    t[2, 3] = FLANGE_D + tcp_z
    return t


_DEFAULT_FLANGE_TO_TCP = _tcp_offset(HAND_TCP_Z, HAND_TCP_YAW)


def forward_kinematics(q: np.ndarray, tcp_z: float = HAND_TCP_Z, tcp_yaw: float = HAND_TCP_YAW) -> np.ndarray:
    """Homogeneous TCP pose(s) in ``fr3_link0`` for joint positions ``q`` of shape (..., 7).

    Returns an array of shape (..., 4, 4). ``tcp_z = 0, tcp_yaw = 0`` gives the flange.
    """
    q = np.asarray(q, dtype=np.float64)
    if q.shape[-1] != 7:
        raise ValueError(f"forward_kinematics expects (..., 7) joint positions, got shape {q.shape}")
    batch = q.shape[:-1]
    ct, st = np.cos(q), np.sin(q)
    ca, sa = np.cos(DH_ALPHA), np.sin(DH_ALPHA)
    # Modified DH: RotX(alpha) TransX(a) RotZ(theta) TransZ(d), written out.
    m = np.zeros(batch + (7, 4, 4))
    m[..., 0, 0] = ct
    m[..., 0, 1] = -st
    m[..., 0, 3] = DH_A
    m[..., 1, 0] = st * ca
    m[..., 1, 1] = ct * ca
    m[..., 1, 2] = -sa
    m[..., 1, 3] = -sa * DH_D
    m[..., 2, 0] = st * sa
    m[..., 2, 1] = ct * sa
    m[..., 2, 2] = ca
    m[..., 2, 3] = ca * DH_D
    m[..., 3, 3] = 1.0
    t = m[..., 0, :, :]
    for i in range(1, 7):
        t = t @ m[..., i, :, :]
    offset = _DEFAULT_FLANGE_TO_TCP if (tcp_z, tcp_yaw) == (HAND_TCP_Z, HAND_TCP_YAW) else _tcp_offset(tcp_z, tcp_yaw)
    return t @ offset


def tcp_position(q: np.ndarray) -> np.ndarray:
    """TCP position(s) (..., 3) for joint positions (..., 7)."""
    return forward_kinematics(q)[..., :3, 3]


# Rotation helpers (numpy only; quaternions are x, y, z, w like geometry_msgs) --------------

from cdp_ros_common.rotations import matrix_to_quat, quat_to_matrix  # noqa: E402,F401 (re-exported)


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
    q = matrix_to_quat(r)  # w >= 0, so angle in [0, pi]
    s = np.linalg.norm(q[:3])
    if s < 1e-12:
        return np.zeros(3)
    angle = 2.0 * np.arctan2(s, q[3])
    return q[:3] / s * angle


def tool_tilt(rotation: np.ndarray) -> np.ndarray:
    """Angle(s) (rad) between the tool z axis and world -z, for rotations (..., 3, 3)."""
    return np.arccos(np.clip(-np.asarray(rotation)[..., 2, 2], -1.0, 1.0))

"""Differential kinematics of the FR3 TCP and damped-least-squares IK (numpy only, no ROS).

Forward kinematics is the safety filter's (``safety_filter.kinematics``: Franka's modified DH
plus the Franka Hand TCP, checked against franky-sim's ``tcp`` frame), so the teleop target,
the filter's workspace box and the recorded ``/franka/ee_pose`` all speak about the same point.
The Jacobian is taken by central differences of that FK in one batched call: 14 FK evaluations
cost about as much as one analytic Jacobian in numpy, and it can never drift from the FK.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from safety_filter.kinematics import forward_kinematics, matrix_to_rotvec

#: FR3 joint position limits (datasheet; the same numbers as ``safety_filter.limits.FR3Limits``).
Q_MIN = np.array([-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159])
Q_MAX = np.array([2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159])

_H = 1e-6


def tcp_pose(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position (3,), rotation matrix (3, 3)) of the TCP in ``fr3_link0``."""
    t = forward_kinematics(np.asarray(q, dtype=np.float64))
    return t[:3, 3].copy(), t[:3, :3].copy()


def jacobian(q: np.ndarray) -> np.ndarray:
    """Geometric TCP Jacobian (6, 7) in the base frame: rows vx, vy, vz, wx, wy, wz."""
    q = np.asarray(q, dtype=np.float64).reshape(7)
    steps = np.concatenate([np.eye(7), -np.eye(7)]) * _H
    t = forward_kinematics(q[None] + steps)  # (14, 4, 4)
    tp, tm = t[:7], t[7:]
    r0 = forward_kinematics(q)[:3, :3]
    jac = np.empty((6, 7))
    jac[:3] = ((tp[:, :3, 3] - tm[:, :3, 3]) / (2 * _H)).T
    # dR R^T = [w]x: take the skew part so rounding noise in the symmetric part is ignored.
    w = (tp[:, :3, :3] - tm[:, :3, :3]) / (2 * _H) @ r0.T
    jac[3] = 0.5 * (w[:, 2, 1] - w[:, 1, 2])
    jac[4] = 0.5 * (w[:, 0, 2] - w[:, 2, 0])
    jac[5] = 0.5 * (w[:, 1, 0] - w[:, 0, 1])
    return jac


def pose_error(q: np.ndarray, pos: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """6-vector (position error, rotation vector of rot @ R(q)^T) from the TCP at ``q`` to (pos, rot)."""
    p, r = tcp_pose(q)
    return np.concatenate([np.asarray(pos) - p, matrix_to_rotvec(np.asarray(rot) @ r.T)])


@dataclass
class IKConfig:
    """Damped-least-squares settings."""

    damping: float = 1e-3
    iterations: int = 30
    tol_pos_m: float = 1e-4
    tol_rot_rad: float = 1e-3
    #: Distance (rad) kept from the joint limits by every solution (the filter keeps 0.05).
    limit_margin: float = 0.08
    #: Pull towards the seed's null space posture per iteration (0 = none): keeps the elbow where it was.
    nullspace_gain: float = 0.0


@dataclass
class IKResult:
    q: np.ndarray
    pos_error_m: float
    rot_error_rad: float
    converged: bool


def solve_ik(q_seed: np.ndarray, pos: np.ndarray, rot: np.ndarray, cfg: IKConfig | None = None) -> IKResult:
    """Joint positions placing the TCP at ``pos`` with orientation ``rot``, starting from ``q_seed``.

    Solutions are clamped ``limit_margin`` inside the joint limits at every iteration, so the
    result is always a configuration the filter accepts; ``converged`` says whether it also
    reaches the pose (the caller decides what to do with an unreachable target).
    """
    cfg = cfg or IKConfig()
    q = np.clip(np.asarray(q_seed, dtype=np.float64).reshape(7), Q_MIN + cfg.limit_margin, Q_MAX - cfg.limit_margin)
    q_rest = q.copy()
    lam = cfg.damping * np.eye(6)
    err = pose_error(q, pos, rot)
    for _ in range(cfg.iterations):
        if np.linalg.norm(err[:3]) < cfg.tol_pos_m and np.linalg.norm(err[3:]) < cfg.tol_rot_rad:
            break
        jac = jacobian(q)
        jjt_inv = np.linalg.solve(jac @ jac.T + lam, np.eye(6))
        dq = jac.T @ jjt_inv @ err
        if cfg.nullspace_gain > 0:
            null = np.eye(7) - jac.T @ jjt_inv @ jac
            dq = dq + cfg.nullspace_gain * null @ (q_rest - q)
        q = np.clip(q + dq, Q_MIN + cfg.limit_margin, Q_MAX - cfg.limit_margin)
        err = pose_error(q, pos, rot)
    pe, re = float(np.linalg.norm(err[:3])), float(np.linalg.norm(err[3:]))
    return IKResult(q, pe, re, pe < cfg.tol_pos_m * 10 and re < cfg.tol_rot_rad * 10)

"""FR3 kinematics: vectorised forward kinematics, the analytic geometric Jacobian and one
damped-least-squares IK with joint-limit handling. numpy only.

Franka's published modified Denavit-Hartenberg (Craig) parameters, identical for FR3 and Panda
(frames.rst of the Franka Control Interface documentation); frame i relative to frame i-1 is
``RotX(alpha) TransX(a) RotZ(theta) TransZ(d)``, and joint i turns about the z axis of frame i:

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

Tools are data (:class:`Tool`): the flange-to-TCP transform, libfranka's ``F_T_EE``. The
Franka Hand's is 0.1034 m along the flange z axis, rotated -pi/4 about z, which is also the
``tcp`` frame franky-sim's pinocchio model returns; ``cdp_core/tests/test_robot_model.py``
checks FK and Jacobian against that model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .limits import FR3, FR3Limits
from .rotations import make_transform, matrix_to_rotvec, rot_z

DH_A = np.array([0.0, 0.0, 0.0, 0.0825, -0.0825, 0.0, 0.088])
DH_D = np.array([0.333, 0.0, 0.316, 0.0, 0.384, 0.0, 0.0])
DH_ALPHA = np.array([0.0, -np.pi / 2, np.pi / 2, np.pi / 2, -np.pi / 2, np.pi / 2, np.pi / 2])
FLANGE_D = 0.107


@dataclass(frozen=True, eq=False)
class Tool:
    """A tool on the flange: its name and ``F_T_EE`` (flange -> TCP, 4x4)."""

    name: str
    flange_T_tcp: np.ndarray = field(default_factory=lambda: np.eye(4))

    @classmethod
    def along_z(cls, name: str, z: float, yaw: float = 0.0) -> "Tool":
        """A tool whose TCP is ``z`` m along the flange z axis, turned ``yaw`` rad about it."""
        return cls(name, make_transform(rot_z(yaw), [0.0, 0.0, z]))


#: The bare flange (``link8``).
FLANGE = Tool("flange")
#: Distance (m) of the Franka Hand's TCP from the flange along z (also from the hand's own frame,
#: which is the flange turned -pi/4 about z; the simulated task bodies are attached there).
HAND_TCP_Z = 0.1034
#: The Franka Hand's TCP (libfranka's default ``F_T_EE`` with the hand attached).
FRANKA_HAND = Tool.along_z("franka_hand", HAND_TCP_Z, -np.pi / 4)


def _tool_matrix(tool: Tool | np.ndarray) -> np.ndarray:
    m = tool.flange_T_tcp if isinstance(tool, Tool) else np.asarray(tool, dtype=np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"a tool transform must be 4x4, got shape {m.shape}")
    return m


def joint_frames(q: np.ndarray) -> np.ndarray:
    """Frames 1..7 and the flange in ``fr3_link0`` for joints ``q`` (..., 7): shape (..., 8, 4, 4)."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape[-1:] != (7,):
        raise ValueError(f"FR3 kinematics expects (..., 7) joint positions, got shape {q.shape}")
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
    frames = np.empty(batch + (8, 4, 4))
    t = m[..., 0, :, :]
    frames[..., 0, :, :] = t
    for i in range(1, 7):
        t = t @ m[..., i, :, :]
        frames[..., i, :, :] = t
    flange = np.eye(4)
    flange[2, 3] = FLANGE_D
    frames[..., 7, :, :] = t @ flange
    return frames


def forward_kinematics(q: np.ndarray, tool: Tool | np.ndarray = FRANKA_HAND) -> np.ndarray:
    """Homogeneous TCP pose(s) ``O_T_EE`` in ``fr3_link0`` for joints ``q`` (..., 7): (..., 4, 4)."""
    return joint_frames(q)[..., 7, :, :] @ _tool_matrix(tool)


def tcp_position(q: np.ndarray, tool: Tool | np.ndarray = FRANKA_HAND) -> np.ndarray:
    """TCP position(s) (..., 3) for joints (..., 7)."""
    return forward_kinematics(q, tool)[..., :3, 3]


def tcp_pose(q: np.ndarray, tool: Tool | np.ndarray = FRANKA_HAND) -> tuple[np.ndarray, np.ndarray]:
    """(position (3,), rotation (3, 3)) of the TCP at one configuration ``q`` (7,)."""
    t = forward_kinematics(np.asarray(q, dtype=np.float64).reshape(7), tool)
    return t[:3, 3].copy(), t[:3, :3].copy()


def jacobian(q: np.ndarray, tool: Tool | np.ndarray = FRANKA_HAND) -> np.ndarray:
    """Geometric TCP Jacobian(s) (..., 6, 7) in the base frame: rows vx, vy, vz, wx, wy, wz.

    Column i is ``[z_i x (p_tcp - o_i); z_i]`` with ``z_i`` / ``o_i`` the axis and origin of
    joint i's frame (modified DH: joint i turns about its own frame's z).
    """
    frames = joint_frames(q)
    p_tcp = (frames[..., 7, :, :] @ _tool_matrix(tool))[..., :3, 3]
    z = frames[..., :7, :3, 2]
    o = frames[..., :7, :3, 3]
    lin = np.cross(z, p_tcp[..., None, :] - o)
    return np.concatenate([np.swapaxes(lin, -1, -2), np.swapaxes(z, -1, -2)], axis=-2)


def pose_error(q: np.ndarray, pos: np.ndarray, rot: np.ndarray, tool: Tool | np.ndarray = FRANKA_HAND) -> np.ndarray:
    """6-vector (position error, rotation vector of ``rot @ R(q)^T``) from the TCP at ``q`` to (pos, rot)."""
    p, r = tcp_pose(q, tool)
    return np.concatenate([np.asarray(pos, dtype=np.float64) - p, matrix_to_rotvec(np.asarray(rot) @ r.T)])


@dataclass
class IKConfig:
    """Damped-least-squares settings."""

    damping: float = 1e-3
    iterations: int = 30
    tol_pos_m: float = 1e-4
    tol_rot_rad: float = 1e-3
    #: Distance (rad) kept from the joint limits by every iterate (the safety filter keeps 0.05).
    #: ``None``: no limit handling (an unconstrained solver, for offline geometry only).
    limit_margin: float | None = 0.08
    #: Pull towards the seed's null-space posture per iteration (0 = none): keeps the elbow where it was.
    nullspace_gain: float = 0.0


@dataclass
class IKResult:
    """An IK solution: the joints, their remaining pose error and whether it is within 10x tolerance."""

    q: np.ndarray
    pos_error_m: float
    rot_error_rad: float
    converged: bool


def solve_ik(
    q_seed: np.ndarray,
    pos: np.ndarray,
    rot: np.ndarray,
    cfg: IKConfig | None = None,
    tool: Tool | np.ndarray = FRANKA_HAND,
    limits: FR3Limits = FR3,
) -> IKResult:
    """Joints placing the TCP at ``pos`` with orientation ``rot``, by damped least squares from ``q_seed``.

    With ``limit_margin`` set, every iterate is clamped that far inside the datasheet limits, so
    the result is always a configuration the safety filter accepts; ``converged`` says whether it
    also reaches the pose (an unreachable target is the caller's decision).
    """
    cfg = cfg or IKConfig()
    if cfg.limit_margin is None:
        lo, hi = np.full(7, -np.inf), np.full(7, np.inf)
    else:
        lo, hi = np.asarray(limits.q_min) + cfg.limit_margin, np.asarray(limits.q_max) - cfg.limit_margin
    q = np.clip(np.asarray(q_seed, dtype=np.float64).reshape(7), lo, hi)
    q_rest = q.copy()
    lam = cfg.damping * np.eye(6)
    err = pose_error(q, pos, rot, tool)
    for _ in range(cfg.iterations):
        if np.linalg.norm(err[:3]) < cfg.tol_pos_m and np.linalg.norm(err[3:]) < cfg.tol_rot_rad:
            break
        jac = jacobian(q, tool)
        jjt_inv = np.linalg.solve(jac @ jac.T + lam, np.eye(6))
        dq = jac.T @ jjt_inv @ err
        if cfg.nullspace_gain > 0:
            dq = dq + cfg.nullspace_gain * (np.eye(7) - jac.T @ jjt_inv @ jac) @ (q_rest - q)
        q = np.clip(q + dq, lo, hi)
        err = pose_error(q, pos, rot, tool)
    pe, re = float(np.linalg.norm(err[:3])), float(np.linalg.norm(err[3:]))
    return IKResult(q, pe, re, pe < cfg.tol_pos_m * 10 and re < cfg.tol_rot_rad * 10)

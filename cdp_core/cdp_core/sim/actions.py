"""Action spaces of the simulated tasks, and the inverse kinematics that executes Cartesian ones.

``joint_position``: 7 absolute joint-position targets (rad), tracked by franky-sim's joint
impedance law. ``ee_pose``: the TCP pose (what libfranka calls ``O_T_EE``) as position (m)
and orientation quaternion (x, y, z, w, in the tool-down hemisphere of
:mod:`cdp_core.robot.rotations`). An ``ee_pose`` action is turned into joint targets by the FR3
model's damped-least-squares IK (:mod:`cdp_core.robot.kinematics`, equal to franky-sim's
pinocchio model to rounding), warm-started from the previous solution so that the redundant
seventh degree of freedom stays continuous, and then tracked by the same joint-impedance law:
only the action's coordinates differ, not the controller.
"""

from __future__ import annotations

import numpy as np

from ..robot.kinematics import IKConfig, forward_kinematics, tcp_pose
from ..robot.kinematics import solve_ik as _solve_ik
from ..robot.rotations import TOOL_DOWN, QuaternionError, matrix_to_quat, quat_to_matrix
from .tasks import JOINT_ACTION_NAMES

JOINT_POSITION = "joint_position"
EE_POSE = "ee_pose"
ACTION_SPACES = (JOINT_POSITION, EE_POSE)
EE_POSE_NAMES = ["tcp_x", "tcp_y", "tcp_z", "tcp_qx", "tcp_qy", "tcp_qz", "tcp_qw"]


class ActionSpaceError(ValueError):
    """An unknown action space, or an action that does not belong to its space."""


def check_action_space(name: str) -> str:
    """``name`` if it is a known action space; otherwise an error that lists the known ones."""
    if name not in ACTION_SPACES:
        raise ActionSpaceError(f"unknown action space {name!r}; known: {', '.join(ACTION_SPACES)}")
    return name


def action_names(space: str) -> list[str]:
    """Names of the 7 action dimensions of ``space`` (written into datasets and model metadata)."""
    return list(JOINT_ACTION_NAMES if check_action_space(space) == JOINT_POSITION else EE_POSE_NAMES)


#: The IK of the simulated tasks: tight tolerances, the datasheet limits as the only bound.
SIM_IK = IKConfig(damping=1e-3, iterations=200, tol_pos_m=1e-5, tol_rot_rad=1e-4, limit_margin=0.0)


def solve_ik(q_start: np.ndarray, pos: np.ndarray, rot: np.ndarray, iters: int = SIM_IK.iterations) -> np.ndarray:
    """Joint angles placing the TCP at ``pos`` with orientation ``rot`` (the FR3 model's DLS IK from ``q_start``).

    Best effort: an unreachable pose gives the damped least-squares compromise after ``iters``.
    """
    cfg = IKConfig(SIM_IK.damping, iters, SIM_IK.tol_pos_m, SIM_IK.tol_rot_rad, SIM_IK.limit_margin)
    return _solve_ik(q_start, pos, rot, cfg).q


def ee_pose_of(q: np.ndarray) -> np.ndarray:
    """The ``ee_pose`` action that joint angles ``q`` realise: TCP position and tool-down quaternion."""
    pos, rot = tcp_pose(q)
    return np.concatenate([pos, matrix_to_quat(rot, hemisphere=TOOL_DOWN)])


class ActionExecutor:
    """Turns one action space's actions into the joint targets the impedance law tracks."""

    def __init__(self, space: str = JOINT_POSITION, ik_iters: int = 50):
        self.space = check_action_space(space)
        self.ik_iters = ik_iters
        self._q_ik: np.ndarray | None = None

    def reset(self, q: np.ndarray) -> None:
        """Start of an episode: the IK's warm start is the arm's configuration."""
        self._q_ik = np.asarray(q, dtype=np.float64).copy()

    @property
    def ik_state(self) -> np.ndarray:
        """The IK's warm start for the next action (the last solution); reset(q) must come first."""
        if self._q_ik is None:
            raise ActionSpaceError("ActionExecutor.reset(q) must be called first")
        return self._q_ik.copy()

    def joint_targets(self, action: np.ndarray) -> np.ndarray:
        """Joint-position targets for ``action``; a malformed action is an :class:`ActionSpaceError`."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (7,) or not np.isfinite(a).all():
            raise ActionSpaceError(f"{self.space} actions must be 7 finite values, got {action!r}")
        if self.space == JOINT_POSITION:
            return a
        if self._q_ik is None:
            raise ActionSpaceError("ActionExecutor.reset(q) must be called before the first ee_pose action")
        try:
            rot = quat_to_matrix(a[3:])
        except QuaternionError as exc:
            raise ActionSpaceError(f"ee_pose action has no valid orientation: {exc}") from exc
        self._q_ik = solve_ik(self._q_ik, a[:3], rot, iters=self.ik_iters)
        return self._q_ik.copy()


def tcp_positions(space: str, actions: np.ndarray) -> np.ndarray:
    """TCP positions (m, base frame) that ``actions [N, 7]`` of ``space`` command.

    Joint-position actions go through the FR3 forward kinematics (the TCP libfranka reports as
    ``O_T_EE``); TCP-pose actions carry the position in their first three values.
    """
    a = np.asarray(actions, dtype=np.float64).reshape(-1, 7)
    if check_action_space(space) == EE_POSE:
        return a[:, :3].copy()
    return forward_kinematics(a)[:, :3, 3].copy()

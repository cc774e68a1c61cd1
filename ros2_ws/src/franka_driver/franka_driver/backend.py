"""Driver configuration, arm state and the backend interface shared by the franky and pylibfranka backends.

No rclpy here: the backends are plain classes the tests drive directly against franky-sim.
Neither ``franky`` nor ``pylibfranka`` is imported at module level: the two extension modules
register the same C++ types with pybind11 and cannot live in one process (importing the second
fails with ``generic_type: type "Duration" is already registered``), so each backend imports its
own library lazily and the pylibfranka one only in its child processes.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence

import numpy as np
from cdp_core.robot import rotations
from cdp_core.robot.kinematics import forward_kinematics
from cdp_core.robot.limits import FR3

#: ``FR3`` is the one FR3 limit table (datasheet + libfranka rate_limiting.h), shared with the
#: safety filter; both backends' trajectory generators run at ``relative_dynamics_factor`` of it.
__all__ = [
    "FR3",
    "ArmState",
    "Backend",
    "BackendError",
    "DriverConfig",
    "canonical_quat",
    "clip_velocity",
    "make_backend",
    "tcp_pose",
    "validate_joint_target",
]


@dataclasses.dataclass
class DriverConfig:
    """Everything the driver needs; one ROS parameter per field (cdp_ros_common.params)."""

    #: FCI address of the arm (or of a franky-sim server).
    robot_ip: str = "172.16.0.2"
    #: "pylibfranka" (official bindings, 1 kHz loop in a dedicated process) or "franky" (libfranka +
    #: Ruckig in franky's C++ thread). The stack's value is launch/config/stack.yaml's; these
    #: defaults are the fallback of a node started without it, and match it.
    backend: str = "pylibfranka"
    #: "joint": /safety/command (JointTrajectory); "cartesian": /safety/cartesian_command (PoseStamped, franky only).
    command_mode: str = "joint"
    #: "enforce" on a real-time robot PC; "ignore" where the kernel has no RT (simulation, CI).
    realtime: str = "enforce"
    #: Fraction (0, 1] of the FR3's velocity / acceleration / jerk limits (cdp_core.robot.limits)
    #: the driver's own trajectory generator may use; it tracks the safety filter's output, which
    #: stays at smaller fractions still.
    relative_dynamics_factor: float = 0.6
    #: /joint_states and /franka/ee_pose rate; the stack needs >= 100 Hz.
    state_rate_hz: float = 200.0
    #: A command that carried a velocity and is not followed by a new one within this time is
    #: replaced by a hold at its position with zero velocity (a stream that stops never leaves the
    #: arm coasting). Also the age at which diagnostics call the command stream stale.
    command_timeout_s: float = 0.25
    #: Use the velocities of /safety/command points as Ruckig target velocities (smoother tracking
    #: of a moving target); False: every target is reached at rest.
    use_command_velocity: bool = True
    gripper_enabled: bool = True
    gripper_speed: float = 0.05
    gripper_force: float = 20.0
    gripper_open_width: float = 0.08
    #: libfranka collision thresholds (Nm for joints, N for Cartesian); applied at connect.
    collision_torque_threshold: float = 20.0
    collision_force_threshold: float = 30.0
    #: Diagnostics publication rate.
    diagnostics_rate_hz: float = 1.0
    #: Keep retrying the first connection this long (s): a simulator or an arm whose FCI is still
    #: coming up. 0 = one attempt.
    connect_timeout_s: float = 0.0

    def __post_init__(self) -> None:
        if self.backend not in ("franky", "pylibfranka"):
            raise ValueError(f"backend must be 'franky' or 'pylibfranka', got {self.backend!r}")
        if self.command_mode not in ("joint", "cartesian"):
            raise ValueError(f"command_mode must be 'joint' or 'cartesian', got {self.command_mode!r}")
        if self.realtime not in ("enforce", "ignore"):
            raise ValueError(f"realtime must be 'enforce' or 'ignore', got {self.realtime!r}")
        if self.command_mode == "cartesian" and self.backend != "franky":
            raise ValueError("command_mode 'cartesian' needs backend 'franky' (the pylibfranka backend is joint-only)")
        if not 0.0 < self.relative_dynamics_factor <= 1.0:
            raise ValueError(f"relative_dynamics_factor must be in (0, 1], got {self.relative_dynamics_factor}")
        if not self.state_rate_hz >= 100.0:
            raise ValueError(
                f"state_rate_hz must be >= 100 (the stack's /joint_states contract), got {self.state_rate_hz}"
            )
        if not self.command_timeout_s > 0.0:
            raise ValueError(f"command_timeout_s must be > 0, got {self.command_timeout_s}")
        if not 0.0 <= self.gripper_open_width <= 0.08:
            raise ValueError(f"gripper_open_width must be in [0, 0.08] m, got {self.gripper_open_width}")


@dataclasses.dataclass
class ArmState:
    """One snapshot of the arm as the backend last saw it."""

    time: float  # robot time (s)
    q: np.ndarray  # (7,) rad
    dq: np.ndarray  # (7,) rad/s
    tau: np.ndarray  # (7,) measured joint torques, Nm
    position: np.ndarray  # (3,) TCP position in fr3_link0, m
    quat_xyzw: np.ndarray  # (4,) TCP orientation, x y z w with w >= 0
    gripper_width: float  # m; NaN when no gripper is connected
    mode: str  # libfranka RobotMode name ("Idle", "Move", "Reflex", ...)
    error: str  # "" when healthy
    #: Flange -> TCP transform the arm reports (4x4); identity until the first state.
    f_t_ee: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(4))


class BackendError(RuntimeError):
    """A backend could not do what was asked (connection failed, backend in error, ...)."""


class Backend(abc.ABC):
    """What the ROS node needs from a Franka connection. Implementations never recover by themselves."""

    def __init__(self, config: DriverConfig):
        self.config = config

    @abc.abstractmethod
    def connect(self) -> None:
        """Connect to the arm (and gripper if enabled); raises BackendError on failure."""

    @abc.abstractmethod
    def read_state(self) -> ArmState:
        """Latest state; never raises for robot-side faults (they appear in ``error``)."""

    @abc.abstractmethod
    def command_joint(self, q_target: np.ndarray, dq_target: np.ndarray | None = None) -> bool:
        """Stream a new joint target (preempts the previous one smoothly). False if refused."""

    @abc.abstractmethod
    def command_cartesian(self, position: np.ndarray, quat_xyzw: np.ndarray) -> bool:
        """Stream a new TCP pose target in fr3_link0. False if refused."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Bring any running motion to rest (jerk-limited) and end it."""

    @abc.abstractmethod
    def brake(self) -> None:
        """Start braking to rest now (jerk-limited) and return without waiting: the e-stop and
        the command guard's hold, called from the node's callbacks."""

    @abc.abstractmethod
    def recover(self) -> bool:
        """Clear a reflex / error. Never resumes motion: the arm holds until the next command."""

    @abc.abstractmethod
    def gripper_move(self, width: float, speed: float) -> bool:
        """Move the fingers to ``width`` (m); blocks until done. False on failure / no gripper."""

    @abc.abstractmethod
    def gripper_grasp(self, width: float, speed: float, force: float) -> bool:
        """Close on an object with ``force``; succeeds at any width between 0 and fully open."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop motion and release every connection, thread and process the backend holds."""

    @property
    @abc.abstractmethod
    def gripper_status(self) -> str:
        """ "ok", "disabled" or why the gripper is unavailable."""


def make_backend(config: DriverConfig) -> Backend:
    """The backend ``config.backend`` names (imports only that backend's library)."""
    if config.backend == "franky":
        from .franky_backend import FrankyBackend

        return FrankyBackend(config)
    from .pylibfranka_backend import PylibfrankaBackend

    return PylibfrankaBackend(config)


def canonical_quat(quat_xyzw: Sequence[float]) -> np.ndarray:
    """Unit quaternion (x, y, z, w) in the message hemisphere (w >= 0); a QuaternionError (a
    ValueError) for a non-rotation."""
    return rotations.canonical_quat(np.asarray(quat_xyzw, dtype=np.float64), rotations.W_NON_NEGATIVE)


def tcp_pose(q: np.ndarray, f_t_ee: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """O_T_EE of the measured ``q``: flange forward kinematics times the robot's F_T_EE (4x4).

    This is what the arm reports as O_T_EE; it is recomputed here because franky-sim reports a
    stale O_T_EE (the pose of the last *commanded* q) while idle, which is off by the PD tracking
    error (~1.5 mm). Returns (position (3,), quaternion x y z w with w >= 0).
    """
    return rotations.transform_to_pose(
        forward_kinematics(np.asarray(q, dtype=np.float64), f_t_ee), hemisphere=rotations.W_NON_NEGATIVE
    )


def validate_joint_target(q: np.ndarray, dq: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(7,) finite positions inside the FR3 hard limits, optional (7,) finite velocities; ValueError otherwise."""
    q = np.asarray(q, dtype=np.float64).reshape(-1)
    if q.shape != (7,):
        raise ValueError(f"joint target needs 7 positions, got {q.shape[0]}")
    if not np.isfinite(q).all():
        raise ValueError(f"joint target has non-finite positions: {q}")
    outside = FR3.outside_hard_limits(q)
    if outside.size:
        raise ValueError(f"joint target outside the FR3 position limits at joints {[int(i) + 1 for i in outside]}: {q}")
    if dq is not None:
        dq = np.asarray(dq, dtype=np.float64).reshape(-1)
        if dq.shape != (7,):
            raise ValueError(f"joint target velocity needs 7 values, got {dq.shape[0]}")
        if not np.isfinite(dq).all():
            raise ValueError(f"joint target has non-finite velocities: {dq}")
    return q, dq


def clip_velocity(dq: np.ndarray | None, relative_dynamics_factor: float) -> np.ndarray | None:
    """Target velocities limited to what the trajectory generator may reach (it rejects more)."""
    if dq is None:
        return None
    vmax, _, _ = FR3.generator_limits(relative_dynamics_factor)
    return np.clip(dq, -vmax, vmax)

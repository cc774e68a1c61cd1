"""Command validation and bookkeeping, without a robot."""

import math

import numpy as np
import pytest
from cdp_ros_common.conversions import MessageError
from cdp_ros_common.names import JOINT_NAMES
from geometry_msgs.msg import PoseStamped
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from cdp_core.robot.rotations import W_NON_NEGATIVE, matrix_to_quat
from franka_driver.backend import DriverConfig, canonical_quat
from franka_driver.commands import CommandMonitor, parse_joint_command, parse_pose_command

HOME = [0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785]


def traj(q, dq=None, names=JOINT_NAMES, points=1):
    msg = JointTrajectory(joint_names=list(names))
    for _ in range(points):
        msg.points.append(JointTrajectoryPoint(positions=list(q), velocities=list(dq or [])))
    return msg


def test_valid_command_is_reordered_to_joint_order():
    names = list(reversed(JOINT_NAMES))
    q, dq = parse_joint_command(traj(list(reversed(HOME)), list(reversed(range(7))), names=names))
    np.testing.assert_allclose(q, HOME)
    np.testing.assert_allclose(dq, range(7))


def test_positions_only_gives_no_velocity():
    q, dq = parse_joint_command(traj(HOME))
    assert dq is None and q.shape == (7,)


@pytest.mark.parametrize(
    "msg, what",
    [
        (traj(HOME[:6] + [math.nan]), "non-finite"),
        (traj(HOME, [0.0] * 6 + [math.inf]), "non-finite"),
        (traj(HOME, names=JOINT_NAMES[:6] + ["fr3_jointX"]), "lacks joints"),
        (traj(HOME, points=2), "exactly one point"),
        (traj(HOME, points=0), "exactly one point"),
        (traj(HOME, [0.0] * 3), "velocities"),
        (traj([0.0, -0.3, 0.0, 0.5, 0.0, 1.9, 0.785]), "position limits"),  # joint 4 must stay < -0.1518
    ],
)
def test_bad_commands_are_rejected_with_a_reason(msg, what):
    with pytest.raises(MessageError, match=what):
        parse_joint_command(msg)


def test_pose_command_frame_and_quaternion_checks():
    msg = PoseStamped()
    msg.header.frame_id = "fr3_link0"
    msg.pose.position.x = 0.4
    msg.pose.orientation.x, msg.pose.orientation.w = 1.0, 0.0
    pos, quat = parse_pose_command(msg)
    np.testing.assert_allclose(quat, [1, 0, 0, 0])
    msg.pose.orientation.w = 1.0  # |q| = sqrt(2)
    with pytest.raises(MessageError, match="unit length"):
        parse_pose_command(msg)
    msg.pose.orientation.w = 0.0
    msg.header.frame_id = "world"
    with pytest.raises(MessageError, match="fr3_link0"):
        parse_pose_command(msg)


def test_quaternion_convention_w_non_negative():
    np.testing.assert_allclose(canonical_quat([0, 0, 0, -1]), [0, 0, 0, 1])
    r = np.array([[1, 0, 0], [0, -1, 0], [0, 0, -1]], dtype=float)  # 180 deg about x: the FR3's home tool
    np.testing.assert_allclose(matrix_to_quat(r, hemisphere=W_NON_NEGATIVE), [1, 0, 0, 0], atol=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(50):
        q = canonical_quat(rng.normal(size=4))
        x, y, z, w = q
        rot = np.array(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
            ]
        )
        np.testing.assert_allclose(matrix_to_quat(rot, hemisphere=W_NON_NEGATIVE), q, atol=1e-9)


def test_monitor_holds_once_after_a_velocity_stream_goes_quiet():
    m = CommandMonitor(timeout_s=0.25)
    m.on_accepted(10.0, np.array(HOME), np.ones(7) * 0.1)
    assert m.hold_due(10.2) is None
    np.testing.assert_allclose(m.hold_due(10.3), HOME)
    assert m.hold_due(10.5) is None  # once
    m.on_accepted(11.0, np.array(HOME), None)  # a target reached at rest needs no hold
    assert m.hold_due(12.0) is None
    m.on_accepted(13.0, np.array(HOME), np.ones(7))
    m.forget_target()  # recovery: nothing from before the fault is re-commanded
    assert m.hold_due(14.0) is None
    assert m.rate(13.0) == pytest.approx(2 / m.window_s)  # 11.0 and 13.0 are inside the 2 s window


@pytest.mark.parametrize(
    "field, value",
    [
        ("backend", "ros_control"),
        ("command_mode", "torque"),
        ("realtime", "maybe"),
        ("state_rate_hz", 50.0),
        ("relative_dynamics_factor", 0.0),
    ],
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        DriverConfig(**{field: value})


def test_cartesian_needs_franky():
    with pytest.raises(ValueError, match="cartesian"):
        DriverConfig(backend="pylibfranka", command_mode="cartesian")

"""FR3 forward kinematics against franky-sim's pinocchio model of the FR3 (its ``tcp`` frame)."""

from __future__ import annotations

import numpy as np
import pytest

from safety_filter.kinematics import (forward_kinematics, matrix_to_quat, matrix_to_rotvec, quat_to_matrix,
                                      rotvec_to_matrix, tool_tilt)
from safety_filter.limits import FR3Limits


@pytest.fixture(scope="module")
def sim_robot():
    mujoco_simulator = pytest.importorskip("franky_sim.mujoco_simulator")
    sim = mujoco_simulator.MujocoSimulator()
    robot = sim.add_robot()
    sim.init()
    return robot


def test_tcp_pose_matches_franky_sim_within_1mm(sim_robot):
    """franky-sim's ``kinematics(q)`` is the TCP (flange * (0.1034 m along z, -pi/4 about z))."""
    lim = FR3Limits()
    rng = np.random.default_rng(7)
    qs = rng.uniform(np.asarray(lim.q_min), np.asarray(lim.q_max), size=(200, 7))
    ours = forward_kinematics(qs)  # batched
    for q, tf in zip(qs, ours):
        ref = sim_robot.kinematics(q)
        assert np.linalg.norm(tf[:3, 3] - np.asarray(ref.translation)) < 1e-3
        assert np.abs(tf[:3, :3] - np.asarray(ref.rotation)).max() < 1e-6
        single = forward_kinematics(q)
        assert np.allclose(single, tf)


def test_flange_is_tcp_minus_hand_offset(sim_robot):
    q = np.array([0.1, -0.4, 0.2, -2.0, 0.3, 1.7, 0.5])
    flange = forward_kinematics(q, tcp_z=0.0, tcp_yaw=0.0)
    tcp = forward_kinematics(q)
    assert np.allclose(tcp[:3, 3], flange[:3, 3] + 0.1034 * flange[:3, 2])
    assert np.linalg.norm(tcp[:3, 3] - np.asarray(sim_robot.kinematics(q).translation)) < 1e-9


def test_home_pose_points_down():
    tf = forward_kinematics(np.array([0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785]))
    assert tool_tilt(tf[:3, :3]) < 1e-6
    assert 0.3 < tf[0, 3] < 0.6 and abs(tf[1, 3]) < 1e-9


def test_rotation_helpers_round_trip():
    rng = np.random.default_rng(3)
    for _ in range(100):
        r = rng.normal(size=3)
        r *= rng.uniform(0, np.pi - 1e-3) / np.linalg.norm(r)
        m = rotvec_to_matrix(r)
        assert np.allclose(m @ m.T, np.eye(3), atol=1e-12)
        assert np.allclose(matrix_to_rotvec(m), r, atol=1e-9)
        assert np.allclose(quat_to_matrix(matrix_to_quat(m)), m, atol=1e-12)


def test_rejects_wrong_shape():
    with pytest.raises(ValueError):
        forward_kinematics(np.zeros(6))

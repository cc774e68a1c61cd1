"""The one FR3 model (``cdp_core.robot``) against franky-sim's pinocchio model of the FR3, and its own contracts."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from cdp_core.robot import FR3, FLANGE, FRANKA_HAND, IKConfig, Tool, forward_kinematics, jacobian, solve_ik, tcp_pose
from cdp_core.robot.rotations import (
    TOOL_DOWN,
    W_NON_NEGATIVE,
    QuaternionError,
    canonical_quat,
    matrix_to_quat,
    matrix_to_rotvec,
    quat_to_matrix,
    quat_yaw,
    rotvec_to_matrix,
    tool_tilt,
    yaw_quat,
)
from cdp_core.robot.trajectories import minimum_jerk

HOME = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785])


@pytest.fixture(scope="module")
def sim_robot():
    mujoco_simulator = pytest.importorskip("franky_sim.mujoco_simulator")
    sim = mujoco_simulator.MujocoSimulator()
    robot = sim.add_robot()
    sim.init()
    return robot


def _random_q(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(np.asarray(FR3.q_min), np.asarray(FR3.q_max), size=(n, 7))


def test_fk_matches_franky_sim_pinocchio(sim_robot):
    """franky-sim's ``kinematics(q)`` is the Franka Hand TCP; ours agrees to rounding, batched and single."""
    qs = _random_q(200, 7)
    ours = forward_kinematics(qs)
    for q, tf in zip(qs, ours):
        ref = sim_robot.kinematics(q)
        assert np.abs(tf[:3, 3] - np.asarray(ref.translation)).max() < 1e-9
        assert np.abs(tf[:3, :3] - np.asarray(ref.rotation)).max() < 1e-9
        assert np.allclose(forward_kinematics(q), tf, atol=1e-12)


def test_jacobian_matches_franky_sim_pinocchio(sim_robot):
    """Analytic geometric Jacobian (base-aligned) against pinocchio's, column by column."""
    eye = np.eye(7)
    qs = _random_q(30, 11)
    ours = jacobian(qs)
    assert ours.shape == (30, 6, 7)
    for q, jac in zip(qs, ours):
        ref = np.stack([np.asarray(sim_robot.d_kinematics(q, eye[i])) for i in range(7)], axis=1)
        np.testing.assert_allclose(jac, ref, atol=1e-9)


def test_jacobian_is_the_derivative_of_fk():
    q = np.array([0.1, -0.4, 0.2, -2.0, 0.3, 1.7, 0.5])
    h = 1e-6
    jac = jacobian(q)
    for i in range(7):
        dq = np.zeros(7)
        dq[i] = h
        a, b = forward_kinematics(q + dq), forward_kinematics(q - dq)
        np.testing.assert_allclose((a[:3, 3] - b[:3, 3]) / (2 * h), jac[:3, i], atol=1e-8)
        np.testing.assert_allclose(matrix_to_rotvec(a[:3, :3] @ b[:3, :3].T) / (2 * h), jac[3:, i], atol=1e-8)


def test_tools_are_data(sim_robot):
    q = np.array([0.1, -0.4, 0.2, -2.0, 0.3, 1.7, 0.5])
    flange = forward_kinematics(q, FLANGE)
    tcp = forward_kinematics(q)
    assert np.allclose(tcp[:3, 3], flange[:3, 3] + 0.1034 * flange[:3, 2])
    assert np.allclose(forward_kinematics(q, FRANKA_HAND.flange_T_tcp), tcp)  # a 4x4 F_T_EE works too
    stick = Tool.along_z("stick", 0.2)
    assert np.allclose(forward_kinematics(q, stick)[:3, 3], flange[:3, 3] + 0.2 * flange[:3, 2])
    with pytest.raises(ValueError, match="4x4"):
        forward_kinematics(q, np.eye(3))


def test_home_pose_points_down():
    tf = forward_kinematics(HOME)
    assert tool_tilt(tf[:3, :3]) < 1e-6
    assert 0.3 < tf[0, 3] < 0.6 and abs(tf[1, 3]) < 1e-9


def test_ik_reaches_reachable_poses_and_stays_inside_limits():
    rng = np.random.default_rng(5)
    cfg = IKConfig(iterations=100)
    for _ in range(20):
        q_goal = HOME + rng.uniform(-0.3, 0.3, 7)
        pos, rot = tcp_pose(q_goal)
        res = solve_ik(HOME, pos, rot, cfg)
        assert res.converged, (res.pos_error_m, res.rot_error_rad)
        assert (res.q >= np.asarray(FR3.q_min) + cfg.limit_margin - 1e-12).all()
        assert (res.q <= np.asarray(FR3.q_max) - cfg.limit_margin + 1e-12).all()


def test_ik_clamps_an_unreachable_pose_and_says_so():
    pos, rot = tcp_pose(HOME)
    res = solve_ik(HOME, pos + np.array([2.0, 0.0, 0.0]), rot)
    assert not res.converged
    assert (res.q >= np.asarray(FR3.q_min)).all() and (res.q <= np.asarray(FR3.q_max)).all()


def test_rotation_helpers_round_trip():
    rng = np.random.default_rng(3)
    for _ in range(100):
        r = rng.normal(size=3)
        r *= rng.uniform(0, np.pi - 1e-3) / np.linalg.norm(r)
        m = rotvec_to_matrix(r)
        assert np.allclose(m @ m.T, np.eye(3), atol=1e-12)
        assert np.allclose(matrix_to_rotvec(m), r, atol=1e-9)
        for hemisphere in (W_NON_NEGATIVE, TOOL_DOWN):
            q = matrix_to_quat(m, hemisphere=hemisphere)
            assert float(q @ hemisphere) >= 0
            assert np.allclose(quat_to_matrix(q), m, atol=1e-12)
    for yaw in np.linspace(-3.1, 3.1, 13):
        assert abs(quat_yaw(yaw_quat(yaw)) - yaw) < 1e-12


def _about_x(angle: float) -> np.ndarray:
    return np.array([np.sin(angle / 2), 0.0, 0.0, np.cos(angle / 2)])


def test_tool_down_hemisphere_is_continuous_across_w_zero():
    # Rotations about x through 180 degrees: w changes sign, the observation must not jump.
    angles = np.linspace(np.pi - 0.05, np.pi + 0.05, 101)
    qs = np.array([canonical_quat(_about_x(a), TOOL_DOWN) for a in angles])
    assert np.max(np.abs(np.diff(qs, axis=0))) < 1e-2
    assert (qs[:, 0] > 0.99).all()
    # ... where the message convention (w >= 0) jumps.
    ws = np.array([canonical_quat(_about_x(a), W_NON_NEGATIVE) for a in angles])
    assert np.max(np.abs(np.diff(ws, axis=0))) > 1.0


def test_sign_is_a_choice_not_a_rotation_change():
    rng = np.random.default_rng(0)
    for q in rng.normal(size=(50, 4)):
        a, b = canonical_quat(q, TOOL_DOWN), canonical_quat(-q, TOOL_DOWN)
        np.testing.assert_allclose(a, b)
        assert abs(np.linalg.norm(a) - 1) < 1e-12


@pytest.mark.parametrize("bad", [[0, 0, 0, 0], [np.nan, 0, 0, 1]])
def test_non_rotations_are_refused(bad):
    with pytest.raises(QuaternionError, match="not a rotation"):
        canonical_quat(np.array(bad, dtype=float), TOOL_DOWN)
    with pytest.raises(QuaternionError):
        quat_to_matrix(np.array(bad, dtype=float))


def test_matrix_to_quat_needs_a_hemisphere():
    with pytest.raises(TypeError):
        matrix_to_quat(np.eye(3))  # type: ignore[call-arg]


def test_minimum_jerk_profile():
    s = np.linspace(0, 1, 101)
    m = minimum_jerk(s)
    assert m[0] == 0 and m[-1] == 1 and (np.diff(m) >= 0).all()
    assert minimum_jerk(-1.0) == 0 and minimum_jerk(2.0) == 1


def test_rejects_wrong_shape():
    with pytest.raises(ValueError):
        forward_kinematics(np.zeros(6))


def test_limits_derive_profiles_from_one_table():
    v, a, j = FR3.hardware
    np.testing.assert_array_equal(v, FR3.v_max)
    gv, ga, gj = FR3.generator_limits(0.6)
    np.testing.assert_allclose(gv, 0.6 * v)
    np.testing.assert_allclose(FR3.velocity, FR3.velocity_scale * v)


def test_robot_model_imports_no_ros_torch_or_mujoco():
    code = (
        "import sys, cdp_core.robot, cdp_core.robot.rotations, cdp_core.robot.trajectories; "
        "print(sorted(m for m in ('torch', 'rclpy', 'mujoco', 'pinocchio', 'franky_sim') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"

"""The published TCP pose must be the fast-path simulator's observation: franky-sim's
``robot.kinematics(q)`` (pinocchio, TCP frame), quaternion x y z w with w >= 0."""

from __future__ import annotations

import numpy as np
import pytest
from backend_helpers import OFFSET, stream_to, wait_until_reached

from cdp_core.robot.rotations import W_NON_NEGATIVE, matrix_to_quat
from franka_driver.backend import DriverConfig, make_backend


@pytest.fixture(scope="module")
def kinematics():
    # Only for its pinocchio model: no server, no libfranka client in this object.
    from franky_sim.mujoco_simulator import MujocoSimulator

    return MujocoSimulator().add_robot().kinematics


@pytest.mark.parametrize("backend_name", ["franky", "pylibfranka"])
def test_tcp_pose_equals_franky_sim_kinematics(sim_server, kinematics, backend_name):
    be = make_backend(
        DriverConfig(backend=backend_name, robot_ip=sim_server.address, realtime="ignore", gripper_enabled=False)
    )
    be.connect()
    try:
        for target in (be.read_state().q, be.read_state().q + OFFSET):
            stream_to(be, target, duration_s=1.0)
            wait_until_reached(be, target, tol=3e-3)
            st = be.read_state()
            pose = kinematics(st.q)
            pos_err = np.linalg.norm(st.position - np.asarray(pose.translation))
            q_ref = matrix_to_quat(np.asarray(pose.rotation), hemisphere=W_NON_NEGATIVE)
            ang_err = 2 * np.arccos(min(1.0, abs(float(np.dot(st.quat_xyzw, q_ref)))))
            print(f"{backend_name}: |TCP - kinematics(q)| = {pos_err * 1e3:.4f} mm, {ang_err:.2e} rad")
            assert pos_err < 1e-3, f"{backend_name}: TCP position off by {pos_err * 1e3:.3f} mm"
            assert ang_err < 0.01, f"{backend_name}: TCP orientation off by {ang_err:.4f} rad"
            assert st.quat_xyzw[3] >= 0.0
            assert st.error == ""
    finally:
        be.close()

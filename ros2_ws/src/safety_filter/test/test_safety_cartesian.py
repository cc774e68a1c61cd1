"""Unit tests of the Cartesian (TCP pose) path of the safety filter."""

from __future__ import annotations

import math

import numpy as np
import pytest

from safety_filter import CartesianSafetyFilter, SafetyConfig
from cdp_core.robot.kinematics import forward_kinematics
from cdp_core.robot.rotations import W_NON_NEGATIVE, matrix_to_quat, quat_to_matrix, rotvec_to_matrix, tool_tilt


Q0 = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785])
DT = 0.01
HOME = forward_kinematics(Q0)
HOME_X = HOME[:3, 3]
HOME_Q = matrix_to_quat(HOME[:3, :3], hemisphere=W_NON_NEGATIVE)


class Run:
    def __init__(self, config: SafetyConfig | None = None):
        self.f = CartesianSafetyFilter(config)
        self.t = 0.0
        self.outs = []
        assert self.f.sync_joints(Q0, 0.0) is None

    def target(self, x, q=HOME_Q, stamp=None):
        return self.f.set_target(np.asarray(x), np.asarray(q), self.t if stamp is None else stamp, "teleop", self.t)

    def steps(self, n, resend=None):
        for _ in range(n):
            if resend:
                resend()
            self.outs.append(self.f.step(self.t))
            self.t = round(self.t + DT, 9)
        return self.outs[-1]

    def speeds(self):
        v = np.array([o.velocity for o in self.outs])
        return np.linalg.norm(v[:, :3], axis=1), np.linalg.norm(v[:, 3:], axis=1)


def test_synced_pose_is_fk_of_joints():
    r = Run()
    out = r.steps(1)
    assert np.allclose(out.position, HOME_X)
    assert np.allclose(quat_to_matrix(out.quaternion), HOME[:3, :3], atol=1e-9)


@pytest.mark.parametrize(
    "x, q, words",
    [
        ([math.nan, 0.0, 0.4], HOME_Q, "NaN"),
        ([0.4, 0.0, 0.4], [0.0, math.inf, 0.0, 1.0], "NaN"),
        ([0.4, 0.0, 0.4], [0.0, 0.0, 0.0, 0.0], "norm"),
        ([0.4, 0.0], HOME_Q, "shape"),
    ],
)
def test_malformed_pose_rejected(x, q, words):
    r = Run()
    reason = r.target(x, q)
    assert reason is not None and words in reason
    out = r.steps(3)
    assert np.allclose(out.position, HOME_X) and out.mode == "idle"


def test_tracks_reachable_pose_within_limits():
    r = Run()
    goal_x = HOME_X + np.array([0.1, -0.1, 0.05])
    goal_r = rotvec_to_matrix(np.array([0.0, 0.0, 0.5])) @ HOME[:3, :3]  # yaw about world z
    r.steps(300, resend=lambda: r.target(goal_x, matrix_to_quat(goal_r, hemisphere=W_NON_NEGATIVE)))
    out = r.outs[-1]
    assert np.allclose(out.position, goal_x, atol=1e-6)
    assert np.allclose(quat_to_matrix(out.quaternion), goal_r, atol=1e-6)
    lin, ang = r.speeds()
    vt, _, _ = r.f.limits.cartesian_translation
    vr, _, _ = r.f.limits.cartesian_rotation
    assert lin.max() <= vt + 1e-9 and ang.max() <= vr + 1e-9
    assert lin.max() > 0.05


def test_target_outside_box_clamped():
    r = Run()
    r.steps(400, resend=lambda: r.target([0.5, 0.0, -0.5]))
    z = np.array([o.position[2] for o in r.outs])
    lo = r.f.config.box_min[2] + r.f.config.box_margin
    assert z.min() >= lo - 1e-9 and abs(z[-1] - lo) < 1e-6
    assert any("workspace_clamped" in n for o in r.outs for n in o.interventions)


def test_overtilted_orientation_rejected():
    r = Run()
    flipped = rotvec_to_matrix(np.array([1.6, 0.0, 0.0])) @ HOME[:3, :3]
    r.steps(100, resend=lambda: r.target(HOME_X, matrix_to_quat(flipped, hemisphere=W_NON_NEGATIVE)))
    tilts = [tool_tilt(quat_to_matrix(o.quaternion)) for o in r.outs]
    assert max(tilts) <= r.f.config.max_tilt_rad + 1e-9
    assert any("orientation_rejected" in n for o in r.outs for n in o.interventions)


def test_stale_target_decelerates_and_holds():
    r = Run()
    goal = HOME_X + np.array([0.3, 0.0, 0.0])
    r.steps(20, resend=lambda: r.target(goal))
    assert r.speeds()[0][-1] > 0.05
    r.steps(80)
    assert r.outs[-1].mode == "stale" and np.all(r.outs[-1].velocity == 0)
    assert np.array_equal(r.outs[-1].position, r.outs[-10].position)
    assert r.outs[-1].position[0] < goal[0] - 0.05


def test_estop_latched_and_old_target_not_resumed():
    r = Run()
    goal = HOME_X + np.array([0.2, 0.0, 0.0])
    stamp = r.t
    r.steps(20, resend=lambda: r.target(goal, stamp=stamp))
    r.f.estop(r.t)
    r.steps(60)
    held = r.outs[-1].position.copy()
    assert r.outs[-1].mode == "estop" and np.all(r.outs[-1].velocity == 0)
    assert "e-stop" in r.target(goal)
    r.f.reset(r.t)
    assert "before the last sync/reset" in r.target(goal, stamp=stamp)
    r.steps(30)
    assert np.array_equal(r.outs[-1].position, held) and r.outs[-1].mode == "idle"
    assert r.target(goal) is None
    r.steps(10)
    assert r.outs[-1].position[0] > held[0]


def test_resync_on_drift_converges_without_a_step():
    r = Run()
    q = Q0.copy()
    q[0] = 0.4
    why = r.f.check_drift(q, r.t)
    assert why is not None and why.startswith("resync:")
    out = r.steps(1, resend=lambda: r.f.check_drift(q, r.t))
    assert out.mode == "resync" and not np.allclose(out.position, forward_kinematics(q)[:3, 3])
    for _ in range(500):
        if not r.f.resyncing:
            break
        r.steps(1, resend=lambda: r.f.check_drift(q, r.t))
    assert not r.f.resyncing
    goal = forward_kinematics(q)
    assert np.linalg.norm(r.outs[-1].position - goal[:3, 3]) <= 0.002
    assert np.allclose(quat_to_matrix(r.outs[-1].quaternion), goal[:3, :3], atol=1e-3)
    x = np.array([o.position for o in r.outs])
    v_lin = r.f.limits.cartesian_translation[0]
    assert np.max(np.linalg.norm(np.diff(x, axis=0), axis=1)) <= v_lin * DT + 1e-9
    assert r.target(goal[:3, 3]) is None  # takes targets again


def test_measured_state_that_stops_arriving_brakes_and_holds():
    r = Run()
    x = HOME_X + np.array([0.1, 0.0, 0.0])
    for _ in range(20):  # measured joints flowing, target accepted: moving
        r.f.check_drift(Q0, r.t)
        r.target(x)
        r.steps(1)
    for _ in range(120):  # the driver goes quiet; the source keeps sending
        r.target(x)
        r.steps(1)
    assert r.outs[-1].mode == "stale"
    assert np.all(r.outs[-1].velocity == 0.0)

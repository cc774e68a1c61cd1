"""Teleop logic without ROS (the IK itself is tested with the FR3 model in cdp_core): target integration, keyboard and gamepad mappings, scripted plans."""

from __future__ import annotations

import numpy as np
import pytest
from cdp_core.robot.kinematics import tcp_pose
from cdp_core.robot.rotations import matrix_to_rotvec
from cdp_core.sim.env import HOME_Q
from cdp_teleop.events import DISCARD, FAILURE, START, STOP, SUCCESS, EventError, decode_event, encode_event
from cdp_teleop.mapping import (
    SPEED_UP,
    DeviceInput,
    GamepadLayout,
    GamepadMapper,
    KeyboardMapper,
    TeleopConfig,
    TeleopCore,
)
from cdp_teleop.scripted import plan_scripted_demo


def _core(**kw):
    core = TeleopCore(TeleopConfig(**kw))
    core.measured(HOME_Q)
    return core


def test_deadman_released_holds_and_pressed_moves_at_scaled_speed():
    core = _core(speed_scale=0.5, max_linear_mps=0.1, max_lead_m=0.5)
    p0, _ = tcp_pose(HOME_Q)
    assert np.allclose(core.step(DeviceInput(np.array([1.0, 0, 0]), np.zeros(3), deadman=False), 0.1), HOME_Q)
    for _ in range(10):  # 1 s at 0.05 m/s along +x
        q = core.step(DeviceInput(np.array([1.0, 0, 0]), np.zeros(3), deadman=True), 0.1)
    p, r = tcp_pose(q)
    np.testing.assert_allclose(p - p0, [0.05, 0.0, 0.0], atol=1e-3)
    np.testing.assert_allclose(matrix_to_rotvec(r @ tcp_pose(HOME_Q)[1].T), 0.0, atol=2e-3)


def test_rotation_input_turns_the_tool_about_the_base_axis():
    core = _core(max_angular_rps=0.5, speed_scale=1.0, max_lead_rad=1.0)
    _, r0 = tcp_pose(HOME_Q)
    for _ in range(4):
        q = core.step(DeviceInput(np.zeros(3), np.array([0, 0, 1.0]), deadman=True), 0.1)
    _, r = tcp_pose(q)
    np.testing.assert_allclose(matrix_to_rotvec(r @ r0.T), [0, 0, 0.2], atol=2e-3)


def test_target_never_runs_further_ahead_of_the_measured_tcp_than_max_lead():
    core = _core(max_lead_m=0.02, speed_scale=1.0)
    p_meas, _ = tcp_pose(HOME_Q)
    for _ in range(50):  # the arm does not move (measured stays at HOME_Q)
        q = core.step(DeviceInput(np.array([0, 1.0, 0]), np.zeros(3), deadman=True), 0.1)
    assert np.linalg.norm(tcp_pose(q)[0] - p_meas) <= 0.02 + 1e-4


def test_target_is_clamped_into_the_box():
    core = _core(max_lead_m=10.0, speed_scale=1.0, box_max=(0.83, 0.53, 0.5))
    for _ in range(100):
        q = core.step(DeviceInput(np.array([0, 0, 1.0]), np.zeros(3), deadman=True), 0.1)
    assert tcp_pose(q)[0][2] <= 0.5 + 1e-3


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="10 Hz"):
        TeleopConfig(rate_hz=5.0)
    with pytest.raises(ValueError, match="speed_scale"):
        TeleopConfig(speed_scale=2.0)


def test_keyboard_keys_map_to_axes_events_and_time_out():
    kb = KeyboardMapper(key_timeout_s=0.25)
    kb.feed("w", 0.0)
    inp = kb.poll(0.1)
    assert inp.deadman and inp.linear.tolist() == [1, 0, 0]
    kb.feed("ar", 0.15)
    inp = kb.poll(0.2)
    assert inp.linear.tolist() == [1, 1, 1]
    assert kb.poll(0.3).linear.tolist() == [0, 1, 1]  # w timed out
    assert not kb.poll(1.0).deadman
    kb.feed("j", 1.0)
    assert kb.poll(1.0).angular.tolist() == [0, 0, 1]
    kb.feed(" ", 1.0)
    assert not kb.poll(1.0).deadman  # space stops at once
    kb.feed("b\x1b[Ayne+x", 2.0)  # the arrow key's escape sequence is swallowed
    inp = kb.poll(2.0)
    assert inp.events == [START, SUCCESS, FAILURE, STOP, SPEED_UP, DISCARD] and not inp.deadman


def test_gamepad_mapping_deadman_edges_and_triggers():
    gp = GamepadMapper(GamepadLayout())
    axes = [0.0, -1.0, -1.0, 0.5, 0.0, 1.0]  # stick forward, LT released, RT pulled, right stick right
    inp = gp.update(axes, [0] * 8, [(0, 0)])
    assert not inp.deadman and not inp.linear.any()
    buttons = [0] * 8
    buttons[4] = 1  # LB deadman
    buttons[3] = 1  # Y = start
    inp = gp.update(axes, buttons, [(0, 1)])
    assert inp.deadman
    np.testing.assert_allclose(inp.linear, [1.0, 0.0, 1.0])
    assert inp.angular[2] < 0 and inp.events == [START, SUCCESS]
    inp = gp.update(axes, buttons, [(0, 1)])
    assert inp.events == []  # held buttons fire once
    inp = gp.update([0.05, 0.05, -1.0, 0.0, 0.0, -1.0], buttons, [(0, -1)])
    assert not inp.linear.any() and inp.events == [FAILURE]  # inside the deadzone


def test_events_round_trip_and_refuse_garbage():
    d = decode_event(encode_event(START, 1.5, task="reach_precise"))
    assert d["event"] == START and d["task"] == "reach_precise"
    assert decode_event("stop")["event"] == STOP
    for bad in ("{", '{"event": "explode"}', "[1]"):
        with pytest.raises(EventError):
            decode_event(bad)
    with pytest.raises(EventError):
        encode_event("explode", 0.0)


@pytest.mark.parametrize("task", ["reach_precise", "peg_insert"])
def test_scripted_plan_starts_at_the_tcp_and_ends_at_the_goal(task):
    from cdp_core.sim.tasks import get_task

    t = get_task(task)
    params = t.sample(np.random.default_rng(3))
    vec = next(iter(t.task_observation(params).values()))
    quat = vec[3:7] if len(vec) >= 7 else np.array([0, 0, 0, 1.0])
    p0, r0 = tcp_pose(HOME_Q)
    plan = plan_scripted_demo(t, vec[:3], quat, p0, r0, np.random.default_rng(0), strategy="from_above")
    p, r = plan.tcp_pose(0.0)
    np.testing.assert_allclose(p, p0, atol=1e-9)
    p, r = plan.tcp_pose(plan.duration)
    tip = p + t.tip_offset * r[:, 2]
    assert t.tip_ok(tip, params) or t.tip_error(tip, params) < 1e-6
    assert np.isclose(plan.hold_s, t.spec.hold_s + 1.0)

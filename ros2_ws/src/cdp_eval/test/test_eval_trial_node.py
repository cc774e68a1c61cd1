"""TrialNode (the evaluation runner, a module-level class) against the in-process fake stack.

No simulator and no graph: the fake answers the services, its arm follows the homing path, and
it reports success and interventions when told; the runner's record must say what happened.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from cdp_eval.protocol import protocol_from_dict
from cdp_eval.run import TrialNode, intervention_onsets
from cdp_ros_common.fake_stack import FakeFilter, FakeSim
from cdp_ros_common.stack_client import StackError
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import String

ROOT = Path(__file__).resolve().parents[4]
MODEL = ROOT / "models" / "reach_precise" / "cdp_reach.onnx"


@pytest.fixture
def stack(tmp_path):
    proto = protocol_from_dict(
        {
            "name": "t",
            "task": "reach_precise",
            "policies": {"A": str(MODEL)},
            "trials": 1,
            "output": str(tmp_path / "out"),
            "time_limit_s": 2.0,
        },
        "test",
    )
    rclpy.init()
    fake, sim = FakeFilter(None), FakeSim(None)
    node = TrialNode(proto)
    node.stack.config.homing_speed = 2.0  # the fake arm follows instantly: keep the test short
    node.stack.config.home_settle_s = 0.05
    executors = []
    for n in (fake, sim, node):
        ex = SingleThreadedExecutor()
        ex.add_node(n)
        threading.Thread(target=ex.spin, daemon=True).start()
        executors.append(ex)
    node.wait_for_stack(20.0)
    yield node, fake, sim
    for ex in executors:
        ex.shutdown()
    for n in (fake, sim, node):
        n.destroy_node()
    rclpy.shutdown()


def test_a_successful_trial_is_recorded_with_its_seed_and_home(stack):
    node, fake, sim = stack
    sim.succeed_after_s = 0.3
    row = node.run_trial(0, "A", 100007, operator=None, log=lambda *_: None)
    assert row["seed"] == 100007 and row["params"] == {"x": 1}  # the fake sim honoured next_seed
    assert row["success"] and row["ended_by"] == "success" and row["labelled_by"] == "simulation"
    assert 0.2 < row["time_to_success_s"] < 1.5
    assert row["final_error_mm"] == pytest.approx(1.0)
    home = node.task.episode_start(100007, node.protocol.home_jitter)[1]
    assert np.max(np.abs(fake.q - home)) < node.stack.config.home_tolerance  # homed where the fast path starts
    assert fake.get_parameter("active_source").value == "teleop"  # handed back after the trial
    assert not fake.policy_enabled


def test_a_trial_that_never_succeeds_ends_at_the_time_limit_and_counts_interventions(stack):
    node, fake, sim = stack
    sim.succeed_after_s = None

    def intervene():  # while the policy drives
        t_end = time.monotonic() + 20.0
        while not fake.policy_enabled and time.monotonic() < t_end:
            time.sleep(0.01)
        time.sleep(0.2)
        for _ in range(3):
            fake.interventions.publish(String(data="velocity_clamped: joint 1"))
            time.sleep(0.05)

    threading.Thread(target=intervene, daemon=True).start()
    t0 = time.monotonic()
    row = node.run_trial(0, "A", 100008, operator=None, log=lambda *_: None)
    assert not row["success"] and row["ended_by"] == "time_limit" and row["outcome"] == "failure"
    assert time.monotonic() - t0 >= 2.0
    assert row["interventions"] >= 1 and row["intervention_reasons"]


def test_a_driver_error_stops_the_trial_with_a_stack_error(stack):
    node, fake, sim = stack
    fake.driver_error = "joint_position_limits_violation"
    time.sleep(0.2)
    with pytest.raises(StackError, match="franka_driver reports an error"):
        node.run_trial(0, "A", 100009, operator=None, log=lambda *_: None)
    assert not fake.policy_enabled


def test_intervention_onsets_count_runs_not_messages():
    assert intervention_onsets([]) == (0, 0)
    assert intervention_onsets(["a", "a", "none", "b", "none"]) == (2, 3)

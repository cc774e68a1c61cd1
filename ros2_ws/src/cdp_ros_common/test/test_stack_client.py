"""StackClient against an in-process fake stack: real rclpy services, parameters and topics.

The fake plays the safety filter (its ``active_source`` parameter), the simulator (``next_seed``,
episode services), the policy's enable service and an arm that follows ``/teleop/command``.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import rclpy
from cdp_ros_common import names
from cdp_ros_common.fake_stack import Q0, FakeFilter, FakeSim
from cdp_ros_common.stack_client import StackClient, StackClientConfig, StackError
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_srvs.srv import Trigger


@pytest.fixture
def stack():
    context = rclpy.context.Context()
    rclpy.init(context=context)
    fake, sim = FakeFilter(context), FakeSim(context)
    user = Node("stack_client_user", context=context)
    client = StackClient(
        user, StackClientConfig(service_timeout_s=3.0, homing_speed=1.0, homing_timeout_s=10.0, home_settle_s=0.1)
    )
    executors = []
    for n in (fake, sim, user):
        ex = SingleThreadedExecutor(context=context)
        ex.add_node(n)
        threading.Thread(target=ex.spin, daemon=True).start()
        executors.append(ex)
    client.wait_for([names.POLICY_ENABLE, client.filter_parameters], 20.0)
    yield client, fake, sim
    for ex in executors:
        ex.shutdown()
    for n in (fake, sim, user):
        n.destroy_node()
    rclpy.shutdown(context=context)


def test_select_source_sets_the_filter_parameter_and_names_a_refusal(stack):
    client, fake, _ = stack
    client.select_source("teleop")
    assert fake.get_parameter("active_source").value == "teleop"
    with pytest.raises(StackError, match="safety_filter refused active_source=bogus: unknown source"):
        client.select_source("bogus")
    assert fake.get_parameter("active_source").value == "teleop"


def test_missing_service_is_a_stack_error_naming_it(stack):
    client, _, _ = stack
    t0 = time.monotonic()
    with pytest.raises(StackError, match="/nobody/here is not available"):
        client.call("/nobody/here", Trigger.Request(), timeout_s=0.5, srv_type=Trigger)
    assert time.monotonic() - t0 < 3.0
    with pytest.raises(ValueError, match="does not know the type"):
        client.client("/nobody/else")


def test_policy_enable_and_its_refusal(stack):
    client, fake, _ = stack
    client.enable_policy(True)
    assert fake.policy_enabled
    fake.refuse_enable = True
    with pytest.raises(StackError, match="policy refused enable=False: model not loaded"):
        client.enable_policy(False)


def test_episode_reset_pairs_seeds_or_says_why_not(stack):
    client, _, sim = stack
    assert client.reset_episode(7) == {"seed": 7, "params": {"x": 1}}
    client.start_episode()
    assert sim.started == 1
    sim.honour_seed = False
    with pytest.raises(StackError, match="drew seed 1 instead of the requested 8"):
        client.reset_episode(8)


def test_go_home_streams_through_teleop_and_settles(stack):
    client, fake, _ = stack
    goal = Q0 + np.array([0.2, -0.1, 0.1, 0.1, 0.0, -0.1, 0.2])
    t0 = time.monotonic()
    client.go_home(goal)
    assert np.max(np.abs(fake.q - goal)) < client.config.home_tolerance
    assert fake.teleop_commands > 10  # a path, not a jump
    assert time.monotonic() - t0 >= 1.0  # homing_trajectory takes at least 1 s


def test_go_home_sink_receives_the_path_still_to_go(stack):
    client, fake, _ = stack
    seen: list[np.ndarray] = []

    def sink(times: np.ndarray, path: np.ndarray) -> None:
        assert len(times) == len(path) and path.shape[1] == 7
        seen.append(path[0])
        fake.q = path[0].copy()  # the caller's own stream would carry it

    goal = Q0 + 0.1
    client.go_home(goal, sink=sink)
    assert fake.teleop_commands == 0
    steps = np.abs(np.diff(np.array(seen), axis=0)).max()
    assert steps < 0.05 and np.allclose(seen[-1], goal)


def test_go_home_stops_on_a_driver_error_and_on_a_frozen_arm(stack):
    client, fake, _ = stack
    fake.driver_error = "cartesian_reflex"
    time.sleep(0.2)
    with pytest.raises(StackError, match="franka_driver reports an error \\(cartesian_reflex\\)"):
        client.go_home(Q0 + 0.2)
    assert client.recover_driver() == "recovered"
    time.sleep(0.2)
    fake.frozen = True
    with pytest.raises(StackError, match="did not reach"):
        client.go_home(Q0 + 0.2, timeout_s=1.5)


def test_guard_ends_every_wait(stack):
    client, _, _ = stack

    def dead() -> None:
        raise StackError("required node franka_driver exited with code 1")

    client.guard = dead
    with pytest.raises(StackError, match="exited with code 1"):
        client.go_home(Q0 + 0.2)
    with pytest.raises(StackError, match="exited with code 1"):
        client.check_driver()


def test_config_is_strict():
    with pytest.raises(ValueError, match="homing_speed"):
        StackClientConfig(homing_speed=0.0)
    with pytest.raises(ValueError, match="home_settle_s"):
        StackClientConfig(home_settle_s=-1.0)

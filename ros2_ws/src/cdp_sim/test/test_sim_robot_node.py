"""sim_robot: serves libfranka on its address, publishes the task's ground truth, draws chosen seeds."""

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from cdp_core.sim.tasks import get_task  # noqa: E402
from cdp_ros_common import names  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402


@pytest.fixture(scope="module")
def sim():
    host = f"127.0.9.{os.getpid() % 200 + 20}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cdp_sim.node", "--ros-args", "-p", f"hostname:={host}", "-p", "task:=peg_insert"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    rclpy.init()
    node = rclpy.create_node("sim_probe")
    poses = []
    node.create_subscription(PoseStamped, names.OBJECT_POSE, poses.append, 10)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    threading.Thread(target=ex.spin, daemon=True).start()
    yield node, poses, host
    ex.shutdown()
    node.destroy_node()
    rclpy.shutdown()
    proc.terminate()
    proc.wait(10)


def _call(node, srv_type, name, request):
    cli = node.create_client(srv_type, name)
    assert cli.wait_for_service(timeout_sec=30), f"{name} not available"
    done = threading.Event()
    fut = cli.call_async(request)
    fut.add_done_callback(lambda _f: done.set())
    assert done.wait(10)
    return fut.result()


def test_chosen_seed_places_the_fixture_and_ground_truth_follows(sim):
    node, poses, _ = sim
    p = Parameter(name="next_seed", value=ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=4242))
    assert (
        _call(node, SetParameters, "/sim_robot/set_parameters", SetParameters.Request(parameters=[p]))
        .results[0]
        .successful
    )
    res = json.loads(_call(node, Trigger, names.SIM_RESET_EPISODE, Trigger.Request()).message)
    assert res["seed"] == 4242 and res["task"] == "peg_insert"
    expected = get_task("peg_insert").sample(np.random.default_rng(4242))
    np.testing.assert_allclose(res["params"]["hole_pos"], expected["hole_pos"])
    time.sleep(0.5)
    poses.clear()
    t_end = time.monotonic() + 5
    while not poses and time.monotonic() < t_end:
        time.sleep(0.05)
    pos = poses[-1].pose.position
    np.testing.assert_allclose([pos.x, pos.y, pos.z], expected["hole_pos"], atol=1e-9)
    # one-shot: the next reset continues from the chosen seed
    res = json.loads(_call(node, Trigger, names.SIM_RESET_EPISODE, Trigger.Request()).message)
    assert res["seed"] == 4243


def test_a_libfranka_client_connects_to_the_simulated_arm(sim):
    _, _, host = sim
    code = (
        "import franky; r = franky.Robot('%s', realtime_config=franky.RealtimeConfig.Ignore); "
        "print(len(r.current_joint_positions))" % host
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith("7"), out.stderr[-2000:]

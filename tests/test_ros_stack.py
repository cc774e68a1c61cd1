"""Integration: the whole ROS 2 graph (cdp-graph) driving franky-sim over the libfranka protocol.

One graph per module (simulator, Franka driver with the franky backend, safety filter, policy
node with the bundled default model) on its own loopback address and ROS domain. The tests
talk to it like an operator: topics and services only.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from cdp_bringup.episodes import EpisodeConfig  # noqa: E402
from cdp_bringup.episodes_node import EpisodeRunner  # noqa: E402
from cdp_bringup.graph import load_graph, resolve  # noqa: E402
from cdp_bringup.testing import loopback_host, running_graph  # noqa: E402
from cdp_core.robot.limits import FR3  # noqa: E402
from cdp_core.sim.env import HOME_Q  # noqa: E402
from cdp_ros_common import names  # noqa: E402
from cdp_ros_common.conversions import chunk_to_msg  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "reach_precise" / "cdp_reach.onnx"
FIRST_SEED = 100004
Q_MIN, Q_MAX = np.asarray(FR3.q_min), np.asarray(FR3.q_max)  # the one FR3 table


class Probe(EpisodeRunner):
    """The episode runner plus recording of what reaches the driver and why the filter intervened."""

    def __init__(self) -> None:
        super().__init__("reach_precise", EpisodeConfig())
        self.commands: list[tuple[np.ndarray, np.ndarray]] = []
        self.interventions: list[str] = []
        self.driver_errors: set[str] = set()
        self.create_subscription(JointTrajectory, names.SAFETY_COMMAND, self._on_command, 100)
        self.create_subscription(String, names.SAFETY_INTERVENTION, lambda m: self.interventions.append(m.data), 100)
        self.create_subscription(DiagnosticArray, names.DIAGNOSTICS, self._on_driver_diag, 50)

    def _on_command(self, msg: JointTrajectory) -> None:
        p = msg.points[0]
        self.commands.append((np.array(p.positions), np.array(p.velocities)))

    def _on_driver_diag(self, msg: DiagnosticArray) -> None:
        for st in msg.status:
            if st.name == "franka_driver":
                err = {kv.key: kv.value for kv in st.values}.get("error", "")
                if err and err != "no state yet":
                    self.driver_errors.add(err)

    def teleop_stream(self, q: np.ndarray, seconds: float) -> None:
        """Stream a hold-at-``q`` command on the teleop topic for ``seconds``."""
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            self.stack.teleop.publish(chunk_to_msg(self.now(), 0.1, np.asarray(q)[None]))
            time.sleep(0.05)

    def teleop_until(self, q: np.ndarray, tolerance: float = 0.01, timeout_s: float = 30.0) -> float:
        """Stream a hold-at-``q`` command until the arm is within ``tolerance`` (returns the error).

        A deadline, not a fixed duration: on a loaded machine the simulator runs below real time
        and the safety filter waits for the lagging arm."""
        t_end = time.monotonic() + timeout_s
        while time.monotonic() < t_end:
            self.stack.teleop.publish(chunk_to_msg(self.now(), 0.1, np.asarray(q)[None]))
            if float(np.max(np.abs(self.stack.q - q))) < tolerance:
                break
            time.sleep(0.05)
        self.teleop_stream(q, 0.3)
        return float(np.max(np.abs(self.stack.q - q)))

    def settle(self, seconds: float = 1.0) -> np.ndarray:
        """Joint positions sampled over ``seconds`` (rows)."""
        rows, t_end = [], time.monotonic() + seconds
        while time.monotonic() < t_end:
            rows.append(self.stack.q.copy())
            time.sleep(0.02)
        return np.array(rows)


@pytest.fixture(scope="module")
def stack():
    if not MODEL.is_file():
        pytest.fail(f"bundled default model missing: {MODEL}")
    specs = resolve(load_graph(), {"use_sim": "true", "robot_ip": loopback_host(2), "model": str(MODEL)})
    for spec in specs:
        if spec.name == "sim_robot":
            # Episodes 100005 and 100006: the fast path ends them 1.3 and 9 mm from the target.
            spec.overrides["first_seed"] = str(FIRST_SEED)
    with running_graph(specs, ROOT / "outputs" / "test_ros_stack.log") as (graph, log):
        rclpy.init()
        probe = Probe()
        executor = MultiThreadedExecutor(num_threads=3)
        executor.add_node(probe)
        threading.Thread(target=executor.spin, daemon=True).start()
        try:
            probe.wait_for_stack(90.0)
            probe.stack.select_source("teleop")
        except Exception as exc:
            raise RuntimeError("stack did not come up:\n" + log.getvalue()[-6000:]) from exc
        yield graph, probe, log
        executor.shutdown()
        probe.destroy_node()
        rclpy.shutdown()


def test_arm_reaches_a_commanded_target(stack):
    _, probe, _ = stack
    target = HOME_Q + np.array([0.25, 0.1, 0.0, 0.1, 0.0, -0.1, 0.2])
    assert probe.teleop_until(target) < 0.01, probe.stack.q - target


def test_nan_and_out_of_limit_commands_never_reach_the_driver(stack):
    _, probe, _ = stack
    start = len(probe.commands)
    bad = HOME_Q.copy()
    bad[2] = float("nan")
    beyond = HOME_Q.copy()
    beyond[3] = 1.0  # joint 4 must stay below -0.15 rad
    far = HOME_Q + 2.0  # a 2 rad jump on every joint
    for q in (bad, beyond, far):
        for _ in range(10):
            probe.stack.teleop.publish(chunk_to_msg(probe.now(), 0.1, q[None]))
            time.sleep(0.05)
    time.sleep(1.0)
    sent = probe.commands[start:]
    assert sent, "the safety filter published nothing"
    pos = np.array([p for p, _ in sent])
    assert np.isfinite(pos).all()
    assert (pos >= Q_MIN).all() and (pos <= Q_MAX).all()
    assert any("nan" in m.lower() or "finite" in m.lower() for m in probe.interventions), probe.interventions
    assert (probe.stack.q >= Q_MIN).all() and (probe.stack.q <= Q_MAX).all()


def test_estop_holds_until_reset(stack):
    _, probe, _ = stack
    # From home: the previous test may have left the arm against the workspace box, where a
    # further move would be (rightly) refused.
    assert probe.teleop_until(HOME_Q) < 0.01
    here = probe.stack.q.copy()
    probe.teleop_stream(here, 1.0)
    res = probe.stack.call(names.SAFETY_ESTOP, Trigger.Request(), srv_type=Trigger)
    assert res.success
    goal = here + np.array([0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    probe.teleop_stream(goal, 2.0)
    assert np.max(np.abs(probe.stack.q - here)) < 0.01, "arm moved during e-stop"
    res = probe.stack.call(names.SAFETY_RESET, Trigger.Request(), srv_type=Trigger)
    assert res.success
    assert probe.teleop_until(goal) < 0.01, "arm did not follow fresh commands after reset"


def test_closed_loop_episodes_bring_the_tool_to_the_target(stack):
    """The default policy, closed loop through the whole stack, ends near the target.

    Success (5 mm held for 0.5 s) is what the evaluation reports: the default model (24k-step
    recipe) succeeds on 39/40 fast-path and 18/20 ROS-stack episodes, and a loaded CI machine
    delays its chunks, so success is asserted for one of the two episodes, not each. What must
    hold on every run: chunks flow, and the tool ends within 25 mm of a target it started
    0.1-0.4 m away from.
    """
    _, probe, _ = stack
    results = [probe.run_episode() for _ in range(2)]
    print("closed-loop episodes:", [(r.seed, r.success, round(r.final_error_mm, 1)) for r in results])
    assert [r.seed for r in results] == [FIRST_SEED + 1, FIRST_SEED + 2]
    assert all(r.chunks > 10 for r in results), "the policy published (almost) no chunks"
    assert all(r.final_error_mm < 25.0 for r in results), [(r.seed, r.final_error_mm) for r in results]
    assert any(r.success for r in results), [(r.seed, r.success, r.final_error_mm) for r in results]


def test_killed_policy_node_leaves_the_arm_holding(stack):
    graph, probe, _ = stack
    probe.stack.enable_policy(False)
    probe.stack.reset_episode()
    probe.stack.go_home(HOME_Q)
    probe.stack.select_source("policy")
    probe.stack.enable_policy(True)
    time.sleep(1.5)  # the policy is driving the arm
    policy = next(n for n in graph.nodes if n.spec.name == "policy_node")
    os.killpg(policy.process.pid, signal.SIGKILL)
    time.sleep(2.0)  # rest of the last chunk, stale timeout, jerk-limited stop
    rows = probe.settle(1.5)
    assert np.max(np.ptp(rows, axis=0)) < 0.003, "arm still moving after the policy died"
    assert any("stale" in m.lower() for m in probe.interventions), probe.interventions[-5:]
    assert graph.check() == ("policy_node", -signal.SIGKILL)


def test_no_libfranka_errors_over_the_run(stack):
    _, probe, log = stack
    # The driver's own lines say when and where in its motion sequence an error came.
    driver_lines = [ln for ln in log.getvalue().splitlines() if "franka_driver" in ln][-40:]
    assert not probe.driver_errors, f"{probe.driver_errors}\n" + "\n".join(driver_lines)

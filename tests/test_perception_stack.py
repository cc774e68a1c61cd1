"""Integration: the ROS 2 graph with perception in the loop (use_perception:=true) on the simulated FR3.

The simulator's ground truth goes to /sim/object_pose, where only the simulated camera reads it
to place the object in its render; the rendered frames go through librealsense's software device
(camera_node), ArUco detection and the calibrated hand-eye transform (perception_node), and the
policy sees the object only on /perception/object_pose.
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
from cdp_ros_common import names  # noqa: E402
from cdp_ros_common.conversions import msg_to_pose  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "peg_insert" / "cdp_peg.onnx"
#: The first episode is 100005: the bundled peg model inserts on it in the fast path (1.5 mm).
FIRST_SEED = 100004
LIVE_VIEW = ROOT / "outputs" / "test_perception_stack.rrd"


class PoseProbe(EpisodeRunner):
    """The episode runner plus the perceived and the true object pose."""

    def __init__(self) -> None:
        super().__init__("peg_insert", EpisodeConfig())
        self.perceived: list[tuple[float, np.ndarray]] = []
        self.truth: np.ndarray | None = None
        self.create_subscription(
            PoseStamped, names.OBJECT_POSE, lambda m: self.perceived.append((time.monotonic(), msg_to_pose(m)[1])), 50
        )
        self.create_subscription(
            PoseStamped, names.SIM_OBJECT_POSE, lambda m: setattr(self, "truth", msg_to_pose(m)[1]), 50
        )
        self.policy_messages: list[str] = []
        self.create_subscription(DiagnosticArray, names.DIAGNOSTICS, self._on_policy_diag, 50)

    def _on_policy_diag(self, msg: DiagnosticArray) -> None:
        self.policy_messages += [st.message for st in msg.status if st.name == "policy_node"]

    def wait_for_pose(self, timeout_s: float) -> np.ndarray:
        t_end = time.monotonic() + timeout_s
        while time.monotonic() < t_end:
            if self.perceived and self.truth is not None:
                return self.perceived[-1][1]
            time.sleep(0.1)
        raise TimeoutError(f"no {names.OBJECT_POSE} within {timeout_s} s (and truth {self.truth})")


@pytest.fixture(scope="module")
def perception_stack():
    specs = resolve(
        load_graph(),
        {
            "use_sim": "true",
            "use_perception": "true",
            "robot_ip": loopback_host(3),
            "model": str(MODEL),
            "task": "peg_insert",
            "object_plane_z": "0.06",
            "live_view": "true",
            "live_view_save": str(LIVE_VIEW),
        },
    )
    assert [s.name for s in specs][3:5] == ["camera_node", "perception_node"]
    LIVE_VIEW.unlink(missing_ok=True)
    for spec in specs:
        if spec.name == "sim_robot":
            spec.overrides["first_seed"] = str(FIRST_SEED)
    with running_graph(specs, ROOT / "outputs" / "test_perception_stack.log") as (graph, log):
        rclpy.init()
        probe = PoseProbe()
        executor = MultiThreadedExecutor(num_threads=3)
        executor.add_node(probe)
        threading.Thread(target=executor.spin, daemon=True).start()
        try:
            probe.wait_for_stack(120.0)
            probe.wait_for_pose(60.0)
            probe.stack.select_source("teleop")
        except Exception as exc:
            raise RuntimeError("perception stack did not come up:\n" + log.getvalue()[-6000:]) from exc
        yield graph, probe, log
        executor.shutdown()
        probe.destroy_node()
        rclpy.shutdown()


def test_perceived_pose_matches_the_simulators_truth(perception_stack):
    _, probe, _ = perception_stack
    p = probe.wait_for_pose(10.0)
    err_mm = 1000 * float(np.linalg.norm(p - probe.truth))
    print(f"\nperceived hole {np.round(p, 4)} vs truth {np.round(probe.truth, 4)}: {err_mm:.2f} mm")
    assert err_mm < 2.0  # planar fit of the fixture's markers: 0.5 mm typical, 1.3 mm worst in 20 fast-path episodes


def test_closed_loop_episode_on_perception(perception_stack):
    """The policy acts on the perceived hole: chunks flow and the peg is brought to the true hole.

    The bundled peg model succeeds on about a third of the fast path's episodes, so success is
    reported, not asserted; the peg starts about 350 mm from the hole, and a policy fed a wrong
    or missing hole pose would not bring it within 100 mm.
    """
    _, probe, _ = perception_stack
    r = probe.run_episode()
    print(
        f"\nepisode on perception: seed {r.seed}, success {r.success}, final error {r.final_error_mm:.1f} mm, "
        f"{r.chunks} chunks"
    )
    assert r.seed == FIRST_SEED + 1
    assert r.chunks > 10, "the policy published (almost) no chunks on perceived poses"
    assert r.final_error_mm < 100.0


def test_dead_perception_leaves_the_arm_holding(perception_stack):
    """Perception dies while the policy drives: the object pose goes stale, the policy stops, the arm holds."""
    graph, probe, _ = perception_stack
    probe.stack.enable_policy(False)
    reset = probe.stack.reset_episode()
    probe.stack.go_home(probe.task.episode_start(int(reset["seed"]), 0.05)[1])
    probe.stack.select_source("policy")
    probe.stack.start_episode()
    probe.stack.enable_policy(True)
    time.sleep(1.5)  # the policy is driving the arm
    perception = next(n for n in graph.nodes if n.spec.name == "perception_node")
    os.killpg(perception.process.pid, signal.SIGKILL)
    # the policy's object-pose age limit as the graph configures it, then the rest of the chunk,
    # the filter's stale timeout and the stop
    policy = next(n for n in graph.nodes if n.spec.name == "policy_node")
    time.sleep(float(policy.spec.parameters()["max_object_age_s"]) + 2.5)
    rows = []
    t_end = time.monotonic() + 1.5
    while time.monotonic() < t_end:
        rows.append(probe.stack.q.copy())
        time.sleep(0.02)
    n_msgs = len(probe.policy_messages)
    time.sleep(1.5)  # the policy reports once a second
    reasons = probe.policy_messages[n_msgs:]
    probe.stack.enable_policy(False)
    probe.stack.select_source("teleop")
    assert np.max(np.ptp(np.array(rows), axis=0)) < 0.003, "arm still moving after perception died"
    assert graph.check() == ("perception_node", -signal.SIGKILL)  # a required node: cdp-graph stops the graph
    assert any("/perception/object_pose" in r for r in reasons), reasons


def test_the_live_view_carried_every_item_of_the_episode(perception_stack):
    """Rerun's own reader (``rerun rrd print``) lists what the live view logged during the episode."""
    import subprocess
    import sys

    graph, _, log = perception_stack
    view = next(n for n in graph.nodes if n.spec.name == "live_view")
    if view.process.poll() is None:  # (the graph may have stopped it already: perception died above)
        os.killpg(view.process.pid, signal.SIGINT)  # ends the recording (flushed on shutdown)
    view.process.wait(timeout=20)
    rerun = Path(sys.executable).with_name("rerun")
    out = subprocess.run([str(rerun), "rrd", "print", str(LIVE_VIEW)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    listed = out.stdout
    for entity, column in (
        ("/world/tcp", "Points3D:positions"),  # robot state
        ("/joints/measured/q1", "Scalars"),
        ("/world/commanded", "Points3D:positions"),  # the commanded trajectory
        ("/joints/commanded/q1", "Scalars"),
        ("/world/chunk", "LineStrips3D"),  # the predicted chunk
        ("/world/draws", "LineStrips3D"),  # ... its K draws
        ("/policy/dispersion", "Scalars"),
        ("/safety/interventions", "TextLog"),  # safety interventions
        ("/camera/image", "Image"),  # the camera image
        ("/world/object", "Transform3D"),  # the perceived object pose
    ):
        lines = [ln for ln in listed.splitlines() if f"- {entity} -" in ln]
        assert lines and any(column in ln for ln in lines), f"{entity} ({column}) not in the live view"

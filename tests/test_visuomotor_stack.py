"""Integration: an image policy through the whole ROS 2 graph (tiny version of issue 16's end to end).

Simulated demonstrations with the agent-view camera -> a tiny image policy (a few training steps:
the plumbing is tested, not the skill) -> ONNX -> cdp-graph with that model. The graph reads the
model's metadata and starts ``agentview_camera`` at the model's frame size; the policy node runs
on its frames; a stalled camera refuses the policy's ticks with the camera named and the arm holds.
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
from cdp_core.sim.env import HOME_Q  # noqa: E402
from cdp_ros_common import names  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from std_msgs.msg import String  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIZE = 32


class Probe(EpisodeRunner):
    def __init__(self) -> None:
        super().__init__("reach_precise", EpisodeConfig())
        self.policy_diag: dict[str, str] = {}
        self.interventions: list[str] = []
        self.create_subscription(DiagnosticArray, names.DIAGNOSTICS, self._on_diag, 50)
        self.create_subscription(String, names.SAFETY_INTERVENTION, lambda m: self.interventions.append(m.data), 100)

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for st in msg.status:
            if st.name == "policy_node":
                self.policy_diag = {"message": st.message, **{kv.key: kv.value for kv in st.values}}


def wait_for(cond, timeout_s: float) -> bool:
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


@pytest.fixture(scope="module")
def image_model(tmp_path_factory) -> Path:
    from cdp_core.sim.cameras import cameras_by_name
    from cdp_core.sim.demos import generate_demos
    from cdp_core.testing import train_small_policy

    root = tmp_path_factory.mktemp("visuo")
    cams = cameras_by_name(["agentview"], (SIZE, SIZE))
    generate_demos("reach_precise", root / "demos", 2, seed=0, progress=False, cameras=cams)
    return train_small_policy(root / "demos", root, steps=6, cameras=("agentview",))


@pytest.fixture(scope="module")
def stack(image_model):
    specs = resolve(load_graph(), {"use_sim": "true", "robot_ip": loopback_host(9), "model": str(image_model)})
    assert "agentview_camera" in [s.name for s in specs], "the graph did not start the model's camera"
    with running_graph(specs, ROOT / "outputs" / "test_visuomotor_stack.log") as (graph, log):
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


def test_the_image_policy_runs_on_rendered_frames_and_a_stalled_camera_holds_the_arm(stack):
    graph, probe, log = stack
    st = probe.stack
    st.enable_policy(False)
    st.reset_episode()
    st.go_home(HOME_Q)
    st.select_source("policy")
    n0 = probe.chunks
    st.enable_policy(True)
    try:
        assert wait_for(lambda: probe.chunks >= n0 + 3, 30.0), (
            f"{probe.chunks - n0} chunks from the image policy; policy: {probe.policy_diag}\n" + log.getvalue()[-3000:]
        )

        def age() -> float:
            return float(probe.policy_diag.get("image_age_s.agentview", "nan"))

        assert wait_for(lambda: np.isfinite(age()), 5.0), probe.policy_diag
        print(f"image policy on the graph: {probe.chunks - n0} chunks, frame age {age() * 1e3:.0f} ms")
        assert 0.0 <= age() < 0.3  # diagnostics carry the frames' age (capture stamp to tick)
        camera = next(n for n in graph.nodes if n.spec.name == "agentview_camera")
        os.killpg(camera.process.pid, signal.SIGSTOP)  # the camera stalls (alive, silent)
        try:
            assert wait_for(lambda: "stale camera" in probe.policy_diag.get("message", ""), 5.0), probe.policy_diag
            assert names.AGENTVIEW_IMAGE in probe.policy_diag["message"]
            time.sleep(1.5)  # rest of the last chunk, the filter's stale timeout, its stop
            rows = []
            for _ in range(50):
                rows.append(st.q.copy())
                time.sleep(0.02)
            assert np.max(np.ptp(np.array(rows), axis=0)) < 0.003, "the arm moved without camera frames"
            assert any("stale" in m for m in probe.interventions[-20:]), probe.interventions[-5:]
            n1 = probe.chunks
        finally:
            os.killpg(camera.process.pid, signal.SIGCONT)
        assert wait_for(lambda: probe.chunks > n1, 15.0), "the policy did not resume with the camera"
    finally:
        st.enable_policy(False)
        st.select_source("teleop")
    assert graph.check() is None, "a node of the graph died"

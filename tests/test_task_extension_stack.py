"""The third task (``place_precise``, one module plus its registration) through the ROS stack.

The simulated scene, the ground-truth object pose, scripted teleop (which inverts that pose) and
the homing of both the teleop node and the episode runner come from the task definition; a
model trained on the task's fast-path demonstrations is served by the policy node, whose
observation table gains the task's key from the registration alone.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")

from cdp_bringup.episodes import EpisodeConfig  # noqa: E402
from cdp_bringup.episodes_node import EpisodeRunner  # noqa: E402
from cdp_bringup.graph import NodeSpec, load_graph, resolve  # noqa: E402
from cdp_bringup.testing import loopback_host, running_graph  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TASK = "place_precise"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A small policy trained briefly on the task's scripted fast-path demonstrations (it need not succeed)."""
    from cdp_core.sim.demos import generate_demos
    from cdp_core.testing import train_small_policy

    tmp = tmp_path_factory.mktemp("place_precise")
    generate_demos(TASK, tmp / "demos", episodes=2, seed=0, progress=False)
    return train_small_policy(tmp / "demos", tmp)


def test_scripted_teleop_and_the_policy_run_the_new_task_on_the_stack(model):
    specs = resolve(load_graph(), {"use_sim": "true", "robot_ip": loopback_host(7), "model": str(model), "task": TASK})
    params = specs[0].params_files
    specs.append(
        NodeSpec(
            "teleop_node",
            "cdp_teleop",
            "teleop_node",
            "cdp_teleop.node",
            False,
            0.0,
            params,
            {
                "device": "scripted",
                "episodes": "1",
                "exit_when_done": "true",
                "task": TASK,
                "operator": "pytest-scripted",
                "max_lead_m": "0.08",
            },
        )
    )
    with running_graph(specs, ROOT / "outputs" / "test_task_extension_stack.log") as (graph, log):
        teleop = next(n for n in graph.nodes if n.spec.name == "teleop_node")
        try:
            teleop.process.wait(timeout=240)
        except Exception as exc:
            raise AssertionError("scripted episode did not finish:\n" + log.getvalue()[-6000:]) from exc
        text = log.getvalue()
        assert teleop.process.returncode == 0, text[-6000:]
        assert "scripted episode 1/1" in text and "success" in text.split("scripted episode 1/1")[1][:200], text[-4000:]

        rclpy.init()
        runner = EpisodeRunner(TASK, EpisodeConfig(episodes=1))
        executor = MultiThreadedExecutor(num_threads=3)
        executor.add_node(runner)
        threading.Thread(target=executor.spin, daemon=True).start()
        try:
            runner.wait_for_stack(90.0)
            runner.stack.select_source("teleop")
            result = runner.run_episode()  # homed from Task.episode_start, then the policy drives
        finally:
            executor.shutdown()
            runner.destroy_node()
            rclpy.shutdown()
        print(f"\npolicy episode on {TASK}: {result}")
        assert result.chunks > 5, log.getvalue()[-4000:]  # the node built pad_pose observations and acted
        assert graph.check() is None

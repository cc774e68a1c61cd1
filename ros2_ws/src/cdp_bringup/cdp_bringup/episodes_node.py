"""``cdp-episodes``: run seeded precision-task episodes through the running stack and report.

For each episode: disable the policy, draw the next placement (/sim/reset_episode), bring the
arm home through the safety filter (teleop source), restart the success clock
(/sim/start_episode), hand the filter back to the policy and enable it, then wait for success
or the task's time limit. Needs a running graph (``cdp-graph`` or ``ros2 launch``).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

import rclpy
from cdp_core.sim.tasks import get_task
from cdp_ros_common import names
from cdp_ros_common.stack_client import StackClient, StackClientConfig, StackError
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import Bool, Float64
from trajectory_msgs.msg import JointTrajectory

from .episodes import EpisodeConfig, EpisodeResult, summarize

__all__ = ["EpisodeRunner", "StackError", "run_episodes"]


class EpisodeRunner(Node):
    """Drives episodes through the stack (its :class:`StackClient`); blocking methods for the caller's thread."""

    def __init__(
        self, task: str, config: EpisodeConfig, safety_node: str = "safety_filter", node_name: str = "episode_runner"
    ):
        super().__init__(node_name)
        self.task = get_task(task)
        self.config = config
        self.stack = StackClient(
            self,
            StackClientConfig(
                safety_node=safety_node,
                homing_speed=config.homing_speed,
                home_tolerance=config.home_tolerance,
                homing_timeout_s=config.homing_timeout_s,
            ),
        )
        self.success = False
        self.tip_error = float("inf")
        self.chunks = 0
        group = self.stack.group
        self.create_subscription(
            Bool, names.TASK_SUCCESS, lambda m: setattr(self, "success", m.data), 10, callback_group=group
        )
        self.create_subscription(
            Float64, names.TASK_TIP_ERROR, lambda m: setattr(self, "tip_error", m.data), 10, callback_group=group
        )
        self.create_subscription(JointTrajectory, names.POLICY_CHUNK, self._on_chunk, 10, callback_group=group)

    def _on_chunk(self, _msg: JointTrajectory) -> None:
        self.chunks += 1

    def now(self) -> float:
        return self.stack.now()

    def wait_for_stack(self, timeout_s: float = 60.0) -> None:
        """Block until joint states flow and every service the runner needs answers."""
        self.stack.wait_for(
            [names.POLICY_ENABLE, names.SIM_RESET_EPISODE, names.SIM_START_EPISODE, self.stack.filter_parameters],
            timeout_s,
        )

    def run_episode(self) -> EpisodeResult:
        st = self.stack
        st.enable_policy(False)
        reset = st.reset_episode()
        seed = int(reset["seed"])
        st.go_home(self.task.episode_start(seed, self.config.home_jitter)[1])
        st.select_source("policy")
        st.start_episode()
        self.success, self.chunks = False, 0
        t0 = time.monotonic()
        st.enable_policy(True)
        limit = self.task.spec.time_limit_s + self.config.grace_s
        tts = None
        try:
            while time.monotonic() - t0 < limit:
                if self.success:
                    tts = time.monotonic() - t0
                    break
                st.check_driver()
                time.sleep(0.01)
        finally:
            st.enable_policy(False)
            st.select_source("teleop")
        return EpisodeResult(
            seed=seed,
            success=tts is not None,
            final_error_mm=1000 * self.tip_error,
            time_to_success_s=tts,
            chunks=self.chunks,
            params=reset["params"],
        )

    def run(self, episodes: int, log=print) -> dict[str, Any]:
        results = []
        for i in range(episodes):
            r = self.run_episode()
            results.append(r)
            log(
                f"episode {i + 1}/{episodes} seed {r.seed}: {'success' if r.success else 'failure'}, "
                f"final error {r.final_error_mm:.1f} mm, {r.chunks} chunks"
                + (f", {r.time_to_success_s:.2f} s" if r.time_to_success_s is not None else "")
            )
        summary = summarize(results)
        summary["policy_diagnostics"] = {k: v for k, v in self.stack.diagnostics.items() if "policy" in k}
        return summary


def run_episodes(task: str, config: EpisodeConfig, log=print, wait_s: float = 60.0) -> dict[str, Any]:
    """Connect to the running stack, run ``config.episodes`` episodes, return the summary."""
    own_context = not rclpy.ok()
    if own_context:
        rclpy.init()
    runner = EpisodeRunner(task, config)
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(runner)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    try:
        runner.wait_for_stack(wait_s)
        runner.stack.select_source("teleop")
        return runner.run(config.episodes, log)
    finally:
        executor.shutdown()
        spin.join(timeout=2.0)
        runner.destroy_node()
        if own_context and rclpy.ok():
            rclpy.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cdp-episodes", description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="reach_precise")
    parser.add_argument("--episodes", type=int, default=EpisodeConfig.episodes)
    parser.add_argument("--json", help="write the summary here")
    args = parser.parse_args(argv)
    try:
        summary = run_episodes(args.task, EpisodeConfig(episodes=args.episodes))
    except StackError as exc:
        print(f"cdp-episodes: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(summary, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

import numpy as np
import rclpy
from cdp_core.sim.tasks import get_task
from cdp_ros_common import names
from cdp_ros_common.conversions import chunk_to_msg
from cdp_ros_common.trajectories import homing_trajectory
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from .episodes import EpisodeConfig, EpisodeResult, home_configuration, summarize


class StackError(RuntimeError):
    """The running stack did not answer as expected (a service missing, a node dead)."""


class EpisodeRunner(Node):
    """Drives episodes through the stack's services and topics; blocking methods for the caller's thread."""

    def __init__(self, task: str, config: EpisodeConfig, safety_node: str = "safety_filter"):
        super().__init__("episode_runner")
        self.task = get_task(task)
        self.config = config
        group = ReentrantCallbackGroup()
        self.q: np.ndarray | None = None
        self.dq: np.ndarray | None = None
        self.success = False
        self.tip_error = float("inf")
        self.chunks = 0
        self.diagnostics: dict[str, dict[str, str]] = {}
        self.create_subscription(JointState, names.JOINT_STATES, self._on_joints, 10, callback_group=group)
        self.create_subscription(Bool, names.TASK_SUCCESS, lambda m: setattr(self, "success", m.data), 10,
                                 callback_group=group)
        self.create_subscription(Float64, names.TASK_TIP_ERROR, lambda m: setattr(self, "tip_error", m.data), 10,
                                 callback_group=group)
        self.create_subscription(JointTrajectory, names.POLICY_CHUNK, self._on_chunk, 10, callback_group=group)
        self.create_subscription(DiagnosticArray, names.DIAGNOSTICS, self._on_diag, 50, callback_group=group)
        self.teleop = self.create_publisher(JointTrajectory, names.TELEOP_COMMAND, 10)
        self.enable_cli = self.create_client(SetBool, names.POLICY_ENABLE, callback_group=group)
        self.reset_cli = self.create_client(Trigger, names.SIM_RESET_EPISODE, callback_group=group)
        self.start_cli = self.create_client(Trigger, names.SIM_START_EPISODE, callback_group=group)
        self.param_cli = self.create_client(SetParameters, f"/{safety_node}/set_parameters", callback_group=group)

    # --- subscriptions ----------------------------------------------------------------
    def _on_joints(self, msg: JointState) -> None:
        idx = {n: i for i, n in enumerate(msg.name)}
        if all(j in idx for j in names.JOINT_NAMES):
            self.q = np.array([msg.position[idx[j]] for j in names.JOINT_NAMES])
            if len(msg.velocity) == len(msg.name):
                self.dq = np.array([msg.velocity[idx[j]] for j in names.JOINT_NAMES])

    def _on_chunk(self, _msg: JointTrajectory) -> None:
        self.chunks += 1

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for st in msg.status:
            self.diagnostics[st.name] = {kv.key: kv.value for kv in st.values}

    def check_driver(self) -> None:
        """Raise if the driver reports a robot error: episodes stop, the arm holds, a person decides."""
        err = self.diagnostics.get("franka_driver", {}).get("error", "")
        if err and err != "no state yet":
            raise StackError(f"franka_driver reports an error ({err}); the arm holds. Find the cause, "
                             f"then call {names.DRIVER_RECOVER}")

    # --- blocking helpers -------------------------------------------------------------
    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _call(self, client: Any, request: Any, timeout_s: float = 10.0) -> Any:
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise StackError(f"service {client.srv_name} is not available")
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout_s):
            raise StackError(f"service {client.srv_name} did not answer within {timeout_s} s")
        return future.result()

    def wait_for_stack(self, timeout_s: float = 60.0) -> None:
        """Block until joint states flow and every service the runner needs answers."""
        t_end = time.monotonic() + timeout_s
        while self.q is None:
            if time.monotonic() > t_end:
                raise StackError(f"no {names.JOINT_STATES} within {timeout_s} s: is the driver running?")
            time.sleep(0.05)
        for cli in (self.enable_cli, self.reset_cli, self.start_cli, self.param_cli):
            if not cli.wait_for_service(timeout_sec=max(0.1, t_end - time.monotonic())):
                raise StackError(f"service {cli.srv_name} is not available")

    def enable_policy(self, on: bool) -> None:
        res = self._call(self.enable_cli, SetBool.Request(data=on))
        if not res.success:
            raise StackError(f"policy refused enable={on}: {res.message}")

    def select_source(self, source: str) -> None:
        """Hand the safety filter's input to ``source`` (policy or teleop) via its ROS parameter."""
        p = ParameterMsg(name="active_source", value=ParameterValue(type=ParameterType.PARAMETER_STRING,
                                                                     string_value=source))
        res = self._call(self.param_cli, SetParameters.Request(parameters=[p]))
        if not res.results or not res.results[0].successful:
            raise StackError(f"safety filter refused active_source={source}: "
                             f"{res.results[0].reason if res.results else 'no result'}")

    def go_home(self, q_goal: np.ndarray) -> None:
        """Bring the arm to ``q_goal`` through the safety filter (teleop source), then hold it there."""
        cfg = self.config
        assert self.q is not None
        times, path = homing_trajectory(self.q.copy(), q_goal, self.now() + 0.1, cfg.homing_speed)
        t_end = time.monotonic() + cfg.homing_timeout_s
        settled_since = None
        while True:
            now = self.now()
            if now < times[-1]:
                self.teleop.publish(chunk_to_msg_abs(times, path))
            else:  # past the path: keep the goal fresh so the filter holds it instead of going stale
                self.teleop.publish(chunk_to_msg(now, 0.1, q_goal[None]))
                # Settled = within tolerance for 0.3 s (joint velocities are too noisy at rest to judge).
                if float(np.max(np.abs(self.q - q_goal))) < cfg.home_tolerance:
                    settled_since = settled_since or time.monotonic()
                    if time.monotonic() - settled_since >= 0.3:
                        return
                else:
                    settled_since = None
            self.check_driver()
            if time.monotonic() > t_end:
                raise StackError(f"arm did not reach home within {cfg.homing_timeout_s} s "
                                 f"(error {np.max(np.abs(self.q - q_goal)):.3f} rad)")
            time.sleep(0.05)

    def run_episode(self) -> EpisodeResult:
        self.enable_policy(False)
        reset = json.loads(self._call(self.reset_cli, Trigger.Request()).message)
        seed = int(reset["seed"])
        self.go_home(home_configuration(self.task, seed, self.config.home_jitter))
        self.select_source("policy")
        self._call(self.start_cli, Trigger.Request())
        self.success, self.chunks = False, 0
        t0 = time.monotonic()
        self.enable_policy(True)
        limit = self.task.spec.time_limit_s + self.config.grace_s
        tts = None
        try:
            while time.monotonic() - t0 < limit:
                if self.success:
                    tts = time.monotonic() - t0
                    break
                self.check_driver()
                time.sleep(0.01)
        finally:
            self.enable_policy(False)
            self.select_source("teleop")
        return EpisodeResult(seed=seed, success=tts is not None, final_error_mm=1000 * self.tip_error,
                             time_to_success_s=tts, chunks=self.chunks, params=reset["params"])

    def run(self, episodes: int, log=print) -> dict[str, Any]:
        results = []
        for i in range(episodes):
            r = self.run_episode()
            results.append(r)
            log(f"episode {i + 1}/{episodes} seed {r.seed}: {'success' if r.success else 'failure'}, "
                f"final error {r.final_error_mm:.1f} mm, {r.chunks} chunks"
                + (f", {r.time_to_success_s:.2f} s" if r.time_to_success_s is not None else ""))
        summary = summarize(results)
        summary["policy_diagnostics"] = {k: v for k, v in self.diagnostics.items() if "policy" in k}
        return summary


def chunk_to_msg_abs(times: np.ndarray, positions: np.ndarray) -> JointTrajectory:
    """A trajectory with absolute due times ``times`` (stamp = first time)."""
    dt = float(times[1] - times[0]) if len(times) > 1 else 0.1
    return chunk_to_msg(float(times[0]), dt, positions)


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
        runner.select_source("teleop")
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

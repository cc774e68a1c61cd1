"""``cdp-record-replay EPISODE.mcap``: re-publish an episode's teleop commands through the safety filter.

Makes teleop the filter's active source, brings the arm (through the filter) to where the
recording started, then sends every recorded ``/teleop/command`` at its original relative time,
re-stamped to now. For simulation: on a real arm, the recorded motion is replayed for real.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import numpy as np
import rclpy
from cdp_ros_common.trajectories import homing_trajectory
from cdp_ros_common import names
from cdp_ros_common.conversions import chunk_to_msg
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from .replay import RecordedCommands, load_commands


class ReplayNode(Node):
    def __init__(self, safety_node: str = "safety_filter"):
        super().__init__("record_replay")
        self.q: np.ndarray | None = None
        self.create_subscription(JointState, names.JOINT_STATES, self._on_joints, 10)
        self.pub = self.create_publisher(JointTrajectory, names.TELEOP_COMMAND, 10)
        self.param_cli = self.create_client(SetParameters, f"/{safety_node}/set_parameters")

    def _on_joints(self, msg: JointState) -> None:
        idx = {n: i for i, n in enumerate(msg.name)}
        if all(j in idx for j in names.JOINT_NAMES):
            self.q = np.array([msg.position[idx[j]] for j in names.JOINT_NAMES])

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def select_teleop(self, timeout_s: float = 10.0) -> None:
        if not self.param_cli.wait_for_service(timeout_sec=timeout_s):
            raise RuntimeError(f"{self.param_cli.srv_name} not available: is the safety filter running?")
        p = ParameterMsg(name="active_source", value=ParameterValue(type=ParameterType.PARAMETER_STRING,
                                                                     string_value="teleop"))
        done = threading.Event()
        fut = self.param_cli.call_async(SetParameters.Request(parameters=[p]))
        fut.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout_s) or not fut.result().results[0].successful:
            raise RuntimeError("safety filter refused active_source=teleop")

    def home(self, q_goal: np.ndarray, tolerance: float = 0.01, timeout_s: float = 30.0) -> None:
        t_end = time.monotonic() + timeout_s
        while self.q is None:
            if time.monotonic() > t_end:
                raise RuntimeError("no /joint_states")
            time.sleep(0.05)
        times, path = homing_trajectory(self.q.copy(), q_goal, self.now(), 0.4, dt=0.1)
        while time.monotonic() < t_end:
            now = self.now()
            if now < times[-1]:
                k = int(np.searchsorted(times, now, side="right")) - 1
                self.pub.publish(chunk_to_msg(times[max(k, 0)], 0.1, path[max(k, 0):]))
            else:
                self.pub.publish(chunk_to_msg(now, 0.1, q_goal[None]))
                if float(np.max(np.abs(self.q - q_goal))) < tolerance:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"arm did not reach the recording's start within {timeout_s} s")

    def play(self, rec: RecordedCommands, hold_s: float = 1.0) -> None:
        t0 = time.monotonic()
        for send, due, q in zip(rec.send_s, rec.due_s, rec.positions):
            delay = t0 + send - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = self.now()
            msg = chunk_to_msg(now, 0.1, q)
            for p, d in zip(msg.points, due):  # the recorded point spacing, re-stamped to now
                p.time_from_start.sec, p.time_from_start.nanosec = int(d), int(round((d - int(d)) * 1e9))
            self.pub.publish(msg)
        t_end = time.monotonic() + hold_s
        while time.monotonic() < t_end:  # keep the last target fresh while the arm settles
            self.pub.publish(chunk_to_msg(self.now(), 0.1, rec.positions[-1][-1:]))
            time.sleep(0.05)


def replay(path: str, topic: str = "/teleop/command", hold_s: float = 1.0) -> np.ndarray:
    """Replay ``path`` on the running stack; returns the measured joints at the end."""
    rec = load_commands(path, topic)
    own = not rclpy.ok()
    if own:
        rclpy.init()
    node = ReplayNode()
    ex = MultiThreadedExecutor(num_threads=2)
    ex.add_node(node)
    threading.Thread(target=ex.spin, daemon=True).start()
    try:
        node.select_teleop()
        node.home(rec.q_start)
        node.play(rec, hold_s)
        return node.q.copy()
    finally:
        ex.shutdown()
        node.destroy_node()
        if own and rclpy.ok():
            rclpy.shutdown()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="cdp-record-replay", description=__doc__.splitlines()[0])
    ap.add_argument("episode")
    ap.add_argument("--topic", default="/teleop/command")
    ap.add_argument("--hold", type=float, default=1.0, help="seconds to hold the last target at the end")
    args = ap.parse_args(argv)
    try:
        q = replay(args.episode, args.topic, args.hold)
    except (RuntimeError, ValueError) as exc:
        print(f"cdp-record-replay: {exc}", file=sys.stderr)
        return 1
    print("final joints:", np.round(q, 4).tolist())
    return 0


if __name__ == "__main__":
    sys.exit(main())

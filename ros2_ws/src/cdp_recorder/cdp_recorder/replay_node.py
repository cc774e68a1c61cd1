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
from cdp_ros_common.conversions import chunk_to_msg
from cdp_ros_common.stack_client import StackClient, StackClientConfig, StackError
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from .replay import RecordedCommands, load_commands


class ReplayNode(Node):
    def __init__(self, safety_node: str = "safety_filter"):
        super().__init__("record_replay")
        self.stack = StackClient(self, StackClientConfig(safety_node=safety_node))

    def now(self) -> float:
        return self.stack.now()

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
            self.stack.teleop.publish(msg)
        t_end = time.monotonic() + hold_s
        while time.monotonic() < t_end:  # keep the last target fresh while the arm settles
            self.stack.teleop.publish(chunk_to_msg(self.now(), 0.1, rec.positions[-1][-1:]))
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
        node.stack.select_source("teleop")
        node.stack.go_home(rec.q_start)
        node.play(rec, hold_s)
        return node.stack.q.copy()
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
    except (StackError, ValueError) as exc:
        print(f"cdp-record-replay: {exc}", file=sys.stderr)
        return 1
    print("final joints:", np.round(q, 4).tolist())
    return 0


if __name__ == "__main__":
    sys.exit(main())

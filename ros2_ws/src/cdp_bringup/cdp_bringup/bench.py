"""``python -m cdp_bringup.bench``: observation -> filtered-command latency through the running stack.

Runs episodes on the simulated stack (like ``cdp-sim-demo``) and times, for every chunk the
policy publishes, (a) observation time (the chunk's stamp) -> chunk received here, and (b)
observation time -> the first /safety/command the safety filter publishes after that chunk
reached it (received here). Both include ROS 2 transport on loopback. Prints median / p99,
next to the policy's own inference latency from its diagnostics.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

import numpy as np
import rclpy
from cdp_ros_common import names
from cdp_ros_common.conversions import time_to_sec
from rclpy.executors import MultiThreadedExecutor
from trajectory_msgs.msg import JointTrajectory

from .episodes import EpisodeConfig
from .episodes_node import EpisodeRunner
from .graph import load_graph, parse_launch_arguments, resolve
from .launcher import NodeGraph


class LatencyProbe(EpisodeRunner):
    def __init__(self, task: str):
        super().__init__(task, EpisodeConfig())
        self._lock = threading.Lock()
        self._waiting: list[float] = []  # stamps of chunks not yet followed by a filtered command
        self._seen: set[float] = set()
        self.obs_to_chunk: list[float] = []
        self.obs_to_command: list[float] = []
        self.create_subscription(JointTrajectory, names.POLICY_CHUNK, self._chunk, 50)
        self.create_subscription(JointTrajectory, names.SAFETY_COMMAND, self._command, 200)

    def _chunk(self, msg: JointTrajectory) -> None:
        stamp = time_to_sec(msg.header.stamp)
        if stamp in self._seen:  # heartbeat re-send of a chunk already timed
            return
        self._seen.add(stamp)
        with self._lock:
            self.obs_to_chunk.append(self.now() - stamp)
            self._waiting.append(stamp)

    def _command(self, _msg: JointTrajectory) -> None:
        now = self.now()
        with self._lock:
            for stamp in self._waiting:
                self.obs_to_command.append(now - stamp)
            self._waiting.clear()


def _stats(xs: list[float]) -> dict[str, float]:
    a = 1000 * np.asarray(xs)
    return (
        {"n": len(xs), "p50_ms": float(np.median(a)), "p99_ms": float(np.percentile(a, 99)), "max_ms": float(a.max())}
        if len(xs)
        else {"n": 0}
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdp_bringup.bench", description=__doc__.splitlines()[0])
    parser.add_argument("arguments", nargs="*", help="launch arguments (name:=value)")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args(argv)
    given = {"use_sim": "true", **parse_launch_arguments(args.arguments)}
    graph = load_graph()
    specs = resolve(graph, given)
    task = given.get("task", graph["arguments"]["task"]["default"])
    log = open(Path(args.json).with_suffix(".log") if args.json else "/dev/null", "w")
    g = NodeGraph(specs, out=log)
    g.start()
    rclpy.init()
    probe = LatencyProbe(task)
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(probe)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        probe.wait_for_stack(90.0)
        probe.stack.select_source("teleop")
        summary = probe.run(args.episodes)
    finally:
        executor.shutdown()
        probe.destroy_node()
        rclpy.shutdown()
        g.stop()
        log.close()
    result = {
        "episodes": args.episodes,
        "success_rate": summary["success_rate"],
        "obs_to_chunk": _stats(probe.obs_to_chunk),
        "obs_to_filtered_command": _stats(probe.obs_to_command),
        "policy_diagnostics": summary["policy_diagnostics"],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

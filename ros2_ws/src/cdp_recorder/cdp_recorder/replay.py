"""An episode's recorded command stream, ready to be re-published (no ROS here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cdp_ros_common.conversions import msg_to_chunk
from cdp_ros_common.names import JOINT_NAMES

from .episode_file import read_episode


@dataclass
class RecordedCommands:
    """Commands relative to the first one: send time (s), point due times relative to it (s), positions."""

    send_s: np.ndarray  # (M,) receive time of each command relative to the first
    due_s: list[np.ndarray]  # per command: due times relative to its own stamp
    positions: list[np.ndarray]  # per command: (K, 7)
    q_start: np.ndarray  # measured joints when the first command was recorded
    q_end: np.ndarray  # measured joints at the end of the recording


def load_commands(path: str | Path, topic: str = "/teleop/command") -> RecordedCommands:
    ep = read_episode(path, topics=[topic, "/joint_states"])
    tm = ep.topics.get(topic)
    if tm is None or not tm.msgs:
        raise ValueError(f"{path}: no messages on {topic}")
    js = ep.topics.get("/joint_states")
    if js is None or not js.msgs:
        raise ValueError(f"{path}: no /joint_states (needed to know where the replay starts)")
    log = np.asarray(tm.log_ns, dtype=np.int64)
    send = (log - log[0]) * 1e-9
    due, pos = [], []
    for m, _stamp in zip(tm.msgs, tm.stamp):
        times, q = msg_to_chunk(m)
        due.append(times - times[0])
        pos.append(q)

    def joints(msg) -> np.ndarray:
        idx = {n: i for i, n in enumerate(msg.name)}
        return np.array([msg.position[idx[j]] for j in JOINT_NAMES])

    js_log = np.asarray(js.log_ns)
    first = int(np.clip(np.searchsorted(js_log, log[0]) - 1, 0, len(js.msgs) - 1))
    return RecordedCommands(send, due, pos, joints(js.msgs[first]), joints(js.msgs[-1]))

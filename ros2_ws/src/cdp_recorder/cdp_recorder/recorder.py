"""The recorder's state machine without ROS: episode events in, MCAP files out.

idle --start--> recording --stop--> idle (episode kept: ``<name>.mcap``)
                recording --discard--> idle (partial file deleted, or kept as ``.discarded.mcap``)
                recording --write error--> error (partial left; a later ``start`` tries again)

``success`` / ``failure`` events set the outcome flag stored in the episode's metadata. The
recorder only writes files: it has no path to the arm, so whatever happens to it (crash, full
disk) leaves the safety filter and the driver untouched.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Callable

from .writer import EpisodeWriter, RecordingError, mark_leftover_partials

#: Default topics: "topic|pkg/msg/Type". Camera topics are recorded when someone publishes them.
DEFAULT_TOPICS = (
    "/joint_states|sensor_msgs/msg/JointState",
    "/franka/ee_pose|geometry_msgs/msg/PoseStamped",
    "/perception/object_pose|geometry_msgs/msg/PoseStamped",
    "/teleop/command|trajectory_msgs/msg/JointTrajectory",
    "/policy/action_chunk|trajectory_msgs/msg/JointTrajectory",
    "/safety/command|trajectory_msgs/msg/JointTrajectory",
    "/safety/intervention|std_msgs/msg/String",
    "/task/success|std_msgs/msg/Bool",
    "/episode/event|std_msgs/msg/String",
    "/camera/color/image_raw|sensor_msgs/msg/Image",
    "/camera/color/camera_info|sensor_msgs/msg/CameraInfo",
    "/camera/agentview/image_raw|sensor_msgs/msg/Image",
)
IDLE, RECORDING, ERROR = "idle", "recording", "error"
SOFTWARE = (
    "cdp_core",
    "cdp_recorder",
    "cdp_teleop",
    "safety_filter",
    "franka_driver",
    "cdp_policy",
    "rclpy",
    "franky-control",
    "pylibfranka",
    "franky-sim",
    "mcap",
    "mcap-ros2-support",
)


@dataclass
class RecorderConfig:
    """Settings of the recorder (ROS parameters of ``recorder_node``)."""

    output_dir: str = "recordings"
    #: "topic|pkg/msg/Type" entries.
    topics: list[str] = field(default_factory=lambda: list(DEFAULT_TOPICS))
    fsync_period_s: float = 1.0
    #: Refuse to start an episode with less free space than this (MB).
    min_free_mb: float = 100.0
    #: Keep discarded episodes as ``<name>.discarded.mcap`` instead of deleting them.
    keep_discarded: bool = False
    chunk_size: int = 1 << 20
    #: Calibration files whose contents (hash + text) go into each episode's metadata, comma separated.
    calibration_files: str = ""
    robot: str = "fr3"

    def parsed_topics(self) -> list[tuple[str, str]]:
        out = []
        for entry in self.topics:
            topic, sep, type_name = entry.partition("|")
            if not sep or not topic.startswith("/") or type_name.count("/") != 2:
                raise ValueError(f"recorder topic entry {entry!r} must look like '/topic|pkg/msg/Type'")
            out.append((topic, type_name))
        return out


def software_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in SOFTWARE:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def calibration_metadata(files: str) -> dict[str, str]:
    import hashlib

    out: dict[str, str] = {}
    for f in [x.strip() for x in files.split(",") if x.strip()]:
        p = Path(f)
        try:
            data = p.read_bytes()
        except OSError as exc:
            out[f] = f"unreadable: {exc}"
            continue
        out[f"{f}:sha256"] = hashlib.sha256(data).hexdigest()
        out[f] = data.decode(errors="replace")[:20000]
    return out


class EpisodeRecorder:
    """Turns episode events and serialized messages into one MCAP file per episode."""

    def __init__(
        self, config: RecorderConfig, clock_ns: Callable[[], int] = time.time_ns, log: Callable[[str], None] = print
    ):
        self.config = config
        self.topics = dict(config.parsed_topics())
        self.clock_ns = clock_ns
        self.log = log
        self.dir = Path(config.output_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state = IDLE
        self.error = ""
        self.writer: EpisodeWriter | None = None
        self.episode: dict[str, Any] = {}
        self.finished: list[Path] = []
        self.software = software_versions()
        self.calibration = calibration_metadata(config.calibration_files)
        # A recorder that crashed left *.mcap.partial behind: mark, report, never delete.
        self.recovered = mark_leftover_partials(self.dir)
        for p in self.recovered:
            self.log(f"found an unfinished episode from an earlier run, kept as {p}")

    # --- events -----------------------------------------------------------------------------
    def handle_event(self, payload: dict[str, Any]) -> None:
        ev = payload["event"]
        if ev == "start":
            self.start(payload)
        elif ev == "stop":
            self.stop(keep=True)
        elif ev == "discard":
            self.stop(keep=False)
        elif ev in ("success", "failure"):
            if self.state == RECORDING:
                self.episode["success"] = ev == "success"
            else:
                self.log(f"'{ev}' ignored: no episode is recording")

    def start(self, info: dict[str, Any]) -> Path | None:
        if self.state == RECORDING:
            self.log("'start' while recording: the current episode is kept and a new one starts")
            self.stop(keep=True)
        free_mb = shutil.disk_usage(self.dir).free / 1e6
        if free_mb < self.config.min_free_mb:
            self._fail(
                RecordingError(
                    f"only {free_mb:.0f} MB free in {self.dir} (min_free_mb="
                    f"{self.config.min_free_mb:g}): not starting an episode",
                    disk_full=True,
                )
            )
            return None
        t = self.clock_ns()
        name = (
            time.strftime("episode_%Y%m%d_%H%M%S", time.localtime(t / 1e9)) + f"_{t % 1_000_000_000 // 1_000_000:03d}"
        )
        try:
            self.writer = EpisodeWriter(self.dir, name, self.config.fsync_period_s, self.config.chunk_size)
        except RecordingError as exc:
            self._fail(exc)
            return None
        self.state, self.error = RECORDING, ""
        self.episode = {k: v for k, v in info.items() if k != "event"}
        self.episode.update(start_ns=t, success=None)
        self.log(f"recording {self.writer.partial}")
        return self.writer.partial

    def write(self, topic: str, data: bytes, log_time_ns: int | None = None) -> None:
        """A serialized message from ``topic`` (dropped unless recording)."""
        if self.state != RECORDING or self.writer is None:
            return
        try:
            self.writer.write(topic, self.topics[topic], data, self.clock_ns() if log_time_ns is None else log_time_ns)
        except RecordingError as exc:
            self._fail(exc)

    def stop(self, keep: bool = True) -> Path | None:
        if self.state != RECORDING or self.writer is None:
            self.log(f"'{'stop' if keep else 'discard'}' ignored: no episode is recording")
            return None
        w, self.writer = self.writer, None
        self.state = IDLE
        if not keep:
            kept = w.discard(".discarded.mcap" if self.config.keep_discarded else None)
            self.log(f"episode {w.name} discarded" + (f" (kept as {kept})" if kept else ""))
            return None
        ep = dict(self.episode)
        ep["stop_ns"] = self.clock_ns()
        ep["duration_s"] = (ep["stop_ns"] - ep["start_ns"]) / 1e9
        ep["success"] = "unknown" if ep["success"] is None else str(bool(ep["success"])).lower()
        ep["messages"] = w.messages
        ep["robot"] = self.config.robot
        meta = {
            "episode": {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in ep.items()},
            "software": self.software,
        }
        if self.calibration:
            meta["calibration"] = self.calibration
        try:
            path = w.finish(meta)
        except RecordingError as exc:
            self._fail(exc)
            return None
        self.finished.append(path)
        self.log(f"episode kept: {path} ({w.messages} messages, success={ep['success']})")
        return path

    def _fail(self, exc: RecordingError) -> None:
        if self.writer is not None:
            self.writer.close()  # the partial file stays, marked by its name
            self.writer = None
        self.state, self.error = ERROR, str(exc)
        self.log(f"RECORDING STOPPED: {exc}")

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "error": self.error,
            "file": str(self.writer.partial) if self.writer else "",
            "episodes_kept": len(self.finished),
            "last": str(self.finished[-1]) if self.finished else "",
            "recovered_partials": [str(p) for p in self.recovered],
        }

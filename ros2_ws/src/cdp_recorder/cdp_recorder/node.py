"""``recorder_node``: episode events on /episode/event -> one MCAP file per episode.

Subscribes every configured topic with ``raw=True`` (the CDR bytes DDS delivered are written
as they are: no decode/encode on the hot path, and the file holds exactly what the stack saw)
plus ``/episode/event`` (JSON, see :mod:`cdp_teleop.events`). Publishes ``/recorder/status``
(String, JSON; on every change and every second) and ``/diagnostics`` (ERROR while a disk-full
or I/O error holds recording stopped). It never publishes anything the safety filter or the
driver listens to.
"""

from __future__ import annotations

import importlib
import json
import sys

import rclpy
from cdp_ros_common import diagnostics, names
from cdp_ros_common.params import declare_dataclass
from cdp_ros_common.spinning import spin_node
from cdp_teleop.events import EPISODE_EVENT, RECORDER_STATUS, EventError, decode_event
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from rclpy.serialization import serialize_message
from std_msgs.msg import String

from .recorder import ERROR, EpisodeRecorder, RecorderConfig


def message_class(type_name: str):
    pkg, _, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


class RecorderNode(Node):
    def __init__(self) -> None:
        super().__init__("recorder_node")
        self.config = declare_dataclass(self, RecorderConfig)
        self.recorder = EpisodeRecorder(
            self.config, clock_ns=lambda: self.get_clock().now().nanoseconds, log=lambda s: self.get_logger().info(s)
        )
        self.status_pub = self.create_publisher(
            String, RECORDER_STATUS, QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        )
        self.diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS, 10)
        for topic, type_name in self.config.parsed_topics():
            if topic == EPISODE_EVENT:
                continue  # recorded by the event callback, after it has acted on the event
            self.create_subscription(
                message_class(type_name), topic, lambda data, t=topic: self.recorder.write(t, data), 200, raw=True
            )
        self.create_subscription(String, EPISODE_EVENT, self._on_event, 50)
        self._last_status = ""
        self.create_timer(1.0, self._periodic)
        self._publish_status(force=True)

    def _on_event(self, msg: String) -> None:
        try:
            payload = decode_event(msg.data)
        except EventError as exc:
            self.get_logger().warn(str(exc))
            return
        before = self.recorder.state
        if payload["event"] in ("stop", "discard", "success", "failure"):
            self.recorder.write(EPISODE_EVENT, serialize_message(msg))  # into the episode it ends / marks
        self.recorder.handle_event(payload)
        if payload["event"] == "start":
            self.recorder.write(EPISODE_EVENT, serialize_message(msg))
        if self.recorder.state == ERROR and before != ERROR:
            self.get_logger().error(self.recorder.error)
        self._publish_status()

    def _publish_status(self, force: bool = False) -> None:
        text = json.dumps(self.recorder.status())
        if force or text != self._last_status:
            self.status_pub.publish(String(data=text))
            self._last_status = text

    def _periodic(self) -> None:
        self._publish_status(force=True)
        st = self.recorder.status()
        level = diagnostics.ERROR if st["state"] == ERROR else diagnostics.OK
        self.diag_pub.publish(
            diagnostics.array(
                self.get_clock().now().nanoseconds * 1e-9,
                diagnostics.status(
                    "recorder_node",
                    level,
                    st["error"] or st["state"],
                    {
                        "state": st["state"],
                        "episodes_kept": st["episodes_kept"],
                        "file": st["file"],
                        "recovered_partials": len(st["recovered_partials"]),
                    },
                ),
            )
        )

    def shutdown(self) -> None:
        # Ctrl-C / SIGTERM while recording: the episode is finished and kept (marked as interrupted).
        if self.recorder.state == "recording":
            self.recorder.episode["interrupted"] = True
            self.recorder.stop(keep=True)


def main(argv: list[str] | None = None) -> int:
    rclpy.init(args=argv if argv is not None else sys.argv)
    node = None
    code = 0
    try:
        node = RecorderNode()
        spin_node(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ValueError as exc:
        print(f"recorder_node: {exc}", file=sys.stderr)
        code = 2
    finally:
        if node is not None:
            node.shutdown()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())

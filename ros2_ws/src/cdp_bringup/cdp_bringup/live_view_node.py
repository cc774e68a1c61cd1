"""``cdp-live-view``: stream the running stack to Rerun (see :mod:`cdp_bringup.live_view`).

    cdp-live-view                          # serve the viewer: open http://<this host>:9090
    cdp-live-view --ros-args -p save:=episode.rrd    # write a file instead (``rerun episode.rrd``)

Only subscribes: it never publishes on the graph, so it cannot reach the arm. Images are logged
at most ``image_rate_hz`` (the viewer does not need every frame, the CPU does).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
import numpy as np
import rclpy
from cdp_perception.camera_node import IMAGE_TOPIC
from cdp_perception.ros_images import msg_to_image
from cdp_ros_common import names
from cdp_ros_common.conversions import msg_to_array, msg_to_chunk, msg_to_pose, time_to_sec
from cdp_ros_common.params import declare_dataclass
from cdp_ros_common.spinning import spin_node
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from .live_view import LiveView, blueprint


@dataclass
class LiveViewConfig:
    #: Serve Rerun's web viewer (``web_port``) and its data (``grpc_port``) from this process.
    serve: bool = True
    web_port: int = 9090
    grpc_port: int = 9876
    #: Write everything to this .rrd file instead of serving it (``rerun FILE.rrd`` opens it).
    save: str = ""
    image_rate_hz: float = 2.0
    #: Joint states (and the measured TCP) are logged at most this often: a viewer needs no 125 Hz.
    joint_rate_hz: float = 20.0


class LiveViewNode(Node):
    def __init__(self) -> None:
        super().__init__("live_view")
        import rerun as rr

        self.config = c = declare_dataclass(self, LiveViewConfig)
        rec = rr.RecordingStream("cdp_stack")
        if c.save:
            rec.save(c.save, default_blueprint=blueprint())
            self.get_logger().info(f"live view: writing {c.save}")
        elif c.serve:
            url = rr.serve_grpc(grpc_port=c.grpc_port, recording=rec, default_blueprint=blueprint())
            rr.serve_web_viewer(web_port=c.web_port, open_browser=False, connect_to=url)
            self.get_logger().info(f"live view: http://localhost:{c.web_port}/?url={url}")
        else:
            raise ValueError("live_view: serve:=false and no save:=FILE.rrd: nothing would be shown")
        self.rec = rec
        self.view = LiveView(rec)
        self._last_image = self._last_joints = -np.inf
        self.create_subscription(JointState, names.JOINT_STATES, self._on_joints, 10)
        self.create_subscription(JointTrajectory, names.SAFETY_COMMAND, self._on_command, 10)
        self.create_subscription(JointTrajectory, names.POLICY_CHUNK, self._on_chunk, 10)
        self.create_subscription(Float64MultiArray, names.POLICY_DRAWS, self._on_draws, 10)
        self.create_subscription(String, names.SAFETY_INTERVENTION, self._on_intervention, 50)
        self.create_subscription(PoseStamped, names.OBJECT_POSE, self._on_object, 10)
        self.create_subscription(Image, IMAGE_TOPIC, self._on_image, 2)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_joints(self, msg: JointState) -> None:
        t = time_to_sec(msg.header.stamp)
        if t - self._last_joints < 1.0 / self.config.joint_rate_hz:
            return
        self._last_joints = t
        idx = {n: i for i, n in enumerate(msg.name)}
        if all(j in idx for j in names.JOINT_NAMES):
            self.view.joint_state(
                time_to_sec(msg.header.stamp), np.array([msg.position[idx[j]] for j in names.JOINT_NAMES])
            )

    def _on_command(self, msg: JointTrajectory) -> None:
        _, q = msg_to_chunk(msg)
        if len(q):
            self.view.command(time_to_sec(msg.header.stamp), q[0])

    def _on_chunk(self, msg: JointTrajectory) -> None:
        _, q = msg_to_chunk(msg)
        self.view.chunk(time_to_sec(msg.header.stamp), q)

    def _on_draws(self, msg: Float64MultiArray) -> None:
        try:
            self.view.draws(self._now(), msg_to_array(msg))
        except ValueError as exc:
            self.get_logger().warning(f"{names.POLICY_DRAWS}: {exc}", throttle_duration_sec=5.0)

    def _on_intervention(self, msg: String) -> None:
        self.view.intervention(self._now(), msg.data)

    def _on_object(self, msg: PoseStamped) -> None:
        t, p, q = msg_to_pose(msg)
        self.view.object_pose(t, p, q)

    def _on_image(self, msg: Image) -> None:
        t = time_to_sec(msg.header.stamp)
        if t - self._last_image >= 1.0 / self.config.image_rate_hz:
            self._last_image = t
            self.view.image(t, msg_to_image(msg))

    def destroy_node(self) -> None:
        self.rec.flush()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args if args is not None else sys.argv)
    node = LiveViewNode()
    try:
        spin_node(node)
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``agentview_camera``: the simulated cameras an image policy sees, rendered beside the running simulator.

Renders cdp_core's own task scene through its named cameras (:mod:`cdp_core.sim.cameras`, the
ones ``cdp demos --cameras`` recorded), so a policy trained on simulated demonstrations sees the
same pictures here: the arm set from /joint_states (the driver's), the task object from the
simulator's ground-truth pose. Each frame is stamped with the joint message it shows (its
capture time), published as rgb8 ``sensor_msgs/Image`` on ``/camera/<name>/image_raw``
(:func:`cdp_ros_common.names.camera_image_topic`). Rendering runs in its own
process and thread: it never holds the 1 kHz simulator's GIL.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import rclpy
from cdp_ros_common import diagnostics, names
from cdp_ros_common.conversions import msg_to_pose, sec_to_time, time_to_sec
from cdp_ros_common.params import declare_dataclass
from cdp_ros_common.spinning import run_node
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState

NODE_NAME = "agentview_camera"


@dataclass
class AgentViewConfig:
    """Settings of the simulated policy cameras (ROS parameters of ``agentview_camera``)."""

    task: str = "reach_precise"
    #: cdp_core camera names (``cdp_core.sim.cameras.CAMERAS``), each on its ``camera_image_topic``.
    cameras: list = field(default_factory=lambda: ["agentview"])
    #: Frame size (height, width): the image policy's ``image_size``.
    image_size: list = field(default_factory=lambda: [96, 96])
    #: Frames per second (the policy's control rate, or faster).
    rate_hz: float = 10.0
    #: The ground-truth object pose (sim_robot's ``object_pose_topic``).
    truth_topic: str = names.OBJECT_POSE


class AgentViewCamera(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        c = self.config = declare_dataclass(self, AgentViewConfig)
        from cdp_core.sim.cameras import cameras_by_name
        from cdp_core.sim.env import FR3TaskEnv

        if len(c.image_size) != 2 or min(int(v) for v in c.image_size) < 8:
            raise ValueError(f"image_size must be [height, width] >= 8, got {c.image_size}")
        if not c.rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {c.rate_hz}")
        size = (int(c.image_size[0]), int(c.image_size[1]))
        self.env = FR3TaskEnv(c.task, cameras=cameras_by_name(list(c.cameras), size))
        self.cameras = [cam.name for cam in self.env.cameras]
        self.pubs = {cam: self.create_publisher(Image, names.camera_image_topic(cam), 5) for cam in self.cameras}
        self.diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS, 10)
        self._lock = threading.Lock()
        self._joints: tuple[float, np.ndarray, float] | None = None  # stamp, q, finger joint
        self._params: dict | None = None
        self.frames = 0
        self.render_ms: list[float] = []
        self.create_subscription(JointState, names.JOINT_STATES, self._on_joints, 10)
        self.create_subscription(PoseStamped, c.truth_topic, self._on_truth, 10)
        self.create_timer(1.0, self._diagnose)
        self._running = True
        self._thread = threading.Thread(target=self._run, name="agentview-render", daemon=True)
        self._thread.start()
        self.get_logger().info(f"rendering {self.cameras} at {size[1]}x{size[0]}, {c.rate_hz:g} Hz for task {c.task!r}")

    def _on_joints(self, msg: JointState) -> None:
        index = {n: i for i, n in enumerate(msg.name)}
        if not all(j in index for j in names.JOINT_NAMES):
            return
        q = np.array([msg.position[index[j]] for j in names.JOINT_NAMES])
        finger = msg.position[index[names.FINGER_NAMES[0]]] if names.FINGER_NAMES[0] in index else None
        with self._lock:
            last = self._joints[2] if self._joints is not None else 0.04
            self._joints = (time_to_sec(msg.header.stamp), q, float(finger) if finger is not None else last)

    def _on_truth(self, msg: PoseStamped) -> None:
        _, p, quat = msg_to_pose(msg)
        params = self.env.task.params_from_object_pose(p, quat)
        with self._lock:
            self._params = params

    def render_once(self) -> bool:
        """Render and publish one frame per camera from the latest state; False when there is none yet."""
        with self._lock:
            joints, params = self._joints, self._params
        if joints is None or params is None:
            return False  # no arm or no object yet: the picture would not be the simulator's
        stamp, q, finger = joints
        t0 = time.perf_counter()
        frames = self.env.render_state(q, finger, params)
        self.render_ms = (self.render_ms + [1000 * (time.perf_counter() - t0)])[-50:]
        for cam, img in frames.items():
            h, w, _ = img.shape
            msg = Image(height=h, width=w, encoding="rgb8", is_bigendian=0, step=3 * w, data=img.tobytes())
            msg.header.stamp = sec_to_time(stamp)  # the state it shows: its capture time
            msg.header.frame_id = cam
            self.pubs[cam].publish(msg)
        self.frames += 1
        return True

    def _run(self) -> None:
        period, next_t = 1.0 / self.config.rate_hz, time.monotonic()
        while self._running and rclpy.ok(context=self.context):
            next_t = max(next_t + period, time.monotonic() - period)  # never a burst to catch up
            time.sleep(max(0.0, next_t - time.monotonic()))
            try:
                self.render_once()
            except Exception as exc:
                if not rclpy.ok(context=self.context):
                    return
                self.get_logger().error(f"render failed: {exc!r}", throttle_duration_sec=5.0)

    def _diagnose(self) -> None:
        ms = float(np.median(self.render_ms)) if self.render_ms else float("nan")
        level = diagnostics.OK if self.frames else diagnostics.WARN
        message = "streaming" if self.frames else "no frames yet (waiting for /joint_states and the object pose)"
        values = {"cameras": ",".join(self.cameras), "frames": self.frames, "render_ms_p50": ms}
        now = self.get_clock().now().nanoseconds * 1e-9
        self.diag_pub.publish(diagnostics.array(now, diagnostics.status(NODE_NAME, level, message, values)))

    def destroy_node(self) -> None:
        self._running = False
        if hasattr(self, "_thread"):
            self._thread.join(timeout=3.0)
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    return run_node(AgentViewCamera, NODE_NAME, argv)


if __name__ == "__main__":
    sys.exit(main())

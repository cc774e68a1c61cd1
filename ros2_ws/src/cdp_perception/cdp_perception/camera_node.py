"""``camera_node``: RealSense colour frames (live, recording, or the simulator's renders) as Image + CameraInfo.

Sources (parameter ``source``): ``live`` (a camera by serial), ``playback`` (a .bag/.db3 recording),
``sim`` (the task scene rendered by MuJoCo and injected into a librealsense software device; the
arm is set from /joint_states and the object from the ground-truth topic ``truth_topic`` before
each render). Every frame is stamped with its capture time. ``sim_camera`` is this node with
``source: sim``.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import rclpy
from cdp_ros_common import diagnostics, names
from cdp_ros_common.conversions import msg_to_pose, time_to_sec
from cdp_ros_common.params import declare_dataclass
from cdp_ros_common.spinning import run_node
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState

from .geometry import pose_to_transform
from .realsense import CameraError, LiveSource, PlaybackSource, SoftwareSource
from .ros_images import camera_info, image_to_msg

IMAGE_TOPIC = "/camera/color/image_raw"
INFO_TOPIC = "/camera/color/camera_info"
OPTICAL_FRAME = "camera_color_optical_frame"
#: Ground-truth object pose the simulated camera places the object at (sim_robot must publish it
#: here when perception owns /perception/object_pose).
SIM_TRUTH_TOPIC = "/sim/object_pose"


@dataclass
class CameraConfig:
    source: str = "live"  # live | playback | sim
    serial: str = ""
    width: int = 640
    height: int = 480
    fps: int = 15
    #: Fixed exposure (us) and white balance (K); 0 keeps the camera's automatic control.
    exposure_us: float = 0.0
    white_balance_k: float = 0.0
    recording: str = ""
    loop_playback: bool = False
    record_to: str = ""
    #: Intrinsics for CameraInfo from this calibration file; empty = the SDK's (device or software device).
    calibration_file: str = ""
    frame_id: str = OPTICAL_FRAME
    image_topic: str = IMAGE_TOPIC
    info_topic: str = INFO_TOPIC
    # --- source: sim ---
    task: str = "peg_insert"
    sim_rate_hz: float = 5.0
    fovy_deg: float = 50.0
    camera_mount: str = "world"  # world (eye-to-hand) | hand (eye-in-hand)
    #: mount_T_cam as x, y, z, qx, qy, qz, qw (OpenCV optical frame); all zeros = the default pose.
    camera_pose: list = field(default_factory=lambda: [0.0] * 7)
    truth_topic: str = SIM_TRUTH_TOPIC
    #: Render the ChArUco calibration board: none | hand (carried by the hand, for eye-to-hand
    #: calibration) | table (lying in front of the robot, for eye-in-hand).
    board: str = "none"


class CameraNode(Node):
    def __init__(self, default_source: str = "live", **kwargs) -> None:
        super().__init__("camera_node" if default_source != "sim" else "sim_camera", **kwargs)
        self.config = declare_dataclass(self, CameraConfig)
        if default_source == "sim" and self.config.source == "live":  # sim_camera: sim unless told otherwise
            self.config.source = "sim"
        c = self.config
        self.image_pub = self.create_publisher(Image, c.image_topic, 5)
        self.info_pub = self.create_publisher(CameraInfo, c.info_topic, 5)
        self.diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS, 10)
        self._calib = None
        if c.calibration_file:
            from .calibration.result import load

            self._calib = load(c.calibration_file, require_hand_eye=False)
        self._lock = threading.Lock()
        self._joints: np.ndarray | None = None
        self._joint_stamp = 0.0
        self._fingers = 0.04
        self._truth: tuple[np.ndarray, np.ndarray] | None = None
        self._frames = 0
        self._running = True
        self._scene = self._renderer = None
        if c.source == "live":
            self.source = LiveSource(c.serial, c.width, c.height, c.fps, c.exposure_us, c.white_balance_k, c.record_to)
        elif c.source == "playback":
            self.source = PlaybackSource(c.recording, realtime=True, loop=c.loop_playback)
        elif c.source == "sim":
            self._init_sim()
        else:
            raise CameraError(f"source must be live, playback or sim, got {c.source!r}")
        self.create_timer(1.0, self._diagnose)
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()
        self.get_logger().info(f"camera source {c.source!r} publishing {c.image_topic}")

    # --- simulation -----------------------------------------------------------------------
    def _init_sim(self) -> None:
        from .sim_camera import DEFAULT_EYE_IN_HAND, CameraScene, CameraSpec, SceneRenderer, use_offscreen_gl

        use_offscreen_gl()  # before CameraScene imports MuJoCo: the GL backend is fixed at import

        c = self.config
        pose = np.asarray(c.camera_pose, dtype=np.float64)
        if pose.shape != (7,):
            raise CameraError(f"camera_pose must be 7 numbers (x y z qx qy qz qw), got {c.camera_pose!r}")
        spec = CameraSpec(c.width, c.height, c.fovy_deg, c.camera_mount)
        if np.any(pose[3:] != 0):
            spec.mount_T_cam = pose_to_transform(pose[:3], pose[3:])
        elif c.camera_mount == "hand":
            spec.mount_T_cam = DEFAULT_EYE_IN_HAND.copy()
        if c.board not in ("none", "hand", "table"):
            raise CameraError(f"board must be none, hand or table, got {c.board!r}")
        board = None
        if c.board != "none":
            from .sim_camera import BoardMount, default_hand_board, default_table_board

            board = (
                BoardMount(mount="hand", mount_T_board=default_hand_board())
                if c.board == "hand"
                else BoardMount(mount="world", mount_T_board=default_table_board())
            )
        self._scene = CameraScene(c.task, spec, board)
        self._renderer = SceneRenderer(self._scene.model, width=c.width, height=c.height)
        self.source = SoftwareSource(
            spec.camera_matrix(), c.width, c.height, fps=max(1, int(round(c.sim_rate_hz))), record_to=c.record_to
        )
        self.create_subscription(JointState, names.JOINT_STATES, self._on_joints, 10)
        self.create_subscription(PoseStamped, c.truth_topic, self._on_truth, 10)

    def _on_joints(self, msg: JointState) -> None:
        try:
            q = np.array([msg.position[list(msg.name).index(j)] for j in names.JOINT_NAMES])
        except (ValueError, IndexError):
            return
        fingers = [msg.position[list(msg.name).index(f)] for f in names.FINGER_NAMES if f in msg.name]
        with self._lock:
            self._joints, self._joint_stamp = q, time_to_sec(msg.header.stamp)
            if fingers:
                self._fingers = float(fingers[0])

    def _on_truth(self, msg: PoseStamped) -> None:
        _, p, q = msg_to_pose(msg)
        with self._lock:
            self._truth = (p, q)

    def _render_once(self) -> bool:
        with self._lock:
            q, stamp, fingers, truth = self._joints, self._joint_stamp, self._fingers, self._truth
        if q is None or truth is None:
            return False  # nothing to show yet: the scene would not be the simulator's
        scene = self._scene
        scene.set_joints(q)
        scene.set_fingers(fingers)
        scene.set_object_pose(*truth)
        scene.forward()
        img = self._renderer.render(scene.data)
        # the frame shows the state of that joint message: that is its capture time
        self.source.inject(img, stamp if stamp > 0 else self._now())
        return True

    # --- loop -----------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _run(self) -> None:
        c = self.config
        period = 1.0 / max(c.sim_rate_hz, 0.1)
        next_t = time.monotonic()
        while self._running and rclpy.ok(context=self.context):
            try:
                if c.source == "sim":
                    next_t += period
                    time.sleep(max(0.0, next_t - time.monotonic()))
                    if not self._render_once():
                        continue
                frame = self.source.read(timeout_s=1.0)
            except Exception as exc:  # a dead camera must show up on /diagnostics, not kill silently
                self.get_logger().error(f"camera read failed: {exc!r}")
                time.sleep(0.5)
                continue
            if frame is None:
                continue
            try:
                self._publish(frame)
            except Exception:
                if not rclpy.ok(context=self.context):
                    return  # shutting down (Ctrl-C, the graph stopping): the frame has nowhere to go
                raise

    def _publish(self, frame) -> None:
        c = self.config
        k, d = frame.camera_matrix, frame.dist_coeffs
        if self._calib is not None:
            k, d = self._calib.intrinsics.camera_matrix, self._calib.intrinsics.dist_coeffs
        h, w = frame.image.shape[:2]
        self.image_pub.publish(image_to_msg(frame.image, frame.stamp, c.frame_id))
        self.info_pub.publish(camera_info(frame.stamp, c.frame_id, w, h, k, d))
        self._frames += 1

    def _diagnose(self) -> None:
        self.diag_pub.publish(
            diagnostics.array(
                self._now(),
                diagnostics.status(
                    "camera_node",
                    diagnostics.OK if self._frames else diagnostics.WARN,
                    "streaming" if self._frames else "no frames yet",
                    {"source": self.config.source, "frames": self._frames},
                ),
            )
        )

    def destroy_node(self) -> None:
        self._running = False
        if hasattr(self, "_thread"):
            self._thread.join(timeout=3.0)
        if hasattr(self, "source"):
            try:
                self.source.close()
            except Exception:
                pass
        if self._renderer is not None:
            self._renderer.close()
        super().destroy_node()


def main(argv: list[str] | None = None, default_source: str = "live") -> int:
    return run_node(lambda: CameraNode(default_source), "camera_node", argv)


def sim_main(argv: list[str] | None = None) -> int:
    return main(argv, default_source="sim")


if __name__ == "__main__":
    sys.exit(main())

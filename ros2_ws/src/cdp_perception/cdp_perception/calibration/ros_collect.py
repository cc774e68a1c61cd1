"""``cdp-calibrate collect``: drive the arm through the pose set via the safety filter, pair TCP poses with images.

The same path runs the real robot and the simulated stack (``cdp-graph use_sim:=true
use_perception:=true`` with the simulated camera rendering the ChArUco board in the hand):

1. hand the safety filter's input to ``teleop`` (its ``active_source`` parameter): every motion
   goes through the filter's limits, workspace box and watchdog like any other command;
2. per joint configuration of :func:`.collect.pose_set`: stream a smooth path there on
   /teleop/command, hold it until the arm has been still for ``settle_s``, then take the first
   camera frame captured after that and the TCP pose (/franka/ee_pose) at its capture time;
3. keep the views whose board is seen (>= ``min_corners``), calibrate intrinsics on them, then the
   hand-eye transform (closed form + joint refinement), apply the quality gates, write the YAML.

A pose the arm cannot reach (the filter refuses or clamps it) is skipped after ``move_timeout_s``
and reported; the arm holds at the last pose at the end.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import rclpy
from cdp_ros_common import names
from cdp_ros_common.conversions import chunk_to_msg, msg_to_pose, time_to_sec
from cdp_ros_common.stack_client import StackClient, StackClientConfig, StackError
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState

from ..camera_node import IMAGE_TOPIC
from ..geometry import pose_to_transform
from ..markers import BoardSpec
from ..ros_images import msg_to_image
from .solvers import HandEyeData, detect_board


class CollectionError(StackError):
    """The stack is not there or not usable for collection; the message says what is missing."""


@dataclass
class CollectConfig:
    speed_rad_s: float = 0.4
    #: Within this of the pose (rad, every joint) and still for settle_s = arrived.
    tolerance_rad: float = 0.01
    settle_s: float = 0.5
    move_timeout_s: float = 30.0
    #: The TCP pose paired with a frame must be this close to the frame's capture time.
    max_tcp_offset_s: float = 0.05
    frame_timeout_s: float = 5.0
    min_corners: int = 8
    safety_node: str = "safety_filter"
    image_topic: str = IMAGE_TOPIC


@dataclass
class RosCollection:
    data: HandEyeData
    image_size: tuple[int, int]
    visited: int = 0
    unreachable: int = 0
    board_not_seen: int = 0


class CalibrationCollector(Node):
    """Moves the arm through joint configurations and gathers (TCP pose, board view) pairs."""

    def __init__(self, config: CollectConfig | None = None):
        super().__init__("calibration_collector")
        self.config = c = config or CollectConfig()
        group = ReentrantCallbackGroup()
        self._lock = threading.Lock()
        self.q: np.ndarray | None = None
        self._q_moved_at = time.monotonic()
        self._tcp: list[tuple[float, np.ndarray]] = []
        self._image: tuple[float, Image] | None = None
        self.create_subscription(JointState, names.JOINT_STATES, self._on_joints, 20, callback_group=group)
        self.create_subscription(PoseStamped, names.EE_POSE, self._on_tcp, 50, callback_group=group)
        self.create_subscription(Image, c.image_topic, self._on_image, 1, callback_group=group)
        self.stack = StackClient(
            self,
            StackClientConfig(
                safety_node=c.safety_node,
                homing_speed=c.speed_rad_s,
                home_tolerance=c.tolerance_rad,
                home_settle_s=0.0,
                homing_timeout_s=c.move_timeout_s,
            ),
        )

    # --- subscriptions ----------------------------------------------------------------
    def _on_joints(self, msg: JointState) -> None:
        try:
            q = np.array([msg.position[list(msg.name).index(j)] for j in names.JOINT_NAMES])
        except (ValueError, IndexError):
            return
        with self._lock:
            if self.q is None or np.max(np.abs(q - self.q)) > 2e-4:
                self._q_moved_at = time.monotonic()
            self.q = q

    def _on_tcp(self, msg: PoseStamped) -> None:
        t, p, q = msg_to_pose(msg)
        with self._lock:
            self._tcp.append((t, pose_to_transform(p, q)))
            del self._tcp[:-400]

    def _on_image(self, msg: Image) -> None:
        with self._lock:
            self._image = (time_to_sec(msg.header.stamp), msg)

    # --- helpers ----------------------------------------------------------------------
    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        t_end = time.monotonic() + timeout_s
        while self.q is None or self._image is None or not self._tcp:
            if time.monotonic() > t_end:
                missing = [
                    n
                    for n, ok in (
                        (names.JOINT_STATES, self.q is not None),
                        (self.config.image_topic, self._image is not None),
                        (names.EE_POSE, bool(self._tcp)),
                    )
                    if not ok
                ]
                raise CollectionError(
                    f"nothing on {', '.join(missing)} within {timeout_s} s: is the stack (driver, camera_node) running?"
                )
            time.sleep(0.05)
        self.stack.wait_for([self.stack.filter_parameters], max(0.1, t_end - time.monotonic()))

    def hold(self, q: np.ndarray) -> None:
        self.stack.teleop.publish(chunk_to_msg(self.now(), 0.1, np.asarray(q)[None]))

    def move_to(self, q_goal: np.ndarray) -> bool:
        """Bring the arm to ``q_goal`` through the filter and hold it until it is still; False on timeout.

        A driver error is not a pose to skip: it raises (StackError) and the collection stops.
        """
        c = self.config
        t_end = time.monotonic() + c.move_timeout_s
        try:
            self.stack.go_home(q_goal)
        except StackError:
            self.stack.check_driver()
            return False
        while time.monotonic() < t_end:
            self.hold(q_goal)
            with self._lock:
                there = float(np.max(np.abs(self.q - q_goal))) < c.tolerance_rad
                still = time.monotonic() - self._q_moved_at >= c.settle_s
            if there and still:
                return True
            time.sleep(0.05)
        return False

    def capture(self, q_goal: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The first frame captured after now (the arm holding ``q_goal``) and the TCP pose at its capture time."""
        c = self.config
        t_min = self.now()
        t_end = time.monotonic() + c.frame_timeout_s
        while time.monotonic() < t_end:
            self.hold(q_goal)
            with self._lock:
                img = self._image
                tcp = list(self._tcp)
            if img is not None and img[0] >= t_min:
                stamp = img[0]
                t, pose = min(tcp, key=lambda item: abs(item[0] - stamp))
                if abs(t - stamp) <= c.max_tcp_offset_s:
                    return msg_to_image(img[1]), pose
            time.sleep(0.02)
        return None


def collect_via_stack(
    poses: list[np.ndarray], mode: str, board: BoardSpec, config: CollectConfig | None = None, log: Any = print
) -> RosCollection:
    """Run the collection through the running stack (rclpy must be initialised by the caller)."""
    from rclpy.executors import MultiThreadedExecutor

    node = CalibrationCollector(config)
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    out = RosCollection(HandEyeData(mode), (0, 0))
    try:
        node.wait_ready()
        node.stack.select_source("teleop")
        for i, q in enumerate(poses):
            out.visited += 1
            if not node.move_to(q):
                out.unreachable += 1
                log(f"pose {i + 1}/{len(poses)}: not reached within {node.config.move_timeout_s} s, skipped")
                continue
            shot = node.capture(q)
            view = detect_board(shot[0], board, node.config.min_corners) if shot is not None else None
            if view is None:
                out.board_not_seen += 1
                log(f"pose {i + 1}/{len(poses)}: board not seen, skipped")
                continue
            out.image_size = (shot[0].shape[1], shot[0].shape[0])
            out.data.base_T_tcp.append(shot[1])
            out.data.views.append(view)
            log(f"pose {i + 1}/{len(poses)}: {len(view.ids)} corners")
    finally:
        executor.shutdown()
        node.destroy_node()
    return out


def calibrate_via_stack(
    mode: str,
    views: int,
    seed: int = 0,
    rotation_scale: float = 1.0,
    method: str = "PARK",
    config: CollectConfig | None = None,
    serial: str = "",
    log: Any = print,
    nominal: np.ndarray | None = None,
):
    """Collect through the stack, then intrinsics + hand-eye + refinement; raises CalibrationRefused on a gate.

    ``nominal``: the joint configuration the pose set is centred on (default ``collect.NOMINAL_Q[mode]``).
    """
    from .collect import pose_set
    from .refine import refine_hand_eye
    from .solvers import calibrate_hand_eye, calibrate_intrinsics, make_calibration

    board = BoardSpec()
    own_context = not rclpy.ok()
    if own_context:
        rclpy.init()
    try:
        col = collect_via_stack(pose_set(mode, views, rotation_scale, seed, nominal), mode, board, config, log)
    finally:
        if own_context:
            rclpy.shutdown()
    log(
        f"collected {len(col.data.views)} views of {col.visited} poses ({col.unreachable} unreachable, "
        f"{col.board_not_seen} without the board)"
    )
    intrinsics = calibrate_intrinsics(col.data.views, col.image_size)
    hand_eye = calibrate_hand_eye(col.data, intrinsics, method)
    intrinsics, hand_eye = refine_hand_eye(col.data, intrinsics, hand_eye)
    return make_calibration(intrinsics, hand_eye, serial), col

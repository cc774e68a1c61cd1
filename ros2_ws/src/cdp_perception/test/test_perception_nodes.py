"""camera_node (sim source, software device) + perception_node on a real rclpy graph; start-up refusals."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter

from cdp_perception.sim_camera import use_offscreen_gl

use_offscreen_gl()

from cdp_ros_common import names  # noqa: E402
from cdp_ros_common.conversions import msg_to_pose, pose_to_msg, sec_to_time, time_to_sec  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402

from cdp_perception.calibration.result import Calibration, HandEye, Intrinsics  # noqa: E402
from cdp_perception.sim_camera import CameraSpec  # noqa: E402

HOME = [0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785]


def wait_for(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@pytest.fixture
def ros_context():
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def _truth_calibration(path, cam: CameraSpec) -> str:
    """The simulated camera's exact intrinsics and pose (the robot base is at the world origin)."""
    import datetime as dt

    cal = Calibration(
        Intrinsics(cam.width, cam.height, cam.camera_matrix(), np.zeros(5), "ground truth", 0.0, 0),
        HandEye("eye_to_hand", cam.mount_T_cam, "ground truth"),
        dt.datetime.now(dt.timezone.utc),
    )
    return str(cal.save(path))


def test_sim_camera_and_perception_publish_object_pose(ros_context, tmp_path):
    from cdp_perception.camera_node import CameraNode
    from cdp_perception.perception_node import PerceptionNode

    ctx = ros_context
    cam = CameraSpec(width=640, height=480)
    cal = _truth_calibration(tmp_path / "cal.yaml", cam)
    truth_topic, out_topic = "/test/object_truth", "/test/object_pose"
    camera = CameraNode(
        "sim",
        context=ctx,
        parameter_overrides=[
            Parameter("task", value="peg_insert"),
            Parameter("sim_rate_hz", value=4.0),
            Parameter("truth_topic", value=truth_topic),
        ],
    )
    perception = PerceptionNode(
        context=ctx,
        parameter_overrides=[
            Parameter("calibration_file", value=cal),
            Parameter("task", value="peg_insert"),
            Parameter("output_topic", value=out_topic),
        ],
    )
    rig = rclpy.create_node("perception_test_rig", context=ctx)
    images: list[Image] = []
    poses: list[PoseStamped] = []
    rig.create_subscription(Image, "/camera/color/image_raw", images.append, 5)
    rig.create_subscription(PoseStamped, out_topic, poses.append, 10)
    js_pub = rig.create_publisher(JointState, names.JOINT_STATES, 10)
    truth_pub = rig.create_publisher(PoseStamped, truth_topic, 10)
    truth_p, yaw = np.array([0.53, -0.06, 0.06]), 0.3
    truth_q = np.array([0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)])
    sent_stamps: list[float] = []

    def publish():
        now = rig.get_clock().now().nanoseconds * 1e-9
        js = JointState(name=names.JOINT_NAMES + names.FINGER_NAMES, position=[*HOME, 0.04, 0.04])
        js.header.stamp = sec_to_time(now)
        js_pub.publish(js)
        truth_pub.publish(pose_to_msg(now, truth_p, truth_q))
        sent_stamps.append(round(now, 6))

    rig.create_timer(0.05, publish)
    executor = MultiThreadedExecutor(num_threads=4, context=ctx)
    for n in (camera, perception, rig):
        executor.add_node(n)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        assert wait_for(lambda: len(poses) >= 3, 40.0), f"{len(images)} images, {len(poses)} poses"
    finally:
        executor.shutdown()
        camera.destroy_node()
        perception.destroy_node()
        rig.destroy_node()
    stamp, p, q = msg_to_pose(poses[-1])
    err_mm = np.linalg.norm(p - truth_p) * 1000
    print(f"\nnode chain: object position error {err_mm:.2f} mm, frame {poses[-1].header.frame_id}")
    assert poses[-1].header.frame_id == names.BASE_FRAME
    assert err_mm < 5.0

    # stamped with the capture time: the joint-state time the frame was rendered for, not the publish time
    # (float seconds -> ns -> float: compare within a microsecond, not by rounding, which can
    # split a value sitting on a rounding boundary)
    def was_sent(t: float) -> bool:
        return any(abs(t - s) < 2e-6 for s in sent_stamps)

    assert was_sent(stamp)
    assert images and all(was_sent(time_to_sec(i.header.stamp)) for i in images)


def _run_node(*params: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "cdp_perception.perception_node", "--ros-args"]
    for p in params:
        cmd += ["-p", p]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_perception_node_refuses_missing_calibration(tmp_path):
    res = _run_node(f"calibration_file:={tmp_path / 'missing.yaml'}")
    assert res.returncode == 1
    assert "refuses to start" in res.stderr and "does not exist" in res.stderr


def test_perception_node_refuses_malformed_calibration(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ndate: 2026-01-01T00:00:00\nintrinsics: {width: 640, height: 480, fx: 500}\n")
    res = _run_node(f"calibration_file:={bad}")
    assert res.returncode == 1
    assert "refuses to start" in res.stderr and "missing 'fy'" in res.stderr
